"""NAT classification from evidence: what peers saw our packets come from, and which unsolicited probes
reached us. Every verdict keeps its evidence and a confidence, because "why am I relayed?" deserves an
answer a person can check.

Observations (``Observation``) come from PONG frames: we sent a probe from local socket L to destination
D, and the peer reports the source address M it saw (our mapping). From them:

* mapping: all destinations see the same M for one socket -> endpoint-independent (EIM); destinations on
  one IP see one M but different IPs see different ones -> address-dependent (ADM); different ports of
  one IP already see different ones -> address-and-port-dependent (APDM). M equal to L -> no NAT.
* port allocation (for dependent mappings): the mapped ports in the order the mappings were made; equal
  steps -> sequential with that delta (predictable), otherwise random. M's port equal to L's -> preserving.

Filtering comes from ``FilterTest`` results (``probing.py`` runs them): our second socket sent to peer P
only; then P (from another port) and Q (from another address) sent unsolicited probes to that socket's
mapping. The latest result of each kind decides: Q's arrived -> endpoint-independent filtering (EIF); P's
filtered -> address-and-port-dependent (APDF, whatever Q's did); P's arrived but Q's filtered ->
address-dependent (ADF). P's arrival alone (no second peer yet) leaves it unknown.

Hairpinning: a packet we sent to our own public mapping came back to us (or did not) within the wait.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

Address = tuple[str, int]


class Mapping(enum.IntEnum):
    UNKNOWN = 0
    NONE = 1  # not behind a NAT
    EIM = 2
    ADM = 3
    APDM = 4


class Allocation(enum.StrEnum):
    """How a NAT picks the public port of a new mapping (a str, so it reads as its value in JSON and tests)."""

    PRESERVING = "preserving"  # keeps the internal port
    SEQUENTIAL = "sequential"  # steps by ``port_delta`` from one mapping to the next: predictable
    RANDOM = "random"
    UNKNOWN = "unknown"


class Filtering(enum.IntEnum):
    UNKNOWN = 0
    NONE = 1
    EIF = 2
    ADF = 3
    APDF = 4


@dataclass(frozen=True, slots=True)
class Observation:
    local: Address
    dst: Address
    mapped: Address
    reporter: str  # the peer's short node id
    at: float
    order: int | None = None  # how many new mappings we had made before the one observed (None: not known)


@dataclass(frozen=True, slots=True)
class FilterTest:
    kind: str  # "other-port" (same peer, another port) or "other-address" (another peer)
    reporter: str
    arrived: bool
    at: float


@dataclass(frozen=True)
class NatVerdict:
    mapping: Mapping
    filtering: Filtering
    allocation: Allocation
    port_delta: int
    public: tuple[Address, ...]
    confidence: float
    evidence: tuple[str, ...] = field(default=())
    hairpin: bool | None = None  # None: not measured

    @property
    def label(self) -> str:
        if self.mapping is Mapping.NONE:
            return "public"
        if self.mapping is Mapping.EIM:
            return {Filtering.EIF: "full-cone", Filtering.ADF: "restricted", Filtering.APDF: "port-restricted"}.get(self.filtering, "cone")
        if self.mapping in (Mapping.ADM, Mapping.APDM):
            return "symmetric-" + (self.allocation.value if self.allocation in (Allocation.SEQUENTIAL, Allocation.RANDOM) else "unknown")
        return "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.label,
            "mapping": self.mapping.name.lower(),
            "filtering": self.filtering.name.lower(),
            "allocation": self.allocation.value,
            "port_delta": self.port_delta,
            "public_endpoints": [f"{h}:{p}" for h, p in self.public],
            "confidence": round(self.confidence, 2),
            "evidence": list(self.evidence),
            "hairpinning": self.hairpin,
        }


class NatObserver:
    """Collects observations and filter tests (bounded) and classifies on demand."""

    def __init__(self, limit: int = 256) -> None:
        self.observations: deque[Observation] = deque(maxlen=limit)
        self.filter_tests: deque[FilterTest] = deque(maxlen=32)
        self.hairpin: tuple[bool, float] | None = None  # (came back, when)

    def observe(self, o: Observation) -> bool:
        """Record an observation; True if it tells something new (a new destination or mapping).

        A mapping on another public address than the socket's latest one means we are behind another NAT
        now (we moved, or the NAT was renumbered): what we measured of the old one no longer applies."""
        v6 = ":" in o.mapped[0]  # IPv4 and IPv6 sockets share a port number: compare within one family
        last = next((x for x in reversed(self.observations) if x.local[1] == o.local[1] and (":" in x.mapped[0]) == v6), None)
        if last is not None and last.mapped[0] != o.mapped[0]:
            kept = (x for x in self.observations if x.mapped[0] == o.mapped[0] or (":" in x.mapped[0]) != v6)
            self.observations = deque(kept, maxlen=self.observations.maxlen)
            self.filter_tests.clear()
            self.hairpin = None
        new = not any(x.local == o.local and x.dst == o.dst and x.mapped == o.mapped for x in self.observations)
        if new:
            self.observations.append(o)
        return new

    def forget(self, families: set[bool]) -> None:
        """Drop observations towards these families (True: IPv6) and what was measured with them: we lost
        our addresses there, so we may be behind another NAT now."""
        kept = [o for o in self.observations if (":" in o.dst[0]) not in families]
        if len(kept) != len(self.observations):
            self.observations = deque(kept, maxlen=self.observations.maxlen)
            self.filter_tests.clear()
            self.hairpin = None

    def verdict(
        self, main_local: Address | None = None, local_ips: frozenset[str] = frozenset(), probe_local: Address | None = None,
    ) -> NatVerdict:
        obs = list(self.observations)
        port = probe_local[1] if probe_local is not None else None
        second = [o for o in obs if o.local[1] == port]
        main = [o for o in obs if o.local[1] != port]
        v = classify(main, list(self.filter_tests), main_local, local_ips)
        ev = list(v.evidence)
        if second:
            o = second[-1]
            ev.append(f"second port: {o.reporter} at {o.dst[0]}:{o.dst[1]} saw {o.mapped[0]}:{o.mapped[1]} (from local port {o.local[1]})")
        hp = None
        if self.hairpin is not None and v.mapping not in (Mapping.NONE, Mapping.UNKNOWN):
            hp = self.hairpin[0]
            ev.append("a packet to our own public address "
                      + ("came back: the NAT hairpins" if hp else "did not come back: no hairpinning"))
        return NatVerdict(v.mapping, v.filtering, v.allocation, v.port_delta, v.public, v.confidence, tuple(ev), hp)


def _allocation_by_order(obs: list[Observation]) -> tuple[Allocation, int, str] | None:
    """The port step per new mapping, from mappings whose creation order we know: the ports of two mappings
    differ by the step times the mappings made between them (our own punch bursts included), so bursts
    between two observations do not read as a large, random step. None: fewer than two ordered mappings,
    or no consistent small step (the arrival-order rule decides then)."""
    order: dict[Address, int] = {}
    for o in obs:
        if o.order is not None:
            order[o.mapped] = o.order
    ranked = sorted((k, m[1]) for m, k in order.items())
    steps = [(p2 - p1) // (k2 - k1) for (k1, p1), (k2, p2) in zip(ranked, ranked[1:]) if k2 > k1 and (p2 - p1) % (k2 - k1) == 0]
    pairs = sum(1 for (k1, _), (k2, _) in zip(ranked, ranked[1:]) if k2 > k1)
    small = [x for x in steps if 0 < abs(x) <= 16]
    if not pairs or len(small) < max(1, (2 * pairs + 2) // 3):
        return None
    delta = max(set(small), key=small.count)
    return Allocation.SEQUENTIAL, delta, f"new mappings step by {delta:+d} ports per mapping made (counting our own)"


def classify(
    obs: list[Observation], tests: list[FilterTest], main_local: Address | None = None, local_ips: frozenset[str] = frozenset(),
) -> NatVerdict:
    """``local_ips``: this host's own addresses (a socket bound to a wildcard address does not know which
    one a packet left from)."""
    if main_local is not None:  # the main socket's (by port: a wildcard-bound socket reports 0.0.0.0)
        obs_main = [o for o in obs if o.local[1] == main_local[1]] or obs
    else:
        obs_main = obs
    ev: list[str] = [f"{o.reporter} at {o.dst[0]}:{o.dst[1]} saw {o.mapped[0]}:{o.mapped[1]} (from local {o.local[0]}:{o.local[1]})"
                     for o in obs_main[-12:]]
    public = tuple(dict.fromkeys(o.mapped for o in reversed(obs_main)))[:4]
    if not obs_main:
        return NatVerdict(Mapping.UNKNOWN, Filtering.UNKNOWN, Allocation.UNKNOWN, 0, (), 0.0, ("no peer has reported our address yet",))
    dests_ips = {o.dst[0] for o in obs_main}
    if all(o.mapped == o.local or (o.mapped[1] == o.local[1] and o.mapped[0] in local_ips) for o in obs_main):
        conf = min(1.0, len(dests_ips) / 2)
        return NatVerdict(Mapping.NONE, Filtering.NONE, Allocation.PRESERVING, 0, public, conf,
                          tuple(ev + ["every peer saw our own address: no NAT"]))
    # mapping behaviour: for each destination, the (latest) mapped address
    by_dst: dict[Address, Address] = {}
    for o in obs_main:
        by_dst[o.dst] = o.mapped
    mapped_set = set(by_dst.values())
    if len(mapped_set) == 1:
        mapping = Mapping.EIM if len(by_dst) >= 2 else Mapping.UNKNOWN
        ev.append(f"{len(by_dst)} destinations ({len(dests_ips)} addresses) saw one mapping")
    else:
        same_ip_differs = False
        by_ip: dict[str, set[Address]] = {}
        for d, m in by_dst.items():
            by_ip.setdefault(d[0], set()).add(m)
        same_ip_differs = any(len(ms) > 1 for ms in by_ip.values())
        same_ip_same = any(len(ms) == 1 and sum(1 for d in by_dst if d[0] == ip) > 1 for ip, ms in by_ip.items())
        if same_ip_differs:
            mapping = Mapping.APDM
            ev.append("two ports of one address saw different mappings: address-and-port-dependent")
        elif same_ip_same:
            mapping = Mapping.ADM
            ev.append("ports of one address share a mapping but addresses differ: address-dependent")
        else:
            mapping = Mapping.APDM  # different addresses differ; the stricter reading predicts better
            ev.append("different addresses saw different mappings (dependent mapping)")
    # allocation
    allocation, delta = Allocation.UNKNOWN, 0
    if mapping is Mapping.EIM:
        loc = obs_main[-1].local
        allocation = Allocation.PRESERVING if any(o.mapped[1] == loc[1] for o in obs_main) else Allocation.UNKNOWN
    elif mapping in (Mapping.ADM, Mapping.APDM) and (by_order := _allocation_by_order(obs_main)) is not None:
        allocation, delta, why = by_order
        ev.append(why)
    elif mapping in (Mapping.ADM, Mapping.APDM):
        firsts: list[int] = []
        seen: set[Address] = set()
        for o in obs_main:  # order of first appearance of each mapping
            if o.mapped not in seen:
                seen.add(o.mapped)
                firsts.append(o.mapped[1])
        steps = [b - a for a, b in zip(firsts, firsts[1:])]
        if len(steps) >= 1 and all(s == steps[0] for s in steps) and 0 < abs(steps[0]) <= 16:
            allocation, delta = Allocation.SEQUENTIAL, steps[0]
            ev.append(f"new mappings step by {delta:+d} ports: predictable")
        elif len(steps) >= 1 and sum(1 for s in steps if 0 < abs(s) <= 16) >= max(1, (2 * len(steps)) // 3):
            small = [s for s in steps if 0 < abs(s) <= 16]
            delta = max(set(small), key=small.count)
            allocation = Allocation.SEQUENTIAL
            ev.append(f"new mappings mostly step by {delta:+d} ports")
        elif steps:
            allocation = Allocation.RANDOM
            ev.append("new mappings' ports show no pattern: random allocation")
    # filtering
    filtering = Filtering.UNKNOWN
    addr_t = next((t for t in reversed(tests) if t.kind == "other-address"), None)
    port_t = next((t for t in reversed(tests) if t.kind == "other-port"), None)
    if addr_t is not None and addr_t.arrived:
        filtering = Filtering.EIF
    elif port_t is not None and not port_t.arrived:
        filtering = Filtering.APDF
    elif port_t is not None and addr_t is not None:
        filtering = Filtering.ADF
    for t in tests[-6:]:
        ev.append(f"unsolicited probe from {t.reporter} ({t.kind}) {'arrived' if t.arrived else 'was filtered'}")
    conf = min(1.0, (len(by_dst) / 3) * (0.6 if filtering is Filtering.UNKNOWN else 1.0))
    return NatVerdict(mapping, filtering, allocation, delta, public, conf, tuple(ev))


def verdict_from_record(mapping: int, filtering: int, port_delta: int) -> NatVerdict:
    """A peer's NAT as its signed record states it (its evidence stays with the peer)."""
    m = Mapping(mapping) if mapping in Mapping._value2member_map_ else Mapping.UNKNOWN
    f = Filtering(filtering) if filtering in Filtering._value2member_map_ else Filtering.UNKNOWN
    alloc = Allocation.SEQUENTIAL if port_delta else (Allocation.UNKNOWN if m in (Mapping.ADM, Mapping.APDM) else Allocation.PRESERVING)
    return NatVerdict(m, f, alloc, port_delta, (), 0.0, ("as stated in the peer's signed record",))


