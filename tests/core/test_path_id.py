"""The tagged path identifier: a relay path is a ``ViaRelay``, never an address, and the daemon's JSON for it
is spelt exactly as the old relay pseudo-address ``("relay:<id>", 0)`` was ("[relay:<id>]:0")."""

import dataclasses

import pytest

from omerta_mesh.core import events as ev
from omerta_mesh.core.ids import NETWORK_ID_LEN, NetworkId, NodeId
from omerta_mesh.core.nat.classify import Allocation, Filtering, Mapping, NatVerdict, verdict_from_record
from omerta_mesh.core.peers.paths import PathKind, ViaRelay, path_key
from omerta_mesh.meshd.events import core_event_json
from omerta_mesh.meshd.views import ep

RELAY = NodeId(bytes(range(32)))


def test_via_relay_is_frozen_hashable_and_no_address() -> None:
    a, b = ViaRelay(RELAY.text()), ViaRelay(RELAY.text())
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != ("relay:" + RELAY.text(), 0) and not isinstance(a, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.node = "x"  # type: ignore[misc]
    assert not hasattr(a, "__dict__")  # slotted


def test_paths_of_both_kinds_sort_as_before() -> None:
    paths = [ViaRelay("zz"), ("203.0.113.7", 2), ViaRelay("aa"), ("10.0.0.1", 9), ("fd00::1", 1)]
    assert sorted(paths, key=path_key) == [("10.0.0.1", 9), ("203.0.113.7", 2), ("fd00::1", 1), ViaRelay("aa"), ViaRelay("zz")]


def test_relay_path_json_is_unchanged() -> None:
    via = ViaRelay(RELAY.text())
    assert ep(via) == f"[relay:{RELAY.text()}]:0"
    assert ep(("203.0.113.7", 41641)) == "203.0.113.7:41641" and ep(("fd00::1", 5)) == "[fd00::1]:5"
    e = ev.PathChanged(NetworkId(bytes(NETWORK_ID_LEN)), NodeId(bytes(32)), ("198.51.100.2", 7), via, PathKind.RELAY, "r")
    kind, out = core_event_json(e, lambda _n: "dave")
    assert kind == "peer.path_changed"
    assert (out["old"], out["new"], out["kind"]) == ("198.51.100.2:7", f"[relay:{RELAY.text()}]:0", "relay")


def test_allocation_is_a_str_enum() -> None:
    v = NatVerdict(Mapping.APDM, Filtering.APDF, Allocation.SEQUENTIAL, 1, (), 1.0)
    assert v.label == "symmetric-sequential" and v.to_dict()["allocation"] == "sequential"
    assert type(v.to_dict()["allocation"]) is str
    assert verdict_from_record(Mapping.APDM, Filtering.APDF, 0).allocation is Allocation.UNKNOWN
    assert Allocation.RANDOM == "random"


def test_a_full_path_table_of_relay_paths_evicts_without_comparing_them() -> None:
    """Seen in the netns matrix: a full path table whose stalest paths tie on time compared two ViaRelay
    (TypeError inside the receive path, counted as drop.internal_error)."""
    from omerta_mesh.sim.harness import SimMesh

    sm = SimMesh(seed=5)
    a, b = sm.add_node("a"), sm.add_node("b")
    net = sm.create_network(a, "lab")
    sm.introduce_all(net)
    sm.run_for(5)
    peer = a.mesh.table.get(net.id, b.mesh.node_id)
    assert peer is not None
    links = a.mesh.links
    for i in range(a.mesh.cfg.max_paths_per_peer):
        links.path(peer, ViaRelay(f"r{i:02d}"), 0.0)  # all equally stale: the tie-break decides
    links.path(peer, ViaRelay("new"), sm.now)
    assert ViaRelay("new") in peer.paths and len(peer.paths) <= a.mesh.cfg.max_paths_per_peer
