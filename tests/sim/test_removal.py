"""Removal from owned networks in the simulator (docs/membership.md 5; issue 16's "Must show"): a removed member is
cut off from every member within 5 s of simulated time (sessions closed, its still-valid certificate refused when it
tries again, gone from the peers and records) while the others keep talking; a revocation signed by a plain member
is refused and counted; a member that joins later learns the revocation when its first session comes up."""

from __future__ import annotations

import pytest

from omerta_mesh.core import events as ev
from omerta_mesh.core.errors import DropReason, UsageError
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.revocations import Revocation, RevocationKind, decode_revocation, encode_revocations, sign_revocation
from omerta_mesh.sim.harness import SimMesh, SimNode
from sim.test_enrolment import owned


def members(seed: str, *names: str) -> tuple[SimMesh, Network, SimNode, list[SimNode]]:
    """An owned network whose owner invited every other node (each enrolled, all connected to each other)."""
    sim, net, owner, others = owned(seed, *names)
    for n in others:
        sim.join(n, owner, net)
        sim.run_for(5)
    sim.run_for(30)
    assert sim.all_connected(net, [owner, *others]), sim.failure()
    return sim, net, owner, others


def cut_off(sim: SimMesh, gone: SimNode, net: Network, nodes: list[SimNode]) -> bool:
    return all(n.mesh.table.get(net.id, gone.mesh.node_id) is None and n.mesh.record_of(net.id, gone.mesh.node_id) is None
               and not sim.connected(gone, n, net) for n in nodes)


def test_a_removed_member_is_cut_off_from_every_member_within_five_seconds() -> None:
    sim, net, owner, (alice, bob, carol) = members("remove-member", "alice", "bob", "carol")
    for n in (owner, alice, bob):
        n.drain()
    owner.mesh.remove_member(net.id, carol.mesh.node_id, sim.now)
    sim.internet.pump(owner.mesh)
    sim.run_for(5)
    assert cut_off(sim, carol, net, [owner, alice, bob]), sim.failure()
    for n in (owner, alice, bob):
        assert [e.peer for e in n.of(ev.PeerLeft)] == [carol.mesh.node_id]
        assert [(e.peer, e.by) for e in n.of(ev.MemberRemoved)] == [(carol.mesh.node_id, owner.mesh.node_id), (None, owner.mesh.node_id)]
    # the node and the invite that enrolled it (a one-time invite here: its token is revoked with it)
    assert owner.mesh.counters["member.revocations_taken"] == 2
    kinds = sorted(decode_revocation(b).kind for b in owner.mesh.members.revocations(net.id))
    assert kinds == [RevocationKind.NODE, RevocationKind.TOKEN]
    assert alice.mesh.members.revocations(net.id) == owner.mesh.members.revocations(net.id)
    # carol still holds a certificate that has not expired: every member refuses it now
    refused = {n.name: n.mesh.counters.dropped(DropReason.CERT_REVOKED) for n in (owner, alice, bob)}
    for n in (owner, alice, bob):
        carol.mesh.add_peer(net.id, n.mesh.node_id, [n.reachable], sim.now)
        sim.internet.pump(carol.mesh)
    sim.run_for(20)
    assert cut_off(sim, carol, net, [owner, alice, bob]), sim.failure()
    assert all(n.mesh.counters.dropped(DropReason.CERT_REVOKED) > refused[n.name] for n in (owner, alice, bob))
    # the others keep talking
    mid = sim.send(alice, bob, "chat", b"still here")
    sim.run_for(2)
    assert [m.data for m in bob.of(ev.ChannelMessage)] == [b"still here"]
    assert any(d.message_id == mid for d in alice.of(ev.MessageDelivered))
    assert sim.connected(alice, owner, net) and sim.connected(bob, owner, net) and sim.connected(alice, bob, net)
    with pytest.raises(UsageError, match="removed"):  # and nobody adds it back by hand
        alice.mesh.add_peer(net.id, carol.mesh.node_id, [carol.reachable], sim.now)


def test_a_revocation_signed_by_a_plain_member_is_refused_and_counted() -> None:
    sim, net, owner, (alice, bob) = members("remove-forged", "alice", "bob")
    with pytest.raises(UsageError, match="only the owner or an admin"):
        alice.mesh.remove_member(net.id, bob.mesh.node_id, sim.now)
    wall = int(sim.now + alice.mesh.wall_offset)
    forged = sign_revocation(alice.mesh.identity, Revocation(RevocationKind.NODE, net.id, bob.mesh.node_id.raw, wall,
                                                             wall + 86400, alice.mesh.node_id))
    peer = alice.mesh.table.get(net.id, owner.mesh.node_id)
    assert peer is not None
    alice.mesh.act(sim.now, lambda out: out.control(peer, "member.revoked", encode_revocations([forged.encode()])))
    sim.internet.pump(alice.mesh)
    sim.run_for(5)
    assert owner.mesh.counters.dropped(DropReason.REVOCATION_INVALID) == 1
    assert not owner.of(ev.MemberRemoved) and owner.mesh.members.revocations(net.id) == []
    assert sim.connected(owner, bob, net) and sim.connected(bob, owner, net)


