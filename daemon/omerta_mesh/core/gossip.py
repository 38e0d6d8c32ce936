"""Discovery by gossip (a mixin of ``Mesh``): signed peer records, push-pull rounds, neighbours.

Each node signs a record about itself per network (``wire/records.py``) and re-signs it with a higher
sequence number whenever its endpoints, NAT verdict or relays change, and before it expires.

Every ``gossip_interval`` seconds, per network, a node picks ``gossip_fanout`` random connected members and
sends each a ``gossip.sync``: a digest of one slice of its id-sorted store (at most ``gossip_digest_entries`` entries,
the slice moving on each round, so a digest is bounded whatever the network's size) plus the few records
it learnt most recently (push). The receiver answers with the records of that slice the sender lacks (at
most ``gossip_budget`` bytes) and asks for those it lacks itself (``gossip.want``). Push spreads news in
O(log N) rounds; the moving digest is the anti-entropy that lets a node that was away catch up.

When the host's addresses change (the driver's netlink monitor, ``io/netmon.py``), ``local_addresses_changed``
re-signs the record at once and sends it straight to every connected member, rather than leaving it to the
next rounds' pushes, and probes every connected peer's current path so it hears us from the new source.

A node keeps sessions with ``neighbours`` members besides those it talks to, chosen at random from the
records it holds, and with at least one relay-capable member when it is not publicly reachable.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from . import events as ev
from .discovery.store import PREFIX_LEN, PeerRecordStore
from .errors import DropReason, UsageError, WireError
from .ids import NetworkId, NodeId
from .nat.classify import Mapping
from .network import Network
from .peers.paths import Address, is_relay
from .peers.peer import Peer
from .wire import control as cw
from .wire.records import PeerRecord, decode_record, sign_record

if TYPE_CHECKING:  # pragma: no cover
    from .mesh import Mesh

HOT = 32  # recently learnt records remembered per network for pushing
PUSHES = 3  # rounds a newly learnt record is pushed in
NEWCOMER = 16  # a requester knowing fewer records than this is always answered (it may have no one else)
MIN_SHARE = 2048  # bytes every gossip request is answered with, even when the round's budget is spent
_TOP = b"\xff" * PREFIX_LEN


class _NetGossip:
    __slots__ = ("store", "cursor", "hot", "own", "own_key", "spent", "answered")

    def __init__(self, max_records: int) -> None:
        self.store = PeerRecordStore(max_records)
        self.cursor = b""
        self.hot: deque[list] = deque(maxlen=HOT)  # [node id, pushes left]
        self.own: PeerRecord | None = None
        self.own_key: tuple | None = None
        self.spent = 0  # gossip bytes sent this round
        self.answered = 0  # syncs answered this round


class GossipMixin:
    def _gossip_init(self: "Mesh") -> None:
        self._gossip: dict[bytes, _NetGossip] = {}

    def _gossip_net(self: "Mesh", net: Network) -> _NetGossip:
        g = self._gossip.get(net.id.raw)
        if g is None:
            g = self._gossip[net.id.raw] = _NetGossip(self.cfg.max_peers_per_network)
        return g

    def records(self: "Mesh", network: NetworkId) -> list[PeerRecord]:
        g = self._gossip.get(network.raw)
        return list(g.store) if g else []

    def record_of(self: "Mesh", network: NetworkId, node: NodeId) -> PeerRecord | None:
        g = self._gossip.get(network.raw)
        return g.store.get(node) if g else None

    # ------------------------------------------------------------------ own record
    def _home_relays(self: "Mesh", net: Network) -> tuple[bytes, ...]:
        g = self._gossip_net(net)
        out = []
        for p in self.table.in_network(net.id):
            rec = g.store.get(p.node)
            if rec is not None and rec.relay and p.connected and p.endpoint is not None and not is_relay(p.endpoint):
                out.append(p.node.raw)
        return tuple(sorted(out)[:2])

    def _refresh_own(self: "Mesh", net: Network, now: float, force: bool = False) -> bool:
        g = self._gossip_net(net)
        v = self.nat_verdict()
        eps = tuple(dict.fromkeys(list(v.public[:2]) + list(self.local_endpoints)))[:8]
        relay_ok = self.cfg.relay and v.mapping in (Mapping.NONE, Mapping.EIM, Mapping.UNKNOWN)
        key = (eps, relay_ok, int(v.mapping), int(v.filtering), v.port_delta, self.name, self._home_relays(net))
        wall = now + self.wall_offset
        if not force and g.own is not None and g.own_key == key and wall < g.own.expires - self.cfg.record_lifetime + self.cfg.record_refresh:
            return False
        seq = max(int(wall * 1000), (g.own.seq + 1) if g.own else 0)
        rec = PeerRecord(self.node_id, seq, int(wall + self.cfg.record_lifetime), eps, self.name, relay_ok, int(v.mapping), int(v.filtering), v.port_delta, key[6])
        g.own = sign_record(self.identity, net.id, rec)
        g.own_key = key
        g.store.offer(g.own, wall)
        g.hot.append([self.node_id.raw, PUSHES])
        return True

    def local_addresses_changed(self: "Mesh", endpoints: list[Address], ips: frozenset[str], now: float) -> bool:
        """The host's addresses changed: advertise the new ones at once. Returns whether anything changed.

        Re-signs our record in every network and sends it to every connected member (who push it on by
        gossip), forgets NAT observations of an address family that lost an address, and probes every
        connected peer's current path, so the peer hears us from our new source
        address (and switches its path to it) and its PONG reports our new mapping. Relayed peers exchange
        punch candidates again: a new address may open a direct path.
        """
        endpoints, ips = list(endpoints), frozenset(ips)
        if endpoints == self.local_endpoints and ips == self.local_ips:
            return False
        gone = {":" in ip for ip in self.local_ips - ips}  # families that lost an address (True: IPv6)
        self.local_endpoints, self.local_ips = endpoints, ips
        self.counters.inc("local.address_changes")
        if gone:
            # we may have moved: what peers saw of that family's mappings is stale (a record would keep
            # advertising the old public address). The probes below bring fresh reports within an RTT.
            self.nat.forget(gone)
        self._nat_changed(now)  # the verdict depends on our addresses (a public one means no NAT)
        for net in self.networks.values():
            self._refresh_own(net, now, force=True)
            self._push_own(net, now)
        for peer in list(self.table):
            if not peer.connected or peer.endpoint is None or peer.sendable_session(now) is None:
                continue
            if is_relay(peer.endpoint):
                peer.upgrade_at = now
            else:
                self._probe(peer, peer.endpoint, now)
            self._arm(peer, now)
        return True

    def _push_own(self: "Mesh", net: Network, now: float) -> None:
        """Send our own record to every connected member of ``net`` now (one record each)."""
        g = self._gossip_net(net)
        if g.own is None:
            return
        body = cw.encode_record_list([g.own.raw])
        for peer in self.table.in_network(net.id):
            if peer.connected and peer.sendable_session(now) is not None:
                g.spent += len(body)
                self.counters.inc("gossip.own_pushed")
                self._send_control(peer, "gossip.records", body, now)

    # ------------------------------------------------------------------ rounds
    def _gossip_round(self: "Mesh", now: float) -> None:
        wall = now + self.wall_offset
        for net in list(self.networks.values()):
            g = self._gossip_net(net)
            g.spent = 0
            g.answered = 0
            for gone in g.store.expire(wall):
                self.counters.inc("gossip.expired")
            self._refresh_own(net, now)
            peers = [p for p in self.table.in_network(net.id) if p.connected and p.sendable_session(now) is not None]
            for _ in range(min(self.cfg.gossip_fanout, len(peers))):
                target = peers.pop(self.entropy.randbelow(len(peers)))
                self._send_sync(net, target, now)
            self._maintain_neighbours(net, now)
        jitter = self.entropy.uniform(0.9, 1.1)
        self._timers.set(("gossip",), now + self.cfg.gossip_interval * jitter)

    def _send_sync(self: "Mesh", net: Network, peer: Peer, now: float) -> None:
        g = self._gossip_net(net)
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
        self._send_control(peer, "gossip.sync", body, now)

    def _maintain_neighbours(self: "Mesh", net: Network, now: float) -> None:
        g = self._gossip_net(net)
        have = {p.node.raw for p in self.table.in_network(net.id) if p.connected or p.pending is not None}
        want = self.cfg.neighbours - len(have)
        v = self.nat_verdict()
        need_relay = v.mapping is not Mapping.NONE and not self._home_relays(net)
        cands = [r for r in g.store if r.node.raw not in have and r.node != self.node_id and r.endpoints]
        if need_relay:
            relays = [r for r in cands if r.relay]
            if relays:
                self._connect_record(net, relays[self.entropy.randbelow(len(relays))], now)
        for _ in range(min(2, want)):
            if not cands:
                break
            r = cands.pop(self.entropy.randbelow(len(cands)))
            self._connect_record(net, r, now)

    def _connect_record(self: "Mesh", net: Network, rec: PeerRecord, now: float) -> Peer | None:
        try:
            peer = self.add_peer(net.id, rec.node, list(rec.endpoints), now, wanted=False)
        except UsageError:
            return None
        self._apply_record(peer, rec, now)
        return peer

    def _apply_record(self: "Mesh", peer: Peer, rec: PeerRecord, now: float) -> None:
        peer.name = rec.name
        for ep in reversed(rec.endpoints):
            if ep not in peer.endpoints:
                peer.endpoints.append(ep)
        del peer.endpoints[self.cfg.max_endpoints_per_peer :]
        self._offer_relays(peer, rec.relays, now)

    # ------------------------------------------------------------------ receiving
    def _accept_records(self: "Mesh", peer: Peer, blobs: list[bytes], now: float) -> int:
        net = peer.network
        g = self._gossip_net(net)
        wall = now + self.wall_offset
        accepted = 0
        for blob in blobs:
            try:
                rec = decode_record(blob, net.id)
            except WireError as e:
                self.counters.drop(e.reason)
                continue
            if rec.node == self.node_id:
                continue  # only we speak for ourselves
            offer = g.store.offer(rec, wall)
            if not offer.accepted:
                if offer.reason is not None:
                    self.counters.drop(offer.reason)
                else:
                    self.counters.inc("gossip.duplicates")
                continue
            accepted += 1
            g.hot.append([rec.node.raw, PUSHES])
            if offer.new_node:
                self._event(ev.PeerDiscovered(net.id, rec.node, rec.name))
            known = self.table.get(net.id, rec.node)
            if known is not None:
                self._apply_record(known, rec, now)
        self.counters.inc("gossip.records_accepted", accepted)
        return accepted

    def _budgeted(self: "Mesh", g: _NetGossip, recs: list[PeerRecord]) -> list[bytes]:
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

    def _on_gossip(self: "Mesh", peer: Peer, name: str, body: bytes, now: float) -> None:
        g = self._gossip_net(peer.network)
        if name == "gossip.sync":
            m = cw.decode_sync(body)
            if len(m.entries) > 4 * self.cfg.gossip_digest_entries or len(m.records) > 4 * self.cfg.gossip_push:
                raise WireError(DropReason.GOSSIP_LIMIT, "sync larger than any honest node sends")
            self._accept_records(peer, m.records, now)
            if g.answered >= self.cfg.gossip_answers and len(m.entries) >= NEWCOMER:
                self.counters.inc("gossip.busy")  # the requester's other peers answer it
                return
            g.answered += 1
            theirs = dict(m.entries)
            mine = g.store.in_range(m.lo, None if m.wrapped else m.hi)
            missing = [r for r in mine if theirs.get(r.node.raw[:PREFIX_LEN], -1) < r.seq and r.node != peer.node]
            blobs = self._budgeted(g, missing) if missing else []
            if blobs:
                self._send_control(peer, "gossip.records", cw.encode_record_list(blobs), now)
            wants = []
            for prefix, seq in m.entries:
                r = g.store.by_prefix(prefix)
                if (r is None or r.seq < seq) and prefix != self.node_id.raw[:PREFIX_LEN]:
                    wants.append(prefix)
            if wants and g.spent < self.cfg.gossip_round_budget:
                body = cw.encode_want(wants[: self.cfg.gossip_digest_entries])
                g.spent += len(body)
                self._send_control(peer, "gossip.want", body, now)
        elif name == "gossip.records":
            self._accept_records(peer, cw.decode_record_list(body), now)
        elif name == "gossip.want":
            prefixes = cw.decode_want(body)
            if len(prefixes) > 4 * self.cfg.gossip_digest_entries:
                raise WireError(DropReason.GOSSIP_LIMIT, "want list too long")
            recs = [r for p in prefixes if (r := g.store.by_prefix(p)) is not None]
            blobs = self._budgeted(g, recs) if recs else []
            if blobs:
                self._send_control(peer, "gossip.records", cw.encode_record_list(blobs), now)
        else:
            raise WireError(DropReason.UNKNOWN_FRAME, name)
