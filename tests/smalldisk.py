"""A small tmpfs to stand in for a state filesystem that fills up (root: it mounts).

``SmallDisk(path)`` mounts a 512 KiB tmpfs on ``path`` (the test is skipped, with the reason, when mounting is
not allowed); ``fill`` takes every free page with a ballast file, so the next new file's first byte gets
ENOSPC; ``free`` gives the space back; ``unmount`` (lazily if still busy) belongs in the test's ``finally``.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path, size: str = "512k") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for the state directory: {r.stderr.strip()}")
        self.ballast = path / "ballast"

    def fill(self) -> None:
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        finally:
            os.close(fd)

    def free(self) -> None:
        self.ballast.unlink()

    def unmount(self) -> None:
        if subprocess.run(["umount", str(self.path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
