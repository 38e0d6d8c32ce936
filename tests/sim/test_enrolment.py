"""Invites of owned networks in the simulator (docs/membership.md 3.3; issue 16's "Must show"): a one-time invite
admits one node, which then holds a certificate and connects to the other members, and a second use is refused
with "used"; an expired invite is refused with "expired"; a member that is no admin answers no enrolment and spends
no Diffie-Hellman on it; open networks keep their version 1 invites."""

from __future__ import annotations

import pytest

from helpers import signed_cert
from omerta_mesh.core import events as ev
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.errors import DropReason, UsageError
from omerta_mesh.core.member.check import Accepted
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.certs import Role, encode_credential
from omerta_mesh.core.wire.invite import PREFIX, PREFIX_V2, PREFIX_V3, decode_invite
from omerta_mesh.sim.harness import SimMesh, SimNode


def owned(seed: str, *names: str) -> tuple[SimMesh, Network, SimNode, list[SimNode]]:
    sim = SimMesh(seed, config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0))
    owner = sim.add_node("owner")
    others = [sim.add_node(n) for n in names]
    net = owner.mesh.create_network("home", sim.now, owned=True)
    return sim, net, owner, others


def invite(sim: SimMesh, admin: SimNode, net: Network, **opts: object) -> str:
    return admin.mesh.invite(net.id, [admin.reachable], sim.now, InviteOptions(**opts))  # type: ignore[arg-type]


def join(sim: SimMesh, node: SimNode, text: str, seconds: float = 5.0) -> None:
    node.mesh.join(text, sim.now)
    sim.internet.pump(node.mesh)
    sim.run_for(seconds)


def make_admin(sim: SimMesh, owner: SimNode, node: SimNode, net: Network) -> None:
    """``node`` in ``net`` with an admin certificate the owner signed (a day long)."""
    node.mesh.add_network(net, sim.now)
    cert = signed_cert(net, node.mesh.node_id, owner.mesh.identity, Role.ADMIN, sim.now, sim.now + 86400, serial=7)
    node.mesh.set_credential(net.id, encode_credential([cert]), sim.now)


def reused_at(sim: SimMesh, node: SimNode, admin: SimNode, owner: SimNode, net: Network, text: str) -> list[str]:
    """``node`` (in ``net`` by an unused invite of its own) presents invite ``text``'s token again, at ``admin``: the
    reasons of the refusals it gets."""
    node.mesh.join(owner.mesh.invite(net.id, [], sim.now), sim.now)
    token = decode_invite(text).token
    assert token is not None
    node.mesh.hs.credentials.enrol(net.id, token.encode())
    sim.introduce(node, admin, net)
    sim.run_for(3)
    return [r.reason for r in node.of(ev.EnrolmentRefused)]


def holds_certificate(sim: SimMesh, node: SimNode, net: Network) -> bool:
    own = node.mesh.hs.credentials.own(net.id)
    return own is not None and isinstance(node.mesh.hs.credentials.check(net, node.mesh.node_id, own, sim.now), Accepted)


def test_a_one_time_invite_admits_one_node_which_connects_to_the_members_and_refuses_a_second_use() -> None:
    sim, net, owner, (alice, bob, carol) = owned("enrol-once", "alice", "bob", "carol")
    text = invite(sim, owner, net, uses=1, name="alice-laptop", tags=("dev",))
    assert text.startswith(PREFIX_V2)
    join(sim, alice, text)
    assert alice.of(ev.Enrolled) and holds_certificate(sim, alice, net), sim.failure()
    assert sim.connected(alice, owner, net) and sim.connected(owner, alice, net), sim.failure()
    join(sim, bob, invite(sim, owner, net, uses=1))  # another member, admitted by its own invite
    sim.run_for(30)
    assert holds_certificate(sim, bob, net)
    assert sim.connected(bob, alice, net) and sim.connected(alice, bob, net), sim.failure()  # member to member
    join(sim, carol, text)  # alice's invite again
    refused = carol.of(ev.EnrolmentRefused)
    assert [r.reason for r in refused] == ["used"] and "already used" in refused[0].fix
    assert not holds_certificate(sim, carol, net) and not sim.connected(carol, owner, net)
    assert owner.mesh.counters["enrol.issued"] == 2 and owner.mesh.counters["enrol.refused.used"] == 1
    assert [(e.peer, e.uses) for e in owner.of(ev.InviteRedeemed)] == [(alice.mesh.node_id, 1), (bob.mesh.node_id, 1)]
    missing = owner.mesh.counters.dropped(DropReason.CERT_MISSING)
    assert missing == 0  # a joiner sends no record before it holds a certificate (every member would refuse it)
    sim.run_for(30)
    assert not sim.connected(carol, owner, net) and owner.mesh.counters["enrol.refused.used"] == 1  # it stopped asking
    assert owner.mesh.counters.dropped(DropReason.CERT_MISSING) == missing  # and sends no handshakes without a certificate


