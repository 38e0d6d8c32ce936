"""Renewal and invite revocation in the simulator (docs/membership.md 2.5, 3.2): the owner signs its own certificate
again; a member of an admin (not the owner) is renewed by that admin, its admin certificate after it; an admin
refuses to renew a credential that does not pass its check now, in a word the member hears; a revoked invite is
refused as "revoked" by another admin, which heard the revocation."""

from __future__ import annotations

import pytest

from helpers import signed_cert
from omerta_mesh.core import events as ev
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.member.check import Accepted
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.certs import Certificate, Role, decode_credential, encode_credential
from omerta_mesh.core.wire.invite import decode_invite
from omerta_mesh.sim.harness import SimNode
from sim.test_enrolment import owned


def cert(net: Network, subject: SimNode, issuer: SimNode, role: Role, start: float, lifetime: int, serial: int = 1) -> Certificate:
    return signed_cert(net, subject.mesh.node_id, issuer.mesh.identity, role, start, start + lifetime, subject.name, serial)


def admin_and_member(seed: str, admin_life: int, member_life: int):  # type: ignore[no-untyped-def]
    """An owned network where the owner made adam an admin (for ``admin_life`` s) and adam made alice a member (for
    ``member_life`` s, his certificate after hers): ``sim, net, owner, adam, alice, adam's certificate``."""
    sim, net, owner, (adam, alice) = owned(seed, "adam", "alice")
    for n in (adam, alice):
        n.mesh.add_network(net, sim.now)
    admin = cert(net, adam, owner, Role.ADMIN, sim.now, admin_life)
    adam.mesh.set_credential(net.id, encode_credential([admin]), sim.now)
    member = cert(net, alice, adam, Role.MEMBER, sim.now, member_life)
    alice.mesh.set_credential(net.id, encode_credential([member, admin]), sim.now)
    return sim, net, owner, adam, alice, admin


def test_the_owner_signs_its_own_certificate_again() -> None:
    sim, net, owner, _ = owned("renew-owner")
    owner.mesh.set_credential(net.id, encode_credential([cert(net, owner, owner, Role.OWNER, sim.now, 90)]), sim.now)
    sim.run_for(200)
    renewed = owner.of(ev.CredentialRenewed)
    assert len(renewed) >= 3 and all(r.peer == owner.mesh.node_id for r in renewed)
    leaf = owner.mesh.credentials.own_certificate(net.id)
    assert leaf is not None and leaf.role is Role.OWNER and leaf.not_after > sim.now and leaf.not_after - leaf.not_before == 90


def test_an_admin_renews_its_members_certificate_with_its_own_after_it() -> None:
    sim, net, owner, adam, alice, admin = admin_and_member("renew-admin", 86400, 120)
    sim.introduce(alice, adam, net)  # (the owner is not in touch with alice: her admin is adam)
    sim.run_for(400)
    assert sim.connected(alice, adam, net), sim.failure()
    assert alice.of(ev.CredentialRenewed) and all(r.peer == adam.mesh.node_id for r in alice.of(ev.CredentialRenewed))
    own = alice.mesh.credentials.own(net.id)
    assert own is not None
    leaf, vouch = decode_credential(own)
    assert leaf.issuer == adam.mesh.node_id and leaf.not_after > sim.now and vouch == admin


def test_an_admin_refuses_to_renew_a_credential_that_does_not_pass_its_check() -> None:
    sim, net, owner, (alice,) = owned("renew-refused", "alice")
    alice.mesh.add_network(net, sim.now)
    alice.mesh.set_credential(net.id, encode_credential([cert(net, alice, owner, Role.MEMBER, sim.now, 86400)]), sim.now)
    sim.introduce(alice, owner, net)
    sim.run_for(3)
    assert sim.connected(alice, owner, net), sim.failure()
    stale = encode_credential([cert(net, alice, owner, Role.MEMBER, sim.now - 500, 100, serial=2)])  # expired
    peer = alice.mesh.find_peer(owner.mesh.node_id, net.id)
    alice.mesh.act(sim.now, lambda out: out.control(peer, "member.renew", stale))
    sim.run_for(2)
    assert [(r.reason, r.peer) for r in alice.of(ev.RenewalRefused)] == [("expired", owner.mesh.node_id)]
    assert owner.mesh.counters["renew.refused.expired"] == 1 and not alice.of(ev.CredentialRenewed)
    assert sim.connected(alice, owner, net)  # a refusal changes nothing else