def test_a_member_that_comes_later_learns_the_revocation_when_its_session_comes_up() -> None:
    sim, net, owner, (alice, bob) = members("remove-later", "alice", "bob")
    owner.mesh.remove_member(net.id, bob.mesh.node_id, sim.now)
    sim.internet.pump(owner.mesh)
    sim.run_for(5)
    dave = sim.add_node("dave")
    sim.join(dave, owner, net)
    sim.run_for(10)
    assert sim.connected(dave, owner, net), sim.failure()
    assert dave.mesh.members.revocations(net.id) == owner.mesh.members.revocations(net.id) != []
    assert [e.peer for e in dave.of(ev.MemberRemoved)] == [bob.mesh.node_id, None]  # (None: bob's invite)
    dh = dave.mesh.counters["handshake.dh_performed"]
    bob.mesh.add_peer(net.id, dave.mesh.node_id, [dave.reachable], sim.now)  # bob tries the newcomer
    sim.internet.pump(bob.mesh)
    sim.run_for(10)
    assert not sim.connected(bob, dave, net)
    # dave joined after the owner rotated the key: bob's handshakes under the old key fail mac1, before any DH
    assert dave.mesh.network(net.id).epoch == 1 and dave.mesh.counters.dropped(DropReason.BAD_MAC1) > 0
    assert dave.mesh.counters.dropped(DropReason.CERT_REVOKED) == 0 and dave.mesh.counters["handshake.dh_performed"] == dh


def _make_admin(sim: SimMesh, owner: SimNode, node: SimNode, net: Network) -> None:
    """The owner names ``node`` an admin (``Renewal.promote``, as ``omertactl network admin`` does)."""
    owner.mesh.act(sim.now, lambda out: owner.mesh.renewal.promote(owner.mesh.network(net.id), node.mesh.node_id, sim.now, out))
    sim.run_for(1)
    assert node.mesh.members.is_admin(node.mesh.network(net.id), node.mesh.node_id, sim.now)


def test_an_admin_removes_a_member_but_not_another_admin() -> None:
    sim, net, owner, (ada, bob, alice, carol) = members("remove-by-admin", "ada", "bob", "alice", "carol")
    _make_admin(sim, owner, ada, net)
    _make_admin(sim, owner, bob, net)
    sim.run_for(5)  # their records, now with admin certificates, reach the members
    with pytest.raises(UsageError, match="ask the owner"):
        ada.mesh.remove_member(net.id, bob.mesh.node_id, sim.now)
    with pytest.raises(UsageError, match="owner cannot be removed"):
        ada.mesh.remove_member(net.id, owner.mesh.node_id, sim.now)
    ada.mesh.remove_member(net.id, carol.mesh.node_id, sim.now)
    sim.internet.pump(ada.mesh)
    sim.run_for(5)
    assert cut_off(sim, carol, net, [owner, ada, bob, alice]), sim.failure()
    assert all([(e.peer, e.by) for e in n.of(ev.MemberRemoved)] == [(carol.mesh.node_id, ada.mesh.node_id), (None, ada.mesh.node_id)]
               for n in (owner, bob, alice))  # (ada holds the owner's use marks: it revokes carol's invite too)
    assert sum(n.mesh.counters.dropped(DropReason.REVOCATION_INVALID) for n in (owner, ada, bob, alice)) == 0
    # the owner rotated the key when ada's removal reached it (only the owner rotates): every member but carol follows
    assert {n.name: n.mesh.network(net.id).epoch for n in (owner, ada, bob, alice, carol)} == {
        "owner": 1, "ada": 1, "bob": 1, "alice": 1, "carol": 0}
    assert ada.mesh.counters["rekey.taken"] == 1 and sim.all_connected(net, [owner, ada, bob, alice])


def test_the_invite_that_enrolled_a_removed_member_admits_nobody_else() -> None:
    sim, net, owner, (alice,) = members("remove-token", "alice")
    text = owner.mesh.invite(net.id, [owner.reachable], sim.now, InviteOptions(uses=2))  # shared with a friend
    carol, dave = sim.add_node("carol"), sim.add_node("dave")
    carol.mesh.join(text, sim.now)
    sim.internet.pump(carol.mesh)
    sim.run_for(5)
    assert sim.connected(carol, owner, net), sim.failure()
    owner.mesh.remove_member(net.id, carol.mesh.node_id, sim.now)
    sim.internet.pump(owner.mesh)
    sim.run_for(5)
    dave.mesh.join(text, sim.now)  # its second use, by a new identity: refused
    sim.internet.pump(dave.mesh)
    sim.run_for(5)
    assert [r.reason for r in dave.of(ev.EnrolmentRefused)] == ["revoked"]
    assert not sim.connected(dave, owner, net)


def test_a_member_the_remover_has_no_session_with_gets_it_within_five_seconds() -> None:
    """(Here through a relayed session the owner opens at once, whose start exchanges the revocations; members also
    pass a new one on to theirs.)"""
    sim, net, owner, (alice, bob, carol) = members("remove-relay-on", "alice", "bob", "carol")
    sim.internet.block(owner.reachable[0], alice.reachable[0])  # no session between the owner and alice any more
    for a, b in ((owner, alice), (alice, owner)):
        p = a.mesh.table.get(net.id, b.mesh.node_id)
        assert p is not None
        a.mesh.act(sim.now, lambda out, a=a, p=p: a.mesh.members.drop(p, sim.now, "test: cut", False, out))
    owner.mesh.remove_member(net.id, carol.mesh.node_id, sim.now)
    sim.internet.pump(owner.mesh)
    sim.run_for(5)
    assert alice.mesh.members.revocations(net.id) == owner.mesh.members.revocations(net.id)
    assert cut_off(sim, carol, net, [owner, alice, bob]), sim.failure()
