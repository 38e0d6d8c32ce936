"""Client-side errors: what went wrong, what fixes it, and the exit code a script can test.

Every failure a client shows is a ``ClientError`` with a one-line ``message`` (the cause) and a ``fix``
(the command or step that helps). Errors from the daemon keep its stable ``name`` (``PEER_NOT_FOUND``...)
and its fix; the exit code is mapped from that name, so scripts need not parse text.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

# ---------------------------------------------------------------------- exit codes
ERROR = 1  # anything else the daemon refused or failed
USAGE = 2  # bad command line or parameters
DAEMON_DOWN = 3  # no daemon answers on the socket (or it is shutting down)
PERMISSION = 4  # the socket or the method needs root or the omerta group
NOT_FOUND = 5  # no such peer or network, or a peer prefix that matches several
TIMEOUT = 6  # timed out, or the peer is not connected

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  error (the message says what went wrong and how to fix it)
  2  usage error (bad arguments or parameters)
  3  the daemon is not running (no omerta-meshd answers on the socket)
  4  permission denied (needs root or membership of the omerta group)
  5  peer or network not found, or a peer prefix matching several peers
  6  timeout, or the peer is not connected
"""

# The daemon's error names (docs/api.md, "Error codes"): numeric code, exit code, and a prefix for the
# message so its first words say what kind of failure it is. Names not listed exit with ERROR.
DAEMON_ERRORS: dict[str, tuple[int, int, str | None]] = {
    "INVALID_PARAMS": (-32602, USAGE, None),
    "PERMISSION_DENIED": (1001, PERMISSION, "permission denied"),
    "PEER_NOT_FOUND": (1002, NOT_FOUND, "unknown peer"),
    "PEER_AMBIGUOUS": (1003, NOT_FOUND, "ambiguous peer"),
    "NETWORK_NOT_FOUND": (1004, NOT_FOUND, "unknown network"),
    "NOT_CONNECTED": (1006, TIMEOUT, "not connected"),
    "TIMEOUT": (1007, TIMEOUT, "timeout"),
    "SHUTTING_DOWN": (1011, DAEMON_DOWN, "daemon stopping"),
}
# The name by numeric code, for an error object that carries no data.name.
NAME_BY_CODE = {code: name for name, (code, _, _) in DAEMON_ERRORS.items()}

START_FIX = ("start it with `systemctl start omerta-meshd` (or `omerta-meshd --foreground`); "
             "for another daemon pass --socket or set OMERTA_SOCKET")
# The group whose members may change state: [api] group in meshd.toml, named by status.get's write_group.
DEFAULT_GROUP = "omerta"


def group_fix(group: str) -> str:
    """The fix for a user who may not change state (or open the socket): join ``group`` or be root."""
    return f"add yourself to the {group} group (`sudo usermod -aG {group} $USER`, then log in again), or run as root"


GROUP_FIX = group_fix(DEFAULT_GROUP)  # the default group's text (tests/clients/test_doctor_phases.py compares with it)


class ClientError(Exception):
    """A failure to show the user: ``message`` (cause), ``fix`` (what to do) and the process exit code."""

    exit_code = ERROR
    name = "ERROR"

    def __init__(self, message: str, fix: str = "", exit_code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code
        if name is not None:
            self.name = name

    def __str__(self) -> str:
        return self.message


class DaemonNotRunning(ClientError):
    exit_code = DAEMON_DOWN
    name = "DAEMON_NOT_RUNNING"

    def __init__(self, socket_path: str, why: str = "") -> None:
        detail = f" ({why})" if why else ""
        super().__init__(f"daemon not running: nothing answers on {socket_path}{detail}", START_FIX)


class SocketPermissionDenied(ClientError):
    exit_code = PERMISSION
    name = "PERMISSION_DENIED"

    def __init__(self, socket_path: str) -> None:
        # (without a connection the daemon cannot say its [api] group: the default one is named)
        super().__init__(f"permission denied: cannot open {socket_path}", group_fix(DEFAULT_GROUP))


class Timeout(ClientError):
    exit_code = TIMEOUT
    name = "TIMEOUT"


class RpcError(ClientError):
    """An error object the daemon answered with: ``code``, ``message``, ``data`` {name, fix}."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        self.code = error.get("code")
        raw = error.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = str(data.get("name") or NAME_BY_CODE.get(self.code, "ERROR"))  # type: ignore[arg-type]
        message = str(error.get("message", "the daemon refused the request"))
        _, exit_code, prefix = DAEMON_ERRORS.get(name, (0, ERROR, None))
        text = f"{prefix}: {message}" if prefix and not message.lower().startswith(prefix) else message
        super().__init__(text, str(data.get("fix") or ""), exit_code, name)
        self.daemon_message = message


def show(err: ClientError, prog: str, stream: TextIO) -> None:
    """Print the error as two lines on ``stream``: the cause, then the fix."""
    stream.write(f"{prog}: {err.message}\n")
    if err.fix:
        stream.write(f"  fix: {err.fix}\n")
    stream.flush()


def show_json(err: ClientError, stream: TextIO) -> None:
    """``--json``: the error as one JSON object on ``stream``: its stable code, the message, the fix and the
    exit code, so scripts read failures the way they read results."""
    stream.write(json.dumps({"code": err.name, "message": err.message, "fix": err.fix, "exit_code": err.exit_code}) + "\n")
    stream.flush()
