"""Key rotation of owned networks in the simulator (docs/membership.md 6; issue 16's "Must show"): after a removal the
owner rotates the network key; the remaining members take the new key within seconds and keep talking through the
rotation without losing a message; the removed node, holding the old key and its old invite, cannot get back in
(refused by its revoked certificate during the grace, at mac1 with no Diffie-Hellman after it, its invite "revoked");
a member that was away during the rotation learns the new key at its first session under the old one; a rotation
not signed by the owner, or an older one, changes nothing."""

from __future__ import annotations

import pytest

from omerta_mesh.core import events as ev
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.errors import DropReason, UsageError
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.rekey import Rekey, sign_rekey
from omerta_mesh.sim.harness import SimMesh, SimNode

GRACE = 120


def owned_members(seed: str, *names: str, grace: int = GRACE) -> tuple[SimMesh, Network, SimNode, list[SimNode], dict[str, str]]:
    """An owned network (key grace ``grace`` s) whose owner invited each other node with a one-time invite, all
    connected; the invites each used, by name."""
    sim = SimMesh(seed, config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0, key_grace=grace))
    owner = sim.add_node("owner")
    others = [sim.add_node(n) for n in names]
    net = owner.mesh.create_network("home", sim.now, owned=True)
    invites = {}
    for n in others:
        invites[n.name] = owner.mesh.invite(net.id, [owner.reachable], sim.now, InviteOptions(uses=1))
        n.mesh.join(invites[n.name], sim.now)
        sim.internet.pump(n.mesh)
        sim.run_for(5)
    sim.run_for(30)
    assert sim.all_connected(net, [owner, *others]), sim.failure()
    return sim, net, owner, others, invites


def key_of(node: SimNode, net: Network) -> tuple[int, bytes]:
    n = node.mesh.network(net.id)
    return n.epoch, n.key


def test_a_removal_rotates_the_key_and_the_members_keep_talking_through_it() -> None:
    sim, net, owner, (alice, bob, carol), invites = owned_members("rotate-remove", "alice", "bob", "carol")
    for n in (owner, alice, bob, carol):
        n.drain()
    sent = [sim.send(alice, bob, "chat", b"before %d" % i) for i in range(5)]
    owner.mesh.remove_member(net.id, carol.mesh.node_id, sim.now)
    sim.internet.pump(owner.mesh)
    for i in range(20):  # alice keeps writing to bob through the rotation
        sent.append(sim.send(alice, bob, "chat", b"during %d" % i))
        sim.run_for(0.25)
    new = key_of(owner, net)
    assert new[0] == 1 and new[1] != net.key and owner.mesh.network(net.id).id == net.id
    for n in (alice, bob):
        assert key_of(n, net) == new, n.name
        assert [e.epoch for e in n.of(ev.NetworkRekeyed)] == [1]
    assert key_of(carol, net) == (0, net.key)  # the removed node was never told
    # no message lost, none out of order; the sessions up at the rotation stayed up
    got = [m.data for m in bob.of(ev.ChannelMessage)]
    assert got == [b"before %d" % i for i in range(5)] + [b"during %d" % i for i in range(20)]
    assert {d.message_id for d in alice.of(ev.MessageDelivered)} >= set(sent)
    assert not any(isinstance(e, ev.PeerDisconnected) for n in (owner, alice, bob) for e in n.events
                   if getattr(e, "peer", None) != carol.mesh.node_id)
    # new sessions come up under the new key (past the rekey interval), never under the previous one (carol, which
    # keeps trying under it, is unplugged so that the count is the members' own)
    carol.host.down()
    before = sum(n.mesh.counters["handshake.previous_key"] for n in (owner, alice, bob))
    sim.run_for(DEFAULT_CONFIG.rekey_after_time + 30)
    assert sim.all_connected(net, [owner, alice, bob]), sim.failure()
    assert sum(n.mesh.counters["handshake.previous_key"] for n in (owner, alice, bob)) == before
    mid = sim.send(bob, alice, "chat", b"after")
    sim.run_for(2)
    assert [m.data for m in alice.of(ev.ChannelMessage)][-1:] == [b"after"] and mid in {d.message_id for d in bob.of(ev.MessageDelivered)}


def _tries(sim: SimMesh, gone: SimNode, net: Network, members: list[SimNode]) -> None:
    """The removed node tries every member for 10 s: none lets it in."""
    for n in members:
        gone.mesh.add_peer(net.id, n.mesh.node_id, [n.reachable], sim.now)
        sim.internet.pump(gone.mesh)
    sim.run_for(10)
    assert not any(sim.connected(gone, n, net) for n in members)


