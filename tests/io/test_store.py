"""Persistent state: atomic writes with 0600 secrets, damage reported with a fix, restart keeps identity,
networks and the peer cache."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.network import Network
from omerta_mesh.io.store import StateError, StateNotSaved, StateStore, atomic_write
from omerta_mesh.node import MeshNode


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_identity_created_once_with_0600_in_a_0700_dir(tmp_path) -> None:
    d = tmp_path / "state"
    s = StateStore(d)
    a = s.load_identity(SeededEntropy(1))
    assert mode(d) == 0o700 and mode(s.identity_path) == 0o600
    assert StateStore(d).load_identity(SeededEntropy(2)) == a  # loaded, not regenerated


def test_networks_round_trip_and_are_secret(tmp_path) -> None:
    s = StateStore(tmp_path)
    nets = [Network.create(SeededEntropy(i), f"net{i}") for i in range(3)]
    s.save_networks(nets)
    assert mode(s.networks_path) == 0o600
    assert [(n.key, n.name) for n in s.load_networks()] == [(n.key, n.name) for n in nets]


def test_crash_between_write_and_rename_keeps_previous_state(tmp_path, monkeypatch) -> None:
    s = StateStore(tmp_path)
    old = [Network.create(SeededEntropy(1), "old")]
    s.save_networks(old)
    before = s.networks_path.read_bytes()

    def crash(src, dst):
        raise OSError("power lost")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StateNotSaved, match="networks.json: power lost"):  # the old file stays, the temporary one goes
        s.save_networks([Network.create(SeededEntropy(2), "new")])
    monkeypatch.undo()
    assert s.networks_path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert [n.name for n in s.load_networks()] == ["old"]


def test_damaged_files_name_the_file_and_the_fix(tmp_path) -> None:
    s = StateStore(tmp_path)
    atomic_write(s.networks_path, b"{not json")
    with pytest.raises(StateError, match="networks.json is damaged.*move it aside"):
        s.load_networks()
    atomic_write(s.identity_path, b"garbage")
    with pytest.raises(StateError, match="identity file .* is damaged"):
        s.load_identity()
    atomic_write(s.peers_path, b"\xff\xfe")
    assert s.load_peers()["peers"] == []  # a cache: damage costs only a reconnect


async def test_restart_keeps_identity_networks_and_reconnects_from_peer_cache(tmp_path) -> None:
    da, db = tmp_path / "a", tmp_path / "b"
    a = await MeshNode(host="127.0.0.1", state_dir=str(da), strict_audit=True).start()
    b = await MeshNode(host="127.0.0.1", state_dir=str(db), strict_audit=True).start()
    port_a = a.port
    net = a.create_network("home")
    await b.join(a.invite(net.id))
    a_id, b_id = a.node_id, b.node_id
    await b.close()
    await a.close()
    # restart both (a on the same port, as a daemon would); b has no invite this time
    a2 = await MeshNode(host="127.0.0.1", port=port_a, state_dir=str(da), strict_audit=True).start()
    b2 = await MeshNode(host="127.0.0.1", state_dir=str(db), strict_audit=True).start()
    try:
        assert a2.node_id == a_id and b2.node_id == b_id
        assert set(b2.mesh.networks) == {net.id.raw}
        await b2.wait_connected(a_id, 5)
        q = a2.subscribe("again")
        await b2.send(a_id, "again", b"reconnected from the peer cache")
        assert (await asyncio.wait_for(q.get(), 5)).data == b"reconnected from the peer cache"
    finally:
        await b2.close()
        await a2.close()


async def test_a_peer_cache_with_relay_pseudo_addresses_restores_only_real_ones(tmp_path) -> None:
    """Caches written before relay paths had a type of their own hold ["relay:<id>", 0] as an endpoint; a
    restart must skip it (and any non-address) and reconnect through the real one."""
    da, db = tmp_path / "a", tmp_path / "b"
    a = await MeshNode(host="127.0.0.1", state_dir=str(da), strict_audit=True).start()
    b = await MeshNode(host="127.0.0.1", state_dir=str(db), strict_audit=True).start()
    net = a.create_network("home")
    await b.join(a.invite(net.id))
    await b.close()
    cache = json.loads((db / "peers.json").read_text())
    for p in cache["peers"]:
        p["endpoints"] = [[f"relay:{p['node']}", 0], ["not-a-host", 5], *p["endpoints"]]
    (db / "peers.json").write_text(json.dumps(cache))
    b2 = await MeshNode(host="127.0.0.1", state_dir=str(db), strict_audit=True).start()
    try:
        peer = b2.mesh.table.get(net.id, a.node_id)
        assert peer is not None and all(h[0].replace(".", "").isdigit() for h in peer.endpoints), peer.endpoints
        await b2.wait_connected(a.node_id, 5)
        assert b2.mesh.counters["drop.internal_error"] == 0
    finally:
        await b2.close()
        await a.close()
