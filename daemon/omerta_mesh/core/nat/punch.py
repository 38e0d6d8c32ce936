"""Hole punching: the sub-machine that moves a relayed peer to a direct path (owned by ``Mesh`` as
``mesh.punch``; it holds no reference to the Mesh and puts what should happen into an ``Outbox``).

Lifecycle of one peer's punching (``PunchState``; ``Puncher._transition`` rejects any other move)::

    IDLE ──relayed──> BACKING_OFF ──attempt_at──> OBSERVING ──BOUND / observe_until_at──> OFFERED
      ^                  ^   │                        │                                      │
      │                  │   └──attempt_at (no prediction needed)──────────────────────────>─┤
      │                  │                                                                    │
      │                  └──give_up_at (no direct path: PunchFinished(ok=False), back off)── BURSTING
      └──────── a direct path is chosen (PunchFinished(ok=True)) from any state ──────────────┘
    the peer's candidates arrive (any state) ─> BURSTING (or OBSERVING first, when we must predict)

* IDLE: the peer is on a direct path (or has no session); nothing is scheduled.
* BACKING_OFF: relayed; the next attempt starts at ``attempt_at`` (at once, then ``upgrade_interval``
  doubling per failed attempt up to ``upgrade_max_interval``).
* OBSERVING: behind a sequential symmetric NAT we predict the ports our next mappings will get. A prediction
  is only as good as its base, so immediately before each punch we take a FRESH mapping observation: a NATPROBE
  BIND from our second socket to a directly connected peer (a destination that socket has not sent to
  lately, so the NAT makes a new mapping), whose BOUND answer reports the port it got. Predictions count
  from that port and only the mappings we made since (``note_destination``), so mappings made long ago
  (old destinations, our own earlier bursts, other hosts behind the NAT) cannot skew them. No answer by
  ``observe_until_at``: we predict from the latest reported mapping instead.
  Attempts of a predicting node run one at a time until each has made its mappings (observing, or offered
  for at most ``OFFER_HOLD``): another peer's burst in between would take the ports we just predicted. A
  peer's candidates that arrive meanwhile wait (``reply_due``). The ports of mappings we already made
  towards the peer (its first handshake, say) are offered too, placed from the fresh observation by the
  order they were made in.
* OFFERED: our ``punch.candidates`` went to the peer (through the relayed session); waiting for its own.
* BURSTING: both sides probe each other's candidates on ``punch_schedule`` (``burst_at``); an answered probe
  makes a direct path up and the path policy moves to it. ``give_up_at`` passed without one: the attempt
  failed.

Two sequential symmetric NATs: each side lists its predicted ports first and probes the other's in list
order, so the k-th new mapping on one side is aimed at the k-th predicted port of the other (lock step).
The side with the larger node id permutes its targets within blocks of five (offsets 0, +1, +2, -2, -1),
so a drift of up to two ports between the two predictions still meets within the budget.

Independent of the attempts (fault: a healed direct path waited for the next backed-off attempt): while
relayed, the direct paths that worked last are probed every ``heartbeat_active`` (``recheck_at``); an answer
makes the path up again and the policy moves back at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .. import events as ev
from ..config import CoreConfig
from ..counters import Counters
from ..entropy import Entropy
from ..errors import UsageError
from ..peers.paths import PathId, ViaRelay
from ..wire import control as cw
from ..wire import frames as fw
from .classify import Allocation, Mapping, NatObserver, NatVerdict

if TYPE_CHECKING:  # pragma: no cover
    from ..outbox import Outbox
    from ..peers.peer import Peer
    from ..peers.table import PeerTable

Address = tuple[str, int]
MAPPING_IDLE = 30.0  # seconds without sending after which a NAT may have forgotten a mapping
MAX_DESTINATIONS = 4096
FRESH_FOR = 30.0  # a fresh observation (plus the mappings counted since) bases predictions this long
MAX_BINDS = 64  # fresh observations in flight, all peers together
LAST_DIRECT = 2  # direct paths remembered per relayed peer and rechecked
EXTRA = 24  # candidates beyond the predicted ports (mappings towards the peer, public, local)
OFFER_HOLD = 3.0  # an unanswered offer holds other predicted attempts back this long at most
NAT_WAIT = 10.0  # an attempt waits this long at most for our NAT's mapping to be classified
NAT_RECHECK = 0.5  # ... looking again this often
BLOCK = (0, 2, 4, 1, 3)  # target order within each block of five on the permuting side (offsets 0,+1,+2,-2,-1)


class PunchState(enum.Enum):
    IDLE = "idle"
    BACKING_OFF = "backing-off"
    OBSERVING = "observing"
    OFFERED = "offered"
    BURSTING = "bursting"


S = PunchState
LEGAL: dict[PunchState, frozenset[PunchState]] = {
    S.IDLE: frozenset({S.BACKING_OFF, S.OBSERVING, S.BURSTING}),
    S.BACKING_OFF: frozenset({S.IDLE, S.OBSERVING, S.OFFERED, S.BURSTING}),
    S.OBSERVING: frozenset({S.IDLE, S.OFFERED, S.BURSTING}),
    S.OFFERED: frozenset({S.IDLE, S.OBSERVING, S.BURSTING}),
    S.BURSTING: frozenset({S.IDLE, S.OBSERVING, S.BURSTING, S.BACKING_OFF}),
}


@dataclass(slots=True)
class PeerPunch:
    """One peer's punching state (the fields that used to live on ``Peer``)."""

    state: PunchState = PunchState.IDLE
    targets: list[Address] = field(default_factory=list)  # the peer's candidates we probe
    burst_at: list[float] = field(default_factory=list)  # remaining burst times (BURSTING)
    attempt_at: float | None = None  # next attempt (BACKING_OFF); re-offer (OFFERED)
    observe_until_at: float | None = None  # OBSERVING: go on without a fresh observation after this
    give_up_at: float | None = None  # BURSTING with an attempt under way: failed after this
    started: float | None = None  # the attempt under way (None: none)
    attempts: int = 0  # failed attempts in a row (the retry interval doubles with each)
    reply: bool = False  # OBSERVING: our candidates answer the peer's (else they offer)
    binds: int = 0  # OBSERVING: observations tried for this attempt
    offered_at: float | None = None  # OFFERED: when our candidates went out
    reply_due: bool = False  # the peer's candidates wait for ours (held while another attempt predicts)
    nat_wait_until: float | None = None  # an attempt waits for our NAT verdict until then at most
    their: tuple[tuple[Address, ...], int, bool] = ((), 0, False)  # the peer's candidates, port step, symmetric
    permute: bool = False  # we are the side that permutes lock-step targets (the larger node id)
    last_direct: list[Address] = field(default_factory=list)  # direct paths that worked, newest first
    recheck_at: float | None = None  # next probe of last_direct while relayed


