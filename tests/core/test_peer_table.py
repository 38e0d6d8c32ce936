"""The peer table's bounds and eviction order (core/peers/table.py), on Mesh cores with a virtual clock.

A fresh identity that completes a handshake and sends nothing else is *unproven*: at most
``max_unproven_peers`` of them are kept (the oldest evicted first); a full network evicts an unproven peer
first, then a proven one without a live session, never a proven one with a live session.
"""

from __future__ import annotations

import pytest

from helpers import Pair, fresh_initiation
from omerta_mesh.core import events as ev
from omerta_mesh.core.channels import ReassemblyBudget
from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.ids import NodeId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.mesh import Mesh
from omerta_mesh.core.network import Network
from omerta_mesh.core.outbox import Outbox
from omerta_mesh.core.peers.peer import Peer, PeerState
from omerta_mesh.core.peers.table import PeerTable

FAKE_ADDR = ("203.0.113.9", 6000)


def flood(p: Pair, target: Mesh, n: int, tag: str = "fake") -> list[NodeId]:
    ids = []
    for i in range(n):
        p.now += 0.05  # 20 a second: never under load
        nid, data = fresh_initiation(p.net, target.node_id, f"{tag}-{i}", p.now)
        target.receive_datagram(data, FAKE_ADDR, None, p.now)
        target.datagrams_to_send()  # the responses go to the attacker, who never answers
        ids.append(nid)
    p.run()
    return ids


def connected(**cfg: object) -> Pair:
    p = Pair("table", config=CoreConfig(**cfg))  # type: ignore[arg-type]
    p.connect()
    p.advance(p.now + 3)  # heartbeats both ways: each side has had transport frames from the other
    return p


def test_a_handshake_alone_proves_nothing_the_first_transport_frame_does() -> None:
    p = Pair("proof")
    p.connect()
    a_at_b = p.b.find_peer(p.a.node_id)
    b_at_a = p.a.find_peer(p.b.node_id)
    assert b_at_a.proven  # B joined by A's invite: B asked for A ...
    assert a_at_b.proven  # ... and B's initiation to A was answered, then its KEEPALIVE decrypted at A
    fake, data = fresh_initiation(p.net, p.a.node_id, "lone", p.now)
    p.a.receive_datagram(data, FAKE_ADDR, None, p.now)
    peer = p.a.find_peer(fake)
    assert peer.current is not None or peer.next is not None  # a session: it completed a handshake
    assert not peer.proven and p.a.table.unproven_count() == 1


def test_at_most_max_unproven_fresh_identities_are_kept_the_oldest_evicted_first() -> None:
    p = connected(max_unproven_peers=8)
    ids = flood(p, p.a, 30)
    fakes = [q for q in p.a.peers() if q.node != p.b.node_id]
    assert sorted(q.node.raw for q in fakes) == sorted(n.raw for n in ids[-8:])  # the newest 8
    assert p.a.table.unproven_count() == 8
    assert p.a.counters["peers.evicted_unproven"] == 22
    b = p.a.find_peer(p.b.node_id)
    assert b.connected and b.proven  # the real member is untouched
    gone = [e for e in p.of(p.a, ev.PeerDisconnected) if e.reason.startswith("evicted")]
    assert {e.peer.raw for e in gone} <= {n.raw for n in ids[:22]}
    # evicted peers are dropped for good: no timer of theirs is left, their indexes are free
    p.advance(p.now + 60)
    assert len(p.a.peers()) <= 9
    assert p.a.table.index_count() <= 3 * 9
    p.a.send(p.b.node_id, "chat", b"still here", p.now)
    p.advance(p.now + 1)
    assert [e.data for e in p.of(p.b, ev.ChannelMessage)] == [b"still here"]


def test_a_full_network_evicts_unproven_then_idle_never_a_live_proven_peer() -> None:
    p = connected(max_peers_per_network=3, max_unproven_peers=100)
    a = p.a
    first = flood(p, a, 2, "first")  # B (proven, live) and two unproven: full
    assert len(a.peers()) == 3
    flood(p, a, 1, "second")  # evicts the oldest unproven
    assert len(a.peers()) == 3
    assert a.table.get(p.net.id, first[0]) is None and a.table.get(p.net.id, first[1]) is not None
    assert a.counters["peers.evicted_unproven"] == 1
    # now every peer is proven with a live session: a newcomer is refused, nobody evicted
    for q in a.peers():
        a.table.prove(q)
    flood(p, a, 1, "third")
    assert len(a.peers()) == 3 and a.find_peer(p.b.node_id).connected
    assert a.counters["drop.unknown_peer"] == 1
    # a proven peer without a live session goes before any live one
    idle = next(q for q in a.peers() if q.node != p.b.node_id)
    a.sessions.close(idle, "test: its sessions ended", p.now, Outbox())
    flood(p, a, 1, "fourth")
    assert a.table.get(p.net.id, idle.node) is None and idle.state is PeerState.REMOVED
    assert a.counters["peers.evicted_idle"] == 1
    assert a.find_peer(p.b.node_id).connected


def test_a_user_added_peer_is_proven_and_a_full_network_refuses_the_user_clearly() -> None:
    p = connected(max_peers_per_network=2, max_unproven_peers=100)
    a = p.a
    for q in a.peers():
        a.table.prove(q)
    other = Identity.generate(SeededEntropy("other")).node_id
    a.add_peer(p.net.id, other, [("198.51.100.7", 1)], p.now)  # room: B and this one
    assert a.find_peer(other).proven
    a.table.prove(a.find_peer(other))
    a.find_peer(other).current = a.find_peer(p.b.node_id).current  # (as if live)
    third = Identity.generate(SeededEntropy("third")).node_id
    with pytest.raises(UsageError, match="peers with live sessions"):
        a.add_peer(p.net.id, third, [("198.51.100.8", 1)], p.now)


def test_the_table_alone_bounds_the_pool_and_refuses_what_it_cannot_place() -> None:
    ent = SeededEntropy("t")
    net = Network.create(ent, "n")
    t = PeerTable(ent, 4, 2)

    def peer(i: int, proven: bool = False) -> Peer:
        ident = Identity.generate(SeededEntropy(f"p{i}"))
        return Peer(net, ident.node_id, ident.x25519_public, CoreConfig(), ReassemblyBudget(1 << 20, 1 << 20), proven=proven)

    ps = [t.add(peer(i)) for i in range(5)]
    assert [q for q in t] == ps[3:] and t.unproven_count() == 2
    assert t.take_evicted() == ps[:3] and t.take_evicted() == []
    t.prove(ps[3])
    assert t.unproven_count() == 1
    proven = [t.add(peer(10 + i, proven=True)) for i in range(2)]  # 4 in the network: full
    assert t.unproven_count() == 1 and len(list(t)) == 4
    t.add(peer(20, proven=True))  # full: the unproven one goes first
    assert ps[4] not in list(t) and t.take_evicted() == [ps[4]]
    for q in t:  # every one proven with a live session now: nothing may go
        q.current = object()  # type: ignore[assignment]
    with pytest.raises(UsageError):
        t.add(peer(21))
    assert all(q in list(t) for q in proven)
