"""Open networks becoming owned (docs/membership.md, section 7), both sides. An owned part of ``Members``
(``mesh.members.migration``); pure: the clock is an argument.

* The owner: ``own`` signs an owner claim (core/wire/claim.py) for an open network, enforced ``owner_transition``
  seconds later, makes its owner certificate, and sends every connected member the claim with a member certificate
  for it; a member that connects later gets them at its first session (``greet``), and one that passes the claim
  back (it adopted it later) gets its certificate then.
* A member adopts a claim (``receive``) when it comes from, or is signed by, the node that invited it (``expect``:
  the core records the inviter at ``join``, the host at start from networks.json); when it holds a network written by
  an earlier version, which recorded no inviter, it adopts the first claim it sees. Any other claim waits for its
  user (``accept``: ``omertactl network accept-owner``); a second owner's claim is adopted by nobody automatically
  (``OwnerClaimed.conflict``). A member that adopts passes the claim on to its other connected members.
* Until ``enforce at`` the network stays open on the wire, so members that did not upgrade or adopt keep working.
  At ``enforce at`` (``due``, from the renewal timer; or at once when the owner's first key rotation arrives, so a
  clock a little behind does not miss it) the network becomes owned: our certificate is set, every session of the
  network is renewed by a handshake that carries it, and the owner rotates the key (``Members.removed``), which
  leaves out the nodes that never upgraded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .. import events as ev
from ..config import CoreConfig
from ..counters import Counters
from ..discovery.gossip import OwnFacts
from ..errors import DropReason, UsageError, WireError
from ..ids import NetworkId, NodeId
from ..network import Network
from ..outbox import Outbox
from ..peers.peer import Peer
from ..wire.certs import Role
from ..wire.claim import OWNER, OwnerClaim, decode_claim, decode_message, encode_message, sign_claim
from .check import Accepted
from .credentials import Credentials
from .enrolment import Enrolment, certificate_name_ok

if TYPE_CHECKING:
    from ..membership import Members

MAX_WAITING = 8  # claims of other owners kept per network for the user to choose from
FIRST = None  # ``expect``: adopt the first claim (a network an earlier version wrote: no inviter recorded)


class Migration:
    def __init__(self, config: CoreConfig, counters: Counters, credentials: Credentials, enrolment: Enrolment,
                 members: "Members", facts: Callable[[], OwnFacts]) -> None:
        self.cfg = config
        self.counters = counters
        self.identity = enrolment.identity  # signs our claims (the certificates too, through enrolment)
        self.me = enrolment.identity.node_id
        self.credentials = credentials
        self.enrolment = enrolment
        self.members = members
        self.facts = facts
        self._adopted: dict[bytes, OwnerClaim] = {}  # network id -> the claim we follow (until it is enforced)
        self._credential: dict[bytes, bytes] = {}  # network id -> our certificate from that claim's owner
        self._waiting: dict[bytes, dict[bytes, tuple[OwnerClaim, bytes | None]]] = {}  # claims not adopted, by owner
        self._expect: dict[bytes, NodeId | None] = {}  # network id -> our inviter (FIRST: the first claim); absent: none

    # ------------------------------------------------------------------ what the host tells and asks
    def expect(self, network: NetworkId, inviter: NodeId | None) -> None:
        """Adopt a claim of ``network`` from (or passed on by) ``inviter``; FIRST: the first claim seen."""
        self._expect[network.raw] = inviter

    def claim(self, network: NetworkId) -> OwnerClaim | None:
        """The claim we follow in the open ``network`` (ours, when we claimed it), until it is enforced."""
        return self._adopted.get(network.raw)

    def credential(self, network: NetworkId) -> bytes | None:
        return self._credential.get(network.raw)

    def waiting(self, network: NetworkId) -> list[OwnerClaim]:
        """Claims we did not adopt (they wait for ``accept``)."""
        return [c for c, _ in self._waiting.get(network.raw, {}).values()]

    def restore(self, network: NetworkId, blob: bytes, credential: bytes | None) -> None:
        """What the host saved of an adopted claim (its signature checked again)."""
        claim = decode_claim(blob)
        if claim.network != network or not claim.signature_ok():
            raise WireError(DropReason.OWNER_CLAIM_INVALID, "not a signed claim of this network")
        self._adopted[network.raw] = claim
        if credential:
            self._credential[network.raw] = bytes(credential)

    def forget(self, network: NetworkId) -> None:
        for d in (self._adopted, self._credential, self._waiting, self._expect):
            d.pop(network.raw, None)

    def deadline(self) -> float | None:
        """When the first adopted claim is enforced (monotonic seconds)."""
        return min((c.enforce_at - self.credentials.wall_offset for c in self._adopted.values()), default=None)

    # ------------------------------------------------------------------ the owner
    def own(self, network_id: NetworkId, now: float, out: Outbox) -> OwnerClaim:
        """Claim the open network (we created it): signed, adopted here, sent with a certificate to every connected member."""
        net = self.members.network(network_id)
        name, me = net.name or str(net.id), self.me
        if isinstance(inviter := self._expect.get(net.id.raw), NodeId):
            raise UsageError(f"this node joined network {name} (invited by {inviter.short()}): only its creator claims it; "
                             f"run `omertactl network own {name}` on the machine that created it")
        if net.owner is not None:
            raise UsageError(f"network {name} is owned already, by {'this node' if net.owner == me else net.owner.short()}")
        if (held := self._adopted.get(net.id.raw)) is not None:
            if held.issuer == me:
                return held
            raise UsageError(f"network {name} follows {held.issuer.short()}'s owner claim already; it becomes owned at "
                             f"{held.enforce_at} (Unix time)")
        wall = int(now + self.credentials.wall_offset)
        claim = sign_claim(self.identity, OwnerClaim(net.id, me, wall, wall + max(0, int(self.cfg.owner_transition))))
        self._credential[net.id.raw] = self.enrolment.owner_credential(self._owned(net, me), wall, self.cfg.cert_lifetime)
        self._adopt(net, claim, None, None, now, out)
        return claim

    def _certificate_for(self, net: Network, claim: OwnerClaim, node: NodeId, now: float) -> bytes:
        rec = self.members.gossip.record_of(net.id, node)
        name = rec.name if rec is not None and certificate_name_ok(rec.name) else ""
        return self.enrolment.certify(self._owned(net, claim.issuer), node, now + self.credentials.wall_offset,
                                      self.cfg.cert_lifetime, Role.MEMBER, name)

    def _send(self, peer: Peer, claim: OwnerClaim, now: float, out: Outbox) -> None:
        mine = claim.issuer == self.me
        out.control(peer, OWNER, encode_message(claim, self._certificate_for(peer.network, claim, peer.node, now) if mine else None))

    def greet(self, peer: Peer, now: float, out: Outbox) -> None:
        """A first session of an open network: tell the peer the claim we follow (the owner: with its certificate)."""
        if (claim := self._adopted.get(peer.network.id.raw)) is not None:
            self._send(peer, claim, now, out)

    # ------------------------------------------------------------------ members
    def receive(self, peer: Peer, body: bytes, now: float, out: Outbox) -> None:
        """``net.owner`` from a member: adopted, held for the user, or dropped and counted (``owner_claim_invalid``)."""
        net, me = peer.network, self.me
        try:
            claim, credential = decode_message(body)
            if claim.network != net.id or not claim.signature_ok():
                raise WireError(DropReason.OWNER_CLAIM_INVALID, "not a claim of this network signed by the owner it names")
        except WireError as e:
            self.counters.drop(e.reason)
            return
        held = self._adopted.get(net.id.raw)
        if net.owner is not None or held is not None and held.issuer == claim.issuer:
            if net.owner is None and held is not None and claim.issuer == me:  # a member adopted our claim: certify it
                self._send(peer, held, now, out)
            elif net.owner is None and credential is not None and peer.node == claim.issuer:
                self._certified(net, claim, credential, now, out)
            else:
                self.counters.inc("owner.claim_known")
            return
        if claim.issuer == me:  # an old claim of ours, or one the user cancelled
            self.counters.inc("owner.claim_known")
            return
        waiting = self._waiting.setdefault(net.id.raw, {})
        expect = self._expect.get(net.id.raw, me)  # (absent: nobody's claim is adopted by itself)
        first = expect is FIRST and not any(o != claim.issuer.raw for o in waiting)
        if peer.node != claim.issuer:  # the certificate only comes from the owner; it may have come first, with its claim
            credential = waiting.get(claim.issuer.raw, (claim, None))[1]
        if held is None and (first or expect in (claim.issuer, peer.node)):
            self._adopt(net, claim, peer, credential, now, out)
            return
        new = claim.issuer.raw not in waiting
        if new and len(waiting) >= MAX_WAITING:
            self.counters.drop(DropReason.OWNER_CLAIM_INVALID)
            return
        waiting[claim.issuer.raw] = (claim, credential)
        if new:
            self.counters.inc("owner.claims_waiting")
            out.event(ev.OwnerClaimed(net.id, claim.issuer, claim.enforce_at, False, False, held is not None or len(waiting) > 1))

    def accept(self, network_id: NetworkId, owner: NodeId, now: float, out: Outbox) -> OwnerClaim:
        """Our user adopts ``owner``'s claim, which reached us but was not adopted by itself."""
        net = self.members.network(network_id)
        name = net.name or str(net.id)
        if net.owner is not None:
            raise UsageError(f"network {name} is owned already, by {net.owner.short()}")
        held = self._adopted.get(net.id.raw)
        if held is not None and held.issuer == owner:
            return held
        claim, credential = self._waiting.get(net.id.raw, {}).get(owner.raw, (None, None))
        if claim is None:
            raise UsageError(f"no owner claim of {owner.short()} for network {name} has reached this node; the owner "
                             f"makes one with omertactl network own {name}, and it arrives over its session")
        if held is not None:  # the user picks another claim than the one adopted (a conflict): until enforced, it may
            if held.issuer == self.me:
                raise UsageError(f"this node claimed network {name} itself; it cannot follow {owner.short()}'s claim")
            self._credential.pop(net.id.raw, None)
        self._adopt(net, claim, None, credential, now, out)
        return claim

    def _adopt(self, net: Network, claim: OwnerClaim, sender: Peer | None, credential: bytes | None, now: float,
               out: Outbox) -> None:
        """Follow ``claim`` (with our certificate from its owner, when it came along): kept, told to the host, passed on
        to our other connected members (the owner sends each its certificate; a member's copy asks the owner for ours)."""
        self._adopted[net.id.raw] = claim
        self._waiting.pop(net.id.raw, None)
        self.counters.inc("owner.claims_adopted")
        if credential is not None:
            self._certified(net, claim, credential, now, None)
        out.event(ev.OwnerClaimed(net.id, claim.issuer, claim.enforce_at, True, net.id.raw in self._credential))
        for p in self.members.table.in_network(net.id):
            if p.connected and p is not sender:
                self._send(p, claim, now, out)

    def _certified(self, net: Network, claim: OwnerClaim, credential: bytes, now: float, out: Outbox | None) -> None:
        """The owner's certificate for us: kept when it checks out under the claim (a member's or an admin's); told to
        the host (``out``) as the claim again, now certified."""
        verdict = self.credentials.check(self._owned(net, claim.issuer), self.me, credential, now)
        if not isinstance(verdict, Accepted) or verdict.role is Role.OWNER:
            self.counters.drop(DropReason.CERT_MALFORMED if isinstance(verdict, Accepted) else verdict.reason)
            return
        if self._credential.get(net.id.raw) is None:
            self._credential[net.id.raw] = bytes(credential)
            self.counters.inc("owner.certified")
            if out is not None:
                out.event(ev.OwnerClaimed(net.id, claim.issuer, claim.enforce_at, True, True))

    # ------------------------------------------------------------------ enforcement
    def due(self, now: float, out: Outbox) -> None:
        """Enforce every adopted claim whose time has come."""
        wall = now + self.credentials.wall_offset
        for raw, claim in list(self._adopted.items()):
            if wall >= claim.enforce_at and (net := self.members.networks.get(raw)) is not None:
                self._enforce(net, claim, now, out)

    def enforce_early(self, net: Network, issuer: NodeId, now: float, out: Outbox) -> Network | None:
        """The owner of the claim we follow rotated the key (it enforced): enforce now if our clock is within the skew of
        ``enforce at``; the owned network, or None (no such claim: the caller drops the rotation)."""
        claim = self._adopted.get(net.id.raw)
        if claim is None or claim.issuer != issuer or now + self.credentials.wall_offset + self.cfg.cert_clock_skew < claim.enforce_at:
            return None
        return self._enforce(net, claim, now, out)

    def _enforce(self, net: Network, claim: OwnerClaim, now: float, out: Outbox) -> Network:
        owned = self._owned(net, claim.issuer)
        del self._adopted[net.id.raw]
        credential = self._credential.pop(net.id.raw, None)
        self.members.replace(owned)
        self.members.gossip.owned(owned)
        self.members.set_credential(owned.id, credential, self.facts, now, out)
        self.counters.inc("owner.enforced")
        out.event(ev.NetworkOwned(owned.id, claim.issuer, credential is not None))
        for p in self.members.table.in_network(owned.id):  # sessions made open: a handshake with certificates now, from
            if p.connected and self.me.raw > p.node.raw:  # the side a tie-break keeps as initiator (both at once would race)
                self.members.sessions.initiate(p, now, out)
        if claim.issuer == self.me:
            self.members.removed(owned, now, out)  # the owner rotates the key: nodes that never upgraded stay out
        return owned

    @staticmethod
    def _owned(net: Network, owner: NodeId) -> Network:
        return Network(net.key, net.name, owner=owner)
