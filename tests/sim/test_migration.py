"""Open networks becoming owned in the simulator (docs/membership.md 7; issue 16: "networks created by earlier versions
become owned by their creator ... until then they keep working as today"). The creator claims its open network; the
members it invited adopt the claim and get a member certificate over their sessions; until ``enforce at`` the network
stays open on the wire, so a member that never adopts keeps talking; at ``enforce at`` the network is owned on every
member that adopted (messages keep flowing through the change), the owner rotates the key, and the member that never
adopted is left out. Claims from anyone but a member's inviter wait for its user; forged ones are dropped and counted."""

from __future__ import annotations

from omerta_mesh.core import events as ev
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.errors import DropReason, UsageError
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.certs import Role
from omerta_mesh.core.wire.claim import OwnerClaim, encode_message, sign_claim
from omerta_mesh.core.wire.rekey import Rekey, sign_rekey
from omerta_mesh.sim.harness import SimMesh, SimNode

TRANSITION = 60


def open_network(seed: str, *names: str) -> tuple[SimMesh, Network, SimNode, list[SimNode]]:
    """An open network made by "owner"; each name joins with an invite from the owner, all connected."""
    sim = SimMesh(seed, config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0, owner_transition=TRANSITION))
    owner = sim.add_node("owner")
    others = [sim.add_node(n) for n in names]
    net = owner.mesh.create_network("home", sim.now)
    for n in others:
        sim.join(n, owner, net)
        sim.run_for(3)
    sim.run_for(20)
    assert sim.all_connected(net, [owner, *others]), sim.failure()
    return sim, net, owner, others


def own(node: SimNode, net: Network, sim: SimMesh) -> OwnerClaim:
    claim = node.mesh.act(sim.now, lambda out: node.mesh.members.migration.own(net.id, sim.now, out))
    sim.pump()
    return claim


def claims(node: SimNode) -> list[tuple[str, bool, bool]]:
    return [(e.owner.short(), e.adopted, e.certified) for e in node.of(ev.OwnerClaimed)]


def test_the_creators_claim_is_adopted_and_enforced_and_a_member_that_never_adopts_is_left_out() -> None:
    sim, net, owner, (alice, bob) = open_network("migrate", "alice", "bob")
    carol = sim.add_node("carol")  # in the network without an inviter on record that adopts: a node that never upgrades
    carol.mesh.add_network(net, sim.now)
    carol.mesh.members.migration.forget(net.id)
    sim.introduce(carol, owner, net)
    sim.run_for(20)
    assert sim.all_connected(net), sim.failure()
    for n in sim.nodes.values():
        n.events.clear()
    claim = own(owner, net, sim)
    assert claim.enforce_at == int(sim.now + owner.mesh.wall_offset) + TRANSITION and claim.issuer == owner.mesh.node_id
    sim.run_for(5)
    me = owner.mesh.node_id.short()
    assert claims(owner) == [(me, True, True)]
    for n in (alice, bob):  # invited by the owner: adopted, with a member certificate from it
        assert claims(n) == [(me, True, True)], n.name
        cert = n.mesh.members.migration.credential(net.id)
        assert cert is not None and n.mesh.credentials.check(Network(net.key, "home", owner.mesh.node_id), n.mesh.node_id,
                                                             cert, sim.now).role is Role.MEMBER  # type: ignore[union-attr]
    assert claims(carol) == [(me, False, False)]  # it waits for carol's user
    # the transition: open on the wire, everyone (carol too) keeps talking
    assert all(n.mesh.network(net.id).owner is None for n in sim.nodes.values())
    sent = [sim.send(carol, alice, "chat", b"transition")]
    sim.run_for(2)
    assert [m.data for m in alice.of(ev.ChannelMessage)] == [b"transition"]
    # alice writes to bob through the enforcement
    while sim.now < claim.enforce_at - owner.mesh.wall_offset + 10:
        sent.append(sim.send(alice, bob, "chat", b"%d" % len(sent)))
        sim.run_for(1)
    for n in (owner, alice, bob):
        held = n.mesh.network(net.id)
        assert held.owner == owner.mesh.node_id and held.id == net.id, n.name
        assert [(e.owner, e.certified) for e in n.of(ev.NetworkOwned)] == [(owner.mesh.node_id, True)], n.name
        assert held.epoch == 1 and held.key != net.key, n.name  # the owner rotated the key at once
        assert n.mesh.credentials.own(net.id) is not None
    assert carol.mesh.network(net.id).owner is None and carol.mesh.network(net.id).key == net.key
    at = claim.enforce_at - owner.mesh.wall_offset  # the sessions made open were renewed at once with certificates
    for a in (owner, alice, bob):
        for b in (owner, alice, bob):
            if a is not b:
                p = a.mesh.table.get(net.id, b.mesh.node_id)
                assert p is not None and p.current is not None and p.current.created_at >= at, (a.name, b.name)
    got = [m.data for m in bob.of(ev.ChannelMessage)]
    assert got == [b"%d" % i for i in range(1, len(sent))]  # none lost through the change, in order
    sim.run_for(DEFAULT_CONFIG.reject_after_time + 30)  # every session made open has been renewed or has expired
    assert sim.all_connected(net, [owner, alice, bob]), sim.failure()
    assert not any(sim.connected(carol, n, net) or sim.connected(n, carol, net) for n in (owner, alice, bob))
    refused = sum(n.mesh.counters.dropped(r) for n in (owner, alice, bob) for r in (DropReason.CERT_MISSING, DropReason.BAD_MAC1))
    assert refused > 0
    mid = sim.send(bob, alice, "chat", b"owned")
    sim.run_for(2)
    assert [m.data for m in alice.of(ev.ChannelMessage)][-1] == b"owned" and mid in {d.message_id for d in bob.of(ev.MessageDelivered)}


