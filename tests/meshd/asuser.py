"""Run a function in a forked child as another user (root tests only), and a temporary group."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import uuid
from typing import Any, Callable


def run_as(user: str, fn: Callable[[], Any], groups: tuple[int, ...] = ()) -> Any:
    """``fn()`` in a child process with the uid/gid of ``user`` and exactly ``groups`` as supplementary
    groups; returns its JSON-able result (or raises with the child's exception text)."""
    pw = pwd.getpwnam(user)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, run, report, never return into pytest
        os.close(r)
        code = 0
        try:
            os.setgroups(list(groups))
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            out = {"ok": fn()}
        except BaseException as e:  # report everything to the parent
            out = {"error": f"{type(e).__name__}: {e}"}
            code = 1
        try:
            os.write(w, json.dumps(out, default=str).encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        chunks.append(f.read())
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b'{"error": "child died"}')
    if "error" in out:
        raise RuntimeError(f"child as {user}: {out['error']}")
    return out["ok"]


class TempGroup:
    def __init__(self) -> None:
        self.name = f"omt{uuid.uuid4().hex[:8]}"
        subprocess.run(["groupadd", self.name], check=True, capture_output=True)
        import grp

        self.gid = grp.getgrnam(self.name).gr_gid

    def close(self) -> None:
        subprocess.run(["groupdel", self.name], check=False, capture_output=True)
