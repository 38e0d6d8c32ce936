"""A notify socket nobody reads must not block the daemon (issue 12, fault 1).

STATUS follows every peer that comes and goes; under a flood of fresh identities the status pushes filled the
test harness's notify socket (it reads only when a test waits for something) and the next blocking send froze
the event loop for good. STATUS, WATCHDOG and STOPPING are sent with MSG_DONTWAIT: dropped and counted.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from omerta_mesh.meshd.systemd import Notifier


def test_status_and_watchdog_never_block_on_a_full_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    done = threading.Event()

    def push() -> None:
        for i in range(5000):  # far more than a datagram socket queues
            n.status(f"{i} peers")
            n.watchdog()
        n.stopping()
        done.set()

    t = threading.Thread(target=push, daemon=True)
    t.start()
    try:
        assert done.wait(30), "a send blocked on the full notify socket"
        assert n.dropped > 0
        rx.setblocking(False)
        got = []
        while True:
            try:
                got.append(rx.recv(4096).decode())
            except BlockingIOError:
                break
        assert got and got[0] == "STATUS=0 peers"  # what fitted arrived, in order
        n.status("after")  # room again: a dropped status is sent at the next push
        assert rx.recv(4096) == b"STATUS=after"
    finally:
        n.close()
        rx.close()