def test_a_member_follows_its_inviter_or_an_earlier_versions_first_claim_and_others_wait_for_its_user() -> None:
    sim, net, owner, (alice,) = open_network("migrate-who", "alice")
    bob, dave, mallory = sim.add_node("bob"), sim.add_node("dave"), sim.add_node("mallory")
    sim.join(bob, alice, net)  # invited by alice, not by the owner
    sim.join(mallory, owner, net)
    dave.mesh.add_network(net, sim.now)  # an earlier version's entry: no inviter on record, the first claim is adopted
    dave.mesh.members.migration.expect(net.id, None)
    sim.introduce(dave, owner, net)
    sim.run_for(30)
    assert sim.all_connected(net), sim.failure()
    for n in sim.nodes.values():
        n.events.clear()
    mallory.mesh.members.migration.forget(net.id)  # (a member whose state does not say it joined: it may claim)
    bad = own(mallory, net, sim)  # a member claims the network first
    sim.run_for(3)
    m = mallory.mesh.node_id
    for n in (owner, alice, bob):  # not their inviter's: it waits
        assert [(e.owner, e.adopted) for e in n.of(ev.OwnerClaimed)] == [(m, False)], n.name
        assert n.mesh.members.migration.claim(net.id) is None and n.mesh.members.migration.waiting(net.id) == [bad]
    assert [(e.owner, e.adopted) for e in dave.of(ev.OwnerClaimed)] == [(m, True)]  # the first claim, adopted
    for n in sim.nodes.values():
        n.events.clear()
    good = own(owner, net, sim)
    sim.run_for(3)
    o = owner.mesh.node_id
    assert [(e.owner, e.adopted, e.certified) for e in alice.of(ev.OwnerClaimed)] == [(o, True, True)]
    # bob, invited by alice: the owner's claim (and certificate) waited until alice passed the claim on
    assert [(e.owner, e.adopted, e.certified) for e in bob.of(ev.OwnerClaimed)][-1] == (o, True, True)
    assert bob.mesh.members.migration.claim(net.id) == good
    assert [(e.owner, e.adopted, e.conflict) for e in dave.of(ev.OwnerClaimed)] == [(o, False, True)]
    assert mallory.mesh.members.migration.claim(net.id) == bad  # (it keeps its own)
    # dave's user picks the creator's claim: adopted, certified with the certificate that came with it
    got = dave.mesh.act(sim.now, lambda out: dave.mesh.members.migration.accept(net.id, o, sim.now, out))
    assert got == good and dave.mesh.members.migration.claim(net.id) == good
    assert dave.mesh.members.migration.credential(net.id) is not None
    try:
        dave.mesh.act(sim.now, lambda out: dave.mesh.members.migration.accept(net.id, bob.mesh.node_id, sim.now, out))
        raise AssertionError("a claim that never came was accepted")
    except UsageError as e:
        assert "no owner claim" in str(e) and "network own home" in str(e)
    sim.run_until(good.enforce_at - owner.mesh.wall_offset + 5)
    for n in (owner, alice, bob, dave):
        assert n.mesh.network(net.id).owner == o, n.name
        assert n.mesh.credentials.own(net.id) is not None, n.name
    assert mallory.mesh.network(net.id).owner == m  # (its own claim, enforced first: a split nobody else followed)
    try:  # a node that joined the network (its inviter on record) cannot claim it
        own(alice, net, sim)
        raise AssertionError("a member that joined claimed the network")
    except UsageError as e:
        assert "only its creator claims it" in str(e) and "on the machine that created it" in str(e)


