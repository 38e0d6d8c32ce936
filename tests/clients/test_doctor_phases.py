"""omertactl doctor's verdicts, phase by phase (clients/omerta_clients/ctl/doctor_phases.py): pure functions of
API results, so each edge is a table row. The shapes are the daemon's (docs/api.md): status.get, netcheck.run,
peers.get's PeerDetail, ping's PingResult."""

from __future__ import annotations

import pytest

from omerta_clients import errors
from omerta_clients.ctl import doctor_phases as ph

NET = {"network": "n1", "name": "home"}


def status(**kw) -> dict:
    base = {"node_id": "x" * 52, "name": "alfa", "version": "0.1", "api_version": 1, "api_revision": 7, "uptime_s": 5.0,
            "listen": ["0.0.0.0:51820"], "networks": [NET], "peers": {"total": 1}, "vnet": {"enabled": True, "active": True},
            "counters": {"udp.received": 10, "udp.sent": 10, "udp.errors": 0}}
    return {**base, **kw}


def ping(*rtts: float | None) -> dict:
    probes = [{"seq": i, "ok": r is not None, "rtt_ms": r, "error": None if r is not None else "no answer within 1 s"}
              for i, r in enumerate(rtts, 1)]
    return {"sent": len(rtts), "received": sum(r is not None for r in rtts), "probes": probes}


def peer(**kw) -> dict:
    base = {"node_id": "b" * 52, "name": "bravo", "connected": True, "path": "direct", "endpoint": "198.51.100.2:51820",
            "endpoints": ["198.51.100.2:51820"], "path_reason": "direct path up", "last_handshake_s": 3.0,
            "paths": [{"path": "198.51.100.2:51820", "kind": "direct", "state": "up", "current": True, "mtu": 1472}]}
    return {**base, **kw}


def test_daemon_passes_with_a_status_and_fails_with_the_connect_error_and_its_code() -> None:
    assert ph.daemon(status(), None).verdict == ph.PASS
    p = ph.daemon(None, errors.DaemonNotRunning("/run/omerta/meshd.sock", "no such socket"))
    assert (p.verdict, p.exit_code, p.fix) == (ph.FAIL, errors.DAEMON_DOWN, errors.START_FIX)
    assert ph.daemon(None, errors.SocketPermissionDenied("/s")).exit_code == errors.PERMISSION


@pytest.mark.parametrize("uid,groups,want", [(0, set(), ph.PASS), (1000, {"omerta", "users"}, ph.PASS), (1000, {"users"}, ph.WARN)])
def test_permissions(uid: int, groups: set[str], want: str) -> None:
    p = ph.permissions(uid, groups, status(write_group="omerta"))
    assert p.verdict == want and (p.fix == errors.GROUP_FIX) == (want == ph.WARN)
    assert ph.permissions(uid, groups, {}) == p  # a daemon that does not name its group uses the default


def test_permissions_follow_the_daemons_write_group() -> None:
    """[api] group = "meshadm": its members may write, members of omerta may not, and the fix names meshadm."""
    st = status(write_group="meshadm")
    assert ph.permissions(1000, {"meshadm"}, st).verdict == ph.PASS
    p = ph.permissions(1000, {"omerta"}, st)
    assert p.verdict == ph.WARN and "not in the meshadm group" in p.detail and p.data == {"group": "meshadm"}
    assert "-aG meshadm $USER" in p.fix and "omerta" not in p.fix


@pytest.mark.parametrize("kw,want,words", [
    ({}, ph.PASS, "networks home"),
    ({"listen": []}, ph.FAIL, "no UDP socket"),
    ({"networks": []}, ph.FAIL, "in no network"),
    ({"vnet": {"enabled": True, "active": False, "detail": "no /dev/net/tun"}}, ph.WARN, "vnet: no /dev/net/tun"),
    ({"relay": {"enabled": True, "active": False, "detail": "auto: NAT not classified yet"}}, ph.PASS, "networks"),
])
def test_config(kw: dict, want: str, words: str) -> None:
    p = ph.config(status(**kw))
    assert p.verdict == want and words in p.detail, p


