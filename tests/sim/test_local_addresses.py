"""Local address changes (``Mesh.local_addresses_changed``, fed by the driver's netlink monitor).

Gossip rounds are pushed far out (``gossip_interval``) so that only the hook itself can explain how fast
the other node learns: without it, nothing would tell B for minutes.
"""

from __future__ import annotations

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.sim.harness import SimMesh

QUIET = DEFAULT_CONFIG.with_(gossip_interval=3600.0)


def pair(seed: int = 3):
    sm = SimMesh(seed=seed, config=QUIET)
    a, b = sm.add_node("a"), sm.add_node("b")
    net = sm.create_network(a, "lab")
    sm.introduce(b, a, net)
    sm.run_for(2)
    assert sm.connected(a, b, net) and sm.connected(b, a, net), sm.failure(40)
    assert b.mesh.record_of(net.id, a.mesh.node_id) is not None  # from the sync sent on connecting
    return sm, a, b, net


def test_new_address_is_signed_and_pushed_to_connected_peers_at_once() -> None:
    sm, a, b, net = pair()
    own = a.mesh.record_of(net.id, a.mesh.node_id)
    extra = ("10.77.0.5", a.port)
    assert extra not in own.endpoints
    eps = [a.address, extra]
    assert a.mesh.local_addresses_changed(eps, frozenset({a.host.ip, extra[0]}), sm.now)
    assert a.mesh.local_endpoints == eps and "10.77.0.5" in a.mesh.local_ips
    mine = a.mesh.record_of(net.id, a.mesh.node_id)
    assert mine.seq > own.seq and extra in mine.endpoints
    sm.pump()
    sm.run_for(0.2)  # one link latency each way; the next gossip round is an hour away
    theirs = b.mesh.record_of(net.id, a.mesh.node_id)
    assert theirs.seq == mine.seq and extra in theirs.endpoints, sm.failure(20)
    assert extra in b.mesh.table.get(net.id, a.mesh.node_id).endpoints
    assert a.mesh.counters["gossip.own_pushed"] == 1


def test_unchanged_addresses_change_nothing() -> None:
    sm, a, b, net = pair()
    own = a.mesh.record_of(net.id, a.mesh.node_id)
    sm.pump()
    assert a.mesh.datagrams_to_send() == []
    assert not a.mesh.local_addresses_changed(list(a.mesh.local_endpoints), a.mesh.local_ips, sm.now + 0.5)
    assert a.mesh.record_of(net.id, a.mesh.node_id) is own
    assert a.mesh.datagrams_to_send() == []  # no record push, no probe
    assert a.mesh.counters["local.address_changes"] == 0


def test_roaming_host_probes_at_once_and_the_peer_follows_within_a_second() -> None:
    sm, a, b, net = pair()
    sm.run_for(30)  # idle: heartbeats every heartbeat_idle (25 s), nothing else
    peer_a = b.mesh.table.get(net.id, a.mesh.node_id)
    old = peer_a.endpoint
    new_ip = a.host.set_address()  # the host moved: the core's sockets now send from new_ip
    t0 = sm.now
    assert a.mesh.local_addresses_changed([a.address], frozenset({new_ip}), t0)
    path = a.mesh.table.get(net.id, b.mesh.node_id)
    assert path.paths[path.endpoint].last_ping == t0  # probed at once, not at the next idle heartbeat
    sm.pump()
    while peer_a.endpoint == old and sm.now - t0 < 5:
        sm.run_for(0.05)
    assert peer_a.endpoint == (new_ip, a.port) and sm.now - t0 <= 1.0, f"{peer_a.endpoint} after {sm.now - t0:.2f} s\n{sm.failure(30)}"
    rec = b.mesh.record_of(net.id, a.mesh.node_id)
    assert (new_ip, a.port) in rec.endpoints and old not in rec.endpoints  # not even as a public mapping
