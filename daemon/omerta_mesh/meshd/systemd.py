"""systemd integration without libsystemd: sd_notify, the watchdog, and logging for the journal.

``Notifier`` sends ``READY=1``, ``STATUS=...``, ``RELOADING=1``, ``STOPPING=1`` and ``WATCHDOG=1`` as one
datagram each to ``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with '@'), encoded as
UTF-8 (the ``sdnotify`` package drops non-Latin-1 text; we do not use it). Without ``NOTIFY_SOCKET`` every
call is a no-op. The watchdog interval is half of ``$WATCHDOG_USEC`` when ``$WATCHDOG_PID`` is unset or
ours. ``STATUS=``, ``WATCHDOG=1`` and ``STOPPING=1`` never wait (``MSG_DONTWAIT``): when the receiver's queue is full the
datagram is dropped and counted (``dropped``), so a receiver that does not read cannot stop the event loop
(``STATUS`` follows every peer that comes and goes: a flood of them filled a test's queue and froze the daemon).

Logging: journald with structured fields through ``systemd-python`` when it is installed and stderr is
connected to the journal; otherwise stderr, with a ``<N>`` syslog priority prefix when journald reads
stderr (so priorities survive), and timestamps when it does not. Structured fields are passed as
upper-case ``extra`` keys (``log.info(..., extra={"PEER": id})``) and shown as ``KEY=value`` on stderr.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Mapping

log = logging.getLogger("omerta_mesh.meshd.systemd")


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + addr[1:]) if addr.startswith("@") else addr
        self.sock: socket.socket | None = None
        if addr:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._status: str | None = None
        self._watchdog: float | None = None
        self.dropped = 0  # STATUS/WATCHDOG datagrams dropped because the receiver's queue was full
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self._watchdog = int(usec) / 1e6 / 2

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    @property
    def watchdog_interval(self) -> float | None:
        return self._watchdog if self.enabled else None

    def notify(self, *fields: str, wait: bool = True) -> bool:
        """Send one notification; ``wait=False``: drop it (counted) rather than block when the queue is full."""
        if self.sock is None:
            return False
        try:
            self.sock.sendto("\n".join(fields).encode("utf-8"), 0 if wait else socket.MSG_DONTWAIT, self.address)
            return True
        except BlockingIOError:
            self.dropped += 1
            return False
        except OSError as e:
            log.debug("sd_notify to %s failed: %s", self.address.replace("\0", "@"), e)
            return False

    def ready(self, status: str) -> None:
        self._status = status
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        if text != self._status and self.notify(f"STATUS={text}", wait=False):  # (dropped: sent again at the next push)
            self._status = text

    def reloading(self) -> None:
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading the configuration")

    def reloaded(self, status: str) -> None:
        self._status = status
        self.notify("READY=1", f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: telling peers and saving state", wait=False)

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1", wait=False)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# ---------------------------------------------------------------------- logging
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def journal_stream(env: Mapping[str, str] | None = None) -> bool:
    """True when stderr is the journal's stream (systemd sets JOURNAL_STREAM=<dev>:<inode>)."""
    env = os.environ if env is None else env
    js = env.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
        return js == f"{st.st_dev}:{st.st_ino}"
    except (OSError, ValueError, AttributeError):
        return False


class FieldsFormatter(logging.Formatter):
    """Plain lines with structured fields (upper-case extras) appended as KEY=value."""

    def __init__(self, journal: bool) -> None:
        super().__init__("%(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [f"{k}={v}" for k, v in record.__dict__.items() if k not in _RESERVED and k.isupper()]
        if fields:
            text += " " + " ".join(fields)
        if self.journal:
            prio = _PRIORITY.get(record.levelno, 6)
            text = "\n".join(f"<{prio}>{line}" for line in text.splitlines())
        return text


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler  # type: ignore[import-not-found]
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER="omerta-meshd")


def setup_logging(level: str, env: Mapping[str, str] | None = None) -> str:
    """Install the daemon's log handler on the root logger; returns which one ("journald" or "stderr")."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    on_journal = journal_stream(env)
    handler = _journal_handler() if on_journal else None
    kind = "journald"
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(FieldsFormatter(on_journal))
        kind = "stderr"
    root.addHandler(handler)
    set_level(level)
    return kind


def set_level(level: str) -> None:
    logging.getLogger().setLevel(getattr(logging, level.upper(), logging.INFO))
