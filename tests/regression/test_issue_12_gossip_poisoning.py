"""Regression (issue 12, fault 4): gossip store poisoning.

Records carried a sender-chosen expiry that was never clamped (2^32-1 accepted), and a full store refused
every new node's record: 6,000 fake signed records from one member filled every store, and a member that
joined later was unreachable (PEER_NOT_FOUND). Now an expiry beyond the record lifetime (plus clock skew) is
refused, one member may bring only so many new nodes' records per round, and a full store makes room by
evicting the least fresh record of a node we hold no session with (a record of a node we hold one with is
never refused for room, nor evicted).
"""

from __future__ import annotations

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.discovery.store import PeerRecordStore
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire import control as cw
from omerta_mesh.core.wire.records import PeerRecord, sign_record
from omerta_mesh.sim.harness import SimMesh

NET = NetworkId(b"P" * 10)


def _rec(tag: str, expires: int, net: NetworkId = NET) -> PeerRecord:
    ident = Identity.generate(SeededEntropy(tag))
    return sign_record(ident, net, PeerRecord(ident.node_id, 1, expires, (("198.51.100.9", 4000),)))


def test_an_expiry_beyond_the_lifetime_is_refused() -> None:
    store = PeerRecordStore(10, max_lifetime=4200)
    far = store.offer(_rec("far", 2**32 - 1), 1000)
    assert not far.accepted and far.reason is DropReason.RECORD_EXPIRY
    assert store.offer(_rec("ok", 1000 + 3600), 1000).accepted


def test_a_full_store_evicts_the_least_fresh_stranger_and_never_refuses_a_session_peer() -> None:
    store = PeerRecordStore(3)
    old, mid, kept = _rec("old", 5000), _rec("mid", 6000), _rec("kept", 4000)
    for r in (old, mid, kept):
        assert store.offer(r, 0).accepted
    keep = {kept.node.raw}
    assert store.offer(_rec("stale-newcomer", 4500), 0, keep).reason is DropReason.GOSSIP_LIMIT  # not fresher
    fresh = _rec("fresh", 7000)
    assert store.offer(fresh, 0, keep).accepted and store.get(old.node) is None  # the least fresh stranger went
    assert store.get(kept.node) is not None  # (the kept one was the least fresh of all, and stayed)
    session_peer = _rec("session-peer", 4100)
    assert store.offer(session_peer, 0, keep | {session_peer.node.raw}).accepted


def test_a_member_flooding_fake_records_cannot_hide_a_later_joiner() -> None:
    cfg = DEFAULT_CONFIG.with_(max_peers_per_network=40, gossip_new_per_origin=8, neighbours=2)
    sm = SimMesh(seed=12, config=cfg)
    alice, mallory, bob = sm.add_node("alice"), sm.add_node("mallory"), sm.add_node("bob")
    net = alice.mesh.create_network("lab", sm.now)
    sm.join(mallory, alice, net)
    sm.join(bob, alice, net)
    sm.run_for(10)
    wall = sm.now + mallory.mesh.wall_offset
    at_alice = mallory.mesh.find_peer(alice.mesh.node_id, net.id)
    for batch in range(10):  # 200 fake members, signed now (as fresh as any real record), 20 per push
        blobs = [_rec(f"fake-{batch}-{i}", int(wall + 3000), net.id).raw for i in range(20)]
        mallory.mesh._send_control(at_alice, "gossip.records", cw.encode_record_list(blobs), sm.now)
        sm.run_for(1.0)
    assert alice.mesh.counters["drop.gossip_limit"] > 0  # the flood was cut per round
    carol = sm.add_node("carol")
    sm.join(carol, bob, net)
    sm.run_for(15)
    assert alice.mesh.record_of(net.id, carol.mesh.node_id) is not None, "alice never learnt the later joiner"
    sm.send(alice, carol, "m", b"hello")
    sm.run_for(5)
    assert any(getattr(e, "data", None) == b"hello" for e in carol.events)
