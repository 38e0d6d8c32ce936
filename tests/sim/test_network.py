"""SimInternet: latency, loss, determinism, firewalls, host down, roaming, timers, trace, safety limit."""

from __future__ import annotations

import ast
import pathlib

import pytest

from omerta_mesh.sim.clock import EventQueue, SimError, SimLimitError, VirtualClock
from omerta_mesh.sim.nat import NatBox
from omerta_mesh.sim.network import LinkSpec, SimInternet
from omerta_mesh.sim.trace import format_failure

Address = tuple[str, int]


class Recorder:
    """Records every datagram it gets; sends what the test queues; one optional deadline."""

    def __init__(self, log: list | None = None, name: str = "") -> None:
        self.got: list[tuple[float, Address, Address | None, bytes]] = []
        self.out: list[tuple[Address, Address | None, bytes]] = []
        self.deadline: float | None = None
        self.timer_calls: list[float] = []
        self.log, self.name = log, name

    def send(self, dst: Address, data: bytes, local: Address | None = None) -> None:
        self.out.append((dst, local, data))

    def receive_datagram(self, data: bytes, src: Address, local: Address | None, now: float) -> None:
        self.got.append((now, src, local, data))

    def handle_timer(self, now: float) -> None:
        self.timer_calls.append(now)
        if self.log is not None:
            self.log.append((now, self.name))
        self.deadline = None

    def datagrams_to_send(self) -> list[tuple[Address, Address | None, bytes]]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> float | None:
        return self.deadline

    @property
    def payloads(self) -> list[bytes]:
        return [g[3] for g in self.got]


class Echo(Recorder):
    """Sends every datagram back to where it came from, from the socket it arrived on."""

    def receive_datagram(self, data: bytes, src: Address, local: Address | None, now: float) -> None:
        super().receive_datagram(data, src, local, now)
        self.send(src, data, local)


class Ticker(Recorder):
    """Sends ``count`` numbered datagrams to ``dst``, one every ``interval`` seconds from ``start``."""

    def __init__(self, dst: Address, count: int, interval: float, start: float = 0.0) -> None:
        super().__init__()
        self.dst, self.count, self.interval, self.sent = dst, count, interval, 0
        self.deadline = start

    def handle_timer(self, now: float) -> None:
        self.send(self.dst, self.sent.to_bytes(4, "big"))
        self.sent += 1
        self.deadline = now + self.interval if self.sent < self.count else None


def pair(seed: int = 1, la: LinkSpec | None = None, lb: LinkSpec | None = None):
    net = SimInternet(seed)
    a, b = net.add_host("a", link=la), net.add_host("b", link=lb)
    ra, rb = Recorder(), Echo()
    a.bind(1000, ra)
    b.bind(2000, rb)
    return net, a, b, ra, rb


def test_latency_is_exact_in_virtual_time():
    net, a, b, ra, rb = pair(la=LinkSpec(latency=0.01), lb=LinkSpec(latency=0.02))
    ra.send(b.address(2000), b"hi")
    net.run_until(1.0)
    assert [g[0] for g in rb.got] == [pytest.approx(0.03, abs=1e-12)], format_failure(net.trace)
    assert rb.got[0][1] == a.address(1000) and rb.got[0][2] == b.address(2000)
    assert [g[0] for g in ra.got] == [pytest.approx(0.06, abs=1e-12)]
    assert net.now == 1.0
    assert (net.stats.sent, net.stats.delivered, net.stats.dropped_total) == (2, 2, 0)


def test_latency_through_a_nat_adds_the_uplink_and_server_sees_public_ip():
    net = SimInternet(1)
    nat = net.add_nat("home", "full-cone", link=LinkSpec(latency=0.005))
    h = net.add_host("h", behind=nat, link=LinkSpec(latency=0.001))
    s = net.add_host("s", link=LinkSpec(latency=0.02))
    rh, rs = Recorder(), Echo()
    h.bind(5000, rh)
    s.bind(3478, rs)
    assert h.ip.startswith("10.") and nat.owns_inside(h.ip)
    rh.send(s.address(3478), b"x")
    net.run_for(1.0)
    assert rs.got[0][0] == pytest.approx(0.026, abs=1e-12), format_failure(net.trace)
    assert rs.got[0][1] == (nat.ip, 5000)
    assert rh.got[0][0] == pytest.approx(0.052, abs=1e-12) and rh.got[0][1] == s.address(3478)


