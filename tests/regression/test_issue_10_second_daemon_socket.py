"""Regression (issue 10, fault 7): a refused second omerta-meshd removed the live daemon's socket.

A second daemon with another state directory but the same runtime directory (so the same socket path) is
refused, and on its way out it unlinked the first daemon's socket: `omertactl` then said "daemon not
running". A refused start must touch nothing another daemon owns. Two real daemon processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from meshd.harness import DaemonProc


def test_refused_second_daemon_leaves_the_first_daemons_socket(tmp_path: Path) -> None:
    first, second = DaemonProc(tmp_path, "first"), DaemonProc(tmp_path, "second")
    try:
        run_both(first, second)
    finally:
        first.close()
        second.close()


def run_both(first: DaemonProc, second: DaemonProc) -> None:
    first.start()
    inode = os.stat(first.socket).st_ino
    second.run = first.run  # same runtime dir (same socket path), its own state dir
    second.socket = first.socket
    second.start(wait=False)
    assert second.proc is not None and second.proc.wait(20) == 1, second.log_text()
    assert "another omerta-meshd already answers" in second.log_text()
    assert first.socket.exists() and os.stat(first.socket).st_ino == inode  # not removed, not replaced
    assert first.alive() and first.call("status.get")["name"]  # still reachable through it
