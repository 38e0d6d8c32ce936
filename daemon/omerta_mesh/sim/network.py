"""A deterministic simulated Internet: hosts, access links, NAT boxes, firewalls, a virtual clock.

Sans-I/O apps (the ``App`` protocol, which ``Mesh`` implements) are bound to ``(host ip, port)``. After
every input (a datagram or a timer) the simulator drains ``datagrams_to_send()`` and re-reads
``next_deadline()``, arming one timer per app, exactly like the asyncio driver does.

Topology. Every node (host or NAT) sits in a *realm*: the public Internet (``None``) or the inside of a
``NatBox``. Each node has one access link (``LinkSpec``) to its realm's router. A datagram goes up the
sender's link, is routed, and goes down the receiver's link; leaving a NAT it is translated and goes up
the NAT's uplink, entering one it goes down the NAT's uplink and is translated. So host->public server is
``sender link + server link``, and host behind a NAT -> public server adds the NAT uplink. Each link
traversal draws its own jitter, loss and reorder from a seeded stream forked per link, so one seed replays
the exact same trace, and adding a host does not shift the randomness of the others.

``LinkSpec.reorder`` is the probability that a traversal is held back by an extra
``uniform(latency, 2 * latency)`` (at least 1 ms), so later datagrams overtake it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from omerta_mesh.core.entropy import SeededEntropy

from .clock import EventQueue, SimError, SimLimitError, VirtualClock
from .nat import NatBox
from .trace import Address, DropReason, Trace, TraceEvent, TraceRecord, format_failure, payload_digest

__all__ = ["App", "LinkSpec", "SimHost", "SimInternet", "SimStats", "SimError", "SimLimitError"]

INTERNET = "internet"  # name of the public router in traces
_KEEP: Any = object()


class App(Protocol):
    """A sans-I/O protocol object the simulator can drive (``Mesh`` has exactly this face)."""

    def receive_datagram(self, data: bytes, src: Address, local: Address | None, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def datagrams_to_send(self) -> list[tuple[Address, Address | None, bytes]]: ...

    def next_deadline(self) -> float | None: ...


@dataclass(frozen=True)
class LinkSpec:
    """One access link or NAT uplink: one-way latency (s), uniform jitter (s), loss and reorder rates, and the
    largest datagram (UDP payload) it carries (``mtu``; None: any; larger ones are dropped silently, as a
    narrow link with ICMP filtered does)."""

    latency: float = 0.01
    jitter: float = 0.0
    loss: float = 0.0
    reorder: float = 0.0
    mtu: int | None = None

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must be >= 0")
        if not (0.0 <= self.loss <= 1.0 and 0.0 <= self.reorder <= 1.0):
            raise ValueError("loss and reorder are probabilities in [0, 1]")


class _Link:
    """A LinkSpec with its own seeded stream."""

    __slots__ = ("spec", "rng")

    def __init__(self, spec: LinkSpec, rng: SeededEntropy) -> None:
        self.spec, self.rng = spec, rng

    def sample(self) -> float | None:
        """The delay of one traversal, or None if the datagram is lost."""
        s = self.spec
        if s.loss > 0 and self.rng.uniform(0.0, 1.0) < s.loss:
            return None
        d = s.latency
        if s.jitter > 0:
            d += self.rng.uniform(0.0, s.jitter)
        if s.reorder > 0 and self.rng.uniform(0.0, 1.0) < s.reorder:
            d += self.rng.uniform(max(s.latency, 0.001), max(2 * s.latency, 0.002))
        return d


@dataclass
class SimStats:
    """Datagram counters. ``dropped`` is keyed by ``DropReason`` value (``stats.dropped["loss"]``)."""

    sent: int = 0
    delivered: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class _Pkt:
    __slots__ = ("id", "src", "dst", "data", "digest")

    def __init__(self, pid: int, src: Address, dst: Address, data: bytes) -> None:
        self.id, self.src, self.dst, self.data = pid, src, dst, data
        self.digest = payload_digest(data)


class _AppState:
    __slots__ = ("app", "host", "port", "armed", "gen", "live")

    def __init__(self, app: App, host: "SimHost", port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self.armed: float | None = None
        self.gen = 0
        self.live = True


class SimHost:
    """A machine with one address. Create with ``SimInternet.add_host``."""

    def __init__(self, net: "SimInternet", name: str, ip: str, realm: NatBox | None, link: _Link) -> None:
        self.name, self.ip, self.realm, self.link = name, ip, realm, link
        self.is_up = True
        self._net = net
        self._ports: dict[int, App] = {}

    def __repr__(self) -> str:
        where = f" behind {self.realm.name}" if self.realm else ""
        return f"SimHost({self.name!r}, {self.ip}{where}, ports={sorted(self._ports)})"

    def address(self, port: int) -> Address:
        """``(ip, port)`` of this host (its own address, private if behind a NAT)."""
        return (self.ip, port)

    @property
    def ports(self) -> dict[int, App]:
        """Bound ports and their apps (a copy)."""
        return dict(self._ports)

    def bind(self, port: int, app: App) -> Address:
        """Attach ``app`` at ``(ip, port)``; its first bound port is its default send port. Pumps it once."""
        if port in self._ports:
            raise SimError(f"{self.name}: port {port} already bound")
        if not 0 < port < 65536:
            raise SimError(f"{self.name}: bad port {port}")
        state = self._net._apps.get(id(app))
        if state is not None and state.host is not self:
            raise SimError(f"app {app!r} is already bound on host {state.host.name}")
        self._ports[port] = app
        if state is None:
            state = self._net._apps[id(app)] = _AppState(app, self, port)
        self._net._pump(state)
        return (self.ip, port)

    def unbind(self, port: int) -> None:
        """Detach the app on ``port``; an app left with no port stops getting timers."""
        app = self._ports.pop(port)
        if app not in self._ports.values():
            state = self._net._apps.pop(id(app))
            state.live = False
            self._net._set_armed(state, None)
        else:
            state = self._net._apps[id(app)]
            if state.port == port:
                state.port = next(p for p, a in self._ports.items() if a is app)

    def down(self) -> None:
        """Unplug the host: datagrams from and to it are dropped (``host_down``); its apps' timers still run."""
        self.is_up = False

    def up(self) -> None:
        """Plug the host back in."""
        self.is_up = True

    def set_address(self, ip: str | None = None, *, behind: NatBox | None = _KEEP) -> str:
        """Re-home the host (roaming): new ``ip`` (allocated if None), optionally a new realm ``behind``.

        Apps keep running and send from the new address; datagrams to the old one are dropped (no_route).
        """
        realm = self.realm if behind is _KEEP else behind
        net = self._net
        del net._realms[self.realm][self.ip]
        try:
            new_ip = net._claim_ip(realm, ip, self.name)
        except SimError:
            net._realms[self.realm][self.ip] = self
            raise
        self.ip, self.realm = new_ip, realm
        net._realms[realm][new_ip] = self
        return new_ip