def explain_pair(ours: NatVerdict, theirs: NatVerdict) -> str:
    """Why two nodes can or cannot meet directly, in words, from both NAT verdicts."""
    def sym(v: NatVerdict) -> bool:
        return v.mapping in (Mapping.ADM, Mapping.APDM)

    def open_(v: NatVerdict) -> bool:
        return v.mapping is Mapping.NONE or (v.mapping is Mapping.EIM and v.filtering is Filtering.EIF)

    a, b = ours.label, theirs.label
    if open_(ours) or open_(theirs):
        return f"{a} and {b}: one side accepts unsolicited packets, so a direct path should work"
    if sym(ours) and sym(theirs):
        if ours.allocation is Allocation.SEQUENTIAL and theirs.allocation is Allocation.SEQUENTIAL:
            return f"{a} and {b}: both NATs allocate ports in steps; both sides predict and probe in lock step (hole punching)"
        return f"{a} and {b}: both NATs pick a new port for every destination, so neither side can aim at the other; relayed"
    if sym(ours) or sym(theirs):
        s, o = (ours, theirs) if sym(ours) else (theirs, ours)
        if o.filtering is Filtering.ADF:
            return f"{a} and {b}: the cone side filters by address only, so the symmetric side's new port gets through"
        if s.allocation is Allocation.SEQUENTIAL:
            return f"{a} and {b}: the symmetric NAT allocates ports in steps of {s.port_delta:+d}; reachable by port prediction"
        if o.filtering is Filtering.UNKNOWN:
            return (f"{a} and {b}: the cone side's filtering is not measured; a symmetric NAT with random ports needs "
                    "address-only filtering on the other side")
        return f"{a} and {b}: the symmetric NAT's ports are random and the other side filters by port, so no hole can be aimed; relayed"
    return f"{a} and {b}: both keep one mapping per socket, so simultaneous probes open both NATs (hole punching)"