def test_jitter_stays_within_bounds_and_varies():
    net, a, b, ra, rb = pair(la=LinkSpec(latency=0.01, jitter=0.01), lb=LinkSpec(latency=0.0))
    for i in range(200):
        ra.send(b.address(2000), bytes([i]))
    net.run_for(1.0)
    times = [g[0] for g in rb.got]
    assert len(times) == 200
    assert all(0.01 <= t <= 0.02 for t in times)
    assert len(set(times)) > 150


@pytest.mark.parametrize("loss", [0.1, 0.25])
def test_loss_rate_is_statistically_close(loss):
    net, a, b, ra, rb = pair(seed=3, la=LinkSpec(loss=loss))
    b.unbind(2000)
    b.bind(2000, Recorder())
    n = 4000
    for i in range(n):
        ra.send(b.address(2000), i.to_bytes(4, "big"))
    net.run_for(1.0)
    assert abs(net.stats.dropped["loss"] / n - loss) < 0.03
    assert net.stats.delivered + net.stats.dropped["loss"] == n


def _lossy_run(seed: int) -> tuple[str, list[bytes]]:
    spec = LinkSpec(latency=0.01, jitter=0.005, loss=0.3, reorder=0.1)
    net = SimInternet(seed)
    nat = net.add_nat("n", "port-restricted", link=spec)
    a = net.add_host("a", behind=nat, link=spec)
    b = net.add_host("b", link=spec)
    t, rb = Ticker(b.address(9), count=100, interval=0.002), Echo()
    a.bind(7, t)
    b.bind(9, rb)
    net.run_for(2.0)
    return net.trace.digest(), t.payloads


def test_same_seed_same_trace_digest_different_seed_differs():
    d1, got1 = _lossy_run(7)
    d2, got2 = _lossy_run(7)
    d3, got3 = _lossy_run(8)
    assert d1 == d2 and got1 == got2
    assert 0 < len(got1) < 100
    assert d3 != d1 and got3 != got1


@pytest.mark.parametrize("reorder,expect_sorted", [(0.0, True), (0.3, False)])
def test_reorder(reorder, expect_sorted):
    net = SimInternet(5)
    a, b = net.add_host("a", link=LinkSpec(latency=0.01, reorder=reorder)), net.add_host("b")
    t, rb = Ticker(b.address(9), count=200, interval=0.001), Recorder()
    a.bind(7, t)
    b.bind(9, rb)
    net.run_for(2.0)
    seqs = [int.from_bytes(p, "big") for p in rb.payloads]
    assert sorted(seqs) == list(range(200))
    assert (seqs == sorted(seqs)) is expect_sorted, format_failure(net.trace, last=40)


def test_timer_fires_exactly_at_deadline_and_ties_break_in_bind_order():
    net = SimInternet(0, start=100.0)
    log: list = []
    h = net.add_host("h")
    apps = [Recorder(log, name) for name in ("first", "second", "third")]
    for i, app in enumerate(apps):
        app.deadline = 101.5
        h.bind(10 + i, app)
    assert net.run_until_idle(10.0) is True
    assert log == [(101.5, "first"), (101.5, "second"), (101.5, "third")]
    assert net.now == 101.5


def test_run_until_idle_caps_a_busy_network():
    net = SimInternet(0)
    a, b = net.add_host("a"), net.add_host("b")
    a.bind(7, Ticker(b.address(9), count=10**6, interval=0.5))
    b.bind(9, Recorder())
    assert net.run_until_idle(max_time=3.0) is False
    assert net.now == 3.0
    with pytest.raises(SimError):
        net.run_until(1.0)


