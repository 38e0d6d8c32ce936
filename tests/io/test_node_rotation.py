"""Key rotation between real MeshNodes on loopback (docs/membership.md 6): the owner removes a member and rotates the
network key; the other member takes it at once and both save it in networks.json (new key and epoch, the id kept, the
owner's rotation, the old key with the end of its grace), so after a restart they talk under the new key, while a
member that was down during the rotation gets in under the old key and learns the new one; the removed node's
handshakes under the old key are refused."""

from __future__ import annotations

import base64
import json

from helpers import eventually
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.node import MeshNode


def _entry(state_dir, network_id) -> dict:  # type: ignore[no-untyped-def]
    doc = json.loads((state_dir / "networks.json").read_text())
    return next(n for n in doc["networks"] if n["id"] == network_id.text())


async def test_a_rotated_key_is_saved_and_survives_restarts_of_every_member(tmp_path) -> None:
    owner = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "owner")).start()
    a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()
    b = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "b")).start()
    c = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "c")).start()
    try:
        net = owner.create_network("home", owned=True)
        for n in (a, b, c):
            await n.join(owner.invite(net.id, opts=InviteOptions(uses=1)), timeout=15)  # (enrolments: 1 a second per source)
        await eventually(lambda: a.mesh.record_of(net.id, c.node_id) is not None, 10)  # (gossip)
        await a.connect(c.node_id, net.id, timeout=5)
        c_port = c.port
        c.save_peers()
        await c.close()  # c is down during the rotation
        owner.remove_member(net.id, b.node_id)
        await eventually(lambda: a.mesh.network(net.id).epoch == 1 and not a.is_connected(b.node_id))
        new_key = owner.mesh.network(net.id).key
        assert a.mesh.network(net.id).key == new_key != net.key and a.mesh.network(net.id).id == net.id
        for name in ("owner", "a"):
            e = _entry(tmp_path / name, net.id)
            assert e["epoch"] == 1 and base64.b64decode(e["key"]) == new_key and "credential" in e, name
            assert [base64.b64decode(p["key"]) for p in e["previous"]] == [net.key] and base64.b64decode(e["rekey"]), name
        # restarts: the new key is the one held, the id the same; they talk under it
        ports = owner.port, a.port
        owner.save_peers()
        a.save_peers()
        await owner.close()
        await a.close()
        owner = await MeshNode(host="127.0.0.1", port=ports[0], state_dir=str(tmp_path / "owner")).start()
        a = await MeshNode(host="127.0.0.1", port=ports[1], state_dir=str(tmp_path / "a")).start()
        for n in (owner, a):
            assert n.mesh.network(net.id).key == new_key and n.mesh.network(net.id).epoch == 1
        await a.connect(owner.node_id, net.id, timeout=5)
        assert owner.mesh.counters["handshake.previous_key"] == 0 and a.mesh.counters["handshake.previous_key"] == 0
        # c comes back under the old key (within the grace, restored from networks.json) and is told the new one
        c = await MeshNode(host="127.0.0.1", port=c_port, state_dir=str(tmp_path / "c")).start()
        assert c.mesh.network(net.id).epoch == 0
        await eventually(lambda: c.mesh.network(net.id).epoch == 1, 10)
        assert c.mesh.network(net.id).key == new_key and _entry(tmp_path / "c", net.id)["epoch"] == 1
        assert owner.mesh.counters["handshake.previous_key"] + a.mesh.counters["handshake.previous_key"] > 0
        await c.connect(a.node_id, net.id, timeout=5)
        # b, removed, tries with the old key and a certificate that has not expired: refused
        before = owner.mesh.counters.dropped(DropReason.CERT_REVOKED)
        b.add_peer(net.id, owner.node_id, [("127.0.0.1", ports[0])])
        await eventually(lambda: owner.mesh.counters.dropped(DropReason.CERT_REVOKED) > before)
        assert not owner.is_connected(b.node_id) and b.mesh.network(net.id).epoch == 0
    finally:
        for n in (c, b, a, owner):
            await n.close()
