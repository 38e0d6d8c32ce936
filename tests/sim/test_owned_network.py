"""Owned networks in the simulator (docs/membership.md, 2.4): a member with a valid certificate connects; one with
a missing, forged, expired or wrong certificate is refused in the handshake, before any peer state, and counted;
a certificate that expires while its admin is unreachable stops the next handshake (the clock is virtual), and one
renewed while an admin is reachable keeps its holder connected (2.5)."""

from __future__ import annotations

from omerta_mesh.core import events as ev
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.certs import Role
from omerta_mesh.sim.harness import SimMesh, SimNode
from sim.test_owned_records import _issue

DAY = 86400


def owned(seed: str) -> tuple[SimMesh, Network, SimNode, SimNode, SimNode]:
    sim = SimMesh(seed, config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0))  # exact expiry on the virtual clock
    owner, alice, mallory = sim.add_node("owner"), sim.add_node("alice"), sim.add_node("mallory")
    net = Network(sim.entropy.random_bytes(32), "owned", owner=owner.mesh.node_id)
    for n in (owner, alice, mallory):
        n.mesh.add_network(net, sim.now)
    now = sim.now
    owner.mesh.set_credential(net.id, _issue(owner, owner.mesh.identity, net, Role.OWNER, now, now + 30 * DAY), sim.now)
    alice.mesh.set_credential(net.id, _issue(alice, owner.mesh.identity, net, Role.MEMBER, now, now + 30 * DAY), sim.now)
    return sim, net, owner, alice, mallory


def _drops(node: SimNode, reason: DropReason) -> int:
    return node.mesh.counters.dropped(reason)


def test_members_with_valid_certificates_connect_and_a_node_without_one_is_refused() -> None:
    sim, net, owner, alice, mallory = owned("owned-missing")
    sim.introduce_all(net)
    sim.run_for(10)
    assert sim.connected(owner, alice, net) and sim.connected(alice, owner, net), sim.failure()
    assert not sim.connected(owner, mallory, net) and not sim.connected(alice, mallory, net)
    assert _drops(owner, DropReason.CERT_MISSING) > 0 and _drops(alice, DropReason.CERT_MISSING) > 0
    assert owner.mesh.table.get(net.id, mallory.mesh.node_id) is None or not owner.mesh.table.get(net.id, mallory.mesh.node_id).connected


def test_a_missing_credential_costs_the_responder_no_diffie_hellman() -> None:
    sim, net, owner, alice, mallory = owned("owned-no-dh")
    sim.introduce(mallory, owner, net)
    sim.run_for(12)  # mallory retries every 5 s
    assert _drops(owner, DropReason.CERT_MISSING) >= 2
    assert owner.mesh.counters["handshake.dh_performed"] == 0  # seen in the clear header, right after mac1
    assert owner.mesh.table.get(net.id, mallory.mesh.node_id) is None


def test_forged_certificates_are_refused_before_any_peer_state() -> None:
    sim, net, owner, alice, mallory = owned("owned-forged")
    now = sim.now
    # signed by a member (alice), and by mallory's own key: neither is the owner or an admin
    mallory.mesh.set_credential(net.id, _issue(mallory, alice.mesh.identity, net, Role.MEMBER, now, now + DAY), sim.now)
    sim.introduce(mallory, owner, net)
    sim.run_for(3)
    assert not sim.connected(mallory, owner, net)
    assert _drops(owner, DropReason.CERT_ISSUER_NOT_ADMIN) > 0
    assert owner.mesh.table.get(net.id, mallory.mesh.node_id) is None  # no peer state kept for it
    mallory.mesh.set_credential(net.id, _issue(mallory, mallory.mesh.identity, net, Role.ADMIN, now, now + DAY), sim.now)
    sim.run_for(12)
    assert not sim.connected(mallory, owner, net) and _drops(owner, DropReason.CERT_ISSUER_NOT_ADMIN) >= 2


