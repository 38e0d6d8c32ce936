"""The daemon's side of owned networks (docs/membership.md; issue 16 item 6): joining with an ``omerta2-`` invite
(enrolment: the inviter's refusal becomes REFUSED with its fix) and the options of ``network.invite``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..core.membership import InviteOptions
from ..core.network import Network
from ..core.views import NetworkView
from ..core.wire.invite import Invite
from . import schema as s
from .errors import ApiError, Code

if TYPE_CHECKING:
    from .api import DaemonAPI


async def enrol(api: "DaemonAPI", req: s.NetworkJoinRequest, inv: Invite) -> s.NetworkJoinResult:
    """Join with a version 2 invite, waiting ``req.wait`` for the inviter's answer. Refused ("used", "expired", ...):
    REFUSED with the reason and the fix, and the network left again unless this node was in it before. No answer:
    TIMEOUT (the daemon asks again at its next start); admitted without a session yet: connected false."""
    net_id = Network(inv.network_key, inv.name, owner=inv.owner).id
    node = api.node
    member_before = net_id.raw in node.core.networks
    try:
        net = await node.join(req.invite, timeout=req.wait or None)
    except UsageError as e:  # the inviter's refusal: "the invite was refused by X: used; FIX"
        if not member_before and net_id.raw in node.core.networks:
            node.leave(net_id)
        await api.vnet_sync()
        message, _, fix = str(e).partition("; ")
        raise ApiError(Code.REFUSED, message, fix or None) from None
    except TimeoutError as e:
        if node.core.credentials.own(net_id) is not None:  # admitted; the session is not up yet
            await api.vnet_sync()
            return s.NetworkJoinResult(str(net_id), inv.name, str(inv.inviter), False)
        raise ApiError(Code.TIMEOUT, str(e), "the daemon asks again at its next start; or retry `omertactl network join` "
                                             "with the same invite once the inviter runs and is reachable (it is not used "
                                             "until it admits you)") from None
    await api.vnet_sync()
    connected = inv.inviter == node.node_id or node.is_connected(inv.inviter)
    return s.NetworkJoinResult(str(net.id), net.name, str(inv.inviter), connected)


def invite_options(net: NetworkView, req: s.NetworkInviteRequest) -> InviteOptions | None:
    """An owned network's invite options (unset ones: one use, 24 hours); None for an open network, whose invite is
    its key: any option given is refused, saying why and what to do instead."""
    given = [k for k, v in (("uses", req.uses), ("expires", req.expires), ("name", req.name), ("tags", req.tags)) if v]
    if net.owner is None:
        if given:
            raise ApiError(Code.REFUSED, f"network {net.name or net.id} is open: its invite is its key, for anyone and "
                                         f"forever, without {', '.join(given)}",
                           "invite without options, or create an owned network (`omertactl network create NAME --owned`) "
                           "and invite to that one")
        return None
    return InviteOptions(uses=req.uses or 1, expires=req.expires or 86400.0, name=req.name, tags=tuple(req.tags))
