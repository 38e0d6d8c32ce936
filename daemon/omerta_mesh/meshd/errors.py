"""ApiError: what every client-visible failure becomes, with a stable code, a message and the fix.

The code table is part of the API: codes are never renumbered or reused. JSON-RPC carries an error as
``{"code": <int>, "message": <what went wrong>, "data": {"name": <NAME>, "fix": <what to do>}}``; D-Bus as
the error name ``org.omerta.Mesh1.Error.<CamelName>`` with the text ``<message> (fix: <fix>)``.

The first five are JSON-RPC 2.0's own codes; ours start at 1000. No error ever carries internal exception
text: an unexpected failure is logged in full and answered with ``INTERNAL`` only.
"""

from __future__ import annotations

import enum

from ..core.ids import MIN_PREFIX


class Code(enum.IntEnum):
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL = -32603
    PERMISSION_DENIED = 1001
    PEER_NOT_FOUND = 1002
    PEER_AMBIGUOUS = 1003
    NETWORK_NOT_FOUND = 1004
    INVITE_INVALID = 1005
    NOT_CONNECTED = 1006
    TIMEOUT = 1007
    FRAME_TOO_LARGE = 1008
    BUSY = 1009
    SUBSCRIBER_TOO_SLOW = 1010
    SHUTTING_DOWN = 1011
    CONFIG_INVALID = 1012
    DELIVERY_FAILED = 1013
    SUBSCRIPTION_NOT_FOUND = 1014
    REFUSED = 1015
    STATE_NOT_SAVED = 1016


# The fix shown when a raise site gives none: what a user can do about this kind of failure.
DEFAULT_FIX: dict[Code, str] = {
    Code.PARSE_ERROR: "send one JSON-RPC 2.0 request (or batch) per frame, UTF-8 JSON; see docs/api.md",
    Code.INVALID_REQUEST: "a request is an object with jsonrpc=\"2.0\", a method name and optional params; see docs/api.md",
    Code.METHOD_NOT_FOUND: "list the methods in docs/api.md; check the client and daemon versions match",
    Code.INVALID_PARAMS: "pass the parameters the method declares (docs/api.md), by name",
    Code.INTERNAL: "this is a bug in omerta-meshd: see its log (journalctl -u omerta-meshd) and report it",
    Code.PERMISSION_DENIED: "run as root, or add your user to the daemon's group (sudo usermod -aG omerta $USER) and log in again",
    Code.PEER_NOT_FOUND: f"list peers with `omertactl peers`; use a name, a full node id or a unique prefix of {MIN_PREFIX}+ characters",
    Code.PEER_AMBIGUOUS: "type more characters of the node id, or use the peer's name",
    Code.NETWORK_NOT_FOUND: "list your networks with `omertactl network list`",
    Code.INVITE_INVALID: "copy the whole invite string (it starts with omerta1-) again from the inviter",
    Code.NOT_CONNECTED: "wait for the peer to connect (`omertactl peers` shows connected), or check it is running and reachable",
    Code.TIMEOUT: "check the peer is running and reachable, or retry with a longer timeout",
    Code.FRAME_TOO_LARGE: "send smaller requests; the frame limit is api.max_frame in meshd.toml",
    Code.BUSY: "close idle clients or raise api.max_connections in meshd.toml",
    Code.SUBSCRIBER_TOO_SLOW: "read events as fast as they arrive; subscribe again to get a fresh snapshot",
    Code.SHUTTING_DOWN: "the daemon is stopping; start it again (systemctl start omerta-meshd)",
    Code.CONFIG_INVALID: "fix the file named in the message; the daemon keeps its previous configuration",
    Code.DELIVERY_FAILED: "the message says why: send again once the peer is back (it vanished or restarted), or once the "
                          "channel is received there (`omertactl listen CHANNEL` on the peer)",
    Code.SUBSCRIPTION_NOT_FOUND: "use the subscription id that events.subscribe returned on this connection",
    Code.REFUSED: "see the message; the daemon refused the request as it stands",
    Code.STATE_NOT_SAVED: "free space on the filesystem of the daemon's state directory (df -h /var/lib/omerta), then try "
                          "again; nothing was changed",
}


def camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.lower().split("_"))


class ApiError(Exception):
    """A failure a client sees. ``message`` says what went wrong, ``fix`` what to do about it."""

    def __init__(self, code: Code, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fix = fix or DEFAULT_FIX[code]

    @property
    def name(self) -> str:
        return self.code.name

    def data(self) -> dict[str, str]:
        return {"name": self.code.name, "fix": self.fix}

    def dbus_name(self) -> str:
        return f"org.omerta.Mesh1.Error.{camel(self.code.name)}"

    def __repr__(self) -> str:
        return f"ApiError({self.code.name}, {self.message!r})"


def refused(e: Exception) -> ApiError:
    """REFUSED for a core refusal written as ``"<what went wrong>; <the fix>"`` (the fix part optional)."""
    message, _, fix = str(e).partition("; ")
    return ApiError(Code.REFUSED, message, fix or None)


def internal() -> ApiError:
    return ApiError(Code.INTERNAL, "internal error in omerta-meshd; details are in the daemon log")