def test_an_expired_invite_is_refused_with_expired() -> None:
    sim, net, owner, (dave,) = owned("enrol-expired", "dave")
    text = invite(sim, owner, net, expires=60)
    sim.run_for(61)
    join(sim, dave, text)
    assert [r.reason for r in dave.of(ev.EnrolmentRefused)] == ["expired"]
    assert not holds_certificate(sim, dave, net) and not sim.connected(dave, owner, net)
    assert owner.mesh.table.get(net.id, dave.mesh.node_id) is None  # the responder kept no peer for it


def test_a_member_answers_no_enrolment_and_spends_no_diffie_hellman() -> None:
    sim, net, owner, (alice, eve) = owned("enrol-not-admin", "alice", "eve")
    join(sim, alice, invite(sim, owner, net))
    assert holds_certificate(sim, alice, net)
    with pytest.raises(UsageError, match="only an admin"):
        invite(sim, alice, net)
    dh = alice.mesh.counters["handshake.dh_performed"]
    eve.mesh.join(owner.mesh.invite(net.id, [], sim.now, InviteOptions()), sim.now)  # no address: the owner is out of reach
    sim.introduce(eve, alice, net)  # so eve's enrolment goes to alice, who is no admin
    sim.run_for(3)
    assert alice.mesh.counters.dropped(DropReason.ENROL_NOT_ADMIN) > 0
    assert alice.mesh.counters["handshake.dh_performed"] == dh and alice.mesh.table.get(net.id, eve.mesh.node_id) is None


def test_enrolments_have_their_own_budget() -> None:
    sim, net, owner, joiners = owned("enrol-budget", *[f"j{i}" for i in range(14)])
    text = invite(sim, owner, net, uses=255)
    for j in joiners:  # all at once: 10 (the burst) are answered, the rest wait for the budget
        j.mesh.join(text, sim.now)
    sim.pump()
    sim.run_for(0.5)
    assert owner.mesh.counters["enrol.issued"] == 10 and owner.mesh.counters.dropped(DropReason.ENROL_RATE) == 4
    sim.run_for(10)  # the retries find budget again
    assert all(holds_certificate(sim, j, net) for j in joiners)


def test_open_networks_keep_version_1_invites() -> None:
    sim = SimMesh("enrol-open")
    a, b = sim.add_node("a"), sim.add_node("b")
    net = a.mesh.create_network("open", sim.now)
    text = a.mesh.invite(net.id, [a.reachable])
    assert text.startswith(PREFIX) and net.owner is None
    with pytest.raises(UsageError, match="is open"):
        a.mesh.invite(net.id, [a.reachable], sim.now, InviteOptions(uses=2))
    join(sim, b, text)
    assert sim.connected(b, a, net) and not b.of(ev.Enrolled)


def test_a_use_mark_reaches_another_admin_which_then_refuses_the_token_as_used() -> None:
    sim, net, owner, (adam, alice, carol) = owned("enrol-marks", "adam", "alice", "carol")
    make_admin(sim, owner, adam, net)
    sim.introduce(adam, owner, net)
    sim.run_for(3)
    assert sim.connected(adam, owner, net), sim.failure()
    text = invite(sim, owner, net, uses=1)
    join(sim, alice, text)
    assert holds_certificate(sim, alice, net)
    assert [m.enrolled for m in adam.mesh.enrolment.marks(net.id)] == [alice.mesh.node_id]  # pushed by the owner
    assert reused_at(sim, carol, adam, owner, net, text) == ["used"]  # alice's invite again, at the other admin
    assert adam.mesh.counters["enrol.refused.used"] == 1 and not holds_certificate(sim, carol, net)


def test_the_harness_join_signs_an_owned_networks_token_at_the_virtual_time() -> None:
    sim = SimMesh("enrol-harness", start=200_000.0)  # a day and more after the epoch: a token signed at 0 is expired
    owner, alice = sim.add_node("owner"), sim.add_node("alice")
    net = owner.mesh.create_network("home", sim.now, owned=True)
    sim.join(alice, owner, net)
    sim.run_for(5)
    assert alice.of(ev.Enrolled) and sim.connected(alice, owner, net), sim.failure()


def test_an_admin_that_connects_later_gets_the_marks_it_missed() -> None:
    sim, net, owner, (adam, alice, carol) = owned("enrol-marks-later", "adam", "alice", "carol")
    text = invite(sim, owner, net, uses=1)
    join(sim, alice, text)  # redeemed while adam is not connected to anyone
    assert holds_certificate(sim, alice, net)
    make_admin(sim, owner, adam, net)
    assert adam.mesh.enrolment.marks(net.id) == []
    sim.introduce(adam, owner, net)
    sim.run_for(3)
    assert [m.enrolled for m in adam.mesh.enrolment.marks(net.id)] == [alice.mesh.node_id]  # sent when they connected
    assert reused_at(sim, carol, adam, owner, net, text) == ["used"]


