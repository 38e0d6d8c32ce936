"""Persistence of owned networks (docs/membership.md, issue 16): networks.json's owner, credential, origin,
inviter and key rotation (epoch, the id kept, the owner's rotation, the previous keys), and ``members/<network
id>.json`` (revocations, use marks, tokens, enrolments): round trips, files from before (open networks), damage that
refuses networks.json with the damaged message but never stops the daemon for a members file nor costs any other
state, bounds, and modes."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import stat
import time

import pytest

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.member.check import Accepted, Refused
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.certs import Certificate, Role, encode_credential, sign_certificate
from omerta_mesh.io import memberstate as ms
from omerta_mesh.io.memberstate import Enrolled, MembersState
from omerta_mesh.io.store import NetworkState, StateError, StateNotSaved, StateStore
from omerta_mesh.node import MeshNode

OWNER = Identity.from_seed(bytes(range(32)))
JOINER = Identity.from_seed(bytes(range(1, 33)))


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def owned(i: int = 1, owner: Identity = OWNER) -> Network:
    return Network(SeededEntropy(i).random_bytes(32), f"owned{i}", owner.node_id)


def owner_credential(net: Network, owner: Identity = OWNER, nb: float | None = None, na: float | None = None) -> bytes:
    nb = time.time() - 86400 if nb is None else nb
    na = nb + 300 * 86400 if na is None else na
    return encode_credential([sign_certificate(owner, Certificate(Role.OWNER, net.id, owner.node_id, owner.node_id, 7, int(nb), int(na),
                                                                   "boss"))])


# ------------------------------------------------------------------ networks.json
def test_owned_network_entries_round_trip_secret(tmp_path) -> None:
    s = StateStore(tmp_path)
    first, open_net = owned(), Network.create(SeededEntropy(9), "open")
    net = first.rotated(b"\x07" * 32, 3)  # after rotations: another key, the same id
    previous = ((first.key, 1_900_000_000.0),)
    states = [NetworkState(net, owner_credential(net), "joined", JOINER.node_id, b"R" * 155, previous),
              NetworkState(open_net, origin="created")]
    s.save_networks(states)
    assert mode(s.networks_path) == 0o600
    [back, _] = loaded = StateStore(tmp_path).load_network_states()
    assert loaded == states and back.network.id == first.id != Network(net.key, "x", OWNER.node_id).id
    doc = json.loads(s.networks_path.read_text())
    assert doc["networks"][0]["owner"] == OWNER.node_id.text() and doc["networks"][0]["epoch"] == 3
    assert doc["networks"][0]["previous"] == [{"key": base64.b64encode(first.key).decode(), "until": 1_900_000_000}]
    assert set(doc["networks"][1]) == {"id", "name", "key", "origin"}  # an open network writes nothing it does not have


def test_a_file_from_before_loads_as_open_networks(tmp_path) -> None:
    s = StateStore(tmp_path)
    net = Network.create(SeededEntropy(1), "old")
    s.networks_path.write_text(json.dumps({"version": 1, "networks": [{"id": str(net.id), "name": "old",
                                                                        "key": base64.b64encode(net.key).decode()}]}))
    [st] = s.load_network_states()
    assert st == NetworkState(net) and st.network.owner is None and st.origin is None and st.network.epoch == 0
    assert s.load_networks() == [net]


def test_saving_bare_networks_keeps_what_the_entries_hold_besides(tmp_path) -> None:
    """MeshNode saves the list of networks when one is added or left: the others' credentials and origins stay."""
    s = StateStore(tmp_path)
    net = owned()
    kept = NetworkState(net.rotated(b"\x02" * 32, 2), owner_credential(net), "created", None, b"R" * 155)
    s.save_networks([kept])
    other = Network.create(SeededEntropy(5), "new")
    s2 = StateStore(tmp_path)  # (a restart: what it knows of the entries comes from the file)
    s2.load_network_states()
    s2.save_networks([kept.network, other])
    assert StateStore(tmp_path).load_network_states() == [kept, NetworkState(other)]


DAMAGED = [
    ({"owner": "not-a-node"}, "'owner'"),
    ({"owner": 5}, "'owner' is not a node id"),
    ({"inviter": "AAAA"}, "'inviter'"),
    ({"credential": "%%%"}, "network 1"),
    ({"credential": "A" * 2000}, "'credential'"),
    ({"origin": "stolen"}, "'origin'"),
    ({"epoch": -1}, "'epoch'"),
    ({"epoch": True}, "'epoch'"),
    ({"epoch": 2**32}, "'epoch'"),
    ({"epoch": 1, "id": "nonsense"}, "'id'"),
    ({"rekey": "AAAA"}, "'rekey'"),  # (at epoch 0)
    ({"epoch": 1, "rekey": "A" * 400}, "'rekey'"),
    ({"previous": {"key": "AAAA"}}, "'previous'"),
    ({"previous": [{"key": "AAAA", "until": "soon"}]}, "'previous'"),
    ({"previous": [{"key": "AAAA", "until": 5}]}, "not 32 bytes"),
    ({"previous": [{"key": base64.b64encode(bytes(32)).decode(), "until": 5}] * 5}, "'previous'"),
]


