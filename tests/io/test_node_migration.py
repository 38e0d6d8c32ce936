"""Open networks becoming owned between real MeshNodes on loopback (docs/membership.md 7): an open network an earlier
version created (its entry without ``open``) is claimed by its creator at its next start; the member it invited
adopts the claim and gets its certificate; both save the claim in networks.json, and a restart during the transition
keeps it; at ``enforce at`` both hold the network as owned by the creator, saved with their certificates, and talk
under it. A network made open on purpose (``open: true``) is never claimed by itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import eventually
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.node import MeshNode

TRANSITION = 15
CFG = DEFAULT_CONFIG.with_(owner_transition=TRANSITION)


def _doc(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / "networks.json").read_text())


def _entry(state_dir: Path, network_id: NetworkId) -> dict[str, Any]:
    return next(n for n in _doc(state_dir)["networks"] if n["id"] == network_id.text())


def _as_earlier_version(state_dir: Path) -> None:
    """networks.json as the previous release wrote it: no ``open`` marker (its open networks were open by default)."""
    doc = _doc(state_dir)
    for n in doc["networks"]:
        n.pop("open", None)
    (state_dir / "networks.json").write_text(json.dumps(doc))


async def test_the_creator_of_an_earlier_versions_open_network_becomes_its_owner(tmp_path: Path) -> None:
    dora = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "dora"), config=CFG).start()
    emil = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "emil"), config=CFG).start()
    try:
        home = dora.create_network("home")
        kept = dora.create_network("kept")  # open on purpose: stays open
        assert _entry(tmp_path / "dora", home.id)["open"] is True
        await emil.join(dora.invite(home.id), timeout=10)
        await emil.join(dora.invite(kept.id), timeout=10)
        await emil.connect(dora.node_id, home.id, timeout=5)
        ports = dora.port, emil.port
        for n in (dora, emil):
            n.save_peers()
            await n.close()
        _as_earlier_version(tmp_path / "dora")
        e = _entry(tmp_path / "dora", kept.id)
        e["open"] = True  # (this one was made open on purpose by this version)
        doc = _doc(tmp_path / "dora")
        doc["networks"] = [e if n["id"] == e["id"] else n for n in doc["networks"]]
        (tmp_path / "dora" / "networks.json").write_text(json.dumps(doc))
        dora = await MeshNode(host="127.0.0.1", port=ports[0], state_dir=str(tmp_path / "dora"), config=CFG).start()
        emil = await MeshNode(host="127.0.0.1", port=ports[1], state_dir=str(tmp_path / "emil"), config=CFG).start()
        claim = dora.mesh.members.migration.claim(home.id)
        assert claim is not None and claim.issuer == dora.node_id  # claimed at start
        assert dora.mesh.members.migration.claim(kept.id) is None
        await eventually(lambda: emil.mesh.members.migration.credential(home.id) is not None, 10)
        assert emil.mesh.members.migration.claim(home.id) == claim and emil.mesh.network(home.id).owner is None
        await eventually(lambda: "claim_credential" in _entry(tmp_path / "emil", home.id))
        assert "claim" in _entry(tmp_path / "dora", home.id)
        # emil restarts during the transition: the claim and its certificate come back from networks.json
        emil.save_peers()
        await emil.close()
        emil = await MeshNode(host="127.0.0.1", port=ports[1], state_dir=str(tmp_path / "emil"), config=CFG).start()
        assert emil.mesh.members.migration.claim(home.id) == claim
        assert emil.mesh.members.migration.credential(home.id) is not None
        # enforce at: owned by dora on both, saved so, and they talk under it
        await eventually(lambda: all(n.mesh.network(home.id).owner == dora.node_id for n in (dora, emil)), TRANSITION + 15)
        await eventually(lambda: emil.mesh.network(home.id).epoch == 1, 10)  # dora rotated the key
        for name in ("dora", "emil"):
            e = _entry(tmp_path / name, home.id)
            assert e["owner"] == dora.node_id.text() and "credential" in e and "claim" not in e, name
        await emil.connect(dora.node_id, home.id, timeout=10)
        assert await emil.ping(dora.node_id, network=home.id) >= 0
        assert dora.mesh.network(kept.id).owner is None and emil.mesh.network(kept.id).owner is None
    finally:
        for n in (emil, dora):
            await n.close()
