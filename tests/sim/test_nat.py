"""NatBox in the simulated Internet: RFC 4787 mapping, filtering, port allocation, timeouts, hairpin,
bounded table, and hole punching (works between cone NATs, fails naively against a symmetric one)."""

from __future__ import annotations

import pytest

from omerta_mesh.sim.nat import FilteringBehavior as F
from omerta_mesh.sim.nat import MappingBehavior as M
from omerta_mesh.sim.nat import NatBox
from omerta_mesh.sim.nat import PortAllocation as P
from omerta_mesh.sim.network import LinkSpec, SimInternet
from omerta_mesh.sim.trace import format_failure

Address = tuple[str, int]


class Recorder:
    """Records what it gets (time, observed source, payload); sends what the test queues."""

    def __init__(self) -> None:
        self.got: list[tuple[float, Address, bytes]] = []
        self.out: list[tuple[Address, Address | None, bytes]] = []
        self.deadline: float | None = None

    def send(self, dst: Address, data: bytes = b"x") -> None:
        self.out.append((dst, None, data))

    def receive_datagram(self, data: bytes, src: Address, local: Address | None, now: float) -> None:
        self.got.append((now, src, data))

    def handle_timer(self, now: float) -> None:
        self.deadline = None

    def datagrams_to_send(self) -> list[tuple[Address, Address | None, bytes]]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> float | None:
        return self.deadline

    @property
    def sources(self) -> list[Address]:
        return [g[1] for g in self.got]


class Puncher(Recorder):
    """Sends a punch to ``peer`` now and every 0.2 s, ``count`` times; records what comes back."""

    def punch(self, peer: Address, now: float, count: int = 5) -> None:
        self.peer, self.left = peer, count
        self.handle_timer(now)

    def handle_timer(self, now: float) -> None:
        self.send(self.peer, b"punch")
        self.left -= 1
        self.deadline = now + 0.2 if self.left > 0 else None


class World:
    """One client ``h:5000`` behind ``nat``; public servers s1 (ports 3478, 3479) and s2 (port 3478)."""

    def __init__(self, nat: NatBox | str, seed: int = 1, **overrides) -> None:
        self.net = SimInternet(seed)
        self.nat = self.net.add_nat("nat", nat, **overrides)
        self.h = self.net.add_host("h", behind=self.nat)
        self.s1, self.s2 = self.net.add_host("s1"), self.net.add_host("s2")
        self.client, self.s1a, self.s1b, self.s2a = Recorder(), Recorder(), Recorder(), Recorder()
        self.h.bind(5000, self.client)
        self.s1.bind(3478, self.s1a)
        self.s1.bind(3479, self.s1b)
        self.s2.bind(3478, self.s2a)

    def probe(self, *servers: tuple[Recorder, Address]) -> list[Address]:
        """Client sends to each server; returns the source each observed (its mapped address)."""
        for _app, addr in servers:
            self.client.send(addr)
        self.net.run_for(1.0)
        seen = [app.got[-1][1] for app, _addr in servers]
        assert all(ip == self.nat.ip for ip, _port in seen), format_failure(self.net.trace)
        return seen

    def targets(self) -> list[tuple[Recorder, Address]]:
        return [(self.s1a, self.s1.address(3478)), (self.s1b, self.s1.address(3479)),
                (self.s2a, self.s2.address(3478))]


@pytest.mark.parametrize("mapping,same_ip_other_port_same,other_ip_same", [
    (M.EIM, True, True), (M.ADM, True, False), (M.APDM, False, False),
])
def test_mapping_behaviour(mapping, same_ip_other_port_same, other_ip_same):
    w = World(NatBox(mapping, F.EIF, P.SEQUENTIAL, first_port=20000))
    (_, p1), (_, p2), (_, p3) = w.probe(*w.targets())
    assert (p1 == p2) is same_ip_other_port_same, format_failure(w.net.trace)
    assert (p1 == p3) is other_ip_same
    assert (p2 == p3) is (mapping is M.EIM)
    assert len(w.nat.mappings(w.net.now)) == len({p1, p2, p3})


