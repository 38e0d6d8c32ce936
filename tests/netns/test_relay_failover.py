"""Relays on real kernels (issue 10 faults 1 and 2): real omerta-meshd daemons in the netns lab.

* no relay loop: three public relay-capable daemons; ``kill -9`` one while the other two stream to it: the
  survivors relay at most a few KB for it (they bounced ~340 MB before) and show it disconnected;
* dead relay with another relay present: a pair behind a port-restricted and a symmetric NAT, relayed,
  streaming; ``kill -9`` the relay in use: the pair moves to the other relay within 5 s and not one of
  >= 1,000 messages is lost;
* no relay left: the peer shows disconnected within 5 s, messages wait (none fails, none is reported
  delivered), and all arrive once the relay is restarted.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from meshd.rpcclient import RpcClient
from netns.lab import Lab
from netns.test_mesh_matrix import Meshd, Stream, connect, form_network, host_of, say, start_all, wait_for

pytestmark = pytest.mark.root


def meshd(lab: Lab, tmp_path: Path, name: str, kind: str, relay: str) -> Meshd:
    d = Meshd(lab, host_of(lab, name.lower(), kind), tmp_path, name)
    d.config.write_text(f'[node]\nname = "{name}"\nrelay = "{relay}"\n')
    return d


def kill9(d: Meshd) -> None:
    os.killpg(d.proc.pid, signal.SIGKILL)
    d.proc.wait()


def counter(d: Meshd, name: str) -> int:
    return int(d.call("status.get")["counters"].get(name, 0))


def via(d: Meshd, other: Meshd) -> str | None:
    """The relay carrying d's path to other (its name or id prefix), or None when not relayed."""
    p = d.path_to(other)
    return p.split()[-1] if p and p.startswith("relay via") else None


def is_(r: Meshd, label: str | None) -> bool:
    return label is not None and (label == r.name or r.id.startswith(label))


def test_killed_member_is_not_bounced_between_two_relays(lab: Lab, tmp_path: Path, capsys) -> None:
    A, B, C = (meshd(lab, tmp_path, n, "public", "on") for n in "ABC")
    start_all([A, B, C])
    form_network(A, [B, C])
    connect(A, C)
    connect(B, C)
    before = counter(A, "relay.bytes") + counter(B, "relay.bytes")
    stop = threading.Event()

    def stream(src: Meshd) -> None:
        with RpcClient(str(src.socket), 15) as c:
            i = 0
            while not stop.is_set():
                try:
                    c.call("channel.send", peer=C.id, channel="s", data="x" * 1000 + str(i))
                except Exception:
                    pass  # queue full: the peer is gone
                i += 1
                stop.wait(0.05)

    threads = [threading.Thread(target=stream, args=(x,), daemon=True) for x in (A, B)]
    for t in threads:
        t.start()
    time.sleep(1)
    t_kill = time.monotonic()
    kill9(C)
    gone = wait_for(lambda: all(not (p := x.peer(C)) or not p["connected"] for x in (A, B)), 10, 0.1)
    t_gone = time.monotonic() - t_kill
    time.sleep(max(0.0, 20 - (time.monotonic() - t_kill)))
    stop.set()
    for t in threads:
        t.join(5)
    moved = counter(A, "relay.bytes") + counter(B, "relay.bytes") - before
    say(capsys, f"\nC killed: A and B relayed {moved} bytes for it in 20 s; both show it disconnected after {t_gone:.2f} s")
    assert moved <= 16_000, f"A and B relayed {moved} bytes for a dead member"
    assert gone, f"C still shown connected: A {A.peer(C)}, B {B.peer(C)}"
    assert t_gone <= 6.0


def relayed_pair(lab: Lab, tmp_path: Path, relays: int) -> tuple[list[Meshd], Meshd, Meshd]:
    rs = [meshd(lab, tmp_path, f"R{i}", "public", "on") for i in range(relays)]
    s = meshd(lab, tmp_path, "S", "public", "off")  # a second observer for NAT classification
    a = meshd(lab, tmp_path, "A", "port-restricted", "auto")
    b = meshd(lab, tmp_path, "B", "symmetric-random", "auto")
    start_all([*rs, s, a, b])
    form_network(rs[0], [*rs[1:], s, a, b])
    a.listen("hello")
    b.listen("hello")
    a.send(b, "hello", "hi")
    assert b.wait_message("hello", lambda m: m["node_id"] == a.id, 15), "nothing arrived"
    assert wait_for(lambda: via(a, b), 30), f"A's path to B is {a.path_to(b)}"
    return rs, a, b


def test_dead_relay_pair_moves_to_the_other_relay_within_five_seconds_nothing_lost(lab: Lab, tmp_path: Path, capsys) -> None:
    rs, A, B = relayed_pair(lab, tmp_path, 2)
    with Stream(A, B, interval=0.01) as st:
        assert st.wait_resumed(time.monotonic(), 5) is not None, "the stream does not flow"
        wait_for(lambda: len(st.sent) >= 300, 30, 0.05)
        used = via(A, B)
        dead, alive = (rs[0], rs[1]) if is_(rs[0], used) else (rs[1], rs[0])
        assert is_(dead, used), (used, [r.id for r in rs])
        t_kill = time.monotonic()
        kill9(dead)
        moved = wait_for(lambda: is_(alive, via(A, B)), 10, 0.05)
        t_mv = time.monotonic() - t_kill
        b_moved = wait_for(lambda: is_(alive, via(B, A)), 10, 0.05)
        t_b = time.monotonic() - t_kill
        assert moved, f"A's path to B is {A.path_to(B)} {t_mv:.1f} s after relay {dead.name} died"
        wait_for(lambda: len(st.sent) >= 1200, 60, 0.1)
        st.finish(timeout=30)
    say(capsys, f"\nrelay {dead.name} killed: A->B moved to {alive.name} after {t_mv:.2f} s, B->A after {t_b:.2f} s "
                f"({bool(b_moved)}); {len(st.sent)} messages, 0 lost")
    assert t_mv <= 5.0 and len(st.sent) >= 1000


def test_no_relay_left_disconnected_within_five_seconds_then_delivered_when_it_returns(lab: Lab, tmp_path: Path, capsys) -> None:
    rs, A, B = relayed_pair(lab, tmp_path, 1)
    R = rs[0]
    with Stream(A, B, interval=0.05) as st:
        assert st.wait_resumed(time.monotonic(), 5) is not None, "the stream does not flow"
        t_kill = time.monotonic()
        kill9(R)
        gone = wait_for(lambda: (p := A.peer(B)) is not None and not p["connected"], 10, 0.05)
        t_gone = time.monotonic() - t_kill
        assert gone, f"A still shows B connected {t_gone:.1f} s after the only relay died: {A.peer(B)}"
        time.sleep(8)  # messages keep being sent and wait
        n_wait = len(st.sent)
        t_back = time.monotonic()
        R.start()
        R.wait_ready()
        back = wait_for(lambda: (p := A.peer(B)) is not None and p["connected"], 60, 0.1)
        t_up = time.monotonic() - t_back
        assert back, f"A never got B back after relay {R.name} returned: {A.peer(B)}"
        st.finish(timeout=60)
    say(capsys, f"\nonly relay killed: A shows B disconnected after {t_gone:.2f} s; relay restarted: connected again after "
                f"{t_up:.2f} s; {n_wait} messages sent by then, all delivered")
    assert t_gone <= 5.0
