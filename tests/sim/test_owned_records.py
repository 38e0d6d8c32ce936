"""Signed peer records in owned networks (docs/membership.md, 2.4): a record carries its node's credential (flag bit
6), gossip spreads it, and a member stores a record only if the credential admits its node now. Records with a
missing, forged, stolen, expired or revoked credential are refused and counted under the handshake's ``cert_*``
reasons, never stored, never connected to; an open network's records carry none and spread as before."""

from __future__ import annotations

from helpers import signed_cert
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire import control as cw
from omerta_mesh.core.wire.certs import Certificate, Role, encode_credential
from omerta_mesh.core.wire.records import FLAG_CREDENTIAL, AddrClaim, PeerRecord, sign_record
from omerta_mesh.core.wire.revocations import Revocation, RevocationKind, sign_revocation
from omerta_mesh.sim.harness import SimMesh, SimNode

DAY = 86400
CERT_REASONS = [r for r in DropReason if r.value.startswith("cert_")]


def _cert(subject: SimNode, issuer: Identity, net: Network, role: Role, nb: float, na: float, serial: int = 1) -> Certificate:
    return signed_cert(net, subject.mesh.node_id, issuer, role, nb, na, subject.name, serial)


def _issue(subject: SimNode, issuer: Identity, net: Network, role: Role, nb: float, na: float) -> bytes:
    return encode_credential([_cert(subject, issuer, net, role, nb, na)])


def owned(seed: str) -> tuple[SimMesh, Network, dict[str, SimNode]]:
    """owner; alice (issued by the owner); carol an admin; bob issued by carol (a chain of two); mallory holds the key only."""
    sim = SimMesh(seed, config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0))
    n = {name: sim.add_node(name) for name in ("owner", "alice", "carol", "bob", "mallory")}
    owner = n["owner"].mesh.identity
    net = Network(sim.entropy.random_bytes(32), "owned", owner=owner.node_id)
    for node in n.values():
        node.mesh.add_network(net, sim.now)
    now = sim.now
    n["owner"].mesh.set_credential(net.id, _issue(n["owner"], owner, net, Role.OWNER, now, now + 30 * DAY), now)
    n["alice"].mesh.set_credential(net.id, _issue(n["alice"], owner, net, Role.MEMBER, now, now + 30 * DAY), now)
    admin = _cert(n["carol"], owner, net, Role.ADMIN, now, now + 30 * DAY)
    n["carol"].mesh.set_credential(net.id, encode_credential([admin]), now)
    bob = _cert(n["bob"], n["carol"].mesh.identity, net, Role.MEMBER, now, now + 30 * DAY, serial=2)
    n["bob"].mesh.set_credential(net.id, encode_credential([bob, admin]), now)
    return sim, net, n


def _star(sim: SimMesh, net: Network, hub: SimNode, spokes: list[SimNode]) -> None:
    """Each spoke knows only the hub: everything else it learns by gossip."""
    for s in spokes:
        sim.introduce(s, hub, net)


def _drops(node: SimNode) -> dict[str, int]:
    return {r.value: node.mesh.counters.dropped(r) for r in CERT_REASONS if node.mesh.counters.dropped(r)}


def _mallory_record(sim: SimMesh, net: Network, mallory: SimNode, seq: int, credential: bytes | None, left: bool = False) -> bytes:
    rec = PeerRecord(mallory.mesh.node_id, seq, int(sim.now + 3000), () if left else (mallory.reachable,), "mallory", left=left,
                     credential=credential)
    return sign_record(mallory.mesh.identity, net.id, rec).raw


def _gossip(sim: SimMesh, src: SimNode, dst: SimNode, net: Network, blobs: list[bytes]) -> None:
    """``src`` (a member in good standing, connected to ``dst``) passes these records on, as gossip passes any record."""
    peer = src.mesh.table.get(net.id, dst.mesh.node_id)
    assert peer is not None and peer.connected
    src.mesh.act(sim.now, lambda out: out.control(peer, "gossip.records", cw.encode_record_list(blobs)))
    sim.pump()
    sim.run_for(1)


def test_records_carry_credentials_and_members_learn_each_other_by_gossip() -> None:
    sim, net, n = owned("owned-records")
    _star(sim, net, n["owner"], [n["alice"], n["carol"], n["bob"]])
    sim.run_for(15)
    members = [n["owner"], n["alice"], n["carol"], n["bob"]]
    for a in members:
        for b in members:
            if a is not b:
                rec = a.mesh.record_of(net.id, b.mesh.node_id)
                assert rec is not None, (a.name, b.name, sim.failure())
                assert rec.credential == b.mesh.credentials.own(net.id) and rec.raw[45] & FLAG_CREDENTIAL
    assert sim.connected(n["alice"], n["bob"], net), sim.failure()  # a neighbour found by its record, not introduced
    assert all(_drops(m) == {} for m in members), {m.name: _drops(m) for m in members}
    assert all(m.mesh.record_of(net.id, n["mallory"].mesh.node_id) is None for m in members)


