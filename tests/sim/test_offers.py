"""In-band invites in the simulator (docs/membership.md 3.5): an owner offers an invite to its owned network to a node it
shares an open network with; the node is told (InviteOffered), joins only when it takes the offer, and is then
enrolled and connected; garbage, offers to a network it is in, expired ones and more than MAX_OFFERS are refused,
ignored, forgotten and bounded, each counted."""

from __future__ import annotations

import pytest

from omerta_mesh.core import events as ev
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.errors import DropReason, UsageError
from omerta_mesh.core.member.offers import MAX_OFFERS, OFFER
from omerta_mesh.core.membership import InviteOptions
from omerta_mesh.sim.harness import SimMesh, SimNode


def pair(seed: str) -> tuple[SimMesh, SimNode, SimNode]:
    """owner and alice connected in an open network "home"; owner also owns "work"."""
    sim = SimMesh(seed, config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0))
    owner, alice = sim.add_node("owner"), sim.add_node("alice")
    home = sim.create_network(owner, "home", [alice])
    sim.introduce_all(home)
    sim.run_for(10)
    assert sim.connected(owner, alice, home), sim.failure()
    return sim, owner, alice


def offer(sim: SimMesh, sender: SimNode, to: SimNode, text: str) -> None:
    peer = sender.mesh.find_peer(to.mesh.node_id, None, sim.now)
    sender.mesh.act(sim.now, lambda out: sender.mesh.members.offers.send(peer, text, out))
    sim.internet.pump(sender.mesh)
    sim.run_for(2)


def test_an_offered_invite_is_joined_only_when_taken_and_then_admits_the_node() -> None:
    sim, owner, alice = pair("offer-join")
    work = owner.mesh.create_network("work", sim.now, owned=True)
    text = owner.mesh.invite(work.id, [owner.reachable], sim.now, InviteOptions(uses=1, expires=3600))
    offer(sim, owner, alice, text)
    [told] = alice.of(ev.InviteOffered)
    assert (told.peer, told.invited, told.invited_name) == (owner.mesh.node_id, work.id, "work")
    [kept] = alice.mesh.members.offers.listed(sim.now)
    assert kept.id == told.offer and kept.owned and kept.sender == owner.mesh.node_id and kept.invite == text
    assert work.id.raw not in alice.mesh.networks  # nothing joined before the user takes it
    taken = alice.mesh.members.offers.take(told.offer[:6], sim.now)
    assert alice.mesh.members.offers.listed(sim.now) == []
    alice.mesh.join(taken.invite, sim.now)
    sim.internet.pump(alice.mesh)
    sim.run_for(5)
    assert alice.of(ev.Enrolled) and sim.connected(alice, owner, work), sim.failure()
    with pytest.raises(UsageError, match="network offers"):
        alice.mesh.members.offers.take(told.offer, sim.now)  # gone once taken


def test_bad_offers_are_refused_ignored_expired_and_bounded() -> None:
    sim, owner, alice = pair("offer-bad")
    peer = owner.mesh.find_peer(alice.mesh.node_id, None, sim.now)
    for body in (b"omerta2-garbage", b"\xff" * 10, b"x" * 5000):
        owner.mesh.act(sim.now, lambda out, b=body: out.control(peer, OFFER, b))  # type: ignore[misc]
    sim.internet.pump(owner.mesh)
    sim.run_for(2)
    assert alice.mesh.counters.dropped(DropReason.INVITE_OFFER_INVALID) == 3 and not alice.of(ev.InviteOffered)
    home = next(iter(alice.mesh.networks.values()))
    offer(sim, owner, alice, owner.mesh.invite(home.id, [owner.reachable], sim.now))  # a network alice is in
    assert alice.mesh.counters["invite.offers_ignored"] == 1 and alice.mesh.members.offers.listed(sim.now) == []
    work = owner.mesh.create_network("work", sim.now, owned=True)
    texts = [owner.mesh.invite(work.id, [owner.reachable], sim.now, InviteOptions(expires=60 if i == 0 else 3600))
             for i in range(MAX_OFFERS + 2)]
    for t in texts:
        offer(sim, owner, alice, t)
    assert len(alice.mesh.members.offers.listed(sim.now)) == MAX_OFFERS and alice.mesh.counters["invite.offers_dropped"] == 2
    assert [o.invite for o in alice.mesh.members.offers.listed(sim.now)] == texts[2:]  # the oldest went first
    offer(sim, owner, alice, texts[-1])  # the same again: no second event
    assert len(alice.of(ev.InviteOffered)) == MAX_OFFERS + 2
    alice.mesh.members.offers.take(alice.mesh.members.offers.listed(sim.now)[0].id, sim.now)
    offer(sim, owner, alice, texts[0])  # expires after 60 s: listed, then forgotten
    assert texts[0] in [o.invite for o in alice.mesh.members.offers.listed(sim.now)]
    sim.run_for(61)
    assert texts[0] not in [o.invite for o in alice.mesh.members.offers.listed(sim.now)]
    with pytest.raises(UsageError, match="match"):
        alice.mesh.members.offers.take("zz", sim.now)
