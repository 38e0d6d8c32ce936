"""Renewal between real MeshNodes on loopback (docs/membership.md 2.5): a member whose certificate lives 6 s asks
the owner at two thirds of it, gets a new one, presents it and saves it in networks.json, so a restart starts with
the renewed credential."""

from __future__ import annotations

import base64
import json

from helpers import eventually
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.node import MeshNode


async def test_a_renewed_credential_is_saved_and_kept_across_a_restart(tmp_path) -> None:
    owner = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "owner")).start()
    a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()
    try:
        net = owner.create_network("home", owned=True)
        await a.join(owner.invite(net.id, opts=InviteOptions(lifetime=6)), timeout=5)
        first = a.mesh.credentials.own(net.id)
        assert first is not None
        await eventually(lambda: a.mesh.credentials.own(net.id) != first, 10, "the renewal (due at 4 s)")
        renewed = a.mesh.credentials.own(net.id)
        assert renewed != first and a.mesh.counters["renew.renewed"] == 1
        leaf = a.mesh.credentials.own_certificate(net.id)
        assert leaf is not None and leaf.not_after - leaf.not_before == 6 and leaf.issuer == owner.node_id
        [entry] = json.loads((tmp_path / "a" / "networks.json").read_text())["networks"]
        assert base64.b64decode(entry["credential"]) == renewed
        await a.close()
        a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()
        assert a.mesh.credentials.own(net.id) == renewed
    finally:
        for n in (a, owner):
            await n.close()
