"""The NAT lab checks itself: each NAT kind behaves as RFC 4787 says, hole punching works exactly where
it should, link conditions and blocks take effect, and teardown leaves nothing behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netns.lab import KINDS, PROBE_PORTS, Lab, lab_namespaces, marked_processes, sweep_stale

pytestmark = pytest.mark.root
TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


@pytest.fixture
def lab_ok(lab_session):
    if lab_session is not None:
        pytest.skip(lab_session)


def observed(lab: Lab, host, *targets, local_port: int = 0, timeout: float = 1.0):
    """(ip, port) the servers at ``targets`` see for one socket of ``host``; None where no answer."""
    lines = lab.probe(host, "echo", "--local-port", local_port, "--timeout", timeout,
                      *[a for t in targets for a in ("--to", f"{t[0]}:{t[1]}")])
    return [tuple(x["observed"]) if x["observed"] else None for x in lines if x.get("event") == "observed"]


# ------------------------------------------------------------------------------ NAT behaviour
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_nat_kind_is_classified_as_claimed(lab, kind):
    nat = lab.add_nat("nat", kind)
    obs = lab.verify(nat)  # raises unless (mapping, filtering, allocation) == KINDS[kind]
    assert (obs["mapping"], obs["filtering"], obs["allocation"]) == KINDS[kind]
    assert all(o[0] == nat.wan_ip for o in obs["observed"].values())
    assert obs["wan_knock"] == "silent"


def test_public_hosts_see_no_nat(lab):
    pub = lab.add_public_host("pub")
    obs = lab.classify(pub)
    assert (obs["mapping"], obs["filtering"], obs["allocation"]) == ("none", "EIF", "preserve")


def test_knock_tells_a_dropping_router_from_a_closed_port(lab):
    nat = lab.add_nat("nat", "full-cone")
    pub = lab.add_public_host("pub")
    other = lab.add_public_host("other")
    assert lab.knock(other, pub.ip, 40000) == "refused"  # no firewall: ICMP port unreachable comes back
    assert lab.knock(other, nat.wan_ip, 40000) == "silent"  # the router's input chain drops it
    lab.start_probe_server(pub, ports=(40001,))
    assert lab.knock(other, pub.ip, 40001) == "reply"


PUNCH = [
    ("port-restricted", "port-restricted", True),
    ("symmetric-random", "port-restricted", False),
    ("symmetric-random", "full-cone", True),  # endpoint-independent filtering lets the new port in
    ("symmetric-random", "restricted", True),  # address-dependent: B already sent to A's address
]


@pytest.mark.parametrize("kind_a,kind_b,works", PUNCH, ids=[f"{a}-vs-{b}" for a, b, _ in PUNCH])
def test_plain_udp_hole_punch(lab, kind_a, kind_b, works):
    na, nb = lab.add_nat("na", kind_a), lab.add_nat("nb", kind_b)
    a, b = lab.add_host("a", behind=na), lab.add_host("b", behind=nb)
    res = lab.udp_punch(a, b, duration=2.0)
    assert res["ok"] is works, res
    assert tuple(res["a"]["self"])[0] == na.wan_ip and tuple(res["b"]["self"])[0] == nb.wan_ip
    if works:
        assert res["a"]["received_from"][0] == nb.wan_ip and res["b"]["received_from"][0] == na.wan_ip


@pytest.mark.parametrize("kind", ["port-restricted", "full-cone"])
def test_hosts_behind_the_same_nat(lab, kind):
    nat = lab.add_nat("nat", kind)
    a, b = lab.add_host("a", behind=nat), lab.add_host("b", behind=nat)
    s1, s2 = lab.probe_servers()
    # Both use local port 5000 towards the same server: one public IP, two distinct mappings.
    # One after the other: two first packets racing through the full-cone rules in the same instant can
    # both pick the preserved port before either mapping is recorded (a lab-router race, not a NAT type).
    procs, maps = {}, {}
    for h in (a, b):
        procs[h.name] = lab.run(h, lab.probe_argv("echo", "--local-port", 5000, "--to", f"{s1.ip}:{PROBE_PORTS[0]}",
                                                  "--listen", 3.0), stdout=subprocess.PIPE)
        first = lab.read_json(procs[h.name])
        assert first is not None and first.get("observed"), f"{h.name}: no echo from the server: {first}"
        maps[h.name] = tuple(first["observed"])
    assert {m[0] for m in maps.values()} == {nat.wan_ip}
    assert maps["a"][1] != maps["b"][1]
    # Unsolicited datagrams from another server to each mapping: only a full cone lets them in, and
    # each reaches the host that owns the mapping.
    for n, m in maps.items():
        lab.probe(s2, "send", "--to", f"{m[0]}:{m[1]}", "--data", f"for-{n}")
    for n, p in procs.items():
        got = []
        while (ev := lab.read_json(p, timeout=5))["event"] != "done":
            got.append(ev["msg"].get("data"))
        assert got == ([f"for-{n}"] if kind == "full-cone" else []), (n, got)
    # On the LAN they talk directly, no NAT in between.
    lab.start_probe_server(a, ports=(6000,))
    assert observed(lab, b, (a.ip, 6000), local_port=6001) == [(b.ip, 6001)]
    # No hairpinning: a mapping is not reachable from inside (like many home routers).
    assert observed(lab, b, (nat.wan_ip, maps["a"][1]), timeout=0.3) == [None]


def test_rebind_forgets_mappings(lab):
    nat = lab.add_nat("nat", "full-cone")
    h = lab.add_host("h", behind=nat)
    s1, s2 = lab.probe_servers()

    def inbound_after_outbound(port: int) -> tuple[tuple, list]:
        p = lab.run(h, lab.probe_argv("echo", "--local-port", port, "--to", f"{s1.ip}:{PROBE_PORTS[0]}",
                                      "--listen", 0.5), stdout=subprocess.PIPE)
        m = tuple(lab.read_json(p)["observed"])
        lab.probe(s2, "send", "--to", f"{m[0]}:{m[1]}", "--data", "hi")
        got = []
        while (ev := lab.read_json(p))["event"] != "done":
            got.append(ev["msg"]["data"])
        return m, got

    m, got = inbound_after_outbound(5000)
    assert got == ["hi"]
    lab.rebind(nat)
    assert lab.knock(s2, m[0], m[1]) == "silent"  # the mapping is gone: the router drops it
    assert inbound_after_outbound(5000) == (m, ["hi"])  # a new outbound packet makes it again


# ------------------------------------------------------------------------------ link conditions
def _ping_rtt(lab: Lab, src, dst_ip: str) -> tuple[float, float]:
    r = lab.exec(src, ["ping", "-n", "-q", "-c", "4", "-i", "0.2", "-W", "2", dst_ip], timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    mn, avg, _mx = (float(x) for x in re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", r.stdout).groups())
    return mn, avg


def test_netem_delay_is_visible_in_ping(lab):
    if shutil.which("ping") is None:
        pytest.skip("ping not installed (apt-get install iputils-ping)")
    nat = lab.add_nat("nat", "port-restricted")
    h = lab.add_host("h", behind=nat)
    pub = lab.add_public_host("pub")
    base, _ = _ping_rtt(lab, h, pub.ip)
    assert base < 20
    lab.netem(h, delay_ms=60)
    mn, _ = _ping_rtt(lab, h, pub.ip)
    assert 60 <= mn < 60 + 40, (lab.netem_backend, mn)
    lab.netem(nat, delay_ms=30, both=True)  # on the router's WAN link, each way: +60 ms more
    mn, _ = _ping_rtt(lab, h, pub.ip)
    assert 120 <= mn < 120 + 60, (lab.netem_backend, mn)
    lab.clear_netem(h)
    lab.clear_netem(nat)
    mn, _ = _ping_rtt(lab, h, pub.ip)
    assert mn < 20, (lab.netem_backend, mn)


def test_netem_loss(lab):
    a, b = lab.add_public_host("a"), lab.add_public_host("b")
    lab.start_probe_server(b)
    target = (b.ip, PROBE_PORTS[0])
    assert observed(lab, a, target, local_port=7000) == [(a.ip, 7000)]
    lab.netem(a, loss_pct=100)
    assert observed(lab, a, target, timeout=0.5) == [None]
    lab.netem(a, loss_pct=0)
    assert observed(lab, a, target, local_port=7000) == [(a.ip, 7000)]


def test_block_and_unblock(lab):
    p1, p2, p3 = (lab.add_public_host(n) for n in ("p1", "p2", "p3"))
    nat = lab.add_nat("nat", "port-restricted")
    h = lab.add_host("h", behind=nat)
    for s in (p2, p3):
        lab.start_probe_server(s)
    to2, to3 = (p2.ip, PROBE_PORTS[0]), (p3.ip, PROBE_PORTS[0])
    assert observed(lab, p1, to2, local_port=7000) == [(p1.ip, 7000)]
    lab.block(p1, p2)
    assert observed(lab, p1, to2, to3, local_port=7000, timeout=0.5) == [None, (p1.ip, 7000)]
    lab.block(h, p3)  # a host behind a NAT stands for its NAT's public address
    blocked, fine = observed(lab, h, to3, to2, timeout=0.5)
    assert blocked is None and fine[0] == nat.wan_ip
    lab.unblock(p1, p2)
    lab.unblock(nat, p3)
    assert observed(lab, p1, to2, local_port=7001) == [(p1.ip, 7001)]
    assert observed(lab, h, to3)[0][0] == nat.wan_ip


def test_set_address_roams(lab):
    nat = lab.add_nat("nat", "port-restricted")
    h = lab.add_host("h", behind=nat)
    pub = lab.add_public_host("pub")
    s1, _ = lab.probe_servers()
    to = (s1.ip, PROBE_PORTS[0])
    old_ip, (before,) = h.ip, observed(lab, h, to, local_port=5000)
    new_ip = lab.set_address(h)
    assert new_ip != old_ip and h.ip == new_ip
    assert f"inet {new_ip}/" in lab.exec(h, ["ip", "-4", "addr", "show", "eth0"]).stdout
    (after,) = observed(lab, h, to, local_port=5000)
    assert after[0] == nat.wan_ip and after != before  # the old mapping still holds the port
    assert observed(lab, pub, to, local_port=5000) == [(pub.ip, 5000)]
    assert lab.set_address(pub, "203.0.113.200") == pub.ip == "203.0.113.200"
    assert observed(lab, pub, to, local_port=5000) == [(pub.ip, 5000)]
    wan = lab.set_address(nat)
    assert observed(lab, h, to)[0][0] == wan == nat.wan_ip


# ------------------------------------------------------------------------------ teardown
def _lab_links_in_root() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {re.split(r"[@:]", line.split(": ")[1])[0] for line in out.splitlines() if ": " in line}
    return {n for n in names if re.fullmatch(r"p\d+|e\d+[ab]|wan0|lan0", n)}


def test_teardown_after_an_exception_leaves_nothing(lab_ok):
    links = _lab_links_in_root()
    with pytest.raises(RuntimeError, match="boom"):
        with Lab() as lab:
            prefix = lab.prefix
            nat = lab.add_nat("nat", "symmetric-random")
            h = lab.add_host("h", behind=nat)
            lab.add_public_host("pub")
            proc = lab.run(h, ["sleep", "60"])
            lab.netem(h, delay_ms=5)
            assert len(lab_namespaces(prefix)) == 4 and proc.pid in marked_processes(prefix)
            assert _lab_links_in_root() == links  # nothing ever shows up in the root namespace
            raise RuntimeError("boom")
    assert lab_namespaces(prefix) == []
    assert marked_processes(prefix) == []
    assert proc.returncode is not None


def test_fixture_teardown_when_the_test_fails(lab_ok, tmp_path):
    (tmp_path / "test_child.py").write_text(textwrap.dedent("""
        def test_fails(lab):
            nat = lab.add_nat("nat", "port-restricted")
            h = lab.add_host("h", behind=nat)
            lab.run(h, ["sleep", "60"])
            print("PREFIX", lab.prefix, flush=True)
            raise AssertionError("the test failed")
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO / "daemon")]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "netns.conftest",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_child.py")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert r.returncode == 1 and "1 failed" in r.stdout, r.stdout + r.stderr
    prefix = re.search(r"PREFIX (\S+)", r.stdout).group(1)
    assert lab_namespaces(prefix) == [] and marked_processes(prefix) == []


def test_leftovers_of_a_killed_run_are_swept(lab_ok, tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(TESTS)!r})
        from netns.lab import Lab
        lab = Lab(workdir={str(tmp_path)!r})
        h = lab.add_host("h", behind=lab.add_nat("nat", "full-cone"))
        lab.run(h, ["sleep", "60"])
        print(lab.prefix, flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        prefix = child.stdout.readline().strip()
        assert prefix.startswith(f"om-{child.pid}-")
    finally:
        child.send_signal(signal.SIGKILL)  # no teardown, no atexit
        child.wait()
        child.stdout.close()
    assert len(lab_namespaces(prefix)) == 3 and len(marked_processes(prefix)) == 1
    removed = sweep_stale()
    assert prefix + "nat" in removed
    assert lab_namespaces(prefix) == [] and marked_processes(prefix) == []
