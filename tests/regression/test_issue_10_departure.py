"""Regression (issue 10, fault 8): members that left stayed listed 45 s later as "not connected".

``network leave`` now signs a departure record (flag ``left``, a higher sequence number) and sends it to every
connected member; it spreads by gossip. Members drop the node at once (``PeerDisconnected`` and ``PeerLeft``,
gone from ``peers()`` and ``records()``), stale gossip of its older records cannot bring it back, and a later
re-join (a newer record) is accepted as usual.
"""

from __future__ import annotations

from omerta_mesh.core import events as ev
from omerta_mesh.core.wire import control as cw
from omerta_mesh.sim.harness import SimMesh


def three():
    sm = SimMesh(seed=8)
    a, b, c = (sm.add_node(n) for n in ("a", "b", "c"))
    net = sm.create_network(a, "lab")
    sm.introduce_all(net)
    sm.run_for(5)
    assert sm.all_connected(net), sm.failure()
    for x in (a, b):
        assert x.mesh.record_of(net.id, c.mesh.node_id) is not None
    return sm, a, b, c, net


def listed(x, c, net) -> bool:
    node = c.mesh.node_id
    return any(p.node == node for p in x.mesh.peers(net.id)) or any(r.node == node for r in x.mesh.records(net.id))


def test_a_member_that_leaves_is_dropped_at_once_and_stale_gossip_cannot_bring_it_back() -> None:
    sm, a, b, c, net = three()
    stale = a.mesh.record_of(net.id, c.mesh.node_id)
    for x in (a, b):
        x.events.clear()
    c.mesh.leave(net.id, sm.now)
    sm.pump()
    sm.run_for(0.3)  # one link latency each way: no gossip round, no session expiry can explain it
    for x in (a, b):
        assert not listed(x, c, net), (x.name, sm.failure(30))
        assert x.mesh.table.get(net.id, c.mesh.node_id) is None
        gone = [e for e in x.of(ev.PeerDisconnected) if e.peer == c.mesh.node_id]
        assert gone and gone[0].reason == "left the network"
        assert [e.peer for e in x.of(ev.PeerLeft)] == [c.mesh.node_id]
    # stale gossip: b re-sends c's old record to a, and rounds run for a while; c stays gone
    b_to_a = b.mesh.table.get(net.id, a.mesh.node_id)
    before = a.mesh.counters["drop.record_stale"]
    b.mesh._send_control(b_to_a, "gossip.records", cw.encode_record_list([stale.raw]), sm.now)
    sm.pump()
    sm.run_for(10)
    assert a.mesh.counters["drop.record_stale"] > before
    for x in (a, b):
        assert not listed(x, c, net), x.name


def test_a_member_that_left_can_join_again_with_a_newer_record() -> None:
    sm, a, b, c, net = three()
    c.mesh.leave(net.id, sm.now)
    sm.pump()
    sm.run_for(2)
    assert not listed(a, c, net)
    c.mesh.add_network(net, sm.now)
    sm.introduce(c, a, net)
    sm.run_for(5)
    assert sm.connected(a, c, net) and sm.connected(c, a, net), sm.failure(40)
    assert sm.connected(b, c, net), sm.failure(40)  # b learnt c's new record by gossip
    assert a.mesh.record_of(net.id, c.mesh.node_id) is not None