@pytest.mark.parametrize("counters,total,want", [
    ({"udp.received": 5, "udp.sent": 5}, 1, ph.PASS),
    ({"udp.received": 0, "udp.sent": 12}, 2, ph.FAIL),  # sent to peers, heard nothing: inbound UDP blocked
    ({"udp.received": 0, "udp.sent": 0}, 0, ph.PASS),  # nobody to hear from yet
    ({"udp.received": 5, "udp.sent": 5, "udp.errors": 3}, 1, ph.WARN),
])
def test_udp(counters: dict, total: int, want: str) -> None:
    p = ph.udp(status(counters=counters, peers={"total": total}))
    assert p.verdict == want, p
    if want == ph.FAIL:
        assert "udp dport 51820 accept" in p.fix and "inbound UDP is blocked" in p.detail


@pytest.mark.parametrize("verdict,want", [
    ({"status": "classified", "reason": "public", "mapping": "none", "filtering": "none"}, ph.PASS),
    ({"status": "classified", "reason": "cone", "mapping": "endpoint-independent", "filtering": "address-dependent"}, ph.PASS),
    ({"status": "classified", "reason": "symmetric", "mapping": "address-and-port-dependent"}, ph.WARN),
    ({"status": "unknown", "reason": "fewer than two peers reported our address"}, ph.WARN),
])
def test_nat(verdict: dict, want: str) -> None:
    assert ph.nat(verdict).verdict == want


@pytest.mark.parametrize("verdict,want", [
    ({"relays": [{"name": "r", "node_id": "r", "rtt_ms": 12.0}]}, ph.PASS),
    ({"relays": [{"name": "r", "rtt_ms": None}, {"name": "s", "rtt_ms": 3.0}]}, ph.PASS),
    ({"relays": [{"name": "r", "rtt_ms": None}]}, ph.FAIL),
    ({"relays": []}, ph.PASS),
    ({"relays": [], "mapping": "address-and-port-dependent"}, ph.FAIL),
])
def test_relays(verdict: dict, want: str) -> None:
    assert ph.relays(verdict).verdict == want


def test_session_passes_when_answered_and_fails_with_the_peers_endpoints_in_the_fix() -> None:
    assert ph.session("bravo", peer(), ping(0.5), None).verdict == ph.PASS
    silent = ph.session("bravo", peer(), ping(None), None)
    assert (silent.verdict, silent.exit_code) == (ph.FAIL, errors.TIMEOUT)
    assert "does not answer" in silent.detail and "198.51.100.2:51820" in silent.fix
    err = errors.RpcError({"code": 1006, "message": "no session with bravo: timed out", "data": {"name": "NOT_CONNECTED"}})
    never = ph.session("bravo", peer(connected=False), None, err)
    assert never.verdict == ph.FAIL and "handshake was tried but never answered" in never.detail


@pytest.mark.parametrize("kw,want", [
    ({}, ph.PASS), ({"path": "punched"}, ph.PASS), ({"path": "relay via r"}, ph.WARN), ({"path": None}, ph.FAIL)])
def test_path(kw: dict, want: str) -> None:
    assert ph.path("bravo", peer(**kw)).verdict == want


def test_percentiles_are_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert (ph.percentile(xs, 50), ph.percentile(xs, 90), ph.percentile(xs, 99), ph.percentile([7.0], 99)) == (50.0, 90.0, 99.0, 7.0)


def test_rtt() -> None:
    p = ph.rtt("bravo", ping(1.0, 2.0, 3.0, None))
    assert p.verdict == ph.PASS and (p.data["p50_ms"], p.data["max_ms"], p.data["answered"]) == (2.0, 3.0, 3)
    assert ph.rtt("bravo", ping(400.0, 500.0)).verdict == ph.WARN
    assert ph.rtt("bravo", ping(None, None)).verdict == ph.FAIL


