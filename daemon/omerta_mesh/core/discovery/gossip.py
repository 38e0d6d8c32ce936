"""Gossip: discovery by signed peer records, push-pull rounds and neighbours (an owned sub-machine).

Each node signs a record about itself per network (``wire/records.py``) and re-signs it with a higher
sequence number whenever its endpoints, NAT verdict, relays or claimed mesh IPs change, and before it expires.

Every ``gossip_interval`` seconds, per network, a node picks ``gossip_fanout`` random connected members and
sends each a ``gossip.sync``: a digest of one slice of its id-sorted store (at most ``gossip_digest_entries``
entries, the slice moving on each round, so a digest is bounded whatever the network's size) plus the few
records it learnt most recently (push). The receiver answers with the records of that slice the sender lacks
(at most ``gossip_budget`` bytes) and asks for those it lacks itself (``gossip.want``). Push spreads news in
O(log N) rounds; the moving digest is the anti-entropy that lets a node that was away catch up.

A node keeps sessions with ``neighbours`` members besides those it talks to, chosen at random from the
records it holds, and with at least one relay-capable member when it is not publicly reachable.

Owned networks (docs/membership.md, 2.4): our record carries our credential (``Credentials.own``; until an
admin enrolled us we sign no record there, since every member would refuse it), and a network's store takes a
record only if its credential admits its node now (``Credentials.check``, asked by the store: ``store.py``); a
refused one is counted under its ``cert_*`` reason, as the handshake counts it. Open networks' records are as
before.

Leaving: ``depart`` signs a *departure* record (flag ``left``, no endpoints, a higher sequence number) and
sends it to every connected member; it spreads by gossip like any record. While it is held, older records of
that node are refused as stale, so stale gossip cannot bring the node back; a later re-join signs a newer
record, which replaces it. ``records()`` and ``record_of()`` never return a departure.

The sub-machine owns the per-network stores, our own records, the rounds and the neighbour choice. It never
references ``Mesh``: facts owned elsewhere (our advertised endpoints, NAT verdict, relay offer) come in as
``OwnFacts``; connected peers come from the ``PeerTable``; what it wants done goes into an ``Outbox``
(control messages, events) or comes back as a typed result (records learnt, peers to connect to).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import events as ev
from ..config import CoreConfig
from ..counters import Counters
from ..entropy import Entropy
from ..errors import DropReason, WireError
from ..ids import NetworkId, NodeId
from ..keys import Identity
from ..member.check import Refused
from ..member.credentials import Credentials
from ..network import Network
from ..outbox import Outbox
from ..peers.paths import Address, ViaRelay
from ..peers.peer import Peer
from ..peers.table import PeerTable
from ..wire import control as cw
from ..wire.records import FEATURE_AES, AddrClaim, PeerRecord, Prefix, decode_record, fit_host_keys, sign_record
from .store import PREFIX_LEN, Admit, PeerRecordStore

FEATURES = FEATURE_AES  # what our data plane accepts, said in our records (core/wire/records.py)

HOT = 32  # recently learnt records remembered per network for pushing
PUSHES = 3  # rounds a newly learnt record is pushed in
NEWCOMER = 16  # a requester knowing fewer records than this is always answered (it may have no one else)
MIN_SHARE = 2048  # bytes every gossip request is answered with, even when the round's budget is spent
MAX_SKEW = 600.0  # seconds a record may claim beyond the record lifetime (clock skew between members)
_TOP = b"\xff" * PREFIX_LEN


@dataclass(frozen=True, slots=True)
class OwnFacts:
    """What our own record says, from facts other parts own (the NAT verdict, the relay offer)."""

    endpoints: tuple[Address, ...]  # public mappings first, then our sockets' addresses
    relay: bool  # we offer to relay
    mapping: int
    filtering: int
    port_delta: int
    behind_nat: bool  # not publicly reachable: keep a session with a relay-capable member
    addresses: Mapping[bytes, AddrClaim] = field(default_factory=dict)  # network id -> our claimed mesh IPs


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a session with the node of ``record`` (a neighbour, or a relay we need)."""

    network: Network
    record: PeerRecord