def test_a_member_whose_certificate_expired_is_enrolled_again_by_a_new_invite() -> None:
    sim, net, owner, (alice,) = owned("enrol-again", "alice")
    join(sim, alice, invite(sim, owner, net, lifetime=100))
    assert holds_certificate(sim, alice, net) and sim.connected(alice, owner, net)
    sim.internet.block(alice.host.ip, owner.host.ip)  # no renewal: the owner is out of reach
    sim.run_for(400)  # past the certificate's expiry and the session's end
    assert not holds_certificate(sim, alice, net) and not sim.connected(owner, alice, net)
    sim.internet.unblock(alice.host.ip, owner.host.ip)
    join(sim, alice, invite(sim, owner, net), 10)
    assert len(alice.of(ev.Enrolled)) == 2 and holds_certificate(sim, alice, net), sim.failure()
    assert sim.connected(alice, owner, net), sim.failure()


def test_a_use_mark_is_passed_on_to_an_admin_the_redeeming_admin_has_no_session_with() -> None:
    sim = SimMesh("enrol-marks-passed", config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0, relay=False))  # (no relayed path)
    owner, adam, mia, alice, carol = (sim.add_node(n) for n in ("owner", "adam", "mia", "alice", "carol"))
    net = owner.mesh.create_network("home", sim.now, owned=True)
    for far in (owner, alice):  # the owner (and the node it enrols) never meet adam: mia, a plain member, is between
        sim.internet.block(far.host.ip, adam.host.ip)
    make_admin(sim, owner, adam, net)
    join(sim, mia, invite(sim, owner, net, uses=1))
    sim.introduce(adam, mia, net)
    sim.run_for(5)
    assert sim.connected(adam, mia, net) and not sim.connected(adam, owner, net), sim.failure()
    marks_before = len(adam.mesh.enrolment.marks(net.id))
    text = invite(sim, owner, net, uses=1)
    join(sim, alice, text)  # redeemed by the owner, told to mia, passed on by mia to adam
    assert holds_certificate(sim, alice, net) and not sim.connected(adam, owner, net) and not sim.connected(adam, alice, net)
    assert [m.enrolled for m in adam.mesh.enrolment.marks(net.id)][marks_before:] == [alice.mesh.node_id]
    assert reused_at(sim, carol, adam, owner, net, text) == ["used"]


def test_when_the_inviter_is_away_another_admin_the_invite_names_enrols_the_joiner() -> None:
    sim, net, owner, (ada, mia, alice, bob) = owned("enrol-other-admin", "ada", "mia", "alice", "bob")
    for n in (ada, mia):
        join(sim, n, invite(sim, owner, net, uses=1))
    owner.mesh.act(sim.now, lambda out: owner.mesh.renewal.promote(owner.mesh.network(net.id), ada.mesh.node_id, sim.now, out))
    sim.run_for(10)  # ada's record carries its admin certificate
    text = invite(sim, owner, net, uses=1)
    inv = decode_invite(text)
    assert text.startswith(PREFIX_V3) and [n for n, _ in inv.admins] == [ada.mesh.node_id]  # mia is no admin
    owner.host.down()  # the inviter is away
    join(sim, alice, text, seconds=15)
    assert holds_certificate(sim, alice, net) and [e.peer for e in alice.of(ev.Enrolled)] == [ada.mesh.node_id]
    assert alice.mesh.counters["enrol.asked_other_admin"] == 1 and ada.mesh.counters["enrol.issued"] == 1
    sim.run_for(10)
    assert sim.connected(alice, ada, net) and sim.connected(alice, mia, net), sim.failure()
    # the one use is spent: bob is refused, as "used", by the admin that enrolled alice
    join(sim, bob, text, seconds=15)
    assert [r.reason for r in bob.of(ev.EnrolmentRefused)] == ["used"] and not holds_certificate(sim, bob, net)


def test_a_joiner_asks_only_the_inviter_while_it_answers() -> None:
    sim, net, owner, (ada, alice) = owned("enrol-inviter-first", "ada", "alice")
    join(sim, ada, invite(sim, owner, net, uses=1))
    owner.mesh.act(sim.now, lambda out: owner.mesh.renewal.promote(owner.mesh.network(net.id), ada.mesh.node_id, sim.now, out))
    sim.run_for(10)
    text = invite(sim, owner, net, uses=1)
    assert decode_invite(text).admins
    join(sim, alice, text, seconds=15)
    assert [e.peer for e in alice.of(ev.Enrolled)] == [owner.mesh.node_id]
    assert alice.mesh.counters["enrol.asked_other_admin"] == 0 and ada.mesh.counters["enrol.issued"] == 0
