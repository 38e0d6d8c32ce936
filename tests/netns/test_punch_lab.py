"""Hole punching on real kernels (issue 10 faults 4 and 5): omerta-meshd daemons behind nftables NAT routers.

* return to direct: a punched pair whose direct path is cut moves to the relay; when the path is restored
  it is direct again within about 2 s (the relayed side keeps probing the last working direct path every
  heartbeat, whatever the punch back-off), three cuts in a row;
* a long-running sequential symmetric NAT: the node behind it runs a while, and its host sends to many
  destinations (every one a new NAT mapping the daemon cannot see) before a port-restricted node joins; the
  pair still punches, because predictions start from a fresh mapping observation taken just before the punch;
* two sequential symmetric NATs punch (both sides predict; they probe in lock step).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from netns.lab import Lab
from netns.test_mesh_matrix import DIRECT, Meshd, Stream, connect, form_network, host_of, pair_mesh, say, start_all, wait_for

pytestmark = pytest.mark.root

NOISE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for ip in sys.argv[1].split(","):
    for port in range(33000, 33000 + int(sys.argv[2])):
        s.sendto(b"x", (ip, port))
"""


def punch_counters(d: Meshd) -> dict:
    return {k: v for k, v in d.call("status.get")["counters"].items() if k.startswith(("punch.", "nat."))}


def both_direct(a: Meshd, b: Meshd) -> bool:
    return a.path_to(b) in DIRECT and b.path_to(a) in DIRECT


def test_a_restored_direct_path_is_used_again_within_two_seconds_three_times(lab: Lab, tmp_path: Path, capsys) -> None:
    R, S, A, B = pair_mesh(lab, tmp_path, "port-restricted", "port-restricted")
    na, nb = A.host.nat, B.host.nat
    connect(A, B, timeout=20)
    assert wait_for(lambda: both_direct(A, B), 15), f"not direct both ways: {A.path_to(B)} / {B.path_to(A)}"
    took, moved = [], []
    with Stream(A, B) as st:
        assert st.wait_resumed(time.monotonic(), 5) is not None, "the stream does not flow"
        for _ in range(3):
            t_cut = time.monotonic()
            lab.block(na, nb)
            relayed = wait_for(lambda: (p := A.path_to(B)) and p.startswith("relay") and p, 10, 0.05)
            assert relayed, f"A's path to B is {A.path_to(B)} after the cut"
            moved.append(round(time.monotonic() - t_cut, 2))
            time.sleep(3)  # stay relayed a while (the punch attempt that follows fails and backs off)
            t_heal = time.monotonic()
            lab.unblock(na, nb)
            back = wait_for(lambda: both_direct(A, B), 30, 0.05)
            took.append(round(time.monotonic() - t_heal, 2))
            assert back, f"still {A.path_to(B)} / {B.path_to(A)} 30 s after the restore"
        st.finish()
    say(capsys, f"\nreturn to direct (port-restricted x port-restricted, {len(st.sent)} messages, none lost): "
                f"relayed after {moved} s; direct again after {took} s from each restore")
    assert all(t <= 3.0 for t in took), f"direct again after {took} s (goal 2 s, asserted loosely)"


def test_a_long_running_sequential_symmetric_node_punches_with_a_late_port_restricted_joiner(lab: Lab, tmp_path: Path, capsys) -> None:
    R = Meshd(lab, lab.add_public_host("r"), tmp_path, "R", relay=True)
    S = Meshd(lab, lab.add_public_host("s"), tmp_path, "S")
    A = Meshd(lab, host_of(lab, "a", "symmetric-sequential"), tmp_path, "A", log_level="info")
    start_all([R, S, A])
    net = form_network(R, [S, A])
    time.sleep(10)  # A runs a while: sessions, heartbeats, gossip, NAT tests
    # A's host sends to many destinations (600 new mappings on its NAT that A's daemon never hears of)
    r = lab.exec(A.host, [sys.executable, "-c", NOISE, f"{R.host.ip},{S.host.ip}", 300], timeout=30)
    assert r.returncode == 0, r.stderr
    time.sleep(2)
    B = Meshd(lab, host_of(lab, "b", "port-restricted"), tmp_path, "B", log_level="info")
    start_all([B])
    invite = R.call("network.invite", network=net)
    assert B.call("network.join", invite=invite["invite"], wait=10)["connected"], B.log()
    t0 = time.monotonic()
    B.listen("hello")
    A.listen("hello")
    B.send(A, "hello", "hi", known_within=15)
    assert A.wait_message("hello", lambda m: m["node_id"] == B.id, 10), "B -> A: nothing arrived"
    # the first attempt punches in every run here; one clean-clone CI run (2 busy cores) stayed relayed for the
    # 30 s this waited, with no log to say why: allow the retry after the back-off (upgrade_interval 20 s) and
    # keep the daemons' INFO logs and punch counters for the message if even that fails
    ok = wait_for(lambda: both_direct(A, B), 45, 0.1)
    took = time.monotonic() - t0
    seen = (B.peer(A) or {}).get("endpoint")
    counters = A.call("status.get")["counters"]
    say(capsys, f"\nlong-running sym-seq A x late port-restricted B: {A.path_to(B)} / {B.path_to(A)} after {took:.2f} s; "
                f"B reaches A at {seen}; A's fresh observations {counters.get('punch.fresh_observations', 0)}, "
                f"fresh predictions {counters.get('punch.fresh_predictions', 0)}, stale {counters.get('punch.stale_predictions', 0)}, "
                f"failed attempts {counters.get('punch.failed', 0)}")
    assert ok, (f"still relayed: {A.path_to(B)} / {B.path_to(A)}\nA {punch_counters(A)}\nB {punch_counters(B)}\n"
                f"A's log:\n{A.log()}\nB's log:\n{B.log()}")
    assert counters.get("punch.fresh_observations", 0) >= 1


def test_two_sequential_symmetric_nats_punch(lab: Lab, tmp_path: Path, capsys) -> None:
    R, S, A, B = pair_mesh(lab, tmp_path, "symmetric-sequential", "symmetric-sequential")
    t0 = time.monotonic()
    connect(A, B, timeout=25)
    # lock step meets on the first attempt in most runs; when a port drifted, the retry after the back-off
    # (20 s) does it: allow one retry (a clean-clone CI run needed it once in five)
    ok = wait_for(lambda: both_direct(A, B), 45, 0.1)
    say(capsys, f"\nsym-seq x sym-seq: {A.path_to(B)} / {B.path_to(A)} after {time.monotonic() - t0:.2f} s; "
                f"A reaches B at {(A.peer(B) or {}).get('endpoint')}, B reaches A at {(B.peer(A) or {}).get('endpoint')}")
    assert ok, f"not direct both ways: {A.path_to(B)} / {B.path_to(A)}"
