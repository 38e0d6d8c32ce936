"""Removal between real MeshNodes on loopback (docs/membership.md 5): the owner removes a member; the other member
hears it at once and both keep it in members/<id>.json, so after a restart the removed node, still holding a
certificate that has not expired, is refused from the first handshake and not added back from the peer cache."""

from __future__ import annotations

import json

import pytest

from helpers import eventually
from omerta_mesh.core.errors import DropReason, UsageError
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.node import MeshNode


async def test_a_removal_is_kept_across_a_restart_and_the_removed_node_stays_out(tmp_path) -> None:
    owner = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "owner")).start()
    a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()
    b = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "b")).start()
    try:
        net = owner.create_network("home", owned=True)
        await a.join(owner.invite(net.id, opts=InviteOptions(uses=1)), timeout=5)
        await b.join(owner.invite(net.id, opts=InviteOptions(uses=1)), timeout=5)
        await eventually(lambda: a.mesh.record_of(net.id, b.node_id) is not None, 10)  # (gossip)
        await a.connect(b.node_id, net.id, timeout=5)
        with pytest.raises(UsageError, match="only the owner or an admin"):
            a.remove_member(net.id, b.node_id)
        owner.remove_member(net.id, b.node_id)
        await eventually(lambda: len(a.mesh.members.revocations(net.id)) == 2 and not a.is_connected(b.node_id))
        for n, name in ((owner, "owner"), (a, "a")):  # b's node, and the one-time invite that enrolled it
            doc = json.loads((tmp_path / name / "members" / f"{net.id.text()}.json").read_text())
            assert len(doc["revocations"]) == 2, name
            assert n.mesh.table.get(net.id, b.node_id) is None
        saved = a.mesh.members.revocations(net.id)
        a.save_peers()
        port = a.port
        await a.close()
        a = await MeshNode(host="127.0.0.1", port=port, state_dir=str(tmp_path / "a")).start()
        assert a.mesh.members.revocations(net.id) == saved  # before any session: from members/<id>.json
        assert a.mesh.table.get(net.id, b.node_id) is None  # not back from the peer cache
        before = a.mesh.counters.dropped(DropReason.CERT_REVOKED)
        b.add_peer(net.id, a.node_id, [("127.0.0.1", port)])  # b tries with its certificate, not expired
        await eventually(lambda: a.mesh.counters.dropped(DropReason.CERT_REVOKED) > before)
        assert not a.is_connected(b.node_id) and a.mesh.table.get(net.id, b.node_id) is None
        await a.connect(owner.node_id, net.id, timeout=5)  # the others still talk
    finally:
        for n in (b, a, owner):
            await n.close()
