"""Two connected TCP sockets joined in the kernel: ``splice(2)`` through a pipe, one thread per direction.

The stream gate (``meshd/meshtcp.py``) joins a peer's TCP connection on the mesh with a local service's; the bytes
never enter Python (socket -> pipe -> socket, ``os.splice``), so a gate connection costs a few system calls per
``CHUNK`` and no copy in this process. Each direction runs in a daemon thread with blocking sockets: EOF on one
side half-closes the other (``shutdown(SHUT_WR)``); an error, or ``abort()``, shuts both sockets down both ways,
which wakes both threads. ``done`` is called once, from a thread, when both directions have ended; the sockets
are closed then.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from typing import Any, Callable

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031  # (linux/fcntl.h; fcntl has it from Python 3.10 on some builds only)


class Spliced:
    def __init__(self, a: socket.socket, b: socket.socket, done: Callable[["Spliced"], Any]) -> None:
        self.a, self.b, self.done = a, b, done
        self.bytes_ab = 0  # a -> b
        self.bytes_ba = 0  # b -> a
        self.opened = time.monotonic()
        self._left = 2
        self._lock = threading.Lock()
        for s in (a, b):
            s.setblocking(True)
        for args in ((a, b, True), (b, a, False)):
            threading.Thread(target=self._pump, args=args, daemon=True, name="splice").start()

    def abort(self) -> None:
        """Both directions end now (the threads wake from their blocked splice)."""
        for s in (self.a, self.b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _pump(self, src: socket.socket, dst: socket.socket, ab: bool) -> None:
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                fcntl.fcntl(w, F_SETPIPE_SZ, CHUNK)
            except OSError:
                pass  # (the default 64 KiB pipe works, with more calls)
            while n := os.splice(src.fileno(), w, CHUNK):
                while n:
                    m = os.splice(r, dst.fileno(), n)
                    n -= m
                    if ab:
                        self.bytes_ab += m
                    else:
                        self.bytes_ba += m
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            self.abort()
        finally:
            os.close(r)
            os.close(w)
            with self._lock:
                self._left -= 1
                last = self._left == 0
            if last:
                self.a.close()
                self.b.close()
                self.done(self)