class SimInternet:
    """The simulated Internet. All randomness derives from ``seed``; time is virtual (starts at ``start``)."""

    def __init__(
        self, seed: int | bytes | str = 0, *, start: float = 0.0, max_events: int = 1_000_000,
        trace_limit: int = 200_000, trace: bool = True,
    ) -> None:
        self.seed = seed
        self.clock = VirtualClock(start)
        self.trace = Trace(trace_limit)
        self.tracing = trace  # False: nothing is added to the trace (for scale runs that never read it)
        self.stats = SimStats()
        self.max_events = max_events
        self.hosts: dict[str, SimHost] = {}
        self.nats: dict[str, NatBox] = {}
        self._entropy = SeededEntropy(seed)
        self._queue: EventQueue[tuple[Any, ...]] = EventQueue()
        self._realms: dict[NatBox | None, dict[str, SimHost | NatBox]] = {None: {}}
        self._apps: dict[int, _AppState] = {}
        self._blocked: set[frozenset[str]] = set()
        self._next_public = int(ipaddress.IPv4Address("198.18.0.1"))
        self._next_subnet = 1
        self._pkt_id = 0
        self._in_flight = 0
        self._armed = 0

    @property
    def now(self) -> float:
        """Current virtual time."""
        return self.clock.now

    def entropy(self, label: str) -> SeededEntropy:
        """A seeded stream for an app or harness, derived from the simulation seed and ``label``."""
        return self._entropy.fork("app:" + label)

    # ---------------------------------------------------------------- topology

    def add_host(
        self, name: str, ip: str | None = None, behind: NatBox | None = None, link: LinkSpec | None = None
    ) -> SimHost:
        """A host on the public Internet, or with a private address ``behind`` a NAT."""
        self._check_name(name)
        ip = self._claim_ip(behind, ip, name)
        host = SimHost(self, name, ip, behind, _Link(link or LinkSpec(), self._entropy.fork("link:" + name)))
        self._realms[behind][ip] = host
        self.hosts[name] = host
        return host

    def add_nat(
        self, name: str, nat: NatBox | str = "port-restricted", *, public_ip: str | None = None,
        subnet: str | None = None, behind: NatBox | None = None, link: LinkSpec | None = None, **overrides: Any,
    ) -> NatBox:
        """Attach a NAT box (or a preset by name, with ``overrides``) with ``public_ip`` and an inside
        ``subnet`` (default 10.x.y.0/24). ``behind`` nests it inside another NAT."""
        self._check_name(name)
        if isinstance(nat, str):
            nat = NatBox.preset(nat, name=name, **overrides)
        elif overrides:
            raise SimError("overrides only apply to a preset name; configure the NatBox directly")
        if nat.link is not None:
            raise SimError(f"NAT {nat.name!r} is already attached")
        nat.name = name
        ip = self._claim_ip(behind, public_ip or nat.ip, name)
        if subnet is None and nat.subnet is None:
            k, self._next_subnet = self._next_subnet, self._next_subnet + 1
            subnet = f"10.{k // 256 % 256}.{k % 256}.0/24"
        nat.attach(ip, subnet or str(nat.subnet), self._entropy.fork("nat:" + name))
        nat.realm = behind
        nat.link = _Link(link or LinkSpec(), self._entropy.fork("link:" + name))
        self._realms[behind][ip] = nat
        self._realms[nat] = {}
        self.nats[name] = nat
        return nat

    def host(self, name: str) -> SimHost:
        """The host called ``name``."""
        return self.hosts[name]

    def block(self, a_ip: str, b_ip: str) -> None:
        """Cut the path between two addresses, both ways (checked at every router on the way)."""
        self._blocked.add(frozenset((a_ip, b_ip)))

    def unblock(self, a_ip: str, b_ip: str) -> None:
        """Undo ``block``."""
        self._blocked.discard(frozenset((a_ip, b_ip)))

    def _check_name(self, name: str) -> None:
        if name in self.hosts or name in self.nats or name == INTERNET:
            raise SimError(f"name {name!r} already used")

    def _claim_ip(self, realm: NatBox | None, ip: str | None, who: str) -> str:
        used = self._realms[realm]
        if realm is None:
            if ip is None:
                while str(ipaddress.IPv4Address(self._next_public)) in used:
                    self._next_public += 1
                ip = str(ipaddress.IPv4Address(self._next_public))
                self._next_public += 1
        else:
            assert realm.subnet is not None
            if ip is None:
                taken = {realm.lan_ip, *used}
                ip = next((str(a) for a in realm.subnet.hosts() if str(a) not in taken), None)
                if ip is None:
                    raise SimError(f"subnet {realm.subnet} of {realm.name} is full")
            elif not realm.owns_inside(ip) or ip == realm.lan_ip:
                raise SimError(f"{who}: {ip} is not a free address in {realm.name}'s subnet {realm.subnet}")
        if ip in used:
            raise SimError(f"{who}: address {ip} already used in {realm.name if realm else INTERNET}")
        return ip

    # ---------------------------------------------------------------- running

    def pump(self, app: App | None = None) -> None:
        """Drain sends and re-read deadlines of ``app`` (all apps when None), e.g. after a harness call."""
        states = [self._apps[id(app)]] if app is not None else list(self._apps.values())
        for s in states:
            self._pump(s)

    def step(self) -> bool:
        """Process one event (after pumping all apps); False when nothing is scheduled."""
        self.pump()
        while self._queue:
            at, ev = self._queue.pop()
            if self._dispatch(at, ev):
                return True
        return False

    def run_until(self, t: float, max_events: int | None = None) -> int:
        """Process every event due at or before ``t`` and set the clock to ``t``; returns events processed."""
        if t < self.now:
            raise SimError(f"run_until({t!r}) is in the past (now={self.now!r})")
        n = self._run(t, max_events, stop_when_idle=False, what=f"run_until({t!r})")
        self.clock.advance_to(t)
        return n

    def run_for(self, dt: float, max_events: int | None = None) -> int:
        """``run_until(now + dt)``."""
        return self.run_until(self.now + dt, max_events)

    def run_until_idle(self, max_time: float = 60.0, max_events: int | None = None) -> bool:
        """Run until no datagram is in flight and no app has a timer armed, for at most ``max_time`` virtual
        seconds from now. True if it went idle (the clock stays at the last event), else False (clock at
        the cap). Apps with periodic timers never go idle: use ``run_for``."""
        cap = self.now + max_time
        self._run(cap, max_events, stop_when_idle=True, what=f"run_until_idle({max_time!r})")
        if self.idle:
            return True
        self.clock.advance_to(cap)
        return False

    @property
    def idle(self) -> bool:
        """No datagram in flight and no app timer armed."""
        return self._in_flight == 0 and self._armed == 0

    def _run(self, until: float, max_events: int | None, *, stop_when_idle: bool, what: str) -> int:
        limit = self.max_events if max_events is None else max_events
        self.pump()
        n = 0
        q = self._queue
        while q:
            if stop_when_idle and self.idle:
                break
            t = q.peek_time()
            assert t is not None
            if t > until:
                break
            at, ev = q.pop()
            if self._dispatch(at, ev):
                n += 1
                if n >= limit and q and (q.peek_time() or until) <= until and not self.idle:
                    raise SimLimitError(
                        f"{what}: processed {n} events (limit {limit}) and was still busy at "
                        f"t={self.now:.6f} ({self._in_flight} datagrams in flight, {self._armed} timers armed). "
                        "Likely a livelock (an app re-arming a deadline that is already due) or a packet storm; "
                        "raise max_events if the load is real.\n" + format_failure(self.trace, last=20)
                    )
        return n

    # ---------------------------------------------------------------- apps

    def _set_armed(self, state: _AppState, deadline: float | None) -> None:
        self._armed += (deadline is not None) - (state.armed is not None)
        state.armed = deadline
        state.gen += 1
        if deadline is not None:
            self._queue.push(max(deadline, self.now), ("timer", state, state.gen))

    def _pump(self, state: _AppState) -> None:
        for dst, local, data in state.app.datagrams_to_send():
            self._emit(state, (str(dst[0]), int(dst[1])), local, bytes(data))
        deadline = state.app.next_deadline()
        if state.live and deadline != state.armed:
            self._set_armed(state, deadline)

    def _emit(self, state: _AppState, dst: Address, local: Address | None, data: bytes) -> None:
        host = state.host
        port = state.port if local is None else int(local[1])
        if host._ports.get(port) is None:
            raise SimError(f"{host.name}: app sent from port {port}, which is not bound")
        self._pkt_id += 1
        pkt = _Pkt(self._pkt_id, (host.ip, port), dst, data)
        self.stats.sent += 1
        self._record(TraceEvent.SEND, host.name, pkt)
        if not host.is_up:
            return self._drop(host.name, pkt, DropReason.HOST_DOWN)
        self._hop(host, pkt, up=True)

    def _dispatch(self, at: float, ev: tuple[Any, ...]) -> bool:
        kind = ev[0]
        if kind == "timer":
            state, gen = ev[1], ev[2]
            if not state.live or gen != state.gen:
                return False  # superseded timer: not an event
            self.clock.advance_to(at)
            self._set_armed(state, None)
            state.app.handle_timer(self.now)
            self._pump(state)
            return True
        self._in_flight -= 1
        self.clock.advance_to(at)
        if kind == "up":
            self._route(ev[1], ev[2])
        else:
            self._arrive(ev[1], ev[2])
        return True

    # ---------------------------------------------------------------- forwarding

    def _record(self, event: TraceEvent, at: str, pkt: _Pkt, new_src: Address | None = None,
                new_dst: Address | None = None, reason: DropReason | None = None) -> None:
        if self.tracing:
            self.trace.add(TraceRecord(self.now, pkt.id, event, at, pkt.src, pkt.dst, len(pkt.data), pkt.digest,
                                       new_src, new_dst, reason))

    def _drop(self, at: str, pkt: _Pkt, reason: DropReason) -> None:
        self.stats.dropped[reason.value] += 1
        self._record(TraceEvent.DROP, at, pkt, reason=reason)

    def _hop(self, node: SimHost | NatBox, pkt: _Pkt, up: bool) -> None:
        """Send ``pkt`` over ``node``'s access link: up to its realm's router, or down to the node."""
        mtu = node.link.spec.mtu
        if mtu is not None and len(pkt.data) > mtu:
            return self._drop(node.name, pkt, DropReason.TOO_BIG)
        delay = node.link.sample()
        if delay is None:
            return self._drop(node.name, pkt, DropReason.LOSS)
        self._in_flight += 1
        self._queue.push(self.now + delay, ("up", node.realm, pkt) if up else ("down", node, pkt))

    def _route(self, realm: NatBox | None, pkt: _Pkt) -> None:
        """``pkt`` reached the router of ``realm`` (the Internet core or a NAT's inside)."""
        here = realm.name if realm is not None else INTERNET
        if frozenset((pkt.src[0], pkt.dst[0])) in self._blocked:
            return self._drop(here, pkt, DropReason.BLOCKED)
        dst_ip = pkt.dst[0]
        node = self._realms[realm].get(dst_ip)
        if node is not None:
            return self._hop(node, pkt, up=False)
        if realm is None:
            return self._drop(here, pkt, DropReason.NO_ROUTE)
        if dst_ip == realm.ip:
            return self._hairpin(realm, pkt)
        if realm.owns_inside(dst_ip):
            return self._drop(here, pkt, DropReason.NO_ROUTE)
        new_src = realm.outbound(pkt.src, pkt.dst, self.now)
        self._record(TraceEvent.NAT, here, pkt, new_src, pkt.dst)
        pkt.src = new_src
        self._hop(realm, pkt, up=True)

    def _hairpin(self, nat: NatBox, pkt: _Pkt) -> None:
        if not nat.hairpin:
            return self._drop(nat.name, pkt, DropReason.NO_HAIRPIN)
        mapped = nat.outbound(pkt.src, pkt.dst, self.now)
        internal, reason = nat.inbound(mapped, pkt.dst, self.now)
        if internal is None:
            assert reason is not None
            return self._drop(nat.name, pkt, reason)
        self._record(TraceEvent.NAT, nat.name, pkt, mapped, internal)
        pkt.src, pkt.dst = mapped, internal
        self._route(nat, pkt)

    def _arrive(self, node: SimHost | NatBox, pkt: _Pkt) -> None:
        """``pkt`` came down ``node``'s access link."""
        if node.ip != pkt.dst[0] or self._realms[node.realm].get(node.ip) is not node:
            return self._drop(node.name, pkt, DropReason.NO_ROUTE)  # the node moved meanwhile
        if isinstance(node, NatBox):
            internal, reason = node.inbound(pkt.src, pkt.dst, self.now)
            if internal is None:
                assert reason is not None
                return self._drop(node.name, pkt, reason)
            self._record(TraceEvent.NAT, node.name, pkt, pkt.src, internal)
            pkt.dst = internal
            return self._route(node, pkt)
        if not node.is_up:
            return self._drop(node.name, pkt, DropReason.HOST_DOWN)
        app = node._ports.get(pkt.dst[1])
        if app is None:
            return self._drop(node.name, pkt, DropReason.NO_LISTENER)
        self.stats.delivered += 1
        self._record(TraceEvent.DELIVER, node.name, pkt)
        app.receive_datagram(pkt.data, pkt.src, pkt.dst, self.now)
        self._pump(self._apps[id(app)])