def test_forged_missing_stolen_and_expired_credentials_in_records_are_refused_and_counted() -> None:
    sim, net, n = owned("owned-forged-records")
    owner, alice, mallory = n["owner"], n["alice"], n["mallory"]
    sim.introduce(alice, owner, net)
    sim.run_for(5)
    assert sim.connected(alice, owner, net), sim.failure()
    now = sim.now
    forged = {
        DropReason.CERT_MISSING: None,
        DropReason.CERT_ISSUER_NOT_ADMIN: _issue(mallory, alice.mesh.identity, net, Role.MEMBER, now, now + DAY),  # a member signed
        DropReason.CERT_BAD_SIGNATURE: _issue(mallory, owner.mesh.identity, net, Role.MEMBER, now, now + DAY)[:-1] + b"\0",
        DropReason.CERT_WRONG_SUBJECT: alice.mesh.credentials.own(net.id),  # alice's, copied
        DropReason.CERT_EXPIRED: _issue(mallory, owner.mesh.identity, net, Role.MEMBER, 0, now - 10),
    }
    before = _drops(owner)
    blobs = [_mallory_record(sim, net, mallory, i + 1, cred) for i, cred in enumerate(forged.values())]
    blobs.append(_mallory_record(sim, net, mallory, 99, None, left=True))  # a departure of a node never held: adds nothing
    _gossip(sim, alice, owner, net, blobs)
    got = _drops(owner)
    for reason in forged:
        assert got.get(reason.value, 0) - before.get(reason.value, 0) == 1 + (reason is DropReason.CERT_MISSING), (reason, got)
    assert owner.mesh.record_of(net.id, mallory.mesh.node_id) is None
    assert owner.mesh.table.get(net.id, mallory.mesh.node_id) is None  # nothing connects to it
    # the same record with a credential the owner issued is taken: the refusals were the credentials'
    good = _issue(mallory, owner.mesh.identity, net, Role.MEMBER, now, now + DAY)
    _gossip(sim, alice, owner, net, [_mallory_record(sim, net, mallory, 100, good)])
    assert owner.mesh.record_of(net.id, mallory.mesh.node_id) is not None


def test_a_revoked_node_s_next_record_is_refused() -> None:
    sim, net, n = owned("owned-revoked-record")
    owner, alice, bob = n["owner"], n["alice"], n["bob"]
    _star(sim, net, owner, [alice, bob])
    sim.run_for(10)
    assert alice.mesh.record_of(net.id, bob.mesh.node_id) is not None, sim.failure()
    rev = sign_revocation(owner.mesh.identity, Revocation(RevocationKind.NODE, net.id, bob.mesh.node_id.raw, int(sim.now),
                                                          int(sim.now + DAY), owner.mesh.node_id))
    assert alice.mesh.credentials.revocations(alice.mesh.network(net.id)).add(rev, lambda _: False, sim.now) is None
    seq = alice.mesh.record_of(net.id, bob.mesh.node_id).seq
    bob.mesh.claim_addresses(net.id, AddrClaim(v4=bytes([100, 64, 0, 9])), sim.now)  # a change: bob re-signs and pushes
    sim.pump()
    sim.run_for(5)
    assert owner.mesh.record_of(net.id, bob.mesh.node_id).addrs is not None  # the owner (no revocation) took it
    assert alice.mesh.record_of(net.id, bob.mesh.node_id).seq == seq  # alice kept the old one
    assert _drops(alice).get("cert_revoked", 0) >= 1, _drops(alice)


def test_setting_a_new_credential_re_signs_and_pushes_our_record() -> None:
    sim, net, n = owned("owned-new-credential")
    owner, alice = n["owner"], n["alice"]
    sim.introduce(alice, owner, net)
    sim.run_for(5)
    seq = owner.mesh.record_of(net.id, alice.mesh.node_id).seq
    renewed = _issue(alice, owner.mesh.identity, net, Role.MEMBER, sim.now, sim.now + 60 * DAY)
    alice.mesh.set_credential(net.id, renewed, sim.now)
    sim.pump()
    sim.run_for(0.5)  # well within a gossip round: the push did it
    rec = owner.mesh.record_of(net.id, alice.mesh.node_id)
    assert rec.credential == renewed and rec.seq > seq


def test_an_open_network_s_records_carry_no_credential_and_spread_as_before() -> None:
    sim, net, n = owned("open-records")
    open_net = sim.create_network(n["owner"], "open")
    _star(sim, open_net, n["owner"], [n["alice"], n["mallory"]])
    sim.run_for(15)
    rec = n["alice"].mesh.record_of(open_net.id, n["mallory"].mesh.node_id)
    assert rec is not None and rec.credential is None and not rec.raw[45] & FLAG_CREDENTIAL, sim.failure()
    assert sim.connected(n["alice"], n["mallory"], open_net)
    assert all(_drops(x) == {} for x in n.values())


def test_leaving_forgets_our_credential() -> None:
    sim, net, n = owned("owned-leave")
    alice = n["alice"]
    alice.mesh.leave(net.id, sim.now)
    assert alice.mesh.credentials.own(net.id) is None
    alice.mesh.add_network(net, sim.now)  # back without one: no record of ours (members would refuse it), no credential
    assert alice.mesh.gossip.own(net.id) is None and alice.mesh.credentials.own(net.id) is None