@dataclass(frozen=True, slots=True)
class Ours:
    """What the puncher needs to know about this node to make candidates (the Mesh computes it on demand)."""

    verdict: NatVerdict
    local_endpoints: tuple[Address, ...]
    probe_local: Address | None  # our second socket (None: no fresh observations possible)


@dataclass(frozen=True, slots=True)
class FreshMapping:
    host: str
    port: int
    at: float
    count: int  # the mappings we had made up to and including the observed one


def predicts(v: NatVerdict) -> bool:
    """Our NAT gives each destination a new port, in steps we measured: peers must aim at predicted ports."""
    return v.mapping in (Mapping.ADM, Mapping.APDM) and v.allocation is Allocation.SEQUENTIAL and bool(v.public)


def predicted_ports(base: int, step: int, since: int, n: int) -> list[int]:
    """The ports our next ``n`` new mappings get: ``base`` was observed, ``since`` mappings were made after it."""
    return [p for k in range(1, n + 1) if 1024 <= (p := base + step * (since + k)) <= 65535]


def lockstep_order(endpoints: list[Address], delta: int, permute: bool) -> list[Address]:
    """The peer's candidates in the order we probe them. Its predicted ports come first (an arithmetic run
    from the first endpoint, step ``delta``); with ``permute`` they are reordered within blocks of five so a
    small drift between both sides' predictions still pairs one of our mappings with one of theirs."""
    if not endpoints or not permute or not delta:
        return list(endpoints)
    host, p0 = endpoints[0]
    run = 1
    while run < len(endpoints) and endpoints[run] == (host, p0 + run * delta):
        run += 1
    out = []
    for i in range(run):
        b, j = divmod(i, len(BLOCK))
        k = b * len(BLOCK) + BLOCK[j]
        out.append(endpoints[k] if k < run else endpoints[i])
    return list(dict.fromkeys(out + endpoints[run:] + endpoints[:run]))