@pytest.mark.parametrize(("field", "words"), DAMAGED, ids=[str(d[0]) for d in DAMAGED])
def test_a_damaged_new_field_refuses_the_file_with_the_damaged_message(tmp_path, field, words) -> None:
    s = StateStore(tmp_path)
    s.save_networks([NetworkState(owned(), origin="created")])
    doc = json.loads(s.networks_path.read_text())
    doc["networks"][0].update(field)
    s.networks_path.write_text(json.dumps(doc))
    with pytest.raises(StateError) as e:
        StateStore(tmp_path).load_network_states()
    assert f"{s.networks_path} is damaged (network 1: " in str(e.value) and words in str(e.value) and "re-join" in str(e.value)


# ------------------------------------------------------------------ members/<network id>.json
def _members() -> MembersState:
    return MembersState(revocations=(b"r" * 150, b"s" * 151), marks=(b"m" * 164,), tokens=(b"t" * 200,),
                        enrolled=(Enrolled(b"\x01" * 16, JOINER.node_id, b"c" * 300), Enrolled(b"\x02" * 16, OWNER.node_id, b"d" * 595)))


def test_members_round_trip_in_a_private_directory(tmp_path) -> None:
    s = StateStore(tmp_path)
    net = owned()
    assert s.members.load(net.id) == MembersState()  # nothing saved yet
    s.members.save(net.id, _members())
    p = s.members.path(net.id)
    assert p == tmp_path / "members" / f"{net.id.text()}.json"
    assert mode(p) == 0o600 and mode(p.parent) == 0o700
    assert StateStore(tmp_path).members.load(net.id) == _members()
    s.members.forget(net.id)
    assert not p.exists() and s.members.load(net.id) == MembersState()
    s.members.forget(net.id)  # (twice: nothing to do)


@pytest.mark.parametrize("state", [
    MembersState(revocations=(b"x",) * (ms.MAX_REVOCATIONS + 1)),
    MembersState(marks=(b"x",) * (ms.MAX_MARKS + 1)),
    MembersState(tokens=(b"x" * (ms.MAX_ITEM + 1),)),
    MembersState(tokens=(b"",)),
    MembersState(enrolled=(Enrolled(b"\x01" * 15, JOINER.node_id, b"c"),)),
    MembersState(enrolled=(Enrolled(b"\x01" * 16, JOINER.node_id, b"c" * 596),)),
    MembersState(enrolled=(Enrolled(b"\x01" * 16, JOINER.node_id, b"c"),) * (ms.MAX_ENROLLED + 1)),
    MembersState(tokens=(b"x",) * (ms.MAX_TOKENS + 1)),
], ids=["revocations", "marks", "long token", "empty token", "token id", "credential", "enrolments", "tokens"])
def test_saving_more_than_a_load_takes_back_is_refused(tmp_path, state) -> None:
    with pytest.raises(UsageError, match="beyond the bounds"):
        StateStore(tmp_path).members.save(owned().id, state)


def test_a_members_file_not_saved_leaves_the_previous_one(tmp_path, monkeypatch) -> None:
    s = StateStore(tmp_path)
    net = owned()
    s.members.save(net.id, _members())
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(StateNotSaved, match="no space left"):
        s.members.save(net.id, MembersState())
    monkeypatch.undo()
    assert s.members.load(net.id) == _members() and s.save_failures == 1


WHOLE = {
    "not json": b"{not json",
    "a list": b"[1, 2]",
    "version text": json.dumps({"version": "x", "network": "N"}).encode(),
    "newer version": json.dumps({"version": 2}).encode(),
    "no version": json.dumps({"network": "N"}).encode(),
    "another network": None,
    "not utf-8": b'{"version": 1, "network": "\xff"}',
    "too deep": b"[" * 100000,
}