def test_forged_malformed_and_flooded_claims_are_dropped_and_counted() -> None:
    sim, net, owner, (alice,) = open_network("migrate-bad", "alice")
    peer = alice.mesh.table.get(net.id, owner.mesh.node_id)
    assert peer is not None

    def deliver(body: bytes) -> None:
        alice.mesh.act(sim.now, lambda out: alice.mesh.members.migration.receive(peer, body, sim.now, out))

    wall = int(sim.now + owner.mesh.wall_offset)
    real = sign_claim(owner.mesh.identity, OwnerClaim(net.id, owner.mesh.node_id, wall, wall + 60))
    other = sim.add_node("other").mesh
    forged = OwnerClaim(net.id, owner.mesh.node_id, wall, wall + 60, sign_claim(other.identity, OwnerClaim(
        net.id, other.node_id, wall, wall + 60)).signature)  # owner named, someone else's signature
    elsewhere = sign_claim(owner.mesh.identity, OwnerClaim(other.create_network("x", sim.now).id, owner.mesh.node_id, wall, wall + 60))
    flipped = bytearray(real.encode())
    flipped[20] ^= 1
    for body in (b"", b"garbage", real.encode()[:-1], bytes(flipped), encode_message(forged), encode_message(elsewhere),
                 real.encode() + b"\0" * 2000):
        deliver(body)
    assert alice.mesh.counters.dropped(DropReason.OWNER_CLAIM_INVALID) == 7
    assert alice.mesh.members.migration.claim(net.id) is None and not alice.of(ev.OwnerClaimed)
    # claims of many would-be owners: at most MAX_WAITING wait; the rest are dropped and counted
    from omerta_mesh.core.member.migration import MAX_WAITING
    alice.mesh.members.migration.forget(net.id)  # (no inviter on record: every claim waits)
    alice.mesh.members.migration.expect(net.id, alice.mesh.node_id)
    for i in range(MAX_WAITING + 5):
        n = sim.add_node(f"w{i}").mesh
        deliver(encode_message(sign_claim(n.identity, OwnerClaim(net.id, n.node_id, wall, wall + 60))))
    assert len(alice.mesh.members.migration.waiting(net.id)) == MAX_WAITING
    assert alice.mesh.counters.dropped(DropReason.OWNER_CLAIM_INVALID) == 7 + 5
    assert alice.mesh.network(net.id).owner is None and sim.connected(alice, owner, net)
    # an owned network takes no claim: the owner's own claim on it is refused as a command
    owned = owner.mesh.create_network("lab", sim.now, owned=True)
    try:
        own(owner, owned, sim)
        raise AssertionError("an owned network was claimed")
    except UsageError as e:
        assert "owned already" in str(e)


def test_only_the_claims_owners_signed_rotation_enforces_a_claim_early() -> None:
    sim = SimMesh("migrate-early", config=DEFAULT_CONFIG.with_(cert_clock_skew=300.0, owner_transition=600))
    owner, alice, mallory = sim.add_node("owner"), sim.add_node("alice"), sim.add_node("mallory")
    net = owner.mesh.create_network("home", sim.now)
    for n in (alice, mallory):
        sim.join(n, owner, net)
        sim.run_for(3)
    sim.run_for(20)
    claim = own(owner, net, sim)
    sim.run_for(3)
    assert alice.mesh.members.migration.claim(net.id) == claim
    sim.run_until(claim.enforce_at - owner.mesh.wall_offset - 200)  # within the clock skew of enforce at
    peer = alice.mesh.table.get(net.id, mallory.mesh.node_id)
    assert peer is not None
    wall = int(sim.now + owner.mesh.wall_offset)
    forged = Rekey(net.id, 1, b"k" * 32, 60, wall, owner.mesh.node_id, b"\0" * 64)  # the owner named, not its signature
    alice.mesh.act(sim.now, lambda out: alice.mesh.rotation.receive(peer, forged.body() + forged.signature, sim.now, out))
    assert alice.mesh.network(net.id).owner is None and alice.mesh.members.migration.claim(net.id) == claim
    real = sign_rekey(mallory.mesh.identity, Rekey(net.id, 1, b"k" * 32, 60, wall, mallory.mesh.node_id))  # not the claim's owner
    alice.mesh.act(sim.now, lambda out: alice.mesh.rotation.receive(peer, real.encode(), sim.now, out))
    assert alice.mesh.network(net.id).owner is None and alice.mesh.counters.dropped(DropReason.REKEY_INVALID) == 2
    # the owner's own rotation (its clock 200 s ahead: it enforced already) makes alice enforce now, and take the key
    first = sign_rekey(owner.mesh.identity, Rekey(net.id, 1, b"n" * 32, 60, wall + 200, owner.mesh.node_id))
    from_owner = alice.mesh.table.get(net.id, owner.mesh.node_id)
    assert from_owner is not None
    alice.mesh.act(sim.now, lambda out: alice.mesh.rotation.receive(from_owner, first.encode(), sim.now, out))
    held = alice.mesh.network(net.id)
    assert held.owner == owner.mesh.node_id and (held.epoch, held.key) == (1, b"n" * 32)
    assert [e.certified for e in alice.of(ev.NetworkOwned)] == [True]
