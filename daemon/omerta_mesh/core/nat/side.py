"""NatSide: what this node knows and does about its own NAT (an owned sub-machine; ``mesh.natside``).

It owns the NAT tests (``NatTests``: tests, schedule, the second socket) and the last verdict published
(NatChanged), feeds hole punching what NAT tests learn (mappings our second socket made, fresh mapping
observations answering a punch's BIND), and when the verdict changes, re-schedules the tests and has relayed
peers try to go direct again at once. The NatObserver (the evidence) is shared with Links (PONGs observe
mappings) and the Puncher.

Like every sub-machine it never holds the ``Mesh``: sends, controls, events and peers to re-arm go into the
``Outbox`` the caller passes; what it needs of this node (the verdict, our sockets) comes from ``ours``, a
function the caller passes, called only when needed. After each call the caller re-arms the NAT timer at
``deadline()``.
"""

from __future__ import annotations

from typing import Callable

from .. import events as ev
from ..config import CoreConfig
from ..counters import Counters
from ..entropy import Entropy
from ..ids import NetworkId, NodeId
from ..outbox import Outbox
from ..peers.paths import Address, PathId, ViaRelay
from ..peers.peer import Peer
from ..peers.table import PeerTable
from ..wire import frames as fw
from ..wire.records import PeerRecord
from .classify import NatObserver, Observation
from .probing import NatStep, NatTests
from .punch import OursFn, Puncher


class NatSide:
    def __init__(self, config: CoreConfig, counters: Counters, entropy: Entropy, table: PeerTable, nat: NatObserver,
                 punch: Puncher, record_of: Callable[[NetworkId, NodeId], PeerRecord | None]) -> None:
        self.table = table
        self.nat = nat
        self.punch = punch
        self.tests = NatTests(config, counters, entropy, table, nat, record_of)
        self.label = "unknown"  # the verdict last published (NatChanged)

    def deadline(self) -> float | None:
        return self.tests.next_deadline()

    def changed(self, now: float, out: Outbox, ours: OursFn) -> None:
        """New evidence: the verdict may have changed."""
        v = ours().verdict
        self.tests.schedule(v, now)
        if v.label != self.label:
            self.label = v.label
            out.event(ev.NatChanged(v.label))
            # what we now know of our NAT (a port allocation to predict, say) may open paths that failed:
            # relayed peers exchange candidates again at once rather than at their next upgrade attempt
            for peer in self.table:
                if peer.endpoint is not None and isinstance(peer.endpoint, ViaRelay) and peer.current is not None:
                    self.punch.retry_now(peer, now)
                    out.arm(peer)

    def timer(self, now: float, out: Outbox, ours: OursFn) -> None:
        if self.tests.expire(now).changed:
            self.changed(now, out, ours)
        step = self.tests.round(ours().verdict, now, out) if self.tests.round_due(now) else NatStep()
        self.step(step, now, out, ours)

    def step(self, step: NatStep, now: float, out: Outbox, ours: OursFn) -> None:
        """What a NAT test step asked for."""
        for _ in range(step.mappings):
            self.punch.note_mapping()
        if step.changed:
            self.changed(now, out, ours)
        if step.bound is not None:
            self.tests.ask_filter_tests(*step.bound, now, out)

    def hairpin_back(self, data: bytes, now: float) -> NatStep | None:
        """Our own hairpin probe coming back (checked before the session lookup): the step to take, else None."""
        return self.tests.hairpin_back(data, now)

    def on_probe(self, peer: Peer, frame: bytes, src: PathId, local: Address | None, now: float, out: Outbox,
                 ours: OursFn) -> None:
        """A NAT probe frame (BIND, BOUND, TEST) in a session with ``peer``."""
        f = fw.decode_natprobe(frame)
        if f.op is fw.NatOp.BOUND and self.punch.owns(f.nonce) and local is not None and not isinstance(src, ViaRelay) \
                and self.tests.on_probe_socket(local) and f.observed is not None:
            # hole punching's fresh mapping observation (a BIND from our second socket)
            new = self.nat.observe(Observation(local, src, f.observed, peer.node.short(), now))
            self.punch.on_bound(f.nonce, f.observed, new, now, out, ours)
            if new:
                self.changed(now, out, ours)
            return
        self.step(self.tests.on_probe(peer, f, src, local, now, out), now, out, ours)
