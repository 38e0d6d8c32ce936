"""The daemon's side of owned networks (docs/membership.md; issue 16 item 6): joining with an ``omerta2-`` invite
(enrolment: the inviter's refusal becomes REFUSED with its fix), the options of ``network.invite``, the open
invites this node made (``network.invites`` lists them, ``network.revoke_invite`` cancels one), and the owner's
naming of admins (``network.admin``) and key rotation on request (``network.rekey``), and open networks becoming owned
(``network.own``, ``network.accept_owner``: docs/membership.md 7); registered on ``DaemonAPI`` from here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from ..core.errors import UsageError
from ..core.ids import NetworkId
from ..core.membership import InviteOptions
from ..core.network import Network
from ..core.outbox import Outbox
from ..core.views import NetworkView
from ..core.wire.invite import Invite
from . import schema as s
from .errors import ApiError, Code, refused
from .registry import READ, WRITE, api_method

if TYPE_CHECKING:
    from .api import CallContext, DaemonAPI

R = TypeVar("R")


async def enrol(api: "DaemonAPI", req: s.NetworkJoinRequest, inv: Invite) -> s.NetworkJoinResult:
    """Join with a version 2 invite, waiting ``req.wait`` for the inviter's answer. Refused ("used", "expired", ...):
    REFUSED with the reason and the fix, and the network left again unless this node was in it before. No answer:
    TIMEOUT (the daemon asks again at its next start); admitted without a session yet: connected false."""
    net_id = Network.of_invite(inv).id
    node = api.node
    member_before = net_id.raw in node.core.networks
    try:
        net = await node.join(req.invite, timeout=req.wait or None)
    except UsageError as e:  # the inviter's refusal: "the invite was refused by X: used; FIX"
        if not member_before and net_id.raw in node.core.networks:
            node.leave(net_id)
        await api.vnet_sync()
        raise refused(e) from None
    except TimeoutError as e:
        if (cert := node.core.credentials.own_certificate(net_id)) is not None:  # admitted; the session is not up yet
            await api.vnet_sync()
            return s.NetworkJoinResult(str(net_id), inv.name, str(inv.inviter), False, str(cert.issuer))
        raise ApiError(Code.TIMEOUT, str(e), "the daemon asks again at its next start; or retry `omertactl network join` "
                                             "with the same invite once the inviter runs and is reachable (it is not used "
                                             "until it admits you)") from None
    await api.vnet_sync()
    cert = node.core.credentials.own_certificate(net.id)
    by = cert.issuer if cert is not None else inv.inviter
    connected = by == node.node_id or node.is_connected(by)
    return s.NetworkJoinResult(str(net.id), net.name, str(inv.inviter), connected, str(by) if cert is not None else None)


def command(api: "DaemonAPI", fn: Callable[[float, Outbox], R]) -> R:
    """Run a command on an owned part of the core now (``Mesh.act``) and send what it queued at once; a UsageError (the
    core's refusal, with its reason and fix) becomes REFUSED."""
    node = api.node
    now = node.driver.now() if node.driver is not None else 0.0
    try:
        result = node.core.act(now, lambda out: fn(now, out))
    except UsageError as e:
        raise refused(e) from None
    if node.driver is not None:
        node.driver.flush()
    return result


def invite_options(net: NetworkView, req: s.NetworkInviteRequest) -> InviteOptions | None:
    """An owned network's invite options (unset ones: one use, 24 hours); None for an open network, whose invite is
    its key: any option given is refused, saying why and what to do instead."""
    given = [k for k, v in (("uses", req.uses), ("expires", req.expires), ("name", req.name), ("tags", req.tags)) if v]
    if net.owner is None:
        if given:
            raise ApiError(Code.REFUSED, f"network {net.name or net.id} is open: its invite is its key, for anyone and "
                                         f"forever, without {', '.join(given)}",
                           "invite without options, or create an owned network (`omertactl network create NAME`) "
                           "and invite to that one")
        return None
    return InviteOptions(uses=req.uses or 1, expires=req.expires or 86400.0, name=req.name, tags=tuple(req.tags))


def _open_invites(api: "DaemonAPI", network: NetworkId) -> list[s.InviteInfo]:
    core = api.node.core
    net = core.network(network)
    if net.owner is None:
        return []
    wall = api.node.driver.now() + core.wall_offset if api.node.driver is not None else 0.0
    revoked = core.credentials.revocations(net)
    return [s.InviteInfo(t.token_id.hex(), t.uses, max(0, t.uses - core.enrolment.uses(t.token_id)), float(t.not_after),
                         t.name, list(t.tags))
            for t in sorted(core.enrolment.issued(network, wall), key=lambda t: t.not_after)
            if not revoked.token_revoked(t.token_id, wall)]


@api_method("network.invites", READ, s.NetworkRequest, s.NetworkInvitesResult)
async def network_invites(api: "DaemonAPI", req: s.NetworkRequest, ctx: "CallContext") -> s.NetworkInvitesResult:
    """The open invites this node made for an owned network: neither expired, used up nor revoked; each with its token
    id (for network.revoke_invite), uses left, expiry, and the certificate's name and tags. An open network has none
    (its invite is its key)."""
    net = api.resolve_network(req.network)
    return s.NetworkInvitesResult(str(net.id), _open_invites(api, net.id))


@api_method("network.revoke_invite", WRITE, s.NetworkRevokeInviteRequest, s.NetworkRevokeInviteResult)
async def network_revoke_invite(api: "DaemonAPI", req: s.NetworkRevokeInviteRequest, ctx: "CallContext") -> s.NetworkRevokeInviteResult:
    """Cancel an open invite this node made (docs/membership.md 3.2): a signed token revocation, saved and spread to the
    members as a removal is, so every admin refuses the token as "revoked". The token id may be a unique prefix."""
    net = api.resolve_network(req.network)
    t = req.token.strip().lower()
    found = [i.token for i in _open_invites(api, net.id) if i.token.startswith(t)] if len(t) >= 4 else []
    if len(found) != 1:
        raise ApiError(Code.REFUSED, f"{'no' if not found else len(found)} open invites of network {net.name or net.id} "
                                     f"match {req.token!r}", f"list them with `omertactl network invites {net.name or net.id}` "
                                                             "and give a longer part of the token id")
    core = api.node.core  # (MemberRemoved has the host save the network's revocations)
    command(api, lambda now, out: core.members.revoke_invite(net.id, bytes.fromhex(found[0]), now, out))
    return s.NetworkRevokeInviteResult(str(net.id), found[0], True)


@api_method("network.rekey", WRITE, s.NetworkRequest, s.NetworkRekeyResult)
async def network_rekey(api: "DaemonAPI", req: s.NetworkRequest, ctx: "CallContext") -> s.NetworkRekeyResult:
    """Rotate an owned network's key now (this node is its owner; docs/membership.md 6): a new key, signed and sent
    to every connected member, which passes it on; members that were away learn it at their next session while the
    previous key is still accepted (``[node] key_grace``). A removal rotates the key by itself. Refused, with the
    reason and the fix, for an open network or a node that is not the owner."""
    net, core = api.resolve_network(req.network), api.node.core  # (NetworkRekeyed has the host save the new key)
    new = command(api, lambda now, out: core.rotation.rotate(net.id, now, out))
    return s.NetworkRekeyResult(str(new.id), new.epoch, int(core.cfg.key_grace))


@api_method("network.admin", WRITE, s.NetworkAdminRequest, s.NetworkAdminResult)
async def network_admin(api: "DaemonAPI", req: s.NetworkAdminRequest, ctx: "CallContext") -> s.NetworkAdminResult:
    """Name a member an admin of an owned network this node owns (docs/membership.md 1): an admin certificate like its
    member one, sent over its session; from then on it may invite, renew members' certificates and remove members
    (not admins). Refused, with the reason and the fix, for a node that is not the owner, a peer without a valid member
    certificate or not connected, and one that is an admin already."""
    net, peer, core = api.resolve_network(req.network), api.resolve_peer(req.peer), api.node.core
    command(api, lambda now, out: core.renewal.promote(core.network(net.id), peer, now, out))
    return s.NetworkAdminResult(str(net.id), str(peer), "admin")


def _own_result(api: "DaemonAPI", network: NetworkId) -> s.NetworkOwnResult:
    mig = api.node.core.members.migration  # (OwnerClaimed has the host save the claim)
    claim = mig.claim(network)
    assert claim is not None
    return s.NetworkOwnResult(str(network), str(claim.issuer), float(claim.enforce_at), mig.credential(network) is not None)


@api_method("network.own", WRITE, s.NetworkRequest, s.NetworkOwnResult)
async def network_own(api: "DaemonAPI", req: s.NetworkRequest, ctx: "CallContext") -> s.NetworkOwnResult:
    """Claim an open network this node created (docs/membership.md 7): members that follow the claim (those this node
    invited, and those of an earlier version, automatically; others when their user accepts it) get a member
    certificate from this node over their sessions; at ``owned_from`` (``[node] owner_transition`` from now) the network
    is owned by this node, its key is rotated, and nodes without its certificate are left out. Until then it stays
    open. A network created open by an earlier version on this node is claimed at the daemon's start by itself."""
    net, core = api.resolve_network(req.network), api.node.core  # (a node that joined it is refused, naming where to run it)
    command(api, lambda now, out: core.members.migration.own(net.id, now, out))
    return _own_result(api, net.id)


@api_method("network.accept_owner", WRITE, s.NetworkAcceptOwnerRequest, s.NetworkOwnResult)
async def network_accept_owner(api: "DaemonAPI", req: s.NetworkAcceptOwnerRequest, ctx: "CallContext") -> s.NetworkOwnResult:
    """Follow an owner claim of an open network that reached this node but was not followed by itself (it did not come
    from this node's inviter, or another claim came first: network.list shows them as ``claims_waiting``). Until the
    network is owned, a later accept_owner may pick another claim."""
    net, core = api.resolve_network(req.network), api.node.core
    t = req.owner.strip().lower()
    found = [o for o in net.claims_waiting if str(o).startswith(t)] if len(t) >= 4 else []
    if not found:
        try:
            found = [o for o in net.claims_waiting if o == api.resolve_peer(req.owner)]
        except ApiError:
            pass
    if len(found) != 1:
        where = f"`omertactl network list --json` (claims_waiting of {net.name or net.id})"
        raise ApiError(Code.REFUSED, f"{'no' if not found else len(found)} owner claims waiting in network "
                                     f"{net.name or net.id} match {req.owner!r}",
                       f"the claims that reached this node are listed by {where}; give the owner's node id")
    command(api, lambda now, out: core.members.migration.accept(net.id, found[0], now, out))
    return _own_result(api, net.id)
