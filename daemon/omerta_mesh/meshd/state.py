"""The daemon's hold on its directories: create them with the right modes, lock the state directory,
and clear the debris of a crash.

The state files themselves (identity, networks.json, peers.json) are written by ``io.store.StateStore``
with ``atomic_write``: temp file, fsync, rename, fsync the directory. A crash between the write and the
rename leaves the previous file intact plus a ``.<name>.*.tmp`` file, which is removed here at the next
start. A ``lock`` file held with ``flock`` keeps a second daemon off the same state directory.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger("omerta_mesh.meshd.state")


class StateDirError(Exception):
    """The state or runtime directory is unusable; the message says why and what to do."""


class StateLock:
    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def prepare_state(path: Path) -> StateLock:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as e:
        raise StateDirError(f"cannot use state directory {path}: {e.strerror}; run as root or pass a writable --state-dir") from None
    lock_path = path / "lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        other = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise StateDirError(f"another omerta-meshd (pid {other}) is using {path}; "
                                "stop it first, or give this one its own --state-dir") from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    for leftover in path.glob(".*.tmp"):
        log.warning("removing %s, left by a crash during a state write (the previous state is intact)", leftover)
        try:
            leftover.unlink()
        except OSError:
            pass
    return StateLock(fd, lock_path)


def prepare_runtime(path: Path) -> None:
    try:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as e:
        raise StateDirError(f"cannot create runtime directory {path}: {e.strerror}; run as root or pass a writable --runtime-dir") from None
