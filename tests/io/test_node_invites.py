"""Invites of owned networks between real MeshNodes on loopback (docs/membership.md 3.3): a one-time invite admits
one node, which connects, keeps its credential in networks.json and reconnects after a restart; a second use fails
``join`` with "used"; the owner keeps its tokens and use marks across a restart (members/<id>.json), so a used
token stays used and an open one still works; open networks are unchanged."""

from __future__ import annotations

import json
import time

import pytest

from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.node import MeshNode


async def test_a_one_time_invite_admits_one_node_and_the_owner_remembers_it_across_a_restart(tmp_path) -> None:
    owner = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "owner")).start()
    a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()
    b = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "b")).start()
    try:
        net = owner.create_network("home", owned=True)
        assert owner.mesh.network(net.id).owner == owner.node_id and owner.mesh.credentials.own(net.id)
        once = owner.invite(net.id, opts=InviteOptions(uses=1, name="laptop"))
        later = owner.invite(net.id, opts=InviteOptions(uses=1))
        assert once.startswith("omerta2-")
        await a.join(once, timeout=5)
        assert a.is_connected(owner.node_id)
        [entry] = json.loads((tmp_path / "a" / "networks.json").read_text())["networks"]
        assert entry["owner"] == owner.node_id.text() and entry["credential"]
        with pytest.raises(UsageError, match="refused by .*: used; this invite was already used"):
            await b.join(once, timeout=5)
        [entry] = json.loads((tmp_path / "b" / "networks.json").read_text())["networks"]
        assert "invite" not in entry and "credential" not in entry  # refused for good: not asked again at start
        port = owner.port
        await owner.close()
        owner = await MeshNode(host="127.0.0.1", port=port, state_dir=str(tmp_path / "owner")).start()
        assert [t.uses for t in owner.mesh.enrolment.issued(net.id, time.time())] == [1]  # `later`, open; `once`, used
        with pytest.raises(UsageError, match="used"):  # still used after the owner's restart
            await b.join(once, timeout=5)
        await b.join(later, timeout=5)  # issued before the restart, still good
        assert b.is_connected(owner.node_id)
        await a.close()
        a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()  # its credential from networks.json
        await a.connect(owner.node_id, net.id, timeout=5)
    finally:
        for n in (b, a, owner):
            await n.close()


async def test_open_networks_take_no_invite_options(tmp_path) -> None:
    a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()
    try:
        net = a.create_network("open")
        assert a.invite(net.id).startswith("omerta1-") and net.owner is None
        with pytest.raises(UsageError, match="is open"):
            a.invite(net.id, opts=InviteOptions(uses=3))
    finally:
        await a.close()


async def test_a_join_waiting_for_its_inviter_resumes_after_a_restart(tmp_path) -> None:
    owner = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "owner")).start()
    b = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "b")).start()
    try:
        net = owner.create_network("home", owned=True)
        text = owner.invite(net.id)
        port = owner.port
        await owner.close()  # the inviter is away
        with pytest.raises(TimeoutError, match="no answer to the invite"):
            await b.join(text, timeout=0.5)
        [entry] = json.loads((tmp_path / "b" / "networks.json").read_text())["networks"]
        assert entry["invite"] == text and "credential" not in entry
        await b.close()
        owner = await MeshNode(host="127.0.0.1", port=port, state_dir=str(tmp_path / "owner")).start()
        b = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "b")).start()  # asks again, by itself
        await b.wait_connected(owner.node_id, 5)
        [entry] = json.loads((tmp_path / "b" / "networks.json").read_text())["networks"]
        assert entry["credential"] and "invite" not in entry  # enrolled: the invite is not kept any longer
    finally:
        await b.close()
        await owner.close()


@pytest.mark.parametrize("invite", [5, "omerta2-aaaa", "x" * 5000, "other-network"])
def test_a_damaged_saved_invite_refuses_the_file_with_the_damaged_message(tmp_path, invite) -> None:
    from omerta_mesh.core.entropy import SeededEntropy
    from omerta_mesh.core.keys import Identity
    from omerta_mesh.core.network import Network
    from omerta_mesh.core.wire.invite import Invite, encode_invite
    from omerta_mesh.core.wire.tokens import Token, sign_token
    from omerta_mesh.io.store import NetworkState, StateError, StateStore
    owner = Identity.generate(SeededEntropy("store-owner"))
    net, other = (Network(SeededEntropy(s).random_bytes(32), "home", owner.node_id) for s in ("n1", "n2"))
    token = sign_token(owner, Token(other.id, bytes(16), owner.node_id, 2_000_000_000, 1, 60), 1_999_999_000)
    good = encode_invite(Invite(other.key, owner.node_id, "x", (), owner.node_id, other.id, 0, token))
    s = StateStore(tmp_path)
    s.save_networks([NetworkState(other, origin="joined", invite=good)])
    assert StateStore(tmp_path).load_network_states()[0].invite == good  # round trip
    s.save_networks([NetworkState(net, origin="joined")])
    doc = json.loads(s.networks_path.read_text())
    doc["networks"][0]["invite"] = good if invite == "other-network" else invite  # another network's is damage too
    s.networks_path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="'invite' is not an invite to this owned network"):
        StateStore(tmp_path).load_network_states()