@pytest.mark.parametrize("filtering,expect", [
    (F.EIF, {"s1:3478", "s1:3479", "s2:3478"}),
    (F.ADF, {"s1:3478", "s1:3479"}),
    (F.APDF, {"s1:3478"}),
])
def test_filtering_behaviour(filtering, expect):
    w = World(NatBox(M.EIM, filtering))
    [mapped] = w.probe(w.targets()[0])
    senders = {"s1:3478": w.s1a, "s1:3479": w.s1b, "s2:3478": w.s2a}
    for label, app in senders.items():
        app.send(mapped, label.encode())
    w.net.run_for(1.0)
    got = {g[2].decode() for g in w.client.got}
    assert got == expect, format_failure(w.net.trace)
    assert w.net.stats.dropped["nat_filtered"] == 3 - len(expect)


def test_unsolicited_inbound_without_mapping_is_dropped():
    w = World("full-cone")
    w.s2a.send((w.nat.ip, 5000))
    w.net.run_for(1.0)
    assert w.client.got == [] and w.net.stats.dropped == {"no_mapping": 1}


def test_port_preservation_takes_next_free_port():
    w = World("port-restricted")
    h2 = w.net.add_host("h2", behind=w.nat)
    other = Recorder()
    h2.bind(5000, other)
    [(_, p1)] = w.probe(w.targets()[0])
    other.send(w.s1.address(3478))
    w.net.run_for(1.0)
    assert p1 == 5000 and w.s1a.got[-1][1] == (w.nat.ip, 5001)


@pytest.mark.parametrize("step", [1, 2, 7])
def test_sequential_allocation_steps(step):
    w = World(NatBox(M.APDM, F.APDF, P.SEQUENTIAL, port_step=step, first_port=40000))
    ports = [p for _ip, p in w.probe(*w.targets())]
    assert ports == [40000, 40000 + step, 40000 + 2 * step], format_failure(w.net.trace)


def test_random_allocation_is_seeded_and_spread():
    def ports(seed: int) -> list[int]:
        w = World("symmetric-random", seed=seed, port_range=(10000, 60000))
        return [p for _ip, p in w.probe(*w.targets())]

    a, b, c = ports(11), ports(11), ports(12)
    assert a == b and a != c
    assert len(set(a)) == 3 and all(10000 <= p <= 60000 for p in a)
    assert not any(abs(x - y) <= 2 for x, y in zip(a, a[1:])), a


@pytest.mark.parametrize("alloc,new_port_after_timeout", [(P.SEQUENTIAL, True), (P.PRESERVE, False)])
def test_mapping_timeout(alloc, new_port_after_timeout):
    w = World(NatBox(M.EIM, F.EIF, alloc, timeout=30.0, first_port=30000))
    [(_, p1)] = w.probe(w.targets()[0])
    w.net.run_until(31.5)
    w.s1a.send((w.nat.ip, p1), b"late")
    w.net.run_for(1.0)
    assert w.client.got == [] and w.net.stats.dropped["no_mapping"] == 1, format_failure(w.net.trace)
    [(_, p2)] = w.probe(w.targets()[0])
    assert (p2 != p1) is new_port_after_timeout


def test_outbound_traffic_keeps_mapping_alive():
    w = World(NatBox(M.EIM, F.APDF, P.SEQUENTIAL, timeout=30.0))
    [(_, p1)] = w.probe(w.targets()[0])
    for t in (20.0, 40.0, 60.0):
        w.net.run_until(t)
        w.client.send(w.s1.address(3478))
    w.net.run_until(85.0)
    w.s1a.send((w.nat.ip, p1), b"still-open")
    w.net.run_for(1.0)
    assert [g[2] for g in w.client.got] == [b"still-open"], format_failure(w.net.trace)
    assert w.s1a.got[-1][1] == (w.nat.ip, p1)


@pytest.mark.parametrize("inbound_refresh,third_gets_through", [(True, True), (False, False)])
def test_inbound_refresh_option(inbound_refresh, third_gets_through):
    w = World(NatBox(M.EIM, F.APDF, timeout=30.0, inbound_refresh=inbound_refresh))
    [mapped] = w.probe(w.targets()[0])
    for t in (25.0, 50.0):
        w.net.run_until(t)
        w.s1a.send(mapped, str(t).encode())
    w.net.run_for(1.0)
    assert (len(w.client.got) == 2) is third_gets_through, format_failure(w.net.trace)


