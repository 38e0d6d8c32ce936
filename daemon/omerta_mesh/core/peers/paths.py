"""Paths to a peer and the pure decision of which one to use.

A path is a way to reach a peer's session (a ``PathId``): a direct address (``("203.0.113.7", 41641)``) or a
relay, ``ViaRelay(<relay's node id text>)``, a type of its own that no address-handling code can mistake for
one. Sessions are not bound to a path: the same session's packets may travel any of them, which is what
makes failover and roaming cheap.

Evidence per path, with timestamps: the last authenticated packet received on it, the last probe answered
on it, round-trip time (smoothed, with jitter) and the loss over the last probes. From the evidence:

* UP: a probe was answered and none has been lost since (an idle path is probed rarely, and stays up
  until a probe goes unanswered); DEGRADED if it loses more than a quarter of its probes;
* DOWN: a probe sent after the last answer went unanswered (so a path goes DOWN within the heartbeat plus
  the probe timeout, about 3.5 s on an active path; no separate trust window);
* UNKNOWN: never answered.

``choose`` is the whole path policy, a pure function tested with tables: the best UP direct path (lowest
RTT, with hysteresis so equal paths do not flap), else the best relay path (lowest RTT) that is not DOWN and
whose relay we reach directly (a relay path is probed end to end, so a dead relay makes it DOWN), else the
path that was heard from last (roaming: the endpoint follows authenticated traffic). ``live`` is False when
that last resort is itself DOWN: no path answers.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from ..rtt import smooth
from .pmtu import PathMtu

Address = tuple[str, int]
LOSS_WINDOW = 16
FRESHNESS = 1.0  # seconds: how much staler than the freshest path a path may be and still be chosen


class PathKind(enum.StrEnum):
    """How a peer is reached: its current path's kind (a str, so it reads as its value in JSON and tests)."""

    DIRECT = "direct"
    PUNCHED = "punched"  # direct, after hole punching opened it
    RELAY = "relay"
    NONE = "none"  # no path yet


class PathState(enum.Enum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ViaRelay:
    """A relay path: the peer is reached through the relay whose node id text is ``node``."""

    node: str


PathId = Address | ViaRelay  # what peer.paths is keyed by: a direct address or a relay path


def path_key(a: PathId) -> tuple[str, int]:
    """A total order over paths of both kinds (relays sort as "relay:<node>", port 0, as they always did)."""
    return ("relay:" + a.node, 0) if isinstance(a, ViaRelay) else a


@dataclass(slots=True)
class Path:
    addr: PathId
    created_at: float
    last_rx: float | None = None
    last_pong: float | None = None
    last_ping: float | None = None
    srtt: float | None = None
    rttvar: float = 0.0
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=LOSS_WINDOW))  # True answered, False lost
    pending: dict[int, float] = field(default_factory=dict)  # probe id -> sent at
    lost_since_pong: int = 0  # probes that went unanswered since the last answer
    pmtu: PathMtu | None = None  # the path's MTU, probed (core/peers/pmtu.py)

    @property
    def relay(self) -> bool:
        return isinstance(self.addr, ViaRelay)

    def rtt_sample(self, rtt: float) -> None:
        self.srtt, self.rttvar = smooth(self.srtt, self.rttvar, rtt)

    @property
    def loss(self) -> float:
        return 0.0 if not self.outcomes else self.outcomes.count(False) / len(self.outcomes)

    def expire_probes(self, now: float, timeout: float) -> None:
        for pid, at in list(self.pending.items()):
            if now >= at + timeout:
                del self.pending[pid]
                self.outcomes.append(False)
                self.lost_since_pong += 1

    def next_expiry(self, timeout: float) -> float | None:
        return min(self.pending.values()) + timeout if self.pending else None


def evidence(p: Path) -> float:
    """When the path last proved itself: an authenticated packet or an answered probe."""
    return max(p.last_rx if p.last_rx is not None else float("-inf"), p.last_pong if p.last_pong is not None else float("-inf"))


def path_state(p: Path, now: float) -> PathState:
    if p.last_pong is None:
        return PathState.DOWN if p.lost_since_pong else PathState.UNKNOWN
    if p.lost_since_pong:
        return PathState.DOWN
    return PathState.DEGRADED if p.loss > 0.25 else PathState.UP


@dataclass(frozen=True, slots=True)
class PathChoice:
    addr: PathId | None
    reason: str
    live: bool = True  # False: every usable path is down (the peer is unreachable for now)


def choose(paths: dict[PathId, Path], current: PathId | None, now: float, relay_up: dict[PathId, bool]) -> PathChoice:
    """Which path to send on. ``relay_up`` says, per relay path, whether our own path to that relay is UP."""
    direct_up = [p for p in paths.values() if not p.relay and path_state(p, now) is PathState.UP]
    if direct_up:
        # Only paths heard from about as recently as the freshest one compete: a path that went quiet
        # while another carries the peer's traffic is where the peer used to be (roaming).
        freshest = max(evidence(p) for p in direct_up)
        fresh = [p for p in direct_up if evidence(p) >= freshest - FRESHNESS]
        best = min(fresh, key=lambda p: (p.srtt if p.srtt is not None else 1e9, path_key(p.addr)))
        cur = paths.get(current) if current is not None else None
        if cur is not None and cur in fresh and cur is not best:
            if (cur.srtt or 0.0) <= 1.5 * (best.srtt or 0.0) + 0.002:  # hysteresis: equal paths do not flap
                return PathChoice(cur.addr, "direct path up")
        return PathChoice(best.addr, "direct path up")
    relays = [p for p in paths.values() if p.relay and relay_up.get(p.addr, False)]
    # a relay path whose probes go unanswered (the relay crashed, or lost the peer) is not used
    live = [p for p in relays if path_state(p, now) is not PathState.DOWN]
    if live:
        cur_p = paths.get(current) if current is not None else None
        best_r = min(live, key=lambda p: (p.srtt if p.srtt is not None else 1e9, path_key(p.addr)))
        if cur_p is not None and cur_p in live and cur_p is not best_r:
            if best_r.srtt is None or cur_p.srtt is None or cur_p.srtt <= 1.5 * best_r.srtt + 0.002:
                return PathChoice(cur_p.addr, "no direct path answers; relayed")
        return PathChoice(best_r.addr, "no direct path answers; relayed")
    heard = [p for p in paths.values()
             if (p.last_rx is not None or p.last_pong is not None) and (not p.relay or relay_up.get(p.addr, False))]
    if heard:
        last = max(heard, key=lambda p: (max(p.last_rx or 0.0, p.last_pong or 0.0), path_key(p.addr)))
        return PathChoice(last.addr, "last path heard from", path_state(last, now) is not PathState.DOWN)
    if any(path_state(p, now) is PathState.DOWN for p in paths.values()):
        return PathChoice(current, "no path answers", False)
    return PathChoice(current, "no evidence yet")
