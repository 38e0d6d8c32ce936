"""Several networks in one node: isolation by network key, per-network peers, leave."""

from __future__ import annotations

import pytest

from helpers import make_mesh
from omerta_mesh.core import events as ev
from omerta_mesh.core.errors import UsageError

ADDR = {"hub": ("192.0.2.10", 1), "x": ("192.0.2.11", 2), "y": ("192.0.2.12", 3)}


def run(meshes: dict, now: float, rounds: int = 50) -> None:
    by_addr = {ADDR[k]: m for k, m in meshes.items()}
    src_of = {id(m): ADDR[k] for k, m in meshes.items()}
    for _ in range(rounds):
        moved = False
        for m in list(meshes.values()):
            for dst, _l, data in m.datagrams_to_send():
                if dst in by_addr:
                    by_addr[dst].receive_datagram(data, src_of[id(m)], None, now)
                    moved = True
        if not moved:
            return


def test_two_networks_are_isolated_and_leave_is_per_network() -> None:
    hub, x, y = make_mesh("hub"), make_mesh("x"), make_mesh("y")
    meshes = {"hub": hub, "x": x, "y": y}
    now = 10.0
    n1 = hub.create_network("one", now)
    n2 = hub.create_network("two", now)
    x.join(hub.invite(n1.id, [ADDR["hub"]]), now)
    y.join(hub.invite(n2.id, [ADDR["hub"]]), now)
    run(meshes, now)
    assert {p.node for p in hub.peers(n1.id)} == {x.node_id}
    assert {p.node for p in hub.peers(n2.id)} == {y.node_id}
    # x is not in network two: it cannot reach y, even knowing y's id and address
    with pytest.raises(UsageError):
        x.add_peer(n2.id, y.node_id, [ADDR["y"]], now)
    x.add_peer(n1.id, y.node_id, [ADDR["y"]], now)  # y is not in network one: its mac1 check refuses
    run(meshes, now)
    assert y.counters["drop.bad_mac1"] >= 1 and y.counters["handshake.dh_performed"] == 0
    assert not x.find_peer(y.node_id).connected
    # messages name their network
    hub.send(y.node_id, "c", b"to y on two", now)
    run(meshes, now + 0.1)
    msgs = [e for e in iter(y.next_event, None) if isinstance(e, ev.ChannelMessage)]
    assert [(m.network, m.data) for m in msgs] == [(n2.id, b"to y on two")]
    # leaving network one drops x but keeps y
    hub.leave(n1.id, now + 1)
    run(meshes, now + 1)
    assert hub.peers(n1.id) == [] and [p.node for p in hub.peers(n2.id)] == [y.node_id]
    assert any(isinstance(e, ev.PeerDisconnected) for e in iter(x.next_event, None))
    with pytest.raises(UsageError, match="not a member"):
        hub.invite(n1.id, [ADDR["hub"]])