def test_block_and_unblock_cut_both_ways():
    net, a, b, ra, rb = pair()
    net.block(a.ip, b.ip)
    ra.send(b.address(2000), b"1")
    rb.send(a.address(1000), b"2")
    net.run_for(1.0)
    assert ra.got == [] and rb.got == []
    assert net.stats.dropped["blocked"] == 2, format_failure(net.trace)
    net.unblock(b.ip, a.ip)
    ra.send(b.address(2000), b"3")
    net.run_for(1.0)
    assert rb.payloads == [b"3"] and ra.payloads == [b"3"]


def test_block_public_path_of_a_natted_host():
    net = SimInternet(0)
    nat = net.add_nat("n", "full-cone")
    h, s = net.add_host("h", behind=nat), net.add_host("s")
    rh, rs = Recorder(), Recorder()
    h.bind(5, rh)
    s.bind(6, rs)
    net.block(nat.ip, s.ip)
    rh.send(s.address(6), b"x")
    net.run_for(1.0)
    assert rs.got == [] and net.stats.dropped["blocked"] == 1


def test_host_down_drops_both_directions_but_timers_run():
    net, a, b, ra, rb = pair()
    b.down()
    rb.deadline = 0.5
    net.pump(rb)
    ra.send(b.address(2000), b"in")
    rb.send(a.address(1000), b"out")
    net.run_for(1.0)
    assert ra.got == [] and rb.got == []
    assert net.stats.dropped["host_down"] == 2
    assert rb.timer_calls == [0.5]
    b.up()
    ra.send(b.address(2000), b"again")
    net.run_for(1.0)
    assert rb.payloads == [b"again"] and ra.payloads == [b"again"]


def test_roaming_set_address():
    net, a, b, ra, rb = pair(lb=LinkSpec(latency=0.01))
    old = b.ip
    ra.send((old, 2000), b"in-flight")
    net.run_for(0.015)  # crossed a's link, now on b's link
    new = b.set_address()
    assert new != old
    ra.send((old, 2000), b"to-old")
    rb.send(a.address(1000), b"hello-from-new")
    net.run_for(1.0)
    assert rb.got == []
    assert net.stats.dropped["no_route"] == 2, format_failure(net.trace)
    assert ra.got[0][1] == (new, 2000) and ra.payloads == [b"hello-from-new"]
    nat = net.add_nat("cell", "port-restricted")
    b.set_address(behind=nat)
    rb.send(a.address(1000), b"behind-nat")
    net.run_for(1.0)
    assert ra.got[-1][1] == (nat.ip, 2000) and nat.owns_inside(b.ip)


def test_no_listener_and_no_route():
    net, a, b, ra, rb = pair()
    ra.send(b.address(2001), b"x")
    ra.send(("203.0.113.99", 1), b"y")
    net.run_for(1.0)
    assert net.stats.dropped == {"no_listener": 1, "no_route": 1}


def test_nested_nat_carrier_grade():
    net = SimInternet(0)
    cgnat = net.add_nat("cgnat", "port-restricted", subnet="100.64.0.0/24")
    home = net.add_nat("home", "port-restricted", behind=cgnat)
    h, s = net.add_host("h", behind=home), net.add_host("s")
    rh, rs = Recorder(), Echo()
    h.bind(5000, rh)
    s.bind(3478, rs)
    rh.send(s.address(3478), b"x")
    net.run_for(1.0)
    assert home.ip.startswith("100.64.0.")
    assert rs.got[0][1] == (cgnat.ip, 5000)
    assert rh.payloads == [b"x"], format_failure(net.trace)
    assert len(net.trace.select(event="nat")) == 4


class Livelock(Recorder):
    def next_deadline(self) -> float | None:
        return 0.0  # always due: re-armed in the past forever


def test_event_limit_catches_livelock():
    net = SimInternet(0)
    net.add_host("h").bind(1, Livelock())
    with pytest.raises(SimLimitError, match="livelock"):
        net.run_for(1.0, max_events=1000)


