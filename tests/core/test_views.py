"""The core's read model (core/views.py): immutable snapshots of peers, paths, sessions, members and the NAT
verdict, built without side effects; a peer lookup never opens a session (issue 9, item 4)."""

from __future__ import annotations

import dataclasses

import pytest

from omerta_mesh.core import views
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.keys import Identity
from omerta_mesh.sim.harness import SimMesh


def test_snapshots_are_immutable_and_carry_what_the_daemon_shows() -> None:
    sm = SimMesh(seed=91)
    a, b, c = (sm.add_node(n) for n in ("alpha", "bravo", "charlie"))
    net = sm.create_network(a, "lab")
    sm.introduce_all(net)
    sm.run_for(10)
    assert sm.all_connected(net), sm.failure()
    v = views.node_view(a.mesh, sm.now)
    assert [n.name for n in v.networks] == ["lab"] and v.node_id == a.mesh.node_id and v.name == "alpha"
    assert {p.name for p in v.peers} == {"bravo", "charlie"}  # names from the signed records
    assert {m.name for m in v.members} == {"bravo", "charlie"}  # ourselves excluded
    for p in v.peers:
        assert p.connected and p.path_kind == "direct" and p.endpoint is not None and p.relay_via is None
        cur = p.current_path
        assert cur is not None and cur.address == p.endpoint and cur.srtt is not None
        assert [s.slot for s in p.sessions][:1] == ["current"] and p.stats.bytes_out > 0
        assert p.nat is not None  # as its record states it
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.peers[0].name = "mallory"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.peers[0].paths[0].state = "up"  # type: ignore[misc]
    assert isinstance(v.peers, tuple) and isinstance(v.peers[0].paths, tuple)


def test_building_a_snapshot_and_looking_peers_up_change_nothing() -> None:
    sm = SimMesh(seed=92)
    a, b = sm.add_node("a"), sm.add_node("b")
    net = sm.create_network(a, "lab")
    sm.introduce_all(net)
    sm.run_for(5)
    assert sm.all_connected(net), sm.failure()
    a.mesh.datagrams_to_send()
    before = (a.mesh.next_deadline(), len(a.mesh.peers()), a.mesh.counters.snapshot())
    stranger = Identity.generate(SeededEntropy("stranger")).node_id
    views.node_view(a.mesh, sm.now)
    assert views.find_peer_view(a.mesh, b.mesh.node_id, sm.now) is not None
    assert views.find_peer_view(a.mesh, stranger, sm.now) is None
    with pytest.raises(UsageError):
        a.mesh.find_peer(stranger)  # without `now`: a pure lookup
    assert a.mesh.datagrams_to_send() == []
    assert (a.mesh.next_deadline(), len(a.mesh.peers()), a.mesh.counters.snapshot()) == before