@pytest.mark.parametrize("rtts,want", [((1.0,) * 20, ph.PASS), ((1.0,) * 19 + (None,), ph.WARN), ((1.0,) * 4 + (None,), ph.FAIL)])
def test_loss(rtts: tuple, want: str) -> None:
    assert ph.loss("bravo", ping(*rtts)).verdict == want


@pytest.mark.parametrize("mtu,want", [(1472, ph.PASS), (1280, ph.PASS), (1200, ph.FAIL), (None, ph.WARN)])
def test_mtu(mtu: int | None, want: str) -> None:
    p = peer(paths=[{"path": "e", "kind": "direct", "state": "up", "current": True, "mtu": mtu}])
    assert ph.mtu("bravo", p).verdict == want


def step(mb: float, seconds: float, counted: int | None = -1, error: str | None = None) -> dict:
    """A ramp step as doctor.sink_step gives it; ``counted`` -1: the peer counted every byte."""
    n = int(mb * 1e6)
    return {"bytes": n, "seconds": seconds, "counted": n if counted == -1 else counted, "error": error}


def test_throughput_ramp_reports_mb_per_s_per_step() -> None:
    p = ph.throughput("bravo", [step(1, 0.02), step(4, 0.05), step(16, 0.2)])
    assert p.verdict == ph.PASS and p.data["kind"] == "stream throughput ramp" and p.data["port"] == 9
    assert [s["mb_s"] for s in p.data["steps"]] == [50.0, 80.0, 80.0] and p.data["best_mb_s"] == 80.0
    assert "16 MB 80.0 MB/s" in p.detail


@pytest.mark.parametrize("steps,want,fix", [
    ([step(1, 1.01)], ph.WARN, "path and rtt"),  # best step just under THROUGHPUT_WARN_MBS
    ([step(1, 0.99)], ph.PASS, ""),  # just over it (a slow path stops the ramp early: one step is enough)
    ([step(1, 0.02), step(4, 5.0, None, "no progress for 5 s after 2.10 MB")], ph.WARN, "stalls under load"),
    ([step(1, 0.0, None, "no progress for 5 s after 0.00 MB")], ph.FAIL, "mtu phase"),
    ([step(1, 0.0, None, "port 9 not exposed on bravo")], ph.FAIL, "update omerta-meshd on bravo"),
    ([step(1, 0.1, counted=999_000)], ph.FAIL, "mtu phase"),  # the peer counted less than was sent
])
def test_throughput_ramp_verdicts(steps: list[dict], want: str, fix: str) -> None:
    p = ph.throughput("bravo", steps)
    assert p.verdict == want and fix in p.fix, p
    assert ph.throughput("bravo", []).verdict == ph.SKIP


def test_failover_needs_a_second_usable_path_or_a_relay_other_than_the_peer() -> None:
    one = peer()
    two = peer(paths=one["paths"] + [{"path": "[2001:db8::2]:51820", "kind": "direct", "state": "up", "current": False}])
    dead = peer(paths=one["paths"] + [{"path": "x", "kind": "direct", "state": "down", "current": False}])
    assert ph.failover("bravo", two, []).verdict == ph.PASS
    assert ph.failover("bravo", dead, []).verdict == ph.WARN
    assert ph.failover("bravo", one, ["r" * 52]).verdict == ph.PASS
    assert ph.failover("bravo", one, [one["node_id"]]).verdict == ph.WARN  # the peer relaying for itself is no second path


def test_report_and_exit_code_follow_the_first_failure() -> None:
    phases = [ph.ok("daemon", "node", "up"), ph.Phase("session", "bravo", ph.FAIL, "gone", "fix it", exit_code=errors.TIMEOUT),
              ph.Phase("loss", "bravo", ph.FAIL, "lossy", "fix"), ph.skipped("mtu", "bravo", "needs a session")]
    rep = ph.report(phases)
    assert not rep["ok"] and rep["counts"] == {"pass": 1, "warn": 0, "fail": 2, "skip": 1}
    assert ph.exit_code(phases) == errors.TIMEOUT and ph.exit_code(phases[:1]) == 0
    assert "exit_code" in rep["phases"][1] and "exit_code" not in rep["phases"][0]