@pytest.mark.parametrize("hairpin", [True, False])
def test_hairpinning(hairpin):
    w = World("full-cone", hairpin=hairpin)
    h2 = w.net.add_host("h2", behind=w.nat, link=LinkSpec(latency=0.002))
    other = Recorder()
    h2.bind(6000, other)
    other.send(w.s1.address(3478))
    w.net.run_for(1.0)
    mapped_h2 = w.s1a.got[-1][1]
    [mapped_h1] = w.probe(w.targets()[0])
    t0 = w.net.now
    w.client.send(mapped_h2, b"hairpin")
    w.net.run_for(1.0)
    if hairpin:
        assert other.got == [(pytest.approx(t0 + 0.012), mapped_h1, b"hairpin")], format_failure(w.net.trace)
    else:
        assert other.got == [] and w.net.stats.dropped == {"no_hairpin": 1}


def test_mapping_table_is_bounded_oldest_evicted():
    w = World(NatBox(M.APDM, F.APDF, P.SEQUENTIAL, max_mappings=2))
    m1, m2, m3 = w.probe(*w.targets())
    assert w.nat.evicted == 1 and len(w.nat.mappings()) == 2
    w.s1a.send(m1, b"evicted")
    w.s2a.send(m3, b"alive")
    w.net.run_for(1.0)
    assert [g[2] for g in w.client.got] == [b"alive"]
    assert w.net.stats.dropped == {"no_mapping": 1}


def test_presets():
    table = {
        "full-cone": (M.EIM, F.EIF, P.PRESERVE),
        "restricted": (M.EIM, F.ADF, P.PRESERVE),
        "port-restricted": (M.EIM, F.APDF, P.PRESERVE),
        "symmetric-sequential": (M.APDM, F.APDF, P.SEQUENTIAL),
        "symmetric-random": (M.APDM, F.APDF, P.RANDOM),
    }
    for name, want in table.items():
        nat = NatBox.preset(name, timeout=60.0)
        assert (nat.mapping, nat.filtering, nat.port_alloc) == want and nat.timeout == 60.0
    with pytest.raises(ValueError, match="known"):
        NatBox.preset("cone")


def _punch(kind_a: str, kind_b: str, seed: int = 4):
    """A and B learn each other's mapped address from a rendezvous server, then punch simultaneously."""
    net = SimInternet(seed)
    na, nb = net.add_nat("nat_a", kind_a), net.add_nat("nat_b", kind_b)
    ha, hb = net.add_host("a", behind=na), net.add_host("b", behind=nb)
    rv = net.add_host("rendezvous")
    pa, pb, server = Puncher(), Puncher(), Recorder()
    ha.bind(41641, pa)
    hb.bind(41641, pb)
    rv.bind(3478, server)
    pa.send(rv.address(3478))
    pb.send(rv.address(3478))
    net.run_for(1.0)
    seen = {g[1][0]: g[1] for g in server.got}
    ma, mb = seen[na.ip], seen[nb.ip]
    pa.punch(mb, net.now)
    pb.punch(ma, net.now)
    net.run_for(2.0)
    return net, pa, pb, ma, mb


def test_hole_punch_between_two_port_restricted_nats():
    net, pa, pb, ma, mb = _punch("port-restricted", "port-restricted")
    assert mb in pa.sources and ma in pb.sources, format_failure(net.trace)
    n = len(pb.got)
    pa.send(mb, b"data")
    net.run_for(1.0)
    assert len(pb.got) == n + 1 and pb.got[-1][1:] == (ma, b"data")


def test_naive_hole_punch_fails_symmetric_random_vs_port_restricted():
    net, pa, pb, ma, mb = _punch("symmetric-random", "port-restricted")
    assert pa.got == [] and pb.got == [], format_failure(net.trace)
    assert net.stats.dropped["nat_filtered"] == 10  # every punch of both sides hits a filter
    assert len(net.nats["nat_a"].mappings(net.now)) == 2  # a new mapping towards b: a different port
