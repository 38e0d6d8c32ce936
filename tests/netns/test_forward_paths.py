"""A port forward across path changes (issue 13, item 4: "survives peer path changes"), on real kernels: real
omerta-meshd daemons in the netns NAT lab, a real TCP echo server in B's namespace, real TCP clients in A's.

A and B sit behind full-cone NATs (a direct path), R is a relay. A forwards a local port to B's exposed echo
port. A client in A's namespace keeps one connection through the forward busy (1,000-byte round trips, each
checked byte for byte) while the direct path between the NATs is cut (the peers move to the relay) and healed
(back to direct); it must never see a wrong byte, an EOF or a stall longer than its 30 s socket timeout, and it
must keep making round trips on the relay and after. New connections through the forward work on the relay too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from netns.lab import Lab
from netns.test_mesh_matrix import DIRECT, connect, pair_mesh, say, wait_for

pytestmark = pytest.mark.root

ECHO = """\
import json, socket, threading
s = socket.create_server(("127.0.0.1", 0))
print(json.dumps({"port": s.getsockname()[1]}), flush=True)
def serve(c):
    with c:
        while d := c.recv(65536):
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# one connection, round trips until killed; a JSON line every 20 of them, or on the first failure
BUSY = """\
import json, os, socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
n = 0
print(json.dumps({"n": 0, "t": time.monotonic()}), flush=True)
while True:
    msg = os.urandom(1000)
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        try:
            d = c.recv(len(msg) - len(got))
        except OSError as e:
            print(json.dumps({"error": repr(e), "n": n}), flush=True); sys.exit(1)
        if not d:
            print(json.dumps({"error": "EOF", "n": n}), flush=True); sys.exit(1)
        got += d
    if got != msg:
        print(json.dumps({"error": "bytes differ", "n": n}), flush=True); sys.exit(1)
    n += 1
    if n % 20 == 0:
        print(json.dumps({"n": n, "t": time.monotonic()}), flush=True)
    time.sleep(0.01)
"""

# a fresh connection: SIZE random bytes echoed back, checked
ONCE = """\
import hashlib, os, socket, sys, threading
data = os.urandom(int(sys.argv[2]))
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)), daemon=True).start()
got = b""
while d := c.recv(65536):
    got += d
print("same" if hashlib.sha256(got).digest() == hashlib.sha256(data).digest() else f"differ: {len(got)} bytes")
"""


class Busy:
    """The BUSY client's progress lines (round trips done, and when: the monotonic clock is the host's in every
    namespace)."""

    def __init__(self, lab: Lab, proc) -> None:
        self.lab, self.proc, self.n = lab, proc, 0

    def advance(self, by: int, timeout: float, since: float = 0.0) -> float:
        """Wait until ``by`` round trips are done after ``since`` (lines already in the pipe from before it do
        not count); seconds from ``since`` (or now) until then. AssertionError on a failure line."""
        t0 = time.monotonic()
        base = None
        while True:
            line = self.lab.read_json(self.proc, max(0.1, timeout - (time.monotonic() - t0)))
            assert "error" not in line, f"the connection through the forward failed: {line}"
            self.n = line["n"]
            if line["t"] < since:
                continue
            base = self.n if base is None else base
            if self.n >= base + by:
                return line["t"] - (since or t0)


def test_a_forward_keeps_its_connection_and_takes_new_ones_across_direct_relay_direct(lab: Lab, tmp_path: Path, capsys) -> None:
    R, S, A, B = pair_mesh(lab, tmp_path, "full-cone", "full-cone")
    na, nb = A.host.nat, B.host.nat
    connect(A, B)
    echo = lab.run(B.host, [sys.executable, "-c", ECHO], stdout=-1)
    port = lab.read_json(echo)["port"]
    B.call("serve.add", port=port)
    local = A.call("forward.add", local=0, peer=B.id, port=port)["local"]

    def once(size: int) -> None:
        r = lab.exec(A.host, [sys.executable, "-c", ONCE, local, size], timeout=60)
        assert r.stdout.strip() == "same", (r.stdout, r.stderr)

    once(256 << 10)
    busy = Busy(lab, lab.run(A.host, [sys.executable, "-c", BUSY, local], stdout=-1))
    busy.advance(40, 20)
    out = []
    lab.block(na, nb)
    t_cut = time.monotonic()
    relayed = wait_for(lambda: (p := A.path_to(B)) and p.startswith("relay") and p, 15, 0.05)
    assert relayed, f"A's path to B is {A.path_to(B)} after the cut"
    t_relayed = time.monotonic()
    took = busy.advance(40, 30, since=t_relayed)
    out.append(f"cut: A->B {relayed} after {t_relayed - t_cut:.2f} s; 40 round trips on the relay within {took:.2f} s")
    once(256 << 10)
    lab.unblock(na, nb)
    t_heal = time.monotonic()
    back = wait_for(lambda: (p := A.path_to(B)) in DIRECT and p, 30, 0.1)
    assert back, f"A's path to B is still {A.path_to(B)} 30 s after the block was lifted"
    t_back = time.monotonic()
    took = busy.advance(40, 30, since=t_back)
    out.append(f"healed: A->B {back} after {t_back - t_heal:.2f} s; 40 round trips on it within {took:.2f} s")
    once(256 << 10)
    [fw] = A.call("forward.list")["forwards"]
    assert fw["errors"] == 0 and fw["connections_total"] == 4 and fw["connections"] == 1, fw
    say(capsys, f"\nforward across path changes ({busy.n} round trips on one connection, none wrong; new connections "
                f"on each path):\n  " + "\n  ".join(out))
