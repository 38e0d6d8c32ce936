"""Members: which networks we belong to and who is in them (an owned sub-machine; ``mesh.members``).

It owns the networks we are a member of (create, add, join by invite, invite, leave), the mesh IPs we claim in
each (signed into our record), and the peers' membership: a peer is added (by invite, command or a gossiped
record) and dropped (we left, it departed); gossiped records are applied to known peers (name, endpoints,
relays). After the host's addresses change it re-advertises our record and has every connected peer hear us
again.

Like every sub-machine it never holds the ``Mesh``: handshakes to start, sealed goodbyes, controls, probes,
events and peers to re-arm go into the ``Outbox`` the caller passes. What it needs of this node (our signed
facts: endpoints, NAT, relay offer) comes from ``facts``, a function the caller passes, called only when
needed. A dropped peer is put to re-arm: it is REMOVED, so the caller cancels its timer.

Order matters in two places. A goodbye (CLOSE) is sealed here, before the peer's sessions are cleared, and
queued as an already-sealed datagram. A departure (``depart``) is performed by the caller before ``leave``
drops the members, so the signed departure goes out in the sessions it is about to close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import events as ev
from .config import CoreConfig
from .counters import Counters
from .discovery.gossip import Gossip, OwnFacts
from .entropy import Entropy
from .errors import DropReason, InviteError, UsageError, WireError
from .ids import NetworkId, NodeId
from .keys import Identity
from .member.check import Accepted, Refused, Verdict
from .member.credentials import Credentials
from .member.enrolment import certificate_name_ok
from .member.migration import Migration
from .member.offers import OFFER, Offers
from .nat.punch import Puncher
from .network import Network
from .outbox import Outbox
from .peers.links import Links
from .peers.paths import Address, ViaRelay
from .peers.peer import Peer, PeerState
from .peers.table import PeerTable
from .session.handshakes import Handshakes
from .session.lifecycle import Sessions
from .wire import frames as fw
from .wire.certs import MAX_LIFETIME, Role
from .wire.claim import OWNER
from .wire.invite import MAX_ADMIN_ENDPOINTS, MAX_ADMINS, Invite, check_network_name, decode_invite, encode_invite
from .wire.records import AddrClaim, PeerRecord
from .wire.revocations import Revocation, RevocationKind, decode_revocation, encode_revocations, sign_revocation, split_revocations

FactsFn = Callable[[], OwnFacts]
RemovedFn = Callable[[Network, float, Outbox], None]
MEMBER_CONTROLS = ("member.revoked", OFFER, OWNER)  # the control messages Members.receive takes


@dataclass(frozen=True, slots=True)
class InviteOptions:
    """What an owned network's invite allows (docs/membership.md 3.1): how many nodes it admits, for how long (seconds),
    and the name and tags their certificates get (an empty name: each joiner's own); ``lifetime``: the certificate's
    (0: ``CoreConfig.cert_lifetime``)."""

    uses: int = 1
    expires: float = 86400.0
    name: str = ""
    tags: tuple[str, ...] = ()
    lifetime: int = 0


class Members:
    def __init__(self, config: CoreConfig, entropy: Entropy, node_id: NodeId, hs: Handshakes, table: PeerTable,
                 gossip: Gossip, links: Links, sessions: Sessions, punch: Puncher, credentials: Credentials,
                 identity: Identity | None = None, counters: Counters | None = None, removed: RemovedFn | None = None, *,
                 facts: FactsFn) -> None:
        self.cfg = config
        self.removed = removed or (lambda _net, _now, _out: None)  # a node's removal taken: the owner rotates the key (6)
        self.identity = identity  # signs our revocations (remove)
        self.counters = counters or Counters()
        self.entropy = entropy
        self.node_id = node_id
        self.hs = hs
        self.table = table
        self.gossip = gossip
        self.links = links
        self.sessions = sessions
        self.punch = punch
        self.credentials = credentials  # owned networks: ours (set_credential), forgotten when we leave
        self.networks: dict[bytes, Network] = {}  # by network id; never rebound (Mesh.networks is this dict)
        self.address_claims: dict[bytes, AddrClaim] = {}  # our mesh IPs per network; never rebound either
        self.offers = Offers(self.counters, credentials.wall_offset)  # invites sent to us in-band (3.5), until taken
        self._ask_others: dict[bytes, tuple[float, tuple[tuple[NodeId, tuple[Address, ...]], ...]]] = {}  # (3.3)
        self.migration = Migration(config, self.counters, credentials, hs.enrolment, self, facts)  # open -> owned (7)
        sessions.greet_open = self.migration.greet

    # ------------------------------------------------------------------ networks
    def network(self, network_id: NetworkId) -> Network:
        net = self.networks.get(network_id.raw)
        if net is None:
            raise UsageError(f"not a member of network {network_id}; join it with an invite first")
        return net

    def create(self, name: str, facts: FactsFn, now: float, out: Outbox, owned: bool = False) -> Network:
        """A new network; ``owned``: we are its owner (docs/membership.md), holding a self-signed owner certificate."""
        try:
            check_network_name(name)  # before anything is created: the name goes into invites, state and replies
        except ValueError as e:
            raise UsageError(f"cannot create a network named {name!r}: {e}") from None
        net = Network.create(self.entropy, name)
        if owned:
            net = Network(net.key, name, owner=self.node_id)
            wall = now + self.credentials.wall_offset
            self.credentials.set_own(net.id, self.hs.enrolment.owner_credential(net, wall, self.cfg.cert_lifetime))
        self.add(net, facts, now, out)
        return net

    def add(self, net: Network, facts: FactsFn, now: float, out: Outbox) -> None:
        if net.id.raw in self.networks:
            return
        self.networks[net.id.raw] = net
        self.hs.add_network(net)
        self.gossip.add_network(net, facts(), now)
        out.event(ev.NetworkJoined(net.id, net.name))

    def invite(self, network_id: NetworkId, endpoints: list[Address], now: float = 0.0, opts: InviteOptions | None = None) -> str:
        """An invite string: for an open network its key (version 1, always the same); for an owned one a fresh
        signed token (version 2: ``opts`` say its uses, expiry, and the certificate's name and tags)."""
        net = self.network(network_id)
        if net.owner is None:
            if opts is not None:
                raise UsageError(f"network {net.name or net.id} is open: its invites are its key, without uses or expiry")
            return encode_invite(Invite(net.key, self.node_id, net.name, tuple(endpoints)))
        o = opts or InviteOptions()
        token = self.hs.enrolment.issue(net, self.credentials.own(net.id), now + self.credentials.wall_offset,
                                        uses=o.uses, expires=o.expires, name=o.name, tags=o.tags,
                                        lifetime=min(o.lifetime or self.cfg.cert_lifetime, self.cfg.cert_lifetime))
        return encode_invite(Invite(net.key, self.node_id, net.name, tuple(endpoints), net.owner, net.id, net.epoch, token,
                                    self._other_admins(net, now)))

    def _other_admins(self, net: Network, now: float) -> tuple[tuple[NodeId, tuple[Address, ...]], ...]:
        """Admins (and the owner) besides us that a joiner may ask when we do not answer (3.3): connected ones first,
        each with the endpoints its record gives; at most ``MAX_ADMINS``."""
        found = []
        for rec in self.gossip.records(net.id):
            if rec.node != self.node_id and not rec.left and rec.endpoints and self.is_admin(net, rec.node, now):
                peer = self.table.get(net.id, rec.node)
                away = not (peer is not None and peer.connected)
                found.append((away, rec.node.raw, rec.node, tuple(rec.endpoints[:MAX_ADMIN_ENDPOINTS])))
        return tuple((node, eps) for _, _, node, eps in sorted(found)[:MAX_ADMINS])

    def join(self, invite_text: str, facts: FactsFn, now: float, out: Outbox, name: str = "") -> Network:
        """Join by invite; a version 2 invite (owned network) enrols first with its token, asking for ``name``."""
        inv = decode_invite(invite_text)
        net = Network.of_invite(inv)
        if inv.token is not None:
            if inv.network_id != net.id:
                raise InviteError("this invite is damaged: its network id is not its key's; ask for a new invite")
            own = self.credentials.own(net.id)
            if own is not None and isinstance(self.credentials.check(net, self.node_id, own, now), Refused):
                self.credentials.set_own(net.id, None)  # expired or revoked: the new invite enrols us again (2.5)
            self.credentials.enrol(net.id, inv.token.encode(), name if certificate_name_ok(name) else "")
        self.add(net, facts, now, out)
        if inv.token is None:  # an open network: its creator may claim it later; we follow our inviter (7)
            self.migration.expect(net.id, inv.inviter)
        elif inv.admins:  # other admins to ask when the inviter does not answer within a handshake retry (3.3)
            self._ask_others[net.id.raw] = (now + self.cfg.rekey_timeout, inv.admins)
        if inv.inviter != self.node_id:
            self.add_peer(net.id, inv.inviter, list(inv.endpoints), now, out)
        return net

    def ask_others_at(self) -> float | None:
        """When to ask the other admins an invite named, if the inviter has not enrolled us by then."""
        return min((at for at, _ in self._ask_others.values()), default=None)

    def ask_others(self, now: float, out: Outbox) -> None:
        """The inviter did not answer our enrolment in time: the other admins the invite named become peers, so our
        enrolment goes to them too (the first to answer enrols us; see ``Sessions._enrol_answered``)."""
        for raw, (at, admins) in list(self._ask_others.items()):
            if now < at:
                continue
            del self._ask_others[raw]
            net = self.networks.get(raw)
            if net is None or self.credentials.enrolling(net.id) is None:
                continue  # left, or enrolled already
            for node, eps in admins:
                if node != self.node_id and self.table.get(net.id, node) is None:
                    self.add_peer(net.id, node, list(eps), now, out)
                    self.counters.inc("enrol.asked_other_admin")

    def replace(self, net: Network) -> None:
        """``net`` in place of the network of its id we hold, for us and its peers: its key was rotated (6)."""
        self.networks[net.id.raw] = net
        for peer in self.table.in_network(net.id):
            peer.network = net

    def depart(self, network_id: NetworkId, now: float, out: Outbox) -> Network:
        """Step one of leaving: a signed departure (members drop us at once, stale gossip cannot re-add us).
        The caller performs ``out`` before ``leave``, while the sessions it goes out in are still open."""
        net = self.network(network_id)
        self.gossip.depart(net, now, out)
        return net

    def leave(self, net: Network, now: float, out: Outbox) -> None:
        """Step two: say goodbye to every member, drop them and forget the network."""
        for peer in self.table.in_network(net.id):
            self.drop(peer, now, "left the network", True, out)
        self.hs.remove_network(net)
        del self.networks[net.id.raw]
        self.gossip.remove_network(net.id)
        self.credentials.forget(net.id)
        self.migration.forget(net.id)
        self._ask_others.pop(net.id.raw, None)
        out.event(ev.NetworkLeft(net.id))

    def claim(self, network_id: NetworkId, claim: AddrClaim | None, facts: FactsFn, now: float, out: Outbox) -> None:
        """Our mesh IPs in ``network_id``, to be signed into our record (re-signed and pushed when changed)."""
        if claim is None:
            self.address_claims.pop(network_id.raw, None)
        else:
            self.address_claims[network_id.raw] = claim
        if (net := self.networks.get(network_id.raw)) is not None:
            self._readvertise(net, facts, now, out)

    def set_credential(self, network_id: NetworkId, credential: bytes | None, facts: FactsFn, now: float, out: Outbox) -> Verdict:
        """Our credential in the owned network ``network_id``: presented in our handshakes from now on, signed into our
        record (re-signed and pushed). Returns what members will make of it (``Credentials.check`` of ourselves):
        the caller may warn, but it is set either way (the check is theirs)."""
        net = self.network(network_id)
        if net.owner is None:
            raise UsageError(f"network {net.name or net.id} is open: only an owned network takes a credential")
        self.credentials.set_own(net.id, credential)
        self._readvertise(net, facts, now, out)
        return self.credentials.check(net, self.node_id, credential, now)

    def _readvertise(self, net: Network, facts: FactsFn, now: float, out: Outbox) -> None:
        if self.gossip.refresh_own(net, facts(), now):
            self.gossip.push_own(net, now, out)

    # ------------------------------------------------------------------ removal (docs/membership.md 5)
    def is_admin(self, net: Network, node: NodeId, now: float) -> bool:
        """Whether ``node`` is the owner or an admin of the owned ``net`` now: its credential (ours, or the one in its
        stored record) checks out with role OWNER or ADMIN."""
        if node == net.owner:
            return True
        rec = None if node == self.node_id else self.gossip.record_of(net.id, node)
        cred = self.credentials.own(net.id) if node == self.node_id else rec.credential if rec is not None else None
        verdict = self.credentials.check(net, node, cred, now) if cred is not None else None
        return isinstance(verdict, Accepted) and verdict.role in (Role.ADMIN, Role.OWNER)

    def remove(self, network_id: NetworkId, node: NodeId, now: float, out: Outbox) -> Revocation:
        """Remove ``node`` from the owned network (we are its owner or an admin): a signed node revocation, taken here
        and pushed to every connected member; its sessions close, its record goes (``revoked``)."""
        net = self.network(network_id)
        name = net.name or str(net.id)
        if net.owner is None:
            raise UsageError(f"network {name} is open: whoever holds its invite is a member, and nobody can be removed; "
                             "to remove members, create an owned network (omertactl network create NAME) and invite them there")
        if not self.is_admin(net, self.node_id, now) or self.identity is None:
            raise UsageError(f"only the owner or an admin of network {name} can remove members; ask one of them")
        if node == self.node_id or node == net.owner:
            raise UsageError("the owner cannot be removed" if node == net.owner else "to go, leave the network instead")
        wall = int(now + self.credentials.wall_offset)
        rev, refusal = self._revoke(net, RevocationKind.NODE, node.raw, wall + MAX_LIFETIME, now, out)
        if refusal is not None:
            raise UsageError(f"an admin removes members only: {node.short()} is an admin of {name}; ask the owner")
        rl = self.credentials.revocations(net)
        for mark in self.hs.enrolment.marks(net.id):  # the invite that enrolled it: no more uses for whoever holds it
            if mark.enrolled == node and mark.token_not_after > wall and not rl.token_revoked(mark.token_id, wall):
                self._revoke(net, RevocationKind.TOKEN, mark.token_id, min(mark.token_not_after, wall + MAX_LIFETIME), now, out)
        return rev

    def revoke_invite(self, network_id: NetworkId, token_id: bytes, now: float, out: Outbox) -> Revocation:
        """Cancel an open invite this node made (3.2): a token revocation until the token's expiry, signed, taken here and
        spread as a removal is (``member.revoked``), so every admin refuses the token as "revoked"."""
        net = self.network(network_id)
        name, wall = net.name or str(net.id), int(now + self.credentials.wall_offset)
        if net.owner is None:
            raise UsageError(f"network {name} is open: its invite is its key and cannot be revoked; to revoke invites, create "
                             "an owned network (omertactl network create NAME) and invite to that one")
        token = next((t for t in self.hs.enrolment.issued(net.id, wall) if t.token_id == token_id), None)
        if token is None or self.identity is None or not self.is_admin(net, self.node_id, now):
            raise UsageError(f"no open invite {token_id.hex()} made by this node in network {name}; list them with "
                             f"network invites {name}")
        rev, reason = self._revoke(net, RevocationKind.TOKEN, token_id, token.not_after, now, out)
        if reason is not None:
            raise UsageError(f"the revocation was refused here: {reason.value}")
        return rev

    def _revoke(self, net: Network, kind: RevocationKind, target: bytes, until: int, now: float,
                out: Outbox) -> tuple[Revocation, DropReason | None]:
        """Sign a revocation of ``target`` (ours: we checked we may) from now until ``until``, take it into the network's
        list and spread it (``_revoked``); the list's refusal, if it refused it."""
        assert self.identity is not None
        wall = int(now + self.credentials.wall_offset)
        rev = sign_revocation(self.identity, Revocation(kind, net.id, target, wall, until, self.node_id))
        if (reason := self.credentials.revocations(net).add(rev, lambda n: self.is_admin(net, n, now), wall)) is None:
            self._revoked(net, rev, None, now, out)
        return rev, reason

    def receive(self, peer: Peer, name: str, body: bytes, now: float, out: Outbox) -> None:
        """A control message of ours from a session's peer: revocations, or an invite offered in-band (3.5)."""
        if name == OFFER:
            self.offers.receive(peer, body, now, out, lambda n: n.raw in self.networks)
        elif name == OWNER:
            self.migration.receive(peer, body, now, out)
        else:
            self.on_revoked(peer, body, now, out)

    def on_revoked(self, peer: Peer, body: bytes, now: float, out: Outbox) -> None:
        """``member.revoked`` from a member: each revocation that is new, and signed by someone who may revoke its
        target, is taken and acted on (and pushed on); others are dropped and counted (``revocation_invalid``)."""
        net = peer.network
        try:
            if net.owner is None:
                raise WireError(DropReason.REVOCATION_INVALID, "revocation in an open network")
            blobs = split_revocations(body, self.cfg.max_revocations)
        except WireError as e:
            self.counters.drop(e.reason)
            return
        rl, wall = self.credentials.revocations(net), now + self.credentials.wall_offset
        for blob in blobs:
            try:
                rev = decode_revocation(blob)
            except WireError as e:
                self.counters.drop(e.reason)
                continue
            if rl.holds(rev):
                continue
            if (reason := rl.add(rev, lambda n: self.is_admin(net, n, now), wall)) is not None:
                self.counters.drop(reason)
            elif rl.holds(rev):
                self._revoked(net, rev, peer, now, out)

    def restore_revocations(self, network_id: NetworkId, blobs: tuple[bytes, ...], now: float) -> int:
        """Revocations the host saved (each was checked when taken; its signature is checked again, the issuer's
        standing is not, since the admins are not known yet at start); how many were left out."""
        net = self.network(network_id)
        rl, wall, left = self.credentials.revocations(net), now + self.credentials.wall_offset, 0
        for blob in blobs:
            try:
                left += rl.add(decode_revocation(blob), lambda _n: True, wall) is not None
            except WireError:
                left += 1
        return left

    def revocations(self, network_id: NetworkId) -> list[bytes]:
        """The owned network's revocations in force, encoded (what the host saves, what a new session is told)."""
        net = self.network(network_id)
        return [r.encode() for r in self.credentials.revocations(net)] if net.owner is not None else []

    def _revoked(self, net: Network, rev: Revocation, sender: Peer | None, now: float, out: Outbox) -> None:
        """A new revocation taken: push it on to every other connected member, then drop its node and every node
        whose record no longer checks out (a voided admin's members)."""
        target = NodeId(rev.target) if rev.kind is RevocationKind.NODE else None
        body = encode_revocations([rev.encode()])
        for p in self.table.in_network(net.id):
            if p.connected and p is not sender and p.node != target:
                out.control(p, "member.revoked", body)
        gone = self.gossip.recheck(net, now)
        for node in dict.fromkeys([*([target] if target is not None else []), *gone]):
            if node == self.node_id:
                continue  # we were removed (told before the others closed our sessions): nothing of ours to drop
            if (peer := self.table.get(net.id, node)) is not None:
                self.drop(peer, now, f"removed by {rev.issuer.short()}", True, out)
            out.event(ev.PeerLeft(net.id, node))
        self.counters.inc("member.revocations_taken")
        out.event(ev.MemberRemoved(net.id, target, rev.issuer))
        if target is not None and target != self.node_id:
            self.removed(self.networks.get(net.id.raw, net), now, out)

    # ------------------------------------------------------------------ peers
    def add_peer(self, network_id: NetworkId, node: NodeId, endpoints: list[Address], now: float, out: Outbox,
                 wanted: bool = True) -> Peer:
        """Make a peer known (with candidate endpoints) and start talking to it."""
        net = self.network(network_id)
        if node == self.node_id:
            raise UsageError("that node id is this node's own")
        x = self.hs.x25519_of(node.raw)
        if x is None:
            raise UsageError(f"{node} is not a valid node id (not an Ed25519 public key)")
        if net.owner is not None and self.credentials.revocations(net).node(node, now + self.credentials.wall_offset):
            raise UsageError(f"{node.short()} was removed from network {net.name or net.id}; it cannot be added back")
        peer = self.hs.admit(net, node, x, proven=wanted)  # asked for by us (invite, command, cache): proven
        for ep in reversed(endpoints):
            peer.add_endpoint(ep)
        peer.wanted = peer.wanted or wanted
        if peer.current is None and peer.pending is None:
            self.sessions.initiate(peer, now, out)
        self.evict(now, out)
        return peer

    def find_peer(self, node: NodeId, network_id: NetworkId | None, now: float | None, out: Outbox) -> Peer:
        """The peer ``node`` (in ``network_id``, else the one with a session). With ``now``, a member known
        only by its signed record gets a peer and a session is opened (the commands that send); without,
        this is a pure lookup that raises ``UsageError`` for it."""
        if network_id is not None:
            peer = self.table.get(network_id, node)
            rec = self.gossip.record_of(network_id, node) if peer is None and now is not None else None
            if rec is not None and now is not None:
                peer = self.connect_record(self.network(network_id), rec, now, out)
            if peer is None:
                raise UsageError(f"peer {node.short()} is not known in network {network_id}")
            return peer
        cands = self.table.by_node(node)
        if not cands:
            # known by gossip only: with `now`, open a session on demand
            for net in self.networks.values() if now is not None else ():
                rec = self.gossip.record_of(net.id, node)
                if rec is not None and (rec.endpoints or rec.relays) and now is not None:
                    peer = self.connect_record(net, rec, now, out)
                    if peer is not None:
                        return peer
            raise UsageError(f"peer {node.short()} is not known in any network; join with an invite or add it")
        cands.sort(key=lambda p: (p.current is None, p.network.id.raw))
        return cands[0]

    def drop(self, peer: Peer, now: float, reason: str, tell: bool, out: Outbox) -> None:
        """Remove a peer: with ``tell``, a CLOSE sealed now, before its sessions are cleared."""
        s = peer.sendable_session(now) if tell and peer.current is not None else None
        if s is not None:
            out.datagram(peer, s.encrypt(fw.encode_close(), now), peer.endpoint)
        self.sessions.close(peer, reason, now, out)
        if peer.state is not PeerState.REMOVED:
            peer.move(PeerState.REMOVED, now)
        self.table.remove(peer)
        self.punch.forget(peer)
        out.arm(peer)  # REMOVED: the caller cancels its timer

    def evict(self, now: float, out: Outbox) -> None:
        """Finish dropping the peers the table evicted to admit another (the order: core/peers/table.py)."""
        for peer in self.table.take_evicted():
            why = "evicted: the network's peer table is full" if peer.proven else "evicted: unproven (nothing since its handshake)"
            self.drop(peer, now, why, False, out)

    # ------------------------------------------------------------------ records (core/discovery/gossip.py)
    def connect_record(self, net: Network, rec: PeerRecord, now: float, out: Outbox, reach: bool = True) -> Peer | None:
        """A member known by its signed record: a peer for it, its record applied, a handshake started."""
        try:
            peer = self.add_peer(net.id, rec.node, list(rec.endpoints), now, out, wanted=False)
        except UsageError:
            return None
        self.apply_record(peer, rec, now, out, reach)
        return peer

    def apply_record(self, peer: Peer, rec: PeerRecord, now: float, out: Outbox, reach: bool = True) -> None:
        peer.name = rec.name
        for ep in reversed(rec.endpoints):
            if ep not in peer.endpoints:
                peer.endpoints.append(ep)
        del peer.endpoints[self.cfg.max_endpoints_per_peer :]
        self.links.offer_relays(peer, rec.relays, self.node_id.raw, now, out)
        if reach:
            self._reach_relays(peer, now, out)

    def _reach_relays(self, peer: Peer, now: float, out: Outbox) -> None:
        """A peer we are opening a session with but share no relay with: its initiations can only go to its
        advertised endpoints, which its NAT drops until it has sent to us. Open a session with the relays its
        record names (as a Tailscale client connects to a peer's home DERP); once one connects,
        ``relay_connected`` gives the peer a path through it and sends the pending initiation along."""
        if peer.current is not None or peer.pending is None or any(isinstance(a, ViaRelay) for a in peer.paths):
            return
        for rid in peer.relays:
            if rid in (self.node_id.raw, peer.node.raw):
                continue
            r = self.table.get(peer.network.id, NodeId(rid))
            if r is not None and (r.connected or r.pending is not None):
                continue  # connected (it gave no path: not on a direct path now) or being reached already
            rec = self.gossip.record_of(peer.network.id, NodeId(rid))
            if rec is not None and rec.relay and rec.endpoints:
                self.connect_record(peer.network, rec, now, out, reach=False)

    def relay_connected(self, relay: Peer, now: float, out: Outbox) -> None:
        """A session with ``relay`` completed: every peer whose record names it gets a path through it (and a
        pending initiation goes that way at once: see ``Links.offer_relays``)."""
        rec = self.gossip.record_of(relay.network.id, relay.node)
        if rec is None or not rec.relay:  # (every handshake comes here, rekeys too: only relays need the walk)
            return
        rid = relay.node.raw
        for peer in self.table.in_network(relay.network.id):
            if peer is not relay and rid in peer.relays and ViaRelay(relay.node.text()) not in peer.paths:
                self.links.offer_relays(peer, peer.relays, self.node_id.raw, now, out)

    def learnt(self, net: Network, recs: list[PeerRecord], now: float, out: Outbox) -> None:
        """Records gossip accepted: a departed node is dropped at once, a known peer's record applied."""
        for rec in recs:
            known = self.table.get(net.id, rec.node)
            if rec.left:
                if known is not None:
                    self.drop(known, now, "left the network", False, out)
                out.event(ev.PeerLeft(net.id, rec.node))
            elif known is not None:
                self.apply_record(known, rec, now, out)

    # ------------------------------------------------------------------ our addresses changed
    def readvertise(self, facts: FactsFn, now: float, out: Outbox) -> None:
        """Re-sign our record in every network and send it to every connected member (who push it on)."""
        own = facts()
        for net in self.networks.values():
            self.gossip.refresh_own(net, own, now, force=True)
            self.gossip.push_own(net, now, out)

    def reprobe(self, now: float, out: Outbox) -> None:
        """Every connected peer hears us again: a probe on its current path (it switches to our new source
        address, its PONG reports our new mapping); relayed peers exchange punch candidates again."""
        for peer in list(self.table):
            if not peer.connected or peer.endpoint is None or peer.sendable_session(now) is None:
                continue
            if isinstance(peer.endpoint, ViaRelay):
                self.punch.retry_now(peer, now)
            else:
                out.probe(peer, peer.endpoint)
            out.arm(peer)