@pytest.mark.parametrize("name", WHOLE, ids=WHOLE)
def test_a_damaged_members_file_is_set_aside_and_costs_nothing_else(tmp_path, caplog, name) -> None:
    s = StateStore(tmp_path)
    net, other = owned(1), owned(2)
    s.save_networks([NetworkState(net, owner_credential(net), "created"), NetworkState(other, origin="joined")])
    s.members.save(net.id, _members())
    s.members.save(other.id, _members())
    data = WHOLE[name]
    if data is None:
        data = s.members.path(other.id).read_bytes()  # a copy of another network's file
    s.members.path(net.id).write_bytes(data)
    networks_before = s.networks_path.read_bytes()
    with caplog.at_level(logging.WARNING, "omerta_mesh.io.memberstate"):
        assert s.members.load(net.id) == MembersState()
    aside = [p for p in s.members.dir.iterdir() if p.name.startswith(f"{net.id.text()}.json.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == data  # kept for a human, out of the way
    assert f"{s.members.path(net.id)} is damaged" in caplog.text and str(aside[0]) in caplog.text
    assert s.members.load(other.id) == _members() and s.networks_path.read_bytes() == networks_before
    s.members.save(net.id, _members())  # and the network's state can be written again
    assert s.members.load(net.id) == _members()


def test_damaged_members_entries_are_skipped_and_the_rest_kept(tmp_path, caplog) -> None:
    s = StateStore(tmp_path)
    net = owned()
    s.members.save(net.id, _members())
    p = s.members.path(net.id)
    doc = json.loads(p.read_text())
    good_enrolled = list(doc["enrolled"])
    doc["revocations"] += ["%%%", 5, "", "A" * 2000]
    doc["marks"] = "not a list"
    doc["tokens"] += [None]
    doc["enrolled"] += [{"token": "zz", "node": JOINER.node_id.text(), "credential": "AAAA"},
                        {"token": "01" * 16, "node": "nobody", "credential": "AAAA"},
                        {"token": "01" * 16, "node": JOINER.node_id.text(), "credential": "A" * 900},
                        {"token": "01" * 16, "node": JOINER.node_id.text()}, "x"]
    p.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING):
        got = s.members.load(net.id)
    want = _members()
    assert got == MembersState(want.revocations, (), want.tokens, want.enrolled)
    assert f"{p}: skipped 11 damaged entries" in caplog.text
    assert json.loads(p.read_text())["enrolled"][: len(good_enrolled)] == good_enrolled  # the file itself is left as it was


@pytest.mark.parametrize(("bound", "value", "kept", "words"), [
    ("MAX_FILE", 100, {"revocations": (), "marks": (), "tokens": (), "enrolled": ()}, "larger than 100 bytes"),  # not read
    ("MAX_REVOCATIONS", 1, {"revocations": (b"r" * 150,)}, "skipped 1 damaged entries"),  # cut, the rest kept
], ids=["file", "entries"])
def test_what_lies_beyond_a_bound_is_not_loaded(tmp_path, monkeypatch, caplog, bound, value, kept, words) -> None:
    s = StateStore(tmp_path)
    net = owned()
    s.members.save(net.id, _members())
    monkeypatch.setattr(ms, bound, value)
    with caplog.at_level(logging.WARNING):
        assert s.members.load(net.id) == dataclasses.replace(_members(), **kept)
    assert words in caplog.text


# ------------------------------------------------------------------ MeshNode keeps them across a restart
async def test_a_node_keeps_its_credential_and_origins_across_a_restart(tmp_path) -> None:
    d = tmp_path / "n"
    node = await MeshNode(host="127.0.0.1", state_dir=str(d)).start()
    try:
        created = node.create_network("home")
        net = Network(SeededEntropy(3).random_bytes(32), "owned", node.node_id)
        node.add_network(net)
        cred = owner_credential(net, node.mesh.identity)  # the node's own key signs its owner certificate
        assert isinstance(node.set_credential(net.id, cred), Accepted)
        with pytest.raises(UsageError, match="open"):
            node.set_credential(created.id, cred)
        node.store.members.save(net.id, _members())
    finally:
        await node.close()
    doc = {n["name"]: n for n in json.loads((d / "networks.json").read_text())["networks"]}
    assert doc["home"]["origin"] == "created" and "owner" not in doc["home"] and "credential" not in doc["home"]
    assert doc["owned"]["owner"] == node.node_id.text() and "origin" not in doc["owned"]
    again = await MeshNode(host="127.0.0.1", state_dir=str(d)).start()
    try:
        assert again.mesh.credentials.own(net.id) == cred and again.mesh.credentials.own(created.id) is None
        assert again.mesh.network(net.id).owner == node.node_id
        rec = again.mesh.gossip.own(net.id)
        assert rec is not None
        expired = owner_credential(net, node.mesh.identity, 0, 10)
        assert isinstance(again.set_credential(net.id, expired), Refused)  # set (and saved) either way
        again.leave(net.id)
        assert not again.store.members.path(net.id).exists()
        assert [n["name"] for n in json.loads((d / "networks.json").read_text())["networks"]] == ["home"]
    finally:
        await again.close()


async def test_joining_records_the_inviter(tmp_path) -> None:
    a = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "a")).start()
    b = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "b")).start()
    try:
        net = a.create_network("home")
        await b.join(a.invite(net.id))
        [entry] = json.loads((tmp_path / "b" / "networks.json").read_text())["networks"]
        assert entry["origin"] == "joined" and entry["inviter"] == a.node_id.text()
    finally:
        await b.close()
        await a.close()
