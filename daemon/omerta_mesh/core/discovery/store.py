"""PeerRecordStore: the signed records of one network, with the rules for replacing and expiring them.

* Only a record whose signature verifies under its own node id gets here (``wire.records.decode_record``).
* A higher sequence number replaces a lower one; an equal or lower one is refused as stale.
* An expired record is refused, and stored ones age out (``expire``). A record that claims to live longer than
  ``max_lifetime`` from now (its expiry is the sender's choice) is refused (``record_expiry``): 2^32-1 was
  accepted, and such records never aged out.
* The store is bounded (``max_records``). When full, a new node's record takes the place of the least fresh
  record (the earliest expiry: its node has not re-signed for longest) of a node we hold no peer for, if it is
  fresher than that one; a record of a node in ``keep`` (we hold a session with it) is never refused for room
  and never evicted. Otherwise it is refused (``gossip_limit``). Before, a member's 6,000 fake records filled
  every store and a real newcomer's record was refused: it was unreachable.
* Owned networks (docs/membership.md, 2.4) give the store ``admit``: a record is taken only if its credential
  admits its node now (``Credentials.check``; a refusal is returned as its ``cert_*`` reason for the caller to
  count, as the handshake counts it), asked after the cheap checks above so gossip's duplicates and stale records
  cost no check. This is also the bound on certificate floods: every record stored costs an admin's signature. A
  departure carries no credential: it is taken only in place of a record held (it removes a node, never adds
  one), else refused as ``cert_missing``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import DropReason
from ..ids import NodeId
from ..wire.records import PeerRecord

PREFIX_LEN = 8
Admit = Callable[[PeerRecord, float], "DropReason | None"]  # (record, wall clock) -> why it is refused, None: taken


@dataclass(frozen=True, slots=True)
class Offer:
    accepted: bool
    reason: DropReason | None = None
    new_node: bool = False


class PeerRecordStore:
    def __init__(self, max_records: int, max_lifetime: float | None = None, admit: Admit | None = None) -> None:
        self.max_records = max_records
        self.max_lifetime = max_lifetime
        self.admit = admit  # owned networks: the credential check
        self._by_id: dict[bytes, PeerRecord] = {}
        self._sorted: list[bytes] = []  # node ids, sorted (for digest windows)
        self._by_prefix: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[PeerRecord]:
        return iter(list(self._by_id.values()))

    def get(self, node: NodeId | bytes) -> PeerRecord | None:
        return self._by_id.get(node.raw if isinstance(node, NodeId) else node)

    def by_prefix(self, prefix: bytes) -> PeerRecord | None:
        nid = self._by_prefix.get(prefix)
        return self._by_id.get(nid) if nid else None

    def offer(self, rec: PeerRecord, wall: float, keep: frozenset[bytes] | set[bytes] = frozenset()) -> Offer:
        if rec.expired(wall):
            return Offer(False, DropReason.RECORD_STALE)
        if self.max_lifetime is not None and rec.expires > wall + self.max_lifetime:
            return Offer(False, DropReason.RECORD_EXPIRY)
        key = rec.node.raw
        old = self._by_id.get(key)
        if old is not None:
            if rec.seq == old.seq and rec.raw == old.raw:
                return Offer(False)  # a duplicate: gossip's normal redundancy, not an offence
            if rec.seq <= old.seq:
                return Offer(False, DropReason.RECORD_STALE)
        if self.admit is not None and (refused := self._refused(rec, old is not None, wall)) is not None:
            return Offer(False, refused)
        if old is not None:
            self._by_id[key] = rec
            return Offer(True)
        if len(self._by_id) >= self.max_records:
            victim = min((r for r in self._by_id.values() if r.node.raw not in keep), key=lambda r: r.expires, default=None)
            if victim is None or (key not in keep and victim.expires >= rec.expires):
                return Offer(False, DropReason.GOSSIP_LIMIT)
            self.remove(victim.node.raw)
        self._by_id[key] = rec
        bisect.insort(self._sorted, key)
        self._by_prefix[key[:PREFIX_LEN]] = key
        return Offer(True, new_node=True)

    def _refused(self, rec: PeerRecord, held: bool, wall: float) -> DropReason | None:
        if rec.left:  # (no credential needed: it only takes the place of a record held)
            return None if held else DropReason.CERT_MISSING
        assert self.admit is not None
        return self.admit(rec, wall)

    def remove(self, node: bytes) -> None:
        if self._by_id.pop(node, None) is not None:
            i = bisect.bisect_left(self._sorted, node)
            if i < len(self._sorted) and self._sorted[i] == node:
                self._sorted.pop(i)
            self._by_prefix.pop(node[:PREFIX_LEN], None)

    def expire(self, wall: float) -> list[PeerRecord]:
        gone = [r for r in self._by_id.values() if r.expired(wall)]
        for r in gone:
            self.remove(r.node.raw)
        return gone

    def window(self, start: bytes, count: int) -> tuple[list[PeerRecord], bytes, bool]:
        """Up to ``count`` records with ids >= start (in id order); returns (records, next start, wrapped)."""
        i = bisect.bisect_left(self._sorted, start)
        ids = self._sorted[i : i + count]
        wrapped = i + count >= len(self._sorted)
        nxt = b"" if wrapped else self._sorted[i + count]
        return [self._by_id[k] for k in ids], nxt, wrapped

    def in_range(self, lo: bytes, hi: bytes | None) -> list[PeerRecord]:
        """Records with lo <= id prefix, and id prefix <= hi when hi is given (prefix comparison)."""
        i = bisect.bisect_left(self._sorted, lo)
        out = []
        for k in self._sorted[i:]:
            if hi is not None and k[:PREFIX_LEN] > hi:
                break
            out.append(self._by_id[k])
        return out