def test_event_limit_catches_packet_storm():
    net, a, b, ra, rb = pair()
    a.unbind(1000)
    a.bind(1000, Echo())
    net.pump()
    b.unbind(2000)
    eb = Echo()
    b.bind(2000, eb)
    eb.send(a.address(1000), b"ping")
    with pytest.raises(SimLimitError, match="limit 500"):
        net.run_until_idle(max_time=1e9, max_events=500)


def test_trace_dump_mermaid_and_bounded_digest():
    net, a, b, ra, rb = pair()
    net.block(a.ip, b.ip)
    ra.send(b.address(2000), b"blocked")
    net.run_for(1.0)
    net.unblock(a.ip, b.ip)
    ra.send(b.address(2000), b"ok")
    net.run_for(1.0)
    text = net.trace.dump()
    assert "[blocked]" in text and "deliver" in text and f"{b.ip}:2000" in text
    mer = net.trace.mermaid()
    assert mer.startswith("sequenceDiagram") and "-x" in mer and "DROP blocked" in mer and "->>" in mer
    fail = format_failure(net.trace, last=2)
    assert "last 2 of" in fail and len(fail.splitlines()) == 4
    small = SimInternet(1, trace_limit=3)
    sa, sb = small.add_host("a"), small.add_host("b")
    r = Recorder()
    sa.bind(1000, r)
    sb.bind(2000, Echo())
    small.block(sa.ip, sb.ip)
    r.send(sb.address(2000), b"blocked")
    small.run_for(1.0)
    small.unblock(sa.ip, sb.ip)
    r.send(sb.address(2000), b"ok")
    small.run_for(1.0)
    assert len(small.trace) == 3 and small.trace.total == net.trace.total
    assert small.trace.digest() == net.trace.digest()


def test_usage_errors():
    net, a, b, ra, rb = pair()
    with pytest.raises(SimError):
        a.bind(1000, Recorder())
    with pytest.raises(SimError):
        b.bind(2001, ra)  # one app, one host
    with pytest.raises(SimError):
        net.add_host("a")
    nat = net.add_nat("n")
    with pytest.raises(SimError):
        net.add_host("x", ip="8.8.8.8", behind=nat)
    with pytest.raises(SimError):
        net.add_host("y", ip=a.ip)
    with pytest.raises(ValueError):
        LinkSpec(loss=1.5)
    ra.send(b.address(2000), b"x", local=("0.0.0.0", 4444))
    with pytest.raises(SimError):
        net.run_for(1.0)


def test_clock_and_queue_primitives():
    clock = VirtualClock(5.0)
    clock.advance_to(6.0)
    with pytest.raises(SimError):
        clock.advance_to(1.0)
    q: EventQueue[object] = EventQueue()
    unorderable = [object(), object(), object()]
    for item in unorderable:
        q.push(1.0, item)
    q.push(0.5, "early")
    assert q.pop() == (0.5, "early")
    assert [q.pop()[1] for _ in range(3)] == unorderable
    assert q.peek_time() is None and not q


def test_nat_box_usable_standalone():
    nat = NatBox.preset("port-restricted", public_ip="192.0.2.1", subnet="10.9.9.0/24")
    out = nat.outbound(("10.9.9.2", 4000), ("198.51.100.1", 53), now=0.0)
    assert out == ("192.0.2.1", 4000)
    assert nat.inbound(("198.51.100.1", 53), out, now=1.0) == (("10.9.9.2", 4000), None)
    assert nat.inbound(("198.51.100.1", 54), out, now=1.0)[1] == "nat_filtered"
    assert nat.inbound(("198.51.100.1", 53), out, now=31.0)[1] == "no_mapping"


FORBIDDEN = {"asyncio", "socket", "select", "time", "threading", "subprocess", "random"}


def test_sim_package_has_no_io_imports():
    import omerta_mesh.sim as sim

    root = pathlib.Path(sim.__file__).parent
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path.name} opens a file"
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"
        assert len(path.read_text().splitlines()) < 500, f"{path.name} is too long"