class _NetGossip:
    __slots__ = ("store", "cursor", "hot", "own", "own_key", "spent", "answered", "introduced")

    def __init__(self, max_records: int, max_lifetime: float, admit: Admit | None) -> None:
        self.store = PeerRecordStore(max_records, max_lifetime, admit)
        self.cursor = b""
        self.hot: deque[list[Any]] = deque(maxlen=HOT)  # [node id, pushes left]
        self.own: PeerRecord | None = None
        self.own_key: tuple[object, ...] | None = None
        self.spent = 0  # gossip bytes sent this round
        self.answered = 0  # syncs answered this round
        self.introduced: dict[bytes, int] = {}  # per member: records of nodes new to us it brought this round


class Gossip:
    def __init__(self, identity: Identity, config: CoreConfig, counters: Counters, entropy: Entropy, table: PeerTable,
                 wall_offset: float, name: str, credentials: Credentials | None = None) -> None:
        self.identity = identity
        self.node_id = identity.node_id
        self.cfg = config
        self.counters = counters
        self.entropy = entropy
        self.table = table
        self.wall_offset = wall_offset
        self.name = name
        self.host_keys: tuple[bytes, ...] = ()  # our sshd's host keys, published in our records (set_host_keys)
        self.features = FEATURES  # what our data plane accepts (records.FEATURE_*), said in our records
        self.exit = 0  # our exit offer (records.EXIT_V4 | EXIT_V6), published in our records (meshd/exitnode.py)
        self.routes: tuple[Prefix, ...] = ()  # our advertised subnet routes, published in our records
        self._nets: dict[bytes, _NetGossip] = {}
        self.credentials = credentials or Credentials(config, wall_offset)  # owned networks: ours, and the check of theirs

    # ------------------------------------------------------------------ networks and queries
    def add_network(self, net: Network, facts: OwnFacts, now: float) -> None:
        self._net(net)
        self.refresh_own(net, facts, now, force=True)

    def remove_network(self, network: NetworkId) -> None:
        self._nets.pop(network.raw, None)

    def _net(self, net: Network) -> _NetGossip:
        g = self._nets.get(net.id.raw)
        if g is None:
            admit = (lambda rec, wall: self._admits(net, rec, wall)) if net.owner is not None else None
            g = self._nets[net.id.raw] = _NetGossip(self.cfg.max_peers_per_network, self.cfg.record_lifetime + MAX_SKEW, admit)
        return g

    def owned(self, net: Network) -> None:
        """The open ``net`` became owned (docs/membership.md 7): records are taken by their credential from now on."""
        if (g := self._nets.get(net.id.raw)) is not None:
            g.store.admit = lambda rec, wall: self._admits(net, rec, wall)

    def _admits(self, net: Network, rec: PeerRecord, wall: float) -> DropReason | None:
        """Why an owned network's store refuses ``rec`` (its credential does not admit its node now), None: taken."""
        if rec.node == self.node_id:
            return None  # our own, whatever members will make of it
        verdict = self.credentials.check(net, rec.node, rec.credential, wall - self.wall_offset)
        return verdict.reason if isinstance(verdict, Refused) else None

    def recheck(self, net: Network, now: float) -> list[NodeId]:
        """Drop the owned network's stored records whose credential no longer admits their node (revoked, expired,
        its admin's voided); the nodes dropped (departures are kept: they only remove)."""
        g = self._nets.get(net.id.raw)
        if g is None or net.owner is None:
            return []
        wall = now + self.wall_offset
        gone = [r.node for r in g.store if not r.left and self._admits(net, r, wall) is not None]
        for node in gone:
            g.store.remove(node.raw)
        return gone

    def records(self, network: NetworkId) -> list[PeerRecord]:
        """The live records of ``network`` (departures are held, but not listed)."""
        g = self._nets.get(network.raw)
        return [r for r in g.store if not r.left] if g else []

    def record_of(self, network: NetworkId, node: NodeId) -> PeerRecord | None:
        g = self._nets.get(network.raw)
        r = g.store.get(node) if g else None
        return None if r is None or r.left else r

    def own(self, network: NetworkId) -> PeerRecord | None:
        g = self._nets.get(network.raw)
        return g.own if g else None

    # ------------------------------------------------------------------ own record
    def set_host_keys(self, blobs: tuple[bytes, ...]) -> None:
        """Our SSH host public keys (SSH wire blobs): every record we sign from now on carries those that fit."""
        self.host_keys = fit_host_keys(blobs)

    def home_relays(self, network: NetworkId) -> tuple[bytes, ...]:
        """The (at most two) nearest relay-capable members we reach on a direct path."""
        if (g := self._nets.get(network.raw)) is None:
            return ()
        out = []
        for p in self.table.in_network(network):
            rec = g.store.get(p.node)
            if rec is not None and rec.relay and p.connected and p.endpoint is not None and not isinstance(p.endpoint, ViaRelay):
                path = p.paths.get(p.endpoint)
                rtt = path.srtt if path is not None and path.srtt is not None else 1e9
                out.append((round(rtt, 2), p.node.raw))  # the nearest relays (RTT in 10 ms steps: no flapping)
        return tuple(sorted(r for _, r in sorted(out)[:2]))

    def refresh_own(self, net: Network, facts: OwnFacts, now: float, force: bool = False) -> bool:
        """Re-sign our record if what it says changed or it is due for refreshing. Returns whether it did."""
        g = self._net(net)
        eps = facts.endpoints[:8]
        relays = self.home_relays(net.id)
        claim = facts.addresses.get(net.id.raw)
        cred = self.credentials.own(net.id) if net.owner is not None else None
        if net.owner is not None and cred is None:
            return False  # not enrolled yet: every member would refuse a record without a credential (cert_missing)
        key = (eps, facts.relay, facts.mapping, facts.filtering, facts.port_delta, self.name, relays, claim, self.host_keys, self.exit,
               self.routes, cred, self.features)
        wall = now + self.wall_offset
        due = g.own is None or wall >= g.own.expires - self.cfg.record_lifetime + self.cfg.record_refresh
        if not force and g.own_key == key and not due:
            return False
        rec = PeerRecord(self.node_id, 0, 0, eps, self.name, facts.relay, facts.mapping, facts.filtering, facts.port_delta, relays,
                         addrs=claim, host_keys=self.host_keys, exit=self.exit,
                         routes=self.routes, credential=cred, features=self.features)
        self._sign_own(net, g, rec, wall)
        g.own_key = key
        return True

    def _sign_own(self, net: Network, g: _NetGossip, rec: PeerRecord, wall: float) -> PeerRecord:
        seq = max(int(wall * 1000), (g.own.seq + 1) if g.own else 0)
        rec = dataclasses.replace(rec, seq=seq, expires=int(wall + self.cfg.record_lifetime))
        g.own = sign_record(self.identity, net.id, rec)
        g.store.offer(g.own, wall)
        g.hot.append([self.node_id.raw, PUSHES])
        return g.own

    def push_own(self, net: Network, now: float, out: Outbox) -> None:
        """Send our own record to every connected member of ``net`` now (one record each)."""
        g = self._net(net)
        if g.own is None:
            return
        body = cw.encode_record_list([g.own.raw])
        for peer in self.table.in_network(net.id):
            if peer.connected and peer.sendable_session(now) is not None:
                g.spent += len(body)
                self.counters.inc("gossip.own_pushed")
                out.control(peer, "gossip.records", body)

    def depart(self, net: Network, now: float, out: Outbox) -> PeerRecord:
        """We leave ``net``: sign a departure record (a higher sequence number, no endpoints) and send it to
        every connected member, who drop us from their lists and spread it by gossip."""
        g = self._net(net)
        rec = self._sign_own(net, g, PeerRecord(self.node_id, 0, 0, name=self.name, left=True), now + self.wall_offset)
        self.counters.inc("gossip.departures_sent")
        self.push_own(net, now, out)
        return rec

    # ------------------------------------------------------------------ rounds
    def round(self, networks: list[Network], facts: OwnFacts, now: float, out: Outbox) -> tuple[float, list[Connect]]:
        """One gossip round in every network. Returns when the next is due and the peers to connect to."""
        wall = now + self.wall_offset
        connects: list[Connect] = []
        for net in networks:
            g = self._net(net)
            g.spent = 0
            g.answered = 0
            g.introduced.clear()
            for _gone in g.store.expire(wall):
                self.counters.inc("gossip.expired")
            self.refresh_own(net, facts, now)
            peers = [p for p in self.table.in_network(net.id) if p.connected and p.sendable_session(now) is not None]
            for _ in range(min(self.cfg.gossip_fanout, len(peers))):
                target = peers.pop(self.entropy.randbelow(len(peers)))
                self._send_sync(g, target, out)
            connects += self._neighbours(net, g, facts)
        return now + self.cfg.gossip_interval * self.entropy.uniform(0.9, 1.1), connects

    def first_round_at(self, now: float) -> float:
        return now + self.cfg.gossip_interval * self.entropy.uniform(0.1, 1.0)

    def greet(self, peer: Peer, out: Outbox) -> None:
        """A member just connected: a sync at once, so a newcomer learns the network without waiting."""
        g = self._net(peer.network)
        if g.spent < self.cfg.gossip_round_budget:
            self._send_sync(g, peer, out)

    def _send_sync(self, g: _NetGossip, peer: Peer, out: Outbox) -> None:
        recs, nxt, wrapped = g.store.window(g.cursor, self.cfg.gossip_digest_entries)
        lo = g.cursor[:PREFIX_LEN] if g.cursor else b"\0" * PREFIX_LEN
        hi = _TOP if wrapped else recs[-1].node.raw[:PREFIX_LEN] if recs else _TOP
        g.cursor = nxt
        entries = [(r.node.raw[:PREFIX_LEN], r.seq) for r in recs]
        push = []
        for item in list(g.hot)[-self.cfg.gossip_push :]:
            r = g.store.get(item[0])
            if r is not None and r.node != peer.node:
                push.append(r.raw)
            item[1] -= 1
            if item[1] <= 0:
                g.hot.remove(item)
        body = cw.encode_sync(cw.GossipSync(lo, hi, wrapped, entries, push))
        g.spent += len(body)
        self.counters.inc("gossip.sync_sent")
        self.counters.inc("gossip.bytes_sent", len(body))
        out.control(peer, "gossip.sync", body)

    def _neighbours(self, net: Network, g: _NetGossip, facts: OwnFacts) -> list[Connect]:
        have = {p.node.raw for p in self.table.in_network(net.id) if p.connected or p.pending is not None}
        want = self.cfg.neighbours - len(have)
        need_relay = facts.behind_nat and not self.home_relays(net.id)
        cands = [r for r in g.store if r.node.raw not in have and r.node != self.node_id and r.endpoints and not r.left]
        out = []
        if need_relay:
            relays = [r for r in cands if r.relay]
            if relays:
                out.append(Connect(net, relays[self.entropy.randbelow(len(relays))]))
        for _ in range(min(2, want)):
            if not cands:
                break
            out.append(Connect(net, cands.pop(self.entropy.randbelow(len(cands)))))
        return out

    # ------------------------------------------------------------------ receiving
    def receive(self, peer: Peer, name: str, body: bytes, now: float, out: Outbox) -> list[PeerRecord]:
        """A ``gossip.*`` control message from ``peer``. Returns the records newly accepted (departures
        included: the caller drops a departed node and applies a live record to a peer it knows)."""
        g = self._net(peer.network)
        if name == "gossip.records":
            return self._accept(peer, g, cw.decode_record_list(body), now, out)
        if name == "gossip.want":
            prefixes = cw.decode_want(body)
            if len(prefixes) > 4 * self.cfg.gossip_digest_entries:
                raise WireError(DropReason.GOSSIP_LIMIT, "want list too long")
            recs = [r for p in prefixes if (r := g.store.by_prefix(p)) is not None]
            self._answer(peer, g, recs, out)
            return []
        if name != "gossip.sync":
            raise WireError(DropReason.UNKNOWN_FRAME, name)
        m = cw.decode_sync(body)
        if len(m.entries) > 4 * self.cfg.gossip_digest_entries or len(m.records) > 4 * self.cfg.gossip_push:
            raise WireError(DropReason.GOSSIP_LIMIT, "sync larger than any honest node sends")
        accepted = self._accept(peer, g, m.records, now, out)
        if g.answered >= self.cfg.gossip_answers and len(m.entries) >= NEWCOMER:
            self.counters.inc("gossip.busy")  # the requester's other peers answer it
            return accepted
        g.answered += 1
        theirs = dict(m.entries)
        mine = g.store.in_range(m.lo, None if m.wrapped else m.hi)
        self._answer(peer, g, [r for r in mine if theirs.get(r.node.raw[:PREFIX_LEN], -1) < r.seq and r.node != peer.node], out)
        wants = []
        for prefix, seq in m.entries:
            r = g.store.by_prefix(prefix)
            if (r is None or r.seq < seq) and prefix != self.node_id.raw[:PREFIX_LEN]:
                wants.append(prefix)
        if wants and g.spent < self.cfg.gossip_round_budget:
            want = cw.encode_want(wants[: self.cfg.gossip_digest_entries])
            g.spent += len(want)
            out.control(peer, "gossip.want", want)
        return accepted

    def _accept(self, peer: Peer, g: _NetGossip, blobs: list[bytes], now: float, out: Outbox) -> list[PeerRecord]:
        net = peer.network
        wall = now + self.wall_offset
        accepted = []
        keep = {p.node.raw for p in self.table.in_network(net.id)} | {self.node_id.raw}  # never evicted for room
        for blob in blobs:
            try:
                rec = decode_record(blob, net.id)
            except WireError as e:
                self.counters.drop(e.reason)
                continue
            if rec.node == self.node_id:
                continue  # only we speak for ourselves
            if g.store.get(rec.node) is None and rec.node.raw not in keep:
                n = g.introduced.get(peer.node.raw, 0)
                if n >= self.cfg.gossip_new_per_origin:  # one member cannot flood the store in one round
                    self.counters.drop(DropReason.GOSSIP_LIMIT)
                    continue
                g.introduced[peer.node.raw] = n + 1
            offer = g.store.offer(rec, wall, keep)
            if not offer.accepted:
                if offer.reason is not None:
                    self.counters.drop(offer.reason)
                else:
                    self.counters.inc("gossip.duplicates")
                continue
            accepted.append(rec)
            if (known := self.table.get(net.id, rec.node)) is not None and known.features != rec.features:
                known.set_features(rec.features)  # what its data plane accepts (AES-256-GCM), for its sessions
            g.hot.append([rec.node.raw, PUSHES])
            if rec.left:
                self.counters.inc("gossip.departures")
            elif offer.new_node:
                out.event(ev.PeerDiscovered(net.id, rec.node, rec.name))
        self.counters.inc("gossip.records_accepted", len(accepted))
        return accepted

    def _answer(self, peer: Peer, g: _NetGossip, recs: list[PeerRecord], out: Outbox) -> None:
        blobs = self._budgeted(g, recs) if recs else []
        if blobs:
            out.control(peer, "gossip.records", cw.encode_record_list(blobs))

    def _budgeted(self, g: _NetGossip, recs: list[PeerRecord]) -> list[bytes]:
        """As many records as this exchange's and this round's byte budgets allow."""
        room = min(self.cfg.gossip_budget, self.cfg.gossip_round_budget - g.spent)
        if room < MIN_SHARE:
            # Over this round's budget: still answer everyone a little, with records drawn at random, so a
            # newcomer whose only peer is a busy member learns of others (and connects to them) at once.
            room = MIN_SHARE
            recs = list(recs)
            for i in range(len(recs) - 1, 0, -1):
                j = self.entropy.randbelow(i + 1)
                recs[i], recs[j] = recs[j], recs[i]
        out, used = [], 0
        for r in recs:
            if used + len(r.raw) > room:
                self.counters.inc("gossip.budget_exhausted")
                break
            out.append(r.raw)
            used += len(r.raw)
        g.spent += used
        return out
