"""Renewal of our certificates in owned networks (docs/membership.md 2.5), both sides. An owned part (``mesh.renewal``);
pure: the clock is an argument, randomness the injected ``Entropy``.

* Ours: once two thirds of our certificate's lifetime have passed (``Credentials.renew_at``), ``timer`` asks a connected
  admin, chosen at random (the owner counts; an admin asks the owner), with ``member.renew`` carrying our credential
  (core/wire/renew.py), and asks again every ``renew_retry`` (at most a twelfth of the lifetime, with jitter) until
  one answers. With no admin connected it asks one we know (a session opens for the message), else waits for the
  next retry. The owner signs its own certificate again instead. A credential an admin sends back (``member.cert``)
  is taken when it checks out for us, keeps our role and lasts longer than ours: ``receive`` returns it for the
  caller to set (``Members.set_credential``: our handshakes and record), with a ``CredentialRenewed`` event for the
  host to save it. A refusal becomes ``RenewalRefused``; we keep asking (another admin may answer).
* Theirs: an admin (or the owner) answers ``member.renew`` from a session's peer with a certificate like the one it
  presented (``Enrolment.reissue``), when that credential passes the check now for that peer: an expired or revoked
  one is refused in a word, so a member whose certificate ran out while no admin was reachable must be invited again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .. import events as ev
from ..config import CoreConfig
from ..counters import Counters
from ..entropy import Entropy
from ..errors import DropReason, UsageError
from ..ids import NetworkId, NodeId
from ..network import Network
from ..outbox import Outbox
from ..peers.peer import Peer
from ..peers.table import PeerTable
from ..wire import renew as rw
from ..wire.certs import Role
from ..wire.enrol import EnrolStatus
from .check import Accepted, Refused
from .credentials import Credentials
from .enrolment import Enrolment, Issued

if TYPE_CHECKING:
    from ..discovery.gossip import OwnFacts
    from ..membership import Members

RENEWAL = rw.NAMES  # the control messages Renewal.receive takes

_REFUSAL = {DropReason.CERT_REVOKED: EnrolStatus.REVOKED, DropReason.CERT_ISSUER_REVOKED: EnrolStatus.REVOKED,
            DropReason.CERT_EXPIRED: EnrolStatus.EXPIRED, DropReason.CERT_ISSUER_EXPIRED: EnrolStatus.EXPIRED}


class Renewal:
    def __init__(self, config: CoreConfig, counters: Counters, entropy: Entropy, table: PeerTable,
                 credentials: Credentials, enrolment: Enrolment, members: "Members", facts: Callable[[], "OwnFacts"]) -> None:
        self.cfg = config
        self.counters = counters
        self.entropy = entropy
        self.table = table
        self.credentials = credentials
        self.enrolment = enrolment
        self.members = members  # sets a renewed credential (Members.set_credential: handshakes, our record pushed)
        self.facts = facts  # our signed facts, for the record a renewed credential is signed into

    def deadline(self) -> float | None:
        """The earliest renewal due in our owned networks (``renew_at``)."""
        ats = [at for net in self.members.networks.values()
               if net.owner is not None and (at := self.credentials.renew_at(net.id)) is not None]
        more = (self.members.migration.deadline(), self.members.ask_others_at())  # (claims enforced, other admins asked)
        return min([*ats, *(at for at in more if at is not None)], default=None)

    def timer(self, now: float, out: Outbox) -> float | None:
        """Ask for every renewal due (the owner signs its own again and sets it), enforce the owner claims due
        (docs/membership.md 7), ask the other admins an invite named when its inviter did not answer (3.3); returns the
        next deadline."""
        self.members.migration.due(now, out)
        self.members.ask_others(now, out)
        for network, credential in self._due(now, out):
            self.members.set_credential(network, credential, self.facts, now, out)
        return self.deadline()

    def _due(self, now: float, out: Outbox) -> list[tuple[NetworkId, bytes]]:
        mine = []
        wall = now + self.credentials.wall_offset
        for net in list(self.members.networks.values()):
            at = self.credentials.renew_at(net.id) if net.owner is not None else None
            leaf = self.credentials.own_certificate(net.id)
            if at is None or now < at or leaf is None:
                continue
            lifetime = leaf.not_after - leaf.not_before
            if leaf.role is Role.OWNER:
                mine.append((net.id, self.enrolment.owner_credential(net, wall, lifetime)))
                out.event(ev.CredentialRenewed(net.id, leaf.subject, int(wall) + lifetime))
                continue
            retry = min(self.cfg.renew_retry, max(lifetime / 12, 1.0)) * self.entropy.uniform(0.75, 1.25)
            self.credentials.asked(net.id, now + retry)
            admins = [p for p in self.table.in_network(net.id) if self._may_renew(net, p, leaf.role, wall)]
            connected = [p for p in admins if p.connected]
            pick = connected or admins
            if not pick:
                self.counters.inc("renew.no_admin")
                continue
            peer = pick[int(self.entropy.uniform(0, len(pick))) % len(pick)]
            out.control(peer, "member.renew", self.credentials.own(net.id) or b"")
            self.counters.inc("renew.asked")
        return mine

    def receive(self, peer: Peer, name: str, body: bytes, now: float, out: Outbox) -> None:
        """A renewal message from ``peer`` (WireError for a malformed one); our renewed credential is set at once."""
        if (credential := self._receive(peer, name, body, now, out)) is not None:
            self.members.set_credential(peer.network.id, credential, self.facts, now, out)

    def _receive(self, peer: Peer, name: str, body: bytes, now: float, out: Outbox) -> bytes | None:
        net = peer.network
        if net.owner is None:
            self.counters.drop(DropReason.UNKNOWN_FRAME)
            return None
        if name == "member.refused":
            status = rw.decode_refusal(body)
            self.counters.inc("renew.refused_us")
            out.event(ev.RenewalRefused(net.id, peer.node, status.word, status.fix))
            return None
        credential = rw.decode_credential_body(body)
        wall = now + self.credentials.wall_offset
        verdict = self.credentials.check(net, peer.node if name == "member.renew" else self.enrolment.identity.node_id,
                                         credential, now)
        if name == "member.renew":
            if isinstance(verdict, Refused):
                status = _REFUSAL.get(verdict.reason, EnrolStatus.INVALID)
            elif isinstance(answer := self.enrolment.reissue(net, self.credentials.own(net.id), verdict.cert, wall), Issued):
                self.counters.inc("renew.issued")
                out.control(peer, "member.cert", answer.credential)
                return None
            else:
                status = answer.status
            self.counters.inc("renew.refused." + status.word.replace(" ", "_"))
            out.control(peer, "member.refused", rw.encode_refusal(status))
            return None
        ours = self.credentials.own_certificate(net.id)
        promoted = isinstance(verdict, Accepted) and verdict.role is Role.ADMIN and peer.node == net.owner  # named an admin
        if (not isinstance(verdict, Accepted) or not self.enrolment.is_admin(net, peer.node, wall) or ours is None
                or verdict.role is not ours.role and not promoted or verdict.cert.not_after <= ours.not_after and not promoted):
            self.counters.drop(DropReason.CERT_MALFORMED if isinstance(verdict, Accepted) else verdict.reason)
            return None
        self.counters.inc("renew.renewed")
        out.event(ev.CredentialRenewed(net.id, peer.node, verdict.cert.not_after))
        return credential

    def promote(self, net: Network, node: NodeId, now: float, out: Outbox) -> None:
        """Name ``node`` an admin of ``net`` (we are its owner; docs/membership.md 1): a certificate like its member one,
        with role ADMIN, sent to it over its session (``member.cert``); it takes it as a renewal, and its record carries it."""
        name, wall = net.name or str(net.id), now + self.credentials.wall_offset
        if net.owner is None:
            raise UsageError(f"network {name} is open: it has no admins; create an owned network (omertactl network create "
                             "NAME) and invite its members there")
        if net.owner != self.enrolment.identity.node_id:
            raise UsageError(f"only the owner of network {name} names admins; ask the owner ({net.owner.short()})")
        rec, peer = self.members.gossip.record_of(net.id, node), self.table.get(net.id, node)
        verdict = self.credentials.check(net, node, rec.credential if rec is not None else None, now)
        if not isinstance(verdict, Accepted):
            raise UsageError(f"{node.short()} holds no valid member certificate in network {name} ({verdict.reason.value}); "
                             "invite it first")
        if verdict.role is not Role.MEMBER:
            raise UsageError(f"{node.short()} is already {verdict.role.name.lower()} of network {name}")
        if peer is None or not peer.connected:
            raise UsageError(f"{node.short()} is not connected: the admin certificate goes over its session; wait until it "
                             "is (omertactl peers)")
        answer = self.enrolment.reissue(net, self.credentials.own(net.id), verdict.cert, wall, Role.ADMIN)
        assert isinstance(answer, Issued)  # (we are the owner: nothing declines)
        out.control(peer, "member.cert", answer.credential)
        self.counters.inc("renew.promoted")

    def _may_renew(self, net: Network, peer: Peer, role: Role, wall: float) -> bool:
        """``peer`` can renew a certificate of ``role``: the owner always; an admin a member's."""
        return peer.node == net.owner or role is Role.MEMBER and self.enrolment.is_admin(net, peer.node, wall)
