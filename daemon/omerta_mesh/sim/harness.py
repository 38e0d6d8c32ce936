"""SimMesh: many ``Mesh`` cores on the simulated Internet, with helpers tests and benchmarks share.

    sm = SimMesh(seed=7)
    nat = sm.add_nat("nat1", "full-cone")
    a = sm.add_node("a")                 # public host
    b = sm.add_node("b", nat=nat)        # behind the NAT
    net = sm.create_network(a, "lab")    # every node joins it
    sm.introduce_all(net)                # each node learns the others' reachable endpoints
    sm.run_for(10)
    assert sm.all_connected(net), sm.failure()

Nodes behind NATs with port-preserving, endpoint-independent mapping are reachable at (NAT public IP,
their own port), which ``SimNode.reachable`` predicts; discovery proper comes with the gossip layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..core import events as ev
from ..core.config import DEFAULT_CONFIG, CoreConfig
from ..core.entropy import SeededEntropy
from ..core.keys import Identity
from ..core.mesh import Mesh
from ..core.network import Network
from .nat import NatBox
from .network import LinkSpec, SimHost, SimInternet
from .trace import format_failure

E = TypeVar("E", bound=ev.Event)

Address = tuple[str, int]
BASE_PORT = 40000
PROBE_PORT_OFFSET = 10000  # the second socket's port: main port + this


@dataclass(eq=False)
class SimNode:
    name: str
    mesh: Mesh
    host: SimHost
    port: int
    nat: NatBox | None
    events: list[ev.Event] = field(default_factory=list)

    @property
    def address(self) -> Address:
        return self.host.address(self.port)

    @property
    def reachable(self) -> Address:
        """Where others can send to this node: its own address, or its NAT's preserved mapping."""
        if self.nat is None:
            return self.address
        assert self.nat.ip is not None, "a NAT has its address once it is on the internet"
        return (self.nat.ip, self.port)

    def drain(self) -> list[ev.Event]:
        while (e := self.mesh.next_event()) is not None:
            self.events.append(e)
        return self.events

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.drain() if isinstance(e, kind)]


class SimMesh:
    def __init__(
        self, seed: int | str = 0, *, config: CoreConfig = DEFAULT_CONFIG, strict_audit: bool = True, start: float = 1000.0,
        trace: bool = True,
    ) -> None:
        self.seed = seed
        self.config = config
        self.strict_audit = strict_audit
        self.internet = SimInternet(seed=seed if isinstance(seed, int) else sum(seed.encode()), start=start, trace=trace)
        self.entropy = SeededEntropy(f"simmesh-{seed}")
        self.nodes: dict[str, SimNode] = {}
        self._next_port = BASE_PORT

    @property
    def now(self) -> float:
        return self.internet.now

    def add_nat(self, name: str, kind: str = "port-restricted", link: LinkSpec | None = None, **overrides: Any) -> NatBox:
        return self.internet.add_nat(name, kind, link=link, **overrides)

    def add_node(
        self, name: str, nat: NatBox | None = None, link: LinkSpec | None = None, port: int | None = None,
        relay: bool = False, probe: bool = True,
    ) -> SimNode:
        ent = self.entropy.fork(name)
        cfg = self.config.with_(relay=True) if relay else self.config
        mesh = Mesh(Identity.generate(ent.fork("identity")), config=cfg, entropy=ent, strict_audit=self.strict_audit, name=name)
        host = self.internet.add_host(name, behind=nat, link=link)
        if port is None:
            port = self._next_port
            self._next_port += 1
        mesh.local_endpoints = [host.address(port)]
        mesh.local_ips = frozenset({host.ip})
        host.bind(port, mesh)
        if probe and cfg.nat_tests:  # the second socket for NAT filtering tests, as the real driver binds
            mesh.probe_local = host.bind(port + PROBE_PORT_OFFSET if port + PROBE_PORT_OFFSET < 65536 else port - PROBE_PORT_OFFSET, mesh)
        node = SimNode(name, mesh, host, port, nat)
        self.nodes[name] = node
        return node

    def create_network(self, owner: SimNode, name: str = "sim", members: list[SimNode] | None = None) -> Network:
        net = owner.mesh.create_network(name, self.now)
        for n in members if members is not None else self.nodes.values():
            n.mesh.add_network(net, self.now)
        self.pump()
        return net

    @staticmethod
    def candidates(b: SimNode) -> list[Address]:
        """What a peer record would carry: the reachable address, and the LAN address behind a NAT."""
        return [b.reachable] if b.nat is None else [b.reachable, b.address]

    def introduce(self, a: SimNode, b: SimNode, net: Network) -> None:
        a.mesh.add_peer(net.id, b.mesh.node_id, self.candidates(b), self.now)
        self.internet.pump(a.mesh)

    def introduce_all(self, net: Network, nodes: list[SimNode] | None = None) -> None:
        ns = nodes if nodes is not None else list(self.nodes.values())
        for a in ns:
            for b in ns:
                if a is not b:
                    a.mesh.add_peer(net.id, b.mesh.node_id, self.candidates(b), self.now)
        self.pump()

    def pump(self) -> None:
        for n in self.nodes.values():
            self.internet.pump(n.mesh)

    def run_for(self, dt: float) -> None:
        self.internet.run_for(dt)
        for n in self.nodes.values():
            n.drain()

    def run_until(self, t: float) -> None:
        self.run_for(max(0.0, t - self.now))

    def connected(self, a: SimNode, b: SimNode, net: Network) -> bool:
        p = a.mesh.table.get(net.id, b.mesh.node_id)
        return p is not None and p.connected and p.sendable_session(self.now) is not None

    def all_connected(self, net: Network, nodes: list[SimNode] | None = None) -> bool:
        ns = nodes if nodes is not None else list(self.nodes.values())
        return all(self.connected(a, b, net) for a in ns for b in ns if a is not b)

    def missing_pairs(self, net: Network) -> list[tuple[str, str]]:
        ns = list(self.nodes.values())
        return [(a.name, b.name) for a in ns for b in ns if a is not b and not self.connected(a, b, net)]

    def join(self, node: SimNode, via: SimNode, net: Network) -> None:
        """``node`` joins ``net`` with an invite from ``via`` (carrying ``via``'s reachable address)."""
        invite = via.mesh.invite(net.id, [via.reachable], self.now)  # (an owned network's token is signed now)
        node.mesh.join(invite, self.now)
        self.internet.pump(node.mesh)

    def path_kind(self, a: SimNode, b: SimNode, net: Network) -> str:
        p = a.mesh.table.get(net.id, b.mesh.node_id)
        return a.mesh.path_kind(p) if p is not None else "none"

    def send(self, a: SimNode, b: SimNode, channel: str, data: bytes) -> int:
        mid = a.mesh.send(b.mesh.node_id, channel, data, self.now)
        self.internet.pump(a.mesh)
        return mid

    def failure(self, last: int = 200) -> str:
        return format_failure(self.internet.trace, last=last)

    def trace_digest(self) -> str:
        if not self.internet.tracing:  # two untraced runs would compare equal, whatever they did
            raise ValueError("this SimMesh was made with trace=False: it has no packet trace to digest")
        return self.internet.trace.digest()

    def total_drops(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes.values():
            for k, v in n.mesh.counters.snapshot().items():
                if k.startswith("drop."):
                    out[k] = out.get(k, 0) + v
        return out