def test_a_revoked_invite_is_refused_as_revoked_by_another_admin() -> None:
    sim, net, owner, (adam, carol) = owned("revoke-invite", "adam", "carol")
    adam.mesh.add_network(net, sim.now)
    adam.mesh.set_credential(net.id, encode_credential([cert(net, adam, owner, Role.ADMIN, sim.now, 86400)]), sim.now)
    sim.introduce(adam, owner, net)
    sim.run_for(3)
    assert sim.connected(adam, owner, net), sim.failure()
    text = owner.mesh.invite(net.id, [owner.reachable], sim.now, InviteOptions(uses=2))
    token = decode_invite(text).token
    assert token is not None
    now = sim.now
    owner.mesh.act(now, lambda out: owner.mesh.members.revoke_invite(net.id, token.token_id, now, out))
    sim.internet.pump(owner.mesh)
    sim.run_for(2)
    assert adam.mesh.credentials.revocations(net).token_revoked(token.token_id, sim.now)  # spread to the other admin
    carol.mesh.join(owner.mesh.invite(net.id, [], sim.now), sim.now)  # (carol's own, unused, to get the network)
    carol.mesh.hs.credentials.enrol(net.id, token.encode())
    sim.introduce(carol, adam, net)  # the revoked invite, at the other admin
    sim.run_for(3)
    assert [r.reason for r in carol.of(ev.EnrolmentRefused)] == ["revoked"]
    assert not carol.mesh.credentials.own(net.id)


def test_a_member_renews_before_its_admins_certificate_in_its_chain_expires() -> None:
    """adam's admin certificate lives 300 s (the owner renews it at 200 s); alice's, which adam issued, 3,000 s: she
    renews at five sixths of adam's (250 s), before the old one in her chain expires, so the owner and adam keep
    admitting her."""
    sim, net, owner, adam, alice, admin = admin_and_member("renew-chain", 300, 3000)
    sim.introduce(adam, owner, net)
    sim.introduce(alice, adam, net)
    sim.introduce(alice, owner, net)
    sim.run_for(700)
    assert adam.of(ev.CredentialRenewed) and alice.of(ev.CredentialRenewed), sim.failure()
    own = alice.mesh.credentials.own(net.id)  # renewed by adam (his new certificate after it) or by the owner
    assert isinstance(alice.mesh.credentials.check(net, alice.mesh.node_id, own, sim.now), Accepted)
    assert all(c.not_after > sim.now for c in decode_credential(own or b""))
    assert sim.connected(alice, owner, net) and sim.connected(alice, adam, net), sim.failure()


def test_the_owner_names_an_admin_who_then_invites_and_removes() -> None:
    """The owner promotes a member (network admin): it takes the admin certificate as a renewal, its record carries it,
    and it invites a node and removes a member; a member cannot promote, nor can the owner promote a node it has no
    session with or an admin again."""
    sim, net, owner, (alice, bob) = owned("promote", "alice", "bob")
    for n in (alice, bob):
        sim.join(n, owner, net)
        sim.run_for(5)
    sim.run_for(30)
    with pytest.raises(UsageError, match="only the owner"):
        alice.mesh.act(sim.now, lambda out: alice.mesh.renewal.promote(alice.mesh.network(net.id), bob.mesh.node_id, sim.now, out))
    owner.mesh.act(sim.now, lambda out: owner.mesh.renewal.promote(owner.mesh.network(net.id), alice.mesh.node_id, sim.now, out))
    sim.internet.pump(owner.mesh)
    sim.run_for(5)
    assert alice.mesh.credentials.own_certificate(net.id).role is Role.ADMIN
    assert any(e.peer == owner.mesh.node_id for e in alice.of(ev.CredentialRenewed))
    assert owner.mesh.members.is_admin(net, alice.mesh.node_id, sim.now) and bob.mesh.members.is_admin(net, alice.mesh.node_id, sim.now)
    with pytest.raises(UsageError, match="already admin"):
        owner.mesh.act(sim.now, lambda out: owner.mesh.renewal.promote(owner.mesh.network(net.id), alice.mesh.node_id, sim.now, out))
    carol = sim.add_node("carol")
    text = alice.mesh.invite(net.id, [alice.reachable], sim.now, InviteOptions(uses=1))
    carol.mesh.join(text, sim.now)
    sim.internet.pump(carol.mesh)
    sim.run_for(5)
    assert carol.of(ev.Enrolled) and sim.connected(carol, alice, net), sim.failure()
    alice.mesh.remove_member(net.id, bob.mesh.node_id, sim.now)
    sim.internet.pump(alice.mesh)
    sim.run_for(5)
    assert owner.mesh.table.get(net.id, bob.mesh.node_id) is None and carol.mesh.table.get(net.id, bob.mesh.node_id) is None
    dave = sim.add_node("dave")
    with pytest.raises(UsageError, match="no valid member certificate"):
        owner.mesh.act(sim.now, lambda out: owner.mesh.renewal.promote(owner.mesh.network(net.id), dave.mesh.node_id, sim.now, out))
