"""Local address changes are noticed: real ``ip addr`` / ``ip link`` changes in namespaces of our own.

Root only (the ``lab`` fixture skips with the reason otherwise). Each test builds its namespaces with the
lab (``lab.py``), which deletes them even when the test fails; no traffic leaves them. The nodes run
``netmon_node.py`` inside the namespaces, once on the default loop and once on uvloop.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from netns.lab import Lab

pytestmark = pytest.mark.root

NODE = Path(__file__).resolve().parent / "netmon_node.py"
WITHIN = 3.0  # seconds an address change may take to show (debounce 0.3 s, a netlink dump, one flush)

try:
    import uvloop  # noqa: F401

    HAVE_UVLOOP = True
except ImportError:  # pragma: no cover - uvloop is optional
    HAVE_UVLOOP = False

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed"))]


def start(lab: Lab, host, loop: str, join: str = "") -> tuple[subprocess.Popen, dict, dict]:
    argv = [sys.executable, NODE, "--loop", loop] + (["--join", join] if join else [])
    p = lab.run(host, argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ready = lab.read_json(p, timeout=15)
    assert ready["event"] == "ready", ready
    return p, ready, lab.read_json(p)


def wait_state(lab: Lab, p: subprocess.Popen, state: dict, pred: Callable[[dict], bool], timeout: float = WITHIN) -> tuple[dict, float]:
    """Read state lines until ``pred`` holds; the state and how long it took."""
    t0 = time.monotonic()
    while not pred(state):
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise AssertionError(f"not within {timeout} s; last state: {state}")
        try:
            state = lab.read_json(p, timeout=left)
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s; last state: {state}") from None
    return state, time.monotonic() - t0


def has(ip: str, port: int) -> Callable[[dict], bool]:
    return lambda s: [ip, port] in s["endpoints"]


def lacks(ip: str, port: int) -> Callable[[dict], bool]:
    return lambda s: [ip, port] not in s["endpoints"]


@pytest.mark.parametrize("loop", LOOPS)
def test_node_follows_addresses_added_and_removed_and_links_going_down(lab: Lab, loop: str) -> None:
    h = lab.add_public_host("h")
    p, ready, s = start(lab, h, loop)
    port = ready["port"]
    assert [h.ip, port] in s["endpoints"] and s["runs"] == 0, s

    lab.exec(h, ["ip", "addr", "add", "198.51.100.7/24", "dev", "eth0"], check=True)
    s, added = wait_state(lab, p, s, has("198.51.100.7", port))
    lab.exec(h, ["ip", "addr", "del", "198.51.100.7/24", "dev", "eth0"], check=True)
    s, removed = wait_state(lab, p, s, lacks("198.51.100.7", port))
    assert [h.ip, port] in s["endpoints"]

    # a link that loses its carrier (its veth peer goes down) keeps its IPv4 address, but the address is no
    # longer reachable: only the link event (RTMGRP_LINK) and the running-links filter of the dump notice
    lab.exec(h, ["sh", "-ec", "ip link add v0 type veth peer name v1\nip addr add 198.18.0.77/24 dev v0\n"
                              "ip link set v1 up\nip link set v0 up"], check=True)
    s, _ = wait_state(lab, p, s, has("198.18.0.77", port))
    lab.exec(h, ["ip", "link", "set", "v1", "down"], check=True)
    s, down = wait_state(lab, p, s, lacks("198.18.0.77", port))
    assert "198.18.0.77/24" in lab.exec(h, ["ip", "-4", "addr", "show", "dev", "v0"], check=True).stdout

    # a burst (five addresses in one netlink batch) is one callback and one re-announcement
    runs, changes = s["runs"], s["changes"]
    batch = "".join(f"address add 198.51.100.{i}/24 dev eth0\n" for i in range(20, 25))
    lab.exec(h, ["ip", "-batch", "-"], input=batch, check=True)
    s, _ = wait_state(lab, p, s, lambda s: all([f"198.51.100.{i}", port] in s["endpoints"] for i in range(20, 25)))
    time.sleep(0.6)  # anything the burst still had to trigger has run by now
    while True:
        try:
            s = lab.read_json(p, timeout=0.2)
        except TimeoutError:
            break
    assert (s["runs"] - runs, s["changes"] - changes) == (1, 1), s
    print(f"[{loop}] address added seen after {added:.2f} s, removed {removed:.2f} s, link down {down:.2f} s")


@pytest.mark.parametrize("loop", LOOPS)
def test_peer_follows_a_node_that_moves_to_a_new_address(lab: Lab, loop: str) -> None:
    ha, hb = lab.add_public_host("a"), lab.add_public_host("b")
    pa, ra, sa = start(lab, ha, loop)
    pb, rb, sb = start(lab, hb, loop, join=ra["invite"])
    a_id, port = ra["node"], ra["port"]
    old = [ha.ip, port]
    # connected comes first (the invite's endpoint), A's signed record a gossip exchange later: wait for both
    # (asserting the record at the moment of connection failed under load)
    sb, _ = wait_state(lab, pb, sb, lambda s: a_id in s["peers"] and s["peers"][a_id]["connected"]
                       and s["peers"][a_id]["endpoint"] == old and old in s["peers"][a_id]["record"], timeout=10)

    new_ip = lab.set_address(ha)  # flush eth0, add a new address, new default route: A roams
    new = [new_ip, port]
    sa, _ = wait_state(lab, pa, sa, lambda s: new in s["endpoints"] and old not in s["endpoints"])
    # B hears A from the new source (A probed at once) and has A's re-signed record (A pushed it at once);
    # with gossip rounds an hour apart and idle heartbeats every 25 s, neither would happen this soon
    # (a record with both addresses may come first when the monitor sees the new address before the old one
    # goes: wait for the one without the old address)
    sb, took = wait_state(lab, pb, sb, lambda s: s["peers"][a_id]["endpoint"] == new and new in s["peers"][a_id]["record"]
                          and old not in s["peers"][a_id]["record"], timeout=5)
    assert sb["peers"][a_id]["connected"], sb
    print(f"[{loop}] B follows A to its new address {took:.2f} s after A's monitor noticed")
