"""Gossip signs our address claim (a fact handed in) into our record, and re-signs when it changes."""

from __future__ import annotations

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.counters import Counters
from omerta_mesh.core.discovery.gossip import Gossip, OwnFacts
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.network import Network
from omerta_mesh.core.peers.table import PeerTable
from omerta_mesh.core.wire.records import AddrClaim, decode_record


def test_own_record_carries_the_claim_and_is_resigned_when_it_changes() -> None:
    ent = SeededEntropy("gossip-claims")
    ident = Identity.generate(ent)
    g = Gossip(ident, DEFAULT_CONFIG, Counters(), ent, PeerTable(ent, 100), 0.0, "n")
    net = Network.create(ent, "home")
    first = AddrClaim(bytes([100, 70, 1, 2]), bytes(range(16)))
    facts = OwnFacts((("192.0.2.1", 5),), False, 0, 0, 0, False, {net.id.raw: first})
    g.add_network(net, facts, 0.0)
    own = g.own(net.id)
    assert own is not None and own.addrs == first
    assert decode_record(own.raw, net.id).addrs == first
    assert not g.refresh_own(net, facts, 1.0)  # nothing changed
    moved = AddrClaim(bytes([100, 70, 1, 3]), bytes(range(16)))
    assert g.refresh_own(net, OwnFacts(facts.endpoints, False, 0, 0, 0, False, {net.id.raw: moved}), 2.0)
    again = g.own(net.id)
    assert again is not None and again.addrs == moved and again.seq > own.seq
    # no claim handed in: a record without one (what an old node signs)
    assert g.refresh_own(net, OwnFacts(facts.endpoints, False, 0, 0, 0, False), 3.0)
    assert g.own(net.id).addrs is None  # type: ignore[union-attr]
