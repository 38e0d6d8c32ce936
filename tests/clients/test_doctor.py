"""`omertactl doctor` against real daemons on loopback (issue 14, item 6): alfa and bravo in one network.

Healthy: every phase passes but failover (one loopback path, no relay other than bravo itself: a warning,
not a failure) and doctor exits 0; the throughput ramp moved bytes into bravo's discard sink (its counter
says so). The sink is the daemon's own (nothing listens on 127.0.0.1:9), and a caller who may not write has
the throughput phase skipped, not failed. bravo killed: the session phase fails with the cause and the fix, the
phases after it are skipped, exit 6. No daemon: the daemon phase fails with the start fix, exit 3.
"""

from __future__ import annotations

import os
import socket

import pytest

from clients.ctlharness import ctl, wait_until
from omerta_clients.ctl.connect import open_stream


def by_name(report: dict) -> dict[tuple[str, str], dict]:
    return {(p["scope"], p["name"]): p for p in report["phases"]}


def discarded(d) -> int:
    return int(ctl(d.socket, "status", "--json").json()["counters"].get("streams.discard_bytes", 0))


def settled(d) -> None:
    """Wait until ``d`` has what doctor judges: its NAT verdict, and the path MTU to each peer (probed once the path
    answers). Run at once after the join, a busy machine had doctor warn 'not measured yet' on a healthy pair."""
    def ready() -> bool:
        if d.call("status.get")["nat"]["status"] != "classified":
            return False
        peers = [d.call("peers.get", peer=p["node_id"])["networks"] for p in d.call("peers.list")["peers"]]
        return bool(peers) and all(any(x.get("current") and x.get("mtu") for x in n.get("paths") or []) for ps in peers for n in ps)

    wait_until(ready, 30, "NAT verdict and path MTUs")


def test_doctor_on_a_healthy_pair_passes_and_exits_0(pair) -> None:
    alfa, bravo = pair
    settled(alfa)
    r = ctl(alfa.socket, "doctor", "--json")
    rep = r.json()
    assert r.rc == 0 and rep["ok"], r.out + r.err
    ph = by_name(rep)
    assert list(ph) == [("node", n) for n in ("daemon", "permissions", "config", "udp", "nat", "relays")] + \
        [("bravo", n) for n in ("session", "path", "rtt", "loss", "mtu", "throughput", "failover")]
    warned = {("bravo", "failover")} | ({("node", "permissions")} if os.geteuid() else set())  # (an ordinary user: read-only)
    assert all(p["verdict"] == ("warn" if k in warned else "pass") for k, p in ph.items()), rep
    assert ph[("bravo", "failover")]["verdict"] == "warn" and ph[("bravo", "failover")]["fix"]
    assert ph[("bravo", "rtt")]["data"]["answered"] == 20 and ph[("bravo", "mtu")]["data"]["mtu"] >= 1280
    ramp = ph[("bravo", "throughput")]["data"]
    assert ramp["kind"] == "stream throughput ramp" and ramp["best_mb_s"] > 0, ramp
    assert all(s["mb_s"] > 0 and s["counted"] == s["bytes"] for s in ramp["steps"]), ramp
    assert discarded(bravo) >= sum(s["bytes"] for s in ramp["steps"])
    text = ctl(alfa.socket, "doctor", "bravo", "-c", "5")
    assert text.rc == 0 and "no phase failed" in text.out and "p50" in text.out, text.out + text.err


def test_the_discard_sink_is_the_daemons_own_not_a_local_port(pair) -> None:
    alfa, bravo = pair
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 9)) == 0:
            pytest.skip("something listens on 127.0.0.1:9 here: the test could not tell the sink from it")
    assert 9 not in ctl(bravo.socket, "serve", "--json").json()["ports"]
    before = discarded(bravo)
    sock, _ = open_stream(str(alfa.socket), "bravo", 9)
    with sock:
        sock.sendall(b"x" * 300_000)
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(64), b""))
    assert answer == b"300000\n" and discarded(bravo) - before == 300_000


@pytest.mark.root("the daemons must belong to someone other than nobody")
def test_doctor_skips_the_ramp_for_a_caller_who_may_not_write(pair) -> None:
    alfa, _ = pair
    r = ctl(alfa.socket, "doctor", "bravo", "-c", "3", "--json", user="nobody")
    t = by_name(r.json())[("bravo", "throughput")]
    assert r.rc == 0 and t["verdict"] == "skip" and "needs write access" in t["detail"], r.out + r.err


def test_doctor_fails_the_session_when_the_peer_is_gone(pair) -> None:
    alfa, bravo = pair
    bravo.kill()
    r = ctl(alfa.socket, "doctor", "bravo", "-W", "0.5", "--json")
    ph = by_name(r.json())
    assert r.rc == 6 and not r.json()["ok"], r.out
    s = ph[("bravo", "session")]
    assert s["verdict"] == "fail" and "does not answer" in s["detail"] and "UDP between the two of you" in s["fix"], s
    assert all(ph[("bravo", n)]["verdict"] == "skip" for n in ("path", "rtt", "loss", "mtu", "throughput", "failover"))
    text = ctl(alfa.socket, "doctor", "bravo", "-W", "0.5")
    assert text.rc == 6 and "FAIL" in text.out and "fix: check that bravo's omerta-meshd runs" in text.out, text.out
    bravo.start()  # the fixture stops both and checks their logs


def test_doctor_without_a_daemon_fails_the_daemon_phase(tmp_path) -> None:
    r = ctl(tmp_path / "none.sock", "doctor", "--json")
    ph = by_name(r.json())
    assert r.rc == 3 and ph[("node", "daemon")]["verdict"] == "fail", r.out
    assert "systemctl start omerta-meshd" in ph[("node", "daemon")]["fix"]
    assert {p["verdict"] for k, p in ph.items() if k != ("node", "daemon")} == {"skip"}