def test_the_removed_node_cannot_get_back_in_with_the_old_key_or_its_old_invite() -> None:
    sim, net, owner, (alice, carol), invites = owned_members("rotate-locked-out", "alice", "carol")
    owner.mesh.remove_member(net.id, carol.mesh.node_id, sim.now)
    sim.internet.pump(owner.mesh)
    sim.run_for(5)
    # during the grace the old key passes mac1, and the revoked certificate is refused
    refused = {n.name: n.mesh.counters.dropped(DropReason.CERT_REVOKED) for n in (owner, alice)}
    _tries(sim, carol, net, [owner, alice])
    assert all(n.mesh.counters.dropped(DropReason.CERT_REVOKED) > refused[n.name] for n in (owner, alice))
    # after the grace the old key fails mac1 everywhere: no Diffie-Hellman is spent on carol any more
    sim.run_for(GRACE)
    dh = {n.name: n.mesh.counters["handshake.dh_performed"] for n in (owner, alice)}
    mac = {n.name: n.mesh.counters.dropped(DropReason.BAD_MAC1) for n in (owner, alice)}
    _tries(sim, carol, net, [owner, alice])
    for n in (owner, alice):
        assert n.mesh.counters.dropped(DropReason.BAD_MAC1) > mac[n.name], n.name
        assert n.mesh.counters["handshake.dh_performed"] == dh[n.name], n.name
    # and its old invite, used and revoked, admits nobody: not carol, not anyone it gives the string to
    eve = sim.add_node("eve")
    eve.mesh.join(invites["carol"], sim.now)
    sim.internet.pump(eve.mesh)
    sim.run_for(5)
    assert not sim.connected(eve, owner, net)
    assert eve.mesh.network(net.id).epoch == 0 and owner.mesh.counters.dropped(DropReason.BAD_MAC1) > mac["owner"]


def test_a_member_away_during_the_rotation_learns_the_new_key_at_its_first_session() -> None:
    sim, net, owner, (alice, bob, carol), _ = owned_members("rotate-away", "alice", "bob", "carol", grace=600)
    bob.host.down()
    owner.mesh.remove_member(net.id, carol.mesh.node_id, sim.now)
    sim.internet.pump(owner.mesh)
    sim.run_for(DEFAULT_CONFIG.reject_after_time)  # bob's sessions expire while it is away
    assert key_of(alice, net) == key_of(owner, net) != key_of(bob, net) == (0, net.key)
    assert not sim.connected(bob, alice, net)
    bob.host.up()
    sim.run_for(30)  # bob comes back within the grace: its handshakes under the old key are taken, and it is told
    assert key_of(bob, net) == key_of(owner, net), sim.failure()
    assert owner.mesh.counters["handshake.previous_key"] + alice.mesh.counters["handshake.previous_key"] > 0
    assert sim.connected(bob, owner, net) and sim.connected(bob, alice, net)
    # and it learnt the removal with it
    assert bob.mesh.table.get(net.id, carol.mesh.node_id) is None


def test_a_rotation_not_signed_by_the_owner_or_an_older_one_changes_nothing() -> None:
    sim, net, owner, (alice, bob), _ = owned_members("rotate-forged", "alice", "bob")
    with pytest.raises(UsageError, match="only the owner"):
        alice.mesh.act(sim.now, lambda out: alice.mesh.rotation.rotate(net.id, sim.now, out))
    wall = int(sim.now + alice.mesh.wall_offset)
    forged = sign_rekey(alice.mesh.identity, Rekey(net.id, 5, b"\x11" * 32, 60, wall, alice.mesh.node_id)).encode()
    to_bob = alice.mesh.table.get(net.id, bob.mesh.node_id)
    assert to_bob is not None
    alice.mesh.act(sim.now, lambda out: out.control(to_bob, "net.rekey", forged))
    alice.mesh.act(sim.now, lambda out: out.control(to_bob, "net.rekey", b"\x01" * 40))  # not even a rotation
    sim.internet.pump(alice.mesh)
    sim.run_for(2)
    assert key_of(bob, net) == (0, net.key) and bob.mesh.counters.dropped(DropReason.REKEY_INVALID) == 2
    # the owner's first rotation, then its second: replaying the first changes nothing
    owner.mesh.act(sim.now, lambda out: owner.mesh.rotation.rotate(net.id, sim.now, out))
    sim.internet.pump(owner.mesh)
    sim.run_for(2)
    first = owner.mesh.credentials.rekey(net.id)
    owner.mesh.act(sim.now, lambda out: owner.mesh.rotation.rotate(net.id, sim.now, out))
    sim.internet.pump(owner.mesh)
    sim.run_for(2)
    assert key_of(bob, net) == key_of(alice, net) == key_of(owner, net) and key_of(bob, net)[0] == 2
    assert first is not None
    alice.mesh.act(sim.now, lambda out: out.control(to_bob, "net.rekey", first))
    sim.internet.pump(alice.mesh)
    sim.run_for(2)
    assert key_of(bob, net)[0] == 2 and bob.mesh.counters["rekey.stale"] >= 1
    assert sim.all_connected(net, [owner, alice, bob])


def test_open_networks_are_never_rotated() -> None:
    sim = SimMesh("rotate-open")
    a = sim.add_node("a")
    net = a.mesh.create_network("open", sim.now)
    with pytest.raises(UsageError, match="open"):
        a.mesh.act(sim.now, lambda out: a.mesh.rotation.rotate(net.id, sim.now, out))
    with pytest.raises(ValueError, match="only an owned network"):
        Network(net.key, "open", epoch=1)
