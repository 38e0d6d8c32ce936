"""`omertactl doctor` against real daemons on loopback (issue 14, item 6): alfa and bravo in one network.

Healthy: every phase passes but failover (one loopback path, no relay other than bravo itself: a warning,
not a failure) and doctor exits 0. bravo killed: the session phase fails with the cause and the fix, the
phases after it are skipped, exit 6. No daemon: the daemon phase fails with the start fix, exit 3.
"""

from __future__ import annotations

import os

from clients.ctlharness import ctl


def by_name(report: dict) -> dict[tuple[str, str], dict]:
    return {(p["scope"], p["name"]): p for p in report["phases"]}


def test_doctor_on_a_healthy_pair_passes_and_exits_0(pair) -> None:
    alfa, _ = pair
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
    assert [s["received"] for s in ph[("bravo", "throughput")]["data"]["steps"]] == [10, 25, 50]
    text = ctl(alfa.socket, "doctor", "bravo", "-c", "5")
    assert text.rc == 0 and "no phase failed" in text.out and "p50" in text.out, text.out + text.err


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
