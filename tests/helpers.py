"""Test helpers: two Mesh cores joined by an in-memory wire, driven on a virtual clock (aioquic style); and waiting in
async tests on real nodes (``eventually``)."""

from __future__ import annotations

import asyncio
from typing import Callable

from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.counters import Counters
from omerta_mesh.core.entropy import Entropy, SeededEntropy
from omerta_mesh.core.events import Event
from omerta_mesh.core.ids import NodeId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.mesh import Mesh
from omerta_mesh.core.network import Network
from omerta_mesh.core.peers.table import PeerTable
from omerta_mesh.core.session.handshakes import Handshakes
from omerta_mesh.core.wire.certs import Certificate, Role, sign_certificate

A_ADDR = ("192.0.2.1", 4000)
B_ADDR = ("192.0.2.2", 5000)


def make_mesh(seed: str, **kw) -> Mesh:
    ent = SeededEntropy(seed)
    kw.setdefault("strict_audit", True)
    return Mesh(Identity.generate(ent.fork("id")), entropy=ent, **kw)


class Pair:
    """Meshes A and B on a perfect wire. ``drop`` decides which datagrams are lost (for loss tests)."""

    def __init__(self, seed: str = "pair", **kw) -> None:
        self.now = 1000.0
        self.a = make_mesh(seed + "-a", **kw)
        self.b = make_mesh(seed + "-b", **kw)
        self.addr = {id(self.a): A_ADDR, id(self.b): B_ADDR}
        self.events: dict[int, list[Event]] = {id(self.a): [], id(self.b): []}
        self.drop = lambda src_mesh, data: False
        self.wire: list[tuple[Mesh, Mesh, bytes]] = []
        self.sent = 0

    def connect(self) -> None:
        net = self.a.create_network("test", self.now)
        invite = self.a.invite(net.id, [A_ADDR])
        self.net = self.b.join(invite, self.now)
        self.run()

    def other(self, m: Mesh) -> Mesh:
        return self.b if m is self.a else self.a

    def transfer(self) -> int:
        n = 0
        for m in (self.a, self.b):
            for dst, _local, data in m.datagrams_to_send():
                self.sent += 1
                o = self.other(m)
                if dst != self.addr[id(o)] or self.drop(m, data):
                    continue
                self.wire.append((m, o, data))
        wire, self.wire = self.wire, []
        for src_m, dst_m, data in wire:
            dst_m.receive_datagram(data, self.addr[id(src_m)], None, self.now)
            n += 1
        for m in (self.a, self.b):
            while (e := m.next_event()) is not None:
                self.events[id(m)].append(e)
        return n

    def run(self, rounds: int = 1000) -> None:
        """Exchange until the wire is quiet (no timers advanced)."""
        for _ in range(rounds):
            if not self.transfer() and not self.wire:
                # drain anything produced by receive handling
                if not any(len(m.tx) for m in (self.a, self.b)):
                    return
        raise AssertionError("wire never went quiet")

    def advance(self, until: float) -> None:
        """Fire timers in order up to ``until``, exchanging datagrams after each."""
        while True:
            self.run()
            dl = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
            if not dl or min(dl) > until:
                break
            self.now = max(self.now, min(dl))
            for m in (self.a, self.b):
                d = m.next_deadline()
                if d is not None and d <= self.now:
                    m.handle_timer(self.now)
        self.now = until
        self.run()

    def of(self, m: Mesh, kind: type) -> list:
        return [e for e in self.events[id(m)] if isinstance(e, kind)]


def fresh_initiation(net: Network, target: NodeId, entropy: str | Entropy, now: float) -> tuple[NodeId, bytes]:
    """A valid initiation to ``target`` in ``net`` from a freshly made identity: what anyone holding the
    network key (every invite has it) can send, built by the core's own handshake code. ``entropy``: a seed
    (deterministic, for the core's tests) or an Entropy (a flood's SystemEntropy); ``now`` also stamps it."""
    ent = SeededEntropy(entropy) if isinstance(entropy, str) else entropy
    ident = Identity.generate(ent)
    hs = Handshakes(ident, CoreConfig(), ent, Counters(), PeerTable(ent, 4), 1)
    x = hs.x25519_of(target.raw)
    assert x is not None
    return ident.node_id, hs.initiate(hs.admit(net, target, x), now, now)


async def eventually(cond: Callable[[], object], timeout: float = 5.0, what: str = "the condition") -> None:
    """Return once ``cond()`` is true (checked every 10 ms); AssertionError naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() >= end:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.01)


def signed_cert(net: Network, subject: NodeId, issuer: Identity, role: Role, not_before: float, not_after: float,
                name: str = "", serial: int = 1) -> Certificate:
    """A certificate of ``role`` in ``net`` for ``subject``, signed by ``issuer`` (wall-clock seconds; tests of owned
    networks)."""
    return sign_certificate(issuer, Certificate(role, net.id, subject, issuer.node_id, serial, int(not_before), int(not_after), name))
