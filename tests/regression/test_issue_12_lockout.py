"""Regression (issue 12, fault 3): lock-out of readers.

64 idle (or 1-byte-per-second) connections from one uid made every other non-root client get BUSY for as long
as they stayed. Now one non-root user may hold at most ``api.max_per_user`` connections, an idle connection
(nothing asked, nothing subscribed) is closed after ``api.idle_timeout``, and a frame must arrive within 10 s
of its header. Real daemon; the holders run as ``nobody``, the other reader as ``daemon``.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshd.harness import DaemonProc

pytestmark = pytest.mark.root("clients as nobody")

# started as root (the interpreter may sit in a directory other users cannot read), then it drops to the user;
# opens N connections and counts the BUSY refusals until EXPECTED of them came (or 10 s passed)
HOLD = """
import os, pwd, select, socket, sys, time
pw = pwd.getpwnam(sys.argv[1])
os.setgroups([]); os.setgid(pw.pw_gid); os.setuid(pw.pw_uid)
socks = []
for _ in range(int(sys.argv[3])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[2])
    socks.append(s)
refused, waiting, deadline = 0, list(socks), time.monotonic() + 10
while refused < int(sys.argv[4]) and waiting and time.monotonic() < deadline:
    for s in select.select(waiting, [], [], 0.1)[0]:  # a refusal: the BUSY answer, then the close
        refused += b"BUSY" in s.recv(4096)
        waiting.remove(s)
print(refused, flush=True)
sys.stdin.read()  # hold them until told
"""

ASK = """
import json, os, pwd, socket, sys
pw = pwd.getpwnam(sys.argv[1])
os.setgroups([]); os.setgid(pw.pw_gid); os.setuid(pw.pw_uid)
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[2])
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"}).encode()
s.sendall(len(body).to_bytes(4, "big") + body)
n = int.from_bytes(s.recv(4), "big")
data = b""
while len(data) < n:
    data += s.recv(n - len(data))
print(json.loads(data).get("result", {}).get("name") or json.loads(data).get("error", {}).get("message"))
"""


def _user(name: str) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"no user {name!r} on this system")
    return name


def test_one_user_cannot_take_every_slot_and_idle_connections_are_closed(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (connections from other users)")
    nobody, other = _user("nobody"), _user("daemon")
    cfg = tmp_path / "meshd.toml"
    cfg.write_text("[api]\nmax_connections = 24\nmax_per_user = 8\nidle_timeout = 3\n")
    d = DaemonProc(tmp_path, extra=["--config", str(cfg)]).start()
    holder = None
    try:
        holder = subprocess.Popen([sys.executable, "-c", HOLD, nobody, str(d.socket), "20", str(20 - 8)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        refused = int(holder.stdout.readline())  # (more than 12 refusals shows in the daemon's counter below)
        assert refused == 20 - 8, refused  # nobody got its share, no more
        r = subprocess.run([sys.executable, "-c", ASK, other, str(d.socket)], capture_output=True, text=True, timeout=20)
        name = d.call("status.get")["name"]  # type: ignore[index]
        assert r.returncode == 0 and r.stdout.strip() == name, (r.stdout, r.stderr)  # another user is still served
        # a client that sends half a frame and stops: cut after the frame timeout, not held for ever
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(d.socket))
        s.sendall((100).to_bytes(4, "big") + b"{")
        # nobody's idle connections are closed after api.idle_timeout: the slots come back
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and d.call("status.get")["counters"]["rpc.clients"] > 2:  # type: ignore[index]
            time.sleep(0.2)
        stats = d.call("status.get")
        assert stats["counters"].get("rpc.idle_closed", 0) >= 8, stats["counters"]  # type: ignore[index]
        s.settimeout(15)
        assert s.recv(100) == b""  # closed (idle or slow frame)
        s.close()
        assert stats["counters"].get("rpc.connections_refused_per_user", 0) == 12  # type: ignore[index]
    finally:
        if holder is not None:
            holder.kill()
            holder.communicate()  # (closes its pipes)
        d.stop()
        d.close()
