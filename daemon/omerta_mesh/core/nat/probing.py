"""NAT filtering and hairpinning tests (``NatTests``, an owned sub-machine).

Mapping behaviour comes for free from heartbeat PONGs (``links.py``). Filtering needs unsolicited packets,
so a round runs this exchange (RFC 5780's tests, carried inside our sessions so nothing is spoofable):

1. From our second socket (``probe_local``, an ephemeral port the driver binds) we send a NATPROBE BIND to
   peer P on a direct path; P answers BOUND with the address it saw: our second socket's mapping M2, which
   only P's main port may have reached so far. It is also "a probe from a second port" for the verdict.
2. We ask P (``nat.test`` kind 1) to send a NATPROBE TEST to M2 from *its* second socket (same address,
   other port), and Q, a peer at another address (kind 2), to send one from its main socket. Each answers
   ``nat.ack`` once sent; a TEST that arrives is a pass, one confirmed sent but not arrived within
   ``nat_test_wait`` is filtered. ``classify`` turns the two results into EIF / ADF / APDF.
3. Hairpinning (endpoint-independent mappings only): we send a packet sealed for P from our main socket to
   our own public address; if the NAT hairpins, it comes back to us and we recognise its tag.

NATPROBE frames never move a peer's endpoint or socket (``Mesh._receive_transport`` hands them here before
path bookkeeping). A peer answers tests at a limited rate and only towards addresses it already reaches the
asker at, so the mesh cannot be used to aim packets at third parties. A round runs ``nat_test_first`` after
the mapping is first known, then every ``nat_test_interval`` and whenever our public address changes.

The sub-machine owns the pending tests, the schedule and the second socket's address. It never references
``Mesh``: the verdict comes in as an argument, results go into the ``NatObserver`` it is given, datagrams and
control messages into an ``Outbox``, and what the caller must do next comes back as a ``NatStep``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..config import CoreConfig
from ..counters import Counters
from ..entropy import Entropy
from ..errors import DropReason, WireError
from ..ids import NetworkId, NodeId
from ..noise.cookie import RateLimiter
from ..outbox import Outbox
from ..peers.paths import PathId, ViaRelay
from ..peers.peer import Peer
from ..peers.table import PeerTable
from ..wire import control as cw
from ..wire import frames as fw
from ..wire.records import PeerRecord
from .classify import FilterTest, Mapping, NatObserver, NatVerdict, Observation

Address = tuple[str, int]
KINDS = {1: "other-port", 2: "other-address"}
MAX_PENDING = 16
PROBE_MEMORY = 1800.0  # seconds a NAT may keep our second socket's filter state for an address
TEST_COPIES = 2  # copies of each BIND and unsolicited probe: one lost datagram must not decide a test
GIVE_UP = 30.0  # a test never acknowledged is forgotten after this long


@dataclass(slots=True)
class _Pending:
    kind: str  # "bind", "other-port", "other-address", "hairpin"
    peer: Peer
    started: float
    due: float | None  # when a missing answer counts (None: waiting for the peer's nat.ack)


@dataclass(frozen=True, slots=True)
class NatStep:
    """What the caller does after a NAT test step."""

    changed: bool = False  # new evidence: the verdict may have changed (``Mesh._nat_changed``)
    mappings: int = 0  # new NAT mappings our second socket made (each takes a port of a sequential NAT)
    bound: tuple[Peer, Address] | None = None  # P told us our second socket's mapping: ask for the filter tests


class NatTests:
    def __init__(self, config: CoreConfig, counters: Counters, entropy: Entropy, table: PeerTable, observer: NatObserver,
                 record_of: Callable[[NetworkId, NodeId], PeerRecord | None]) -> None:
        self.cfg = config
        self.counters = counters
        self.entropy = entropy
        self.table = table
        self.nat = observer  # where results go (the classifier's evidence)
        self.record_of = record_of  # a member's signed record (gossip's): is it public?
        self.probe_local: Address | None = None  # our second socket (the driver sets it)
        self._pending: dict[int, _Pending] = {}
        self._hairpin_tags: dict[bytes, int] = {}
        self._test_at: float | None = None
        self._tested_key: tuple[object, ...] | None = None
        self._partial = 0  # rounds in a row without a second peer at another address
        self._last_p: tuple[bytes, bytes] | None = None  # the peer the last BIND went to
        self._probe_sent: dict[str, float] = {}  # addresses our second socket sent to, and when
        self._done: deque[int] = deque(maxlen=16)  # tests passed lately (their extra copies are expected)
        self._answers = RateLimiter(config.nat_test_answers, 4, 1024)

    # ------------------------------------------------------------------ scheduling
    def schedule(self, v: NatVerdict, now: float) -> None:
        """After new evidence (verdict ``v``): test when the mapping is first known or our public address
        changed."""
        if not self.cfg.nat_tests or self.probe_local is None:
            return
        if v.mapping is Mapping.NONE or not v.public:  # public, or no report yet: nothing to measure
            return
        key = v.public[0] if v.mapping is Mapping.EIM else (v.public[0][0],)  # symmetric: a new port per peer
        if key != self._tested_key:
            self._tested_key = key
            at = now + self.cfg.nat_test_first
            if self._test_at is None or at < self._test_at:
                self._test_at = at

    def next_deadline(self) -> float | None:
        dues = [p.due if p.due is not None else p.started + GIVE_UP for p in self._pending.values()]
        if self._test_at is not None:
            dues.append(self._test_at)
        return min(dues) if dues else None

    def expire(self, now: float) -> NatStep:
        """Tests whose answer is overdue: a probe confirmed sent but not arrived counts as filtered."""
        changed = False
        for nonce, p in list(self._pending.items()):
            if p.due is not None and now >= p.due:
                del self._pending[nonce]
                changed = self._result(p, False, now) or changed
            elif now >= p.started + GIVE_UP:
                del self._pending[nonce]
                self.counters.inc("nat.test_unanswered")
        return NatStep(changed=changed)

    def round_due(self, now: float) -> bool:
        return self._test_at is not None and now >= self._test_at

    def on_probe_socket(self, local: Address | None) -> bool:
        # by port: a wildcard-bound socket reports 0.0.0.0, and a host that moved reports its new address
        return local is not None and self.probe_local is not None and local[1] == self.probe_local[1]

    def _direct_peers(self, now: float, family_of: Address) -> list[Peer]:
        v6 = ":" in family_of[0]
        out = [p for p in self.table if p.connected and p.endpoint is not None and not isinstance(p.endpoint, ViaRelay)
               and (":" in p.endpoint[0]) == v6 and p.sendable_session(now) is not None]
        # peers without a NAT first (their answers cross fewer boxes), then the nearest
        return sorted(out, key=lambda p: (not self._is_public(p), self._srtt(p), p.node.raw))

    @staticmethod
    def _srtt(p: Peer) -> float:
        path = p.paths.get(p.endpoint) if p.endpoint is not None else None
        return path.srtt if path is not None and path.srtt is not None else 9.0

    def _is_public(self, peer: Peer) -> bool:
        rec = self.record_of(peer.network.id, peer.node)
        return rec is not None and rec.mapping == Mapping.NONE

    def _nonce(self) -> int:
        while True:
            n = int.from_bytes(self.entropy.random_bytes(4), "little")
            if n and n not in self._pending:
                return n

    def round(self, v: NatVerdict, now: float, out: Outbox) -> NatStep:
        """Start a round: BIND from our second socket to P (and the hairpin probe). ``v``: our verdict now."""
        assert self.probe_local is not None
        self._test_at = None
        if v.mapping is Mapping.NONE or not v.public or len(self._pending) >= MAX_PENDING:
            return NatStep()
        ours = {ip for ip, _ in v.public}
        peers = [p for p in self._direct_peers(now, self.probe_local)
                 if p.endpoint is not None and not isinstance(p.endpoint, ViaRelay) and p.endpoint[0] not in ours]
        if not peers:
            self._test_at = now + self.cfg.nat_test_retry
            return NatStep()
        self._test_at = now + self.cfg.nat_test_interval
        # the same P as before when we can: our second socket's mapping may still remember every address it
        # sent to, and a Q among them would pass the other-address test through any filter
        p = next((q for q in peers if q.key == self._last_p), peers[0])
        assert p.endpoint is not None and not isinstance(p.endpoint, ViaRelay)
        self._last_p = p.key
        self._probe_sent[p.endpoint[0]] = now
        if len(self._probe_sent) > 64:
            del self._probe_sent[min(self._probe_sent, key=self._probe_sent.__getitem__)]
        nonce = self._nonce()
        self._pending[nonce] = _Pending("bind", p, now, now + 2 * self.cfg.probe_timeout)
        for _ in range(TEST_COPIES):
            self._seal_to(p, fw.encode_natprobe(fw.NatOp.BIND, nonce), p.endpoint, self.probe_local, now, out)
        self.counters.inc("nat.rounds")
        if v.mapping is Mapping.EIM:
            h = self._nonce()
            self._pending[h] = _Pending("hairpin", p, now, now + self.cfg.nat_test_wait)
            data = self._seal_to(p, fw.encode_natprobe(fw.NatOp.TEST, h), v.public[0], p.local, now, out)
            if data is not None:
                self._hairpin_tags[data[-16:]] = h
        return NatStep(mappings=1)  # the second socket's new mapping

    def _seal_to(self, peer: Peer, frame: bytes, dst: Address, local: Address | None, now: float, out: Outbox) -> bytes | None:
        """Seal one frame for ``dst`` from ``local``, bypassing path choice (tests aim at exact addresses)."""
        s = peer.sendable_session(now)
        if s is None:
            return None
        data = s.encrypt(frame, now)
        out.send(dst, local, data)
        return data

    def _result(self, p: _Pending, arrived: bool, now: float) -> bool:
        """Record a test's outcome; True when it is new evidence."""
        if p.kind == "hairpin":
            self._hairpin_tags = {t: n for t, n in self._hairpin_tags.items() if n in self._pending}
            self.nat.hairpin = (arrived, now)
        elif p.kind == "bind":
            self.counters.inc("nat.bind_lost")
            self._test_at = now + self.cfg.nat_test_retry
            return False
        else:
            self.nat.filter_tests.append(FilterTest(p.kind, p.peer.node.short(), arrived, now))
        self.counters.inc("nat.tests_passed" if arrived else "nat.tests_filtered")
        return True

    # ------------------------------------------------------------------ receiving
    def hairpin_back(self, data: bytes, now: float) -> NatStep | None:
        """A datagram that is our own hairpin probe coming back (checked before session lookup), or None."""
        if not self._hairpin_tags:
            return None
        nonce = self._hairpin_tags.pop(data[-16:], None)
        if nonce is None:
            return None
        p = self._pending.pop(nonce, None)
        return NatStep(changed=p is not None and self._result(p, True, now))

    def on_probe(self, peer: Peer, f: fw.NatProbeFrame, src: PathId, local: Address | None, now: float, out: Outbox) -> NatStep:
        """A NATPROBE frame from ``peer`` (already decoded): a BIND to answer, or a BOUND or TEST for a test."""
        if f.op is fw.NatOp.BIND:
            if isinstance(src, ViaRelay):
                raise WireError(DropReason.NAT_UNEXPECTED, "NAT bind through a relay")
            if not self._answers.allow("b" + peer.node.text(), now):
                raise WireError(DropReason.RATE_LIMITED, "NAT bind")
            peer.nat_seen = src  # where the peer's second socket is: the only place kind 1 tests may go
            self._seal_to(peer, fw.encode_natprobe(fw.NatOp.BOUND, f.nonce, src), src, local, now, out)
            return NatStep()
        p = self._pending.get(f.nonce)
        if p is None and f.nonce in self._done:
            self.counters.inc("nat.copies")  # the extra copy of a BOUND or TEST already taken
            return NatStep()
        if f.op is fw.NatOp.BOUND:
            if p is None or p.kind != "bind" or p.peer is not peer or not self.on_probe_socket(local) or f.observed is None \
                    or isinstance(src, ViaRelay):
                raise WireError(DropReason.NAT_UNEXPECTED, "BOUND")
            assert local is not None
            del self._pending[f.nonce]
            self._done.append(f.nonce)
            changed = self.nat.observe(Observation(local, src, f.observed, peer.node.short(), now))
            return NatStep(changed=changed, bound=(peer, f.observed))
        if p is None or p.kind not in ("other-port", "other-address"):  # TEST
            raise WireError(DropReason.NAT_UNEXPECTED, "TEST")
        del self._pending[f.nonce]
        self._done.append(f.nonce)
        return NatStep(changed=self._result(p, True, now))

    def ask_filter_tests(self, p: Peer, m2: Address, now: float, out: Outbox) -> None:
        """P told us M2: ask P (from its other port) and Q (at another address) to send to it."""
        q = self._other_address_peer(p, m2, now)
        if q is None:  # half a test: try again soon (backing off) in case a peer elsewhere turns up
            self._partial += 1
            self._test_at = now + min(self.cfg.nat_test_interval, self.cfg.nat_test_retry * 2 ** min(self._partial, 10))
        else:
            self._partial = 0
        for kind, who in ((1, p), (2, q)):
            if who is None:
                continue
            nonce = self._nonce()
            self._pending[nonce] = _Pending(KINDS[kind], who, now, None)
            out.control(who, "nat.test", cw.encode_nat_test(cw.NatTest(nonce, kind, m2)))

    def _other_address_peer(self, p: Peer, m2: Address, now: float) -> Peer | None:
        assert p.endpoint is not None and not isinstance(p.endpoint, ViaRelay)
        for q in self._direct_peers(now, m2):
            if q is p or q.endpoint is None or isinstance(q.endpoint, ViaRelay) or q.endpoint[0] in (p.endpoint[0], m2[0]):
                continue
            if now - self._probe_sent.get(q.endpoint[0], -PROBE_MEMORY) < PROBE_MEMORY:
                continue  # our second socket sent there: its packets would pass an address filter
            return q
        return None

    def on_test(self, asker: Peer, body: bytes, now: float, out: Outbox) -> None:
        """``nat.test``: a peer asks us to send an unsolicited probe to its second socket's mapping."""
        t = cw.decode_nat_test(body)
        status = cw.NatAck.SENT
        # only towards where we already reach the asker: its second socket (kind 1, seen in its BIND) or
        # its NAT's address (kind 2); anything else would make us a reflector aimed by someone else
        reachable = {a[0] for a in asker.paths if not isinstance(a, ViaRelay)}
        allowed = t.endpoint == asker.nat_seen if t.kind == 1 else t.endpoint[0] in reachable
        if not allowed or not self._answers.allow("t" + asker.node.text(), now):
            status = cw.NatAck.REFUSED
            self.counters.drop(DropReason.RATE_LIMITED if allowed else DropReason.NAT_UNEXPECTED)
        elif t.kind == 1 and self.probe_local is None:
            status = cw.NatAck.CANNOT
        else:
            local = self.probe_local if t.kind == 1 else asker.local
            frame = fw.encode_natprobe(fw.NatOp.TEST, t.nonce)
            # TEST_COPIES copies: one lost datagram must not read as "filtered"
            if any(self._seal_to(asker, frame, t.endpoint, local, now, out) is None for _ in range(TEST_COPIES)):
                status = cw.NatAck.CANNOT
            else:
                self.counters.inc("nat.tests_sent")
        out.control(asker, "nat.ack", cw.encode_nat_ack(t.nonce, status))

    def on_ack(self, peer: Peer, body: bytes, now: float) -> None:
        """``nat.ack``: the peer sent (or will not send) the probe we asked for."""
        nonce, status = cw.decode_nat_ack(body)
        p = self._pending.get(nonce)
        if p is None or p.peer is not peer:
            return  # the probe arrived first (the usual case), or the test was given up
        if status is cw.NatAck.SENT:
            p.due = now + self.cfg.nat_test_wait
        else:
            del self._pending[nonce]
            self.counters.inc("nat.tests_declined")