def test_an_expired_or_stolen_certificate_is_refused() -> None:
    sim, net, owner, alice, mallory = owned("owned-expired")
    now = sim.now
    mallory.mesh.set_credential(net.id, _issue(mallory, owner.mesh.identity, net, Role.MEMBER, 0, now - 10), sim.now)
    sim.introduce(mallory, owner, net)
    sim.run_for(3)
    assert not sim.connected(mallory, owner, net) and _drops(owner, DropReason.CERT_EXPIRED) > 0
    mallory.mesh.set_credential(net.id, alice.mesh.credentials.own(net.id), sim.now)  # alice's, copied
    sim.run_for(12)
    assert not sim.connected(mallory, owner, net) and _drops(owner, DropReason.CERT_WRONG_SUBJECT) > 0


def test_the_responder_is_checked_too() -> None:
    sim, net, owner, alice, mallory = owned("owned-responder")
    owner.mesh.set_credential(net.id, _issue(owner, alice.mesh.identity, net, Role.OWNER, sim.now, sim.now + DAY), sim.now)
    sim.introduce(alice, owner, net)
    sim.run_for(3)
    assert not sim.connected(alice, owner, net)
    assert _drops(alice, DropReason.CERT_ISSUER_NOT_ADMIN) > 0  # the answer's credential, checked by the initiator


def test_a_certificate_that_expires_while_its_admin_is_unreachable_is_refused_after_expiry() -> None:
    """Issue 16's "Must show": alice's 100 s certificate cannot be renewed (the owner, its only admin, went out of
    reach), so at its expiry her next handshake with mallory, a member she talks to, is refused (clock injected)."""
    sim, net, owner, alice, mallory = owned("owned-expiry")
    mallory.mesh.set_credential(net.id, _issue(mallory, owner.mesh.identity, net, Role.MEMBER, sim.now, sim.now + 30 * DAY), sim.now)
    alice.mesh.set_credential(net.id, _issue(alice, owner.mesh.identity, net, Role.MEMBER, sim.now, sim.now + 100), sim.now)
    sim.introduce(mallory, owner, net)
    sim.introduce(alice, mallory, net)
    sim.run_for(5)
    assert sim.connected(alice, mallory, net) and sim.connected(mallory, owner, net), sim.failure()
    for member in (alice, mallory):  # the owner goes out of reach (no relay either)
        sim.internet.block(member.host.ip, owner.host.ip)
    sim.run_for(400)  # past the expiry, the 120 s rekey and the 180 s session limit
    assert alice.mesh.counters["renew.asked"] > 0 and not alice.of(ev.CredentialRenewed)  # she asked; nobody answered
    assert not sim.connected(alice, mallory, net) and not sim.connected(mallory, alice, net)
    assert _drops(mallory, DropReason.CERT_EXPIRED) > 0


def test_renewal_keeps_a_member_connected_across_what_would_have_been_its_expiry() -> None:
    sim, net, owner, alice, mallory = owned("owned-renewal")
    alice.mesh.set_credential(net.id, _issue(alice, owner.mesh.identity, net, Role.MEMBER, sim.now, sim.now + 100), sim.now)
    sim.introduce(alice, owner, net)
    sim.run_for(5)
    assert sim.connected(alice, owner, net), sim.failure()
    sim.run_for(400)  # four lifetimes of the first certificate, each renewed at two thirds of it
    assert sim.connected(alice, owner, net) and sim.connected(owner, alice, net), sim.failure()
    renewed = alice.of(ev.CredentialRenewed)
    assert len(renewed) >= 4 and all(r.peer == owner.mesh.node_id for r in renewed)
    leaf = alice.mesh.credentials.own_certificate(net.id)
    assert leaf is not None and leaf.not_after > sim.now and leaf.not_after - leaf.not_before == 100
    assert leaf.name == "alice" and leaf.serial != 1 and owner.mesh.counters["renew.issued"] == len(renewed)
    assert _drops(owner, DropReason.CERT_EXPIRED) == 0
    rec = owner.mesh.record_of(net.id, alice.mesh.node_id)  # her record carries the renewed credential
    assert rec is not None and rec.credential == alice.mesh.credentials.own(net.id)


def test_an_open_network_beside_an_owned_one_works_as_before() -> None:
    sim, net, owner, alice, mallory = owned("owned-beside-open")
    open_net = sim.create_network(owner, "open")
    sim.introduce_all(open_net)
    sim.run_for(10)
    assert sim.all_connected(open_net), sim.failure()
