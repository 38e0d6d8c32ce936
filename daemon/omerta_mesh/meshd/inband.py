"""The daemon's side of in-band invites (docs/membership.md 3.5): ``network.invite`` with ``to`` sends the invite to a
node this node has a session with (in another network) instead of printing a string to copy; the node's user sees
it in ``network.offers`` (and the ``invite.offered`` event) and takes it with ``network.accept``, which joins as
``network.join`` does (an owned network's enrolment included). Registered on ``DaemonAPI`` from here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..core.member.offers import offer_id
from ..core.peers.peer import Peer
from ..core.views import NetworkView
from . import schema as s
from .errors import ApiError, Code, refused
from .owned import command
from .registry import READ, WRITE, api_method

if TYPE_CHECKING:
    from .api import CallContext, DaemonAPI


def offer_target(api: "DaemonAPI", net: NetworkView, to: str) -> Peer:
    """The session an in-band invite to ``net`` goes over: one this node has now with the node ``to`` names, in another
    network (checked before any invite is made, so a refusal leaves no token behind)."""
    node_id = api.resolve_peer(to)
    peers = [p for p in api.node.core.table.by_node(node_id) if p.connected and p.network.id != net.id]
    if not peers:
        raise ApiError(Code.NOT_CONNECTED, f"no session with {api.name_of(node_id) or node_id.short()} in another network: an "
                                           "in-band invite goes over a session this node already has",
                       "wait until it is connected (omertactl peers), or give it the invite string: omertactl network "
                       f"invite {net.name or net.id}")
    return peers[0]


def send_offer(api: "DaemonAPI", peer: Peer, invite: str) -> tuple[str, str]:
    """Send ``invite`` in-band over ``peer``'s session. Returns (its node id, the offer's id there)."""
    core = api.node.core
    command(api, lambda _now, out: core.members.offers.send(peer, invite, out))
    return str(peer.node), offer_id(invite)


@api_method("network.offers", READ, s.Empty, s.NetworkOffersResult)
async def network_offers(api: "DaemonAPI", req: s.Empty, ctx: "CallContext") -> s.NetworkOffersResult:
    """Invites other nodes sent this node in-band (network.invite with to), oldest first, until they expire or one is
    taken with network.accept: id, sender, the network and whether it is owned. They carry the network key: listed
    for anyone who may read, the invites themselves are handed out by network.accept only."""
    now = api.node.driver.now() if api.node.driver is not None else 0.0
    return s.NetworkOffersResult([s.OfferInfo(o.id, str(o.sender), api.name_of(o.sender) or None, str(o.network), o.name, o.owned,
                                              o.until) for o in api.node.core.members.offers.listed(now)])


@api_method("network.accept", WRITE, s.NetworkAcceptRequest, s.NetworkJoinResult)
async def network_accept(api: "DaemonAPI", req: s.NetworkAcceptRequest, ctx: "CallContext") -> s.NetworkJoinResult:
    """Take an invite offered in-band (network.offers) and join with it, as network.join does: an owned network's
    enrolment included (a refusal is REFUSED with the reason and the fix). The offer is gone either way."""
    now = api.node.driver.now() if api.node.driver is not None else 0.0
    try:
        offer = api.node.core.members.offers.take(req.offer, now)
    except UsageError as e:
        raise refused(e) from None
    return await api.network_join(s.NetworkJoinRequest(invite=offer.invite, wait=req.wait), ctx)