OursFn = Callable[[], Ours]  # the Mesh computes our side's facts only when a step needs them


class Puncher:
    def __init__(self, config: CoreConfig, counters: Counters, entropy: Entropy, table: "PeerTable", nat: NatObserver) -> None:
        self.cfg = config
        self.counters = counters
        self.entropy = entropy
        self.table = table  # reflectors for fresh observations: directly connected peers
        self.nat = nat
        self.peers: dict[tuple[bytes, bytes], PeerPunch] = {}
        self._sent: dict[Address, tuple[int, float]] = {}  # direct address -> (mapping order, last sent)
        self._count = 0  # new mappings we made (first sends to an address, or after MAPPING_IDLE)
        self.fresh: FreshMapping | None = None
        self._binds: dict[int, tuple["Peer", int, float]] = {}  # nonce -> (peer punched, mapping order, at)
        self._reflected: dict[Address, float] = {}  # where our second socket sent BINDs, and when
        self.last_prediction: tuple[int, ...] = ()  # the ports we last offered (for tests and logs)

    # ------------------------------------------------------------------ state
    def of(self, peer: "Peer") -> PeerPunch:
        pp = self.peers.get(peer.key)
        if pp is None:
            pp = self.peers[peer.key] = PeerPunch()
        return pp

    def state(self, peer: "Peer") -> PunchState:
        pp = self.peers.get(peer.key)
        return pp.state if pp is not None else PunchState.IDLE

    def _transition(self, pp: PeerPunch, to: PunchState) -> None:
        if to is not pp.state and to not in LEGAL[pp.state]:
            raise UsageError(f"hole punching cannot go from {pp.state.value} to {to.value}; "
                             "this is a bug in the caller (see the lifecycle in core/nat/punch.py)")
        pp.state = to
        if to is not PunchState.BURSTING:
            pp.burst_at.clear()
            pp.give_up_at = None
        if to is not PunchState.OBSERVING:
            pp.observe_until_at = None
        if to in (PunchState.OBSERVING, PunchState.BURSTING):
            pp.attempt_at = None  # set again when the attempt ends
        if to is PunchState.IDLE:
            pp.attempt_at = pp.recheck_at = pp.started = None
            pp.attempts = 0

    def forget(self, peer: "Peer") -> None:
        self.peers.pop(peer.key, None)

    def is_target(self, peer: "Peer", addr: PathId) -> bool:
        pp = self.peers.get(peer.key)
        return pp is not None and addr in pp.targets

    def deadlines(self, peer: "Peer") -> list[float]:
        pp = self.peers.get(peer.key)
        if pp is None:
            return []
        attempt = pp.attempt_at if pp.state in (PunchState.BACKING_OFF, PunchState.OFFERED) else None
        out = [t for t in (attempt, pp.observe_until_at, pp.give_up_at, pp.recheck_at) if t is not None]
        if pp.burst_at:
            out.append(pp.burst_at[0])
        return out

    # ------------------------------------------------------------------ inputs
    def note_destination(self, dst: Address, now: float) -> None:
        """We sent to a direct address from our main socket: a new mapping if new or idle long enough."""
        d = self._sent.get(dst)
        if d is None or now - d[1] > MAPPING_IDLE:
            self._sent.pop(dst, None)
            if len(self._sent) >= MAX_DESTINATIONS:
                del self._sent[next(iter(self._sent))]
            self._sent[dst] = (self._count, now)
            self._count += 1
        elif now - d[1] > 1.0:
            self._sent[dst] = (d[0], now)

    def mapping_order(self, dst: Address) -> int | None:
        """How many new mappings we had made before our (live) mapping towards ``dst``: None if not tracked."""
        d = self._sent.get(dst)
        return d[0] if d is not None else None

    def note_mapping(self) -> None:
        """A mapping made elsewhere (our second socket's NAT test)."""
        self._count += 1

    def path_changed(self, peer: "Peer", old: PathId | None, new: PathId, direct_in_use: bool, now: float, box: "Outbox") -> None:
        """The path policy moved the peer from ``old`` to ``new``."""
        pp = self.of(peer)
        if not isinstance(new, ViaRelay):
            if pp.started is not None:
                self._event_done(peer, pp, True, new, now, box)
                self.counters.inc("punch.succeeded")
            if pp.state is not PunchState.IDLE:
                self._transition(pp, PunchState.IDLE)
            pp.last_direct = [new] + [a for a in pp.last_direct if a != new][: LAST_DIRECT - 1]
            return
        if old is not None and not isinstance(old, ViaRelay) and direct_in_use:
            pp.last_direct = [old] + [a for a in pp.last_direct if a != old][: LAST_DIRECT - 1]
        if pp.state is PunchState.IDLE:
            self._transition(pp, PunchState.BACKING_OFF)
        if pp.state is PunchState.BACKING_OFF and (old is None or not isinstance(old, ViaRelay) or pp.attempt_at is None):
            pp.attempt_at = now  # newly relayed: start trying to go direct at once (another relay: keep the back-off)
        if pp.last_direct:
            pp.recheck_at = now + self.cfg.heartbeat_active
        box.arm(peer)

    def session_lost(self, peer: "Peer") -> None:
        pp = self.peers.get(peer.key)
        if pp is not None and pp.state is not PunchState.IDLE:
            self._transition(pp, PunchState.IDLE)

    def retry_now(self, peer: "Peer", now: float) -> None:
        """What we know of our NAT changed (or our addresses did): a relayed peer tries again at once."""
        pp = self.peers.get(peer.key)
        if pp is not None and pp.state is PunchState.BACKING_OFF:
            pp.attempt_at = now

    def handle_timer(self, peer: "Peer", relayed: bool, now: float, box: "Outbox", ours: OursFn) -> None:
        pp = self.peers.get(peer.key)
        if pp is None:
            return
        if pp.recheck_at is not None and now >= pp.recheck_at:
            if relayed and pp.last_direct:
                for addr in pp.last_direct:
                    box.probe(peer, addr)
                self.counters.inc("punch.rechecks")
                pp.recheck_at = now + self.cfg.heartbeat_active
            else:
                pp.recheck_at = None
        while pp.burst_at and now >= pp.burst_at[0]:
            pp.burst_at.pop(0)
            for addr in pp.targets:
                box.probe(peer, addr)
        if pp.state is PunchState.BURSTING:
            if pp.give_up_at is not None and now >= pp.give_up_at:
                self._failed(peer, pp, now, box)
            elif pp.give_up_at is None and not pp.burst_at:  # bursts that helped the peer's attempt, not ours
                self._transition(pp, PunchState.BACKING_OFF if relayed else PunchState.IDLE)
                if relayed and pp.attempt_at is None:
                    pp.attempt_at = now + self.cfg.upgrade_interval
        if pp.state is PunchState.OBSERVING and pp.observe_until_at is not None and now >= pp.observe_until_at:
            self.counters.inc("punch.observation_lost")
            self._observed(peer, pp, now, box, ours())
        if pp.state in (PunchState.BACKING_OFF, PunchState.OFFERED) and pp.attempt_at is not None and now >= pp.attempt_at:
            if relayed or pp.reply_due:
                self._attempt(peer, pp, now, box, ours())
            else:  # direct again (or no path yet): nothing to attempt
                self._transition(pp, PunchState.IDLE)

    def on_candidates(self, peer: "Peer", c: cw.Candidates, relayed: bool, ours_id: bytes, now: float, box: "Outbox", ours: OursFn) -> None:
        """The peer's ``punch.candidates``: probe them on the schedule (answering with ours if asked)."""
        pp = self.of(peer)
        eps = [e for e in c.endpoints if not isinstance(e, ViaRelay)][: self.cfg.punch_prediction + EXTRA]
        sym = c.mapping in (Mapping.ADM, Mapping.APDM)
        o = ours() if c.reply or sym else None
        pp.their, pp.permute = (tuple(eps), c.port_delta, sym), ours_id > peer.node.raw
        self._order(pp, o)
        self.counters.inc("punch.attempts")
        if relayed and pp.started is None:
            pp.started = now  # an attempt to go direct: it will end in an event
        if c.reply:
            assert o is not None
            busy = self._busy_until(peer, now) if predicts(o.verdict) and pp.state is not PunchState.OFFERED else None
            if busy is None and pp.state is not PunchState.OFFERED:
                busy = self._nat_pending(pp, o, now)
            if busy is not None and pp.state is not PunchState.OBSERVING:
                pp.reply_due = True  # answered once the attempt that predicts now has made its mappings
                if pp.state is not PunchState.BACKING_OFF:
                    self._transition(pp, PunchState.BACKING_OFF)
                pp.attempt_at = busy
                box.arm(peer)
                return
            if predicts(o.verdict) and pp.state is not PunchState.OFFERED and self._bind(peer, pp, now, box, o):
                pp.reply = True  # our bursts make mappings: they start once the observation is back
                self._transition(pp, PunchState.OBSERVING)
                return
            self._offer(peer, pp, False, now, box, o)
        self._burst(peer, pp, relayed, now, box)

    def owns(self, nonce: int) -> bool:
        return nonce in self._binds

    def on_bound(self, nonce: int, mapped: Address, new: bool, now: float, box: "Outbox", ours: OursFn) -> None:
        """The answer to our fresh-observation BIND: ``mapped`` is the port the NAT gave the new mapping
        (``new`` False: the NAT reused an old mapping, so it tells nothing about the next one)."""
        peer, order, _at = self._binds.pop(nonce)
        if new:  # (count: the mappings made before and including this one; later ones step on from its port)
            self.fresh = FreshMapping(mapped[0], mapped[1], now, order + 1)
            self.counters.inc("punch.fresh_observations")
        else:
            self.counters.inc("punch.reused_observations")
        pp = self.peers.get(peer.key)
        if pp is None or pp.state is not PunchState.OBSERVING:
            return
        o = ours()
        if not new and pp.binds < 2 and self._bind(peer, pp, now, box, o):
            return
        self._observed(peer, pp, now, box, o)

    # ------------------------------------------------------------------ steps
    def _busy_until(self, peer: "Peer", now: float) -> float | None:
        """Behind a sequential NAT, attempts run one at a time until each has made its mappings: another
        attempt's burst in between would take the ports we predicted. When the one under way releases."""
        until = None
        for key, other in self.peers.items():
            if key == peer.key:
                continue
            t = None
            if other.state is PunchState.OBSERVING and other.observe_until_at is not None:
                t = other.observe_until_at
            elif other.state is PunchState.OFFERED and other.offered_at is not None and now < other.offered_at + OFFER_HOLD:
                t = other.offered_at + OFFER_HOLD
            if t is not None and (until is None or t > until):
                until = t
        return until

    @staticmethod
    def _order(pp: PeerPunch, o: Ours | None) -> None:
        """The peer's candidates in the order we probe them (lock step when both sides predict)."""
        eps, delta, sym = pp.their
        both = o is not None and predicts(o.verdict) and sym and delta != 0
        pp.targets = lockstep_order(list(eps), delta, both and pp.permute)

    def _nat_pending(self, pp: PeerPunch, o: Ours, now: float) -> float | None:
        """Our NAT's mapping is not classified yet (one peer has reported our address, say): candidates made
        now would miss the ports a sequential NAT is about to give (and a burst would take them). When to look
        again; None: go on (classified, or waited ``NAT_WAIT`` already)."""
        if o.verdict.mapping is not Mapping.UNKNOWN:
            pp.nat_wait_until = None
            return None
        if pp.nat_wait_until is None:
            pp.nat_wait_until = now + NAT_WAIT
        if now >= pp.nat_wait_until:
            return None
        self.counters.inc("punch.waited_for_nat")
        return now + NAT_RECHECK

    def _attempt(self, peer: "Peer", pp: PeerPunch, now: float, box: "Outbox", o: Ours) -> None:
        wait = self._nat_pending(pp, o, now)
        if wait is not None:
            pp.attempt_at = wait
            return
        if predicts(o.verdict):
            busy = self._busy_until(peer, now)
            if busy is not None:
                pp.attempt_at = busy  # another attempt is making its mappings: ours would take its ports
                return
        pp.binds = 0
        pp.attempt_at = None
        if predicts(o.verdict) and self._bind(peer, pp, now, box, o):
            pp.reply = pp.reply_due
            self._transition(pp, PunchState.OBSERVING)
            return
        if pp.reply_due:
            self._order(pp, o)
            self._offer(peer, pp, False, now, box, o)
            self._burst(peer, pp, True, now, box)
            return
        self._offer(peer, pp, True, now, box, o)
        self._transition(pp, PunchState.OFFERED)

    def _observed(self, peer: "Peer", pp: PeerPunch, now: float, box: "Outbox", o: Ours) -> None:
        """The fresh observation is in (or lost): offer our candidates, or answer the peer's and burst."""
        if pp.reply:
            self._order(pp, o)
            self._offer(peer, pp, False, now, box, o)
            self._burst(peer, pp, pp.started is not None, now, box)  # started: we were relayed when asked
        else:
            self._offer(peer, pp, True, now, box, o)
            self._transition(pp, PunchState.OFFERED)

    def _offer(self, peer: "Peer", pp: PeerPunch, reply: bool, now: float, box: "Outbox", o: Ours) -> None:
        eps = self.candidates(o, now, peer)
        box.control(peer, "punch.candidates", cw.encode_candidates(cw.Candidates(reply, int(o.verdict.mapping), o.verdict.port_delta, eps)))
        pp.reply_due = False
        if reply:
            pp.attempt_at = now + self.cfg.upgrade_interval  # no answer by then: offer again
            pp.offered_at = now

    def _burst(self, peer: "Peer", pp: PeerPunch, relayed: bool, now: float, box: "Outbox") -> None:
        self._transition(pp, PunchState.BURSTING)
        pp.burst_at = [now + d for d in self.cfg.punch_schedule]
        if relayed:
            pp.started = now if pp.started is None else pp.started
            pp.give_up_at = pp.burst_at[-1] + self.cfg.probe_timeout
        while pp.burst_at and now >= pp.burst_at[0]:
            pp.burst_at.pop(0)
            for addr in pp.targets:
                box.probe(peer, addr)
        box.arm(peer)

    def _failed(self, peer: "Peer", pp: PeerPunch, now: float, box: "Outbox") -> None:
        """The burst schedule ended and no direct path answered: stay relayed, try again later, backing off."""
        pp.attempts += 1
        retry = min(self.cfg.upgrade_max_interval, self.cfg.upgrade_interval * 2 ** (pp.attempts - 1))
        self._event_done(peer, pp, False, None, now, box, retry)
        self.counters.inc("punch.failed")
        pp.started = None
        self._transition(pp, PunchState.BACKING_OFF)
        pp.attempt_at = now + retry

    def _event_done(self, peer: "Peer", pp: PeerPunch, ok: bool, endpoint: Address | None, now: float, box: "Outbox",
                    retry: float | None = None) -> None:
        assert pp.started is not None
        attempt = pp.attempts + 1 if ok else pp.attempts
        box.event(ev.PunchFinished(peer.network.id, peer.node, ok, endpoint, attempt, now - pp.started, retry))

    # ------------------------------------------------------------------ fresh observations and prediction
    def _bind(self, peer: "Peer", pp: PeerPunch, now: float, box: "Outbox", o: Ours) -> bool:
        """Send a NATPROBE BIND from our second socket to a reflector; False when none can be used."""
        if o.probe_local is None:
            return False
        refl = self._reflector(peer, o, now)
        if refl is None or refl.endpoint is None or isinstance(refl.endpoint, ViaRelay):
            self.counters.inc("punch.no_reflector")
            return False
        while True:
            nonce = int.from_bytes(self.entropy.random_bytes(4), "little")
            if nonce and nonce not in self._binds:
                break
        if len(self._binds) >= MAX_BINDS:
            del self._binds[next(iter(self._binds))]
        self._binds[nonce] = (peer, self._count, now)
        self._reflected[refl.endpoint] = now
        if len(self._reflected) > MAX_BINDS:
            del self._reflected[min(self._reflected, key=self._reflected.__getitem__)]
        pp.binds += 1
        self._count += 1  # the second socket's new mapping (a reflector it sent to longest ago) takes a port too
        pp.observe_until_at = now + self.cfg.probe_timeout
        box.frame(refl, fw.encode_natprobe(fw.NatOp.BIND, nonce), refl.endpoint, o.probe_local)
        return True

    def _reflector(self, peer: "Peer", o: Ours, now: float) -> "Peer | None":
        """A directly connected peer our second socket sent to longest ago (a new NAT mapping for it)."""
        assert o.probe_local is not None
        ours = {ip for ip, _ in o.verdict.public}
        v6 = ":" in o.probe_local[0]
        last: dict[Address, float] = dict(self._reflected)
        for ob in self.nat.observations:  # the NAT tests' BINDs from the same socket
            if ob.local[1] == o.probe_local[1]:
                last[ob.dst] = max(last.get(ob.dst, ob.at), ob.at)
        best, best_key = None, None
        for p in self.table:
            ep = p.endpoint
            if p is peer or not p.connected or ep is None or isinstance(ep, ViaRelay) or ep[0] in ours or (":" in ep[0]) != v6:
                continue
            if p.sendable_session(now) is None:
                continue
            k = (last.get(ep, float("-inf")), p.node.raw)
            if best_key is None or k < best_key:
                best, best_key = p, k
        return best

    def candidates(self, o: Ours, now: float, peer: "Peer | None" = None) -> list[Address]:
        """Where we may be reached: predicted ports first (when our NAT needs them), then the ports of the
        mappings we already made towards the peer's addresses (placed from the fresh observation by the
        order they were made in), then our public mappings and local addresses."""
        v = o.verdict
        plain = list(dict.fromkeys(list(v.public) + list(o.local_endpoints)))
        n = self.cfg.punch_prediction
        predicted: list[Address] = []
        towards: list[Address] = []
        if predicts(v):
            host = v.public[0][0]
            # one port at a time in the allocation's direction: the measured step mixes in other flows' ports
            # (a step of 10 read off a busy NAT that steps by 1 aimed past every real mapping)
            step = -1 if v.port_delta < 0 else 1
            f = self.fresh
            if f is not None and f.host == host and now - f.at <= FRESH_FOR:
                ports = predicted_ports(f.port, step, self._count - f.count, n)
                self.counters.inc("punch.fresh_predictions")
                theirs = [*peer.endpoints, *self.of(peer).targets, *peer.paths] if peer is not None else []
                for a in dict.fromkeys(theirs):
                    d = self._sent.get(a) if not isinstance(a, ViaRelay) else None
                    if d is not None and now - d[1] <= MAPPING_IDLE:  # a mapping towards it exists: where?
                        q = f.port + step * (d[0] - f.count + 1)
                        towards += [(host, q + k * step) for k in (0, 1, -1, 2, -2) if 1024 <= q + k * step <= 65535]
            else:  # no fresh observation: from the latest mapping a peer reported (stale on a busy NAT)
                ports = predicted_ports(v.public[0][1], step, 0, n)
                self.counters.inc("punch.stale_predictions")
            predicted = [(host, q) for q in ports]
            self.last_prediction = tuple(ports)
        eps = list(dict.fromkeys(predicted + towards + plain))
        return eps[: n + EXTRA]


