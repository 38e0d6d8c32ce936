"""In-band invites (docs/membership.md 3.5): an invite sent to a node we already share a session with, and the
invites offered to us, kept until our user takes one. An owned part of ``Members`` (``mesh.members.offers``); pure.

* ``send``: the invite string goes to the peer as the ``invite.offer`` control message (reliable, so encrypted by
  the session that carries it: the invite holds the network key). No copying of strings between machines.
* ``receive``: an offer from a session's peer. A well-formed invite (core/wire/invite.py) to a network we are not in
  is kept until its token expires (an open network's invite, which never does: a day), at most ``MAX_OFFERS``, the
  oldest going first, and announced (``InviteOffered``); the same invite again only refreshes it. Anything else is
  dropped and counted (``invite_offer_invalid``); an offer to a network we are in already is ignored and counted
  (``invite.offers_ignored``). Nothing is joined without the user: ``take`` gives the invite to join with (the host
  joins with it as with a pasted one) and forgets the offer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from .. import events as ev
from ..counters import Counters
from ..errors import DropReason, InviteError, UsageError
from ..ids import NetworkId, NodeId
from ..network import Network
from ..outbox import Outbox
from ..peers.peer import Peer
from ..wire.invite import decode_invite

OFFER = "invite.offer"  # the control message Offers.receive takes
MAX_OFFERS = 16
MAX_OFFER_LEN = 4096  # characters of an invite string (a version 2 one is at most ~1,300)
OPEN_OFFER_LIFETIME = 86400.0  # an open network's invite has no expiry of its own: kept this long


@dataclass(frozen=True, slots=True)
class Offer:
    id: str  # 12 hex characters, from the invite string: what `network accept` takes
    sender: NodeId
    via: NetworkId  # the network whose session carried it
    invite: str
    network: NetworkId  # the network it invites to
    name: str
    owned: bool
    until: float  # wall-clock seconds: dropped then


def offer_id(invite: str) -> str:
    """An offer's id: the sender and the receiver compute the same from the invite string."""
    return hashlib.blake2s(invite.encode(), digest_size=6).hexdigest()


class Offers:
    def __init__(self, counters: Counters, wall_offset: float) -> None:
        self.counters = counters
        self.wall_offset = wall_offset
        self._offers: OrderedDict[str, Offer] = OrderedDict()  # oldest first

    def send(self, peer: Peer, invite: str, out: Outbox) -> None:
        if len(invite) > MAX_OFFER_LEN:
            raise UsageError(f"an invite of {len(invite)} characters is longer than an offer carries ({MAX_OFFER_LEN})")
        out.control(peer, OFFER, invite.encode())
        self.counters.inc("invite.offers_sent")

    def receive(self, peer: Peer, body: bytes, now: float, out: Outbox, member_of: Callable[[NetworkId], bool]) -> None:
        wall = now + self.wall_offset
        try:
            if len(body) > MAX_OFFER_LEN:
                raise InviteError(f"{len(body)} bytes")
            text = body.decode("ascii")
            inv = decode_invite(text)
        except (UnicodeDecodeError, InviteError, ValueError):
            self.counters.drop(DropReason.INVITE_OFFER_INVALID)
            return
        until = float(inv.token.not_after) if inv.token is not None else wall + OPEN_OFFER_LIFETIME
        net = Network.of_invite(inv)
        if member_of(net.id) or until <= wall:
            self.counters.inc("invite.offers_ignored")
            return
        offer = Offer(offer_id(text), peer.node, peer.network.id, text, net.id,
                      inv.name, inv.token is not None, until)
        fresh = offer.id not in self._offers
        self._offers.pop(offer.id, None)
        self._offers[offer.id] = offer
        while len(self._offers) > MAX_OFFERS:
            self._offers.popitem(last=False)
            self.counters.inc("invite.offers_dropped")
        if fresh:
            self.counters.inc("invite.offers_received")
            out.event(ev.InviteOffered(peer.network.id, peer.node, net.id, inv.name, offer.id))

    def listed(self, now: float) -> list[Offer]:
        """The offers kept now (expired ones forgotten), oldest first."""
        wall = now + self.wall_offset
        for oid in [o.id for o in self._offers.values() if o.until <= wall]:
            del self._offers[oid]
        return list(self._offers.values())

    def take(self, query: str, now: float) -> Offer:
        """The offer ``query`` names (its id or a unique prefix of at least 4 characters), forgotten here."""
        q = query.strip().lower()
        found = [o for o in self.listed(now) if o.id.startswith(q)] if len(q) >= 4 else []
        if len(found) != 1:
            raise UsageError(f"{'no' if not found else len(found)} invites offered to this node match {query!r}; list them "
                             "with `omertactl network offers` and give its id")
        return self._offers.pop(found[0].id)
