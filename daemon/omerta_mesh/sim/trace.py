"""The packet-flow trace of a simulation: one frozen record per datagram event, per hop.

A datagram gets a ``packet`` id when an app emits it. It then produces records as it moves:

* ``send``    the app handed it to its host (``at`` = sending host);
* ``nat``     a NAT box rewrote it (``src``/``dst`` before, ``new_src``/``new_dst`` after; ``at`` = NAT);
* ``deliver`` an app received it (``at`` = receiving host);
* ``drop``    it was lost, with a ``DropReason`` (``at`` = where it died).

``Trace.digest()`` hashes *every* record ever added (also those that fell out of the bounded buffer), so two
runs with the same seed give the same digest and any divergence changes it. ``format_failure`` is what a
test prints when an assertion fails.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections import deque
from dataclasses import dataclass

Address = tuple[str, int]


class DropReason(enum.StrEnum):
    """Why the simulated network dropped a datagram. Each value is a stats counter name."""

    LOSS = "loss"  # random loss on a link (LinkSpec.loss)
    NAT_FILTERED = "nat_filtered"  # a mapping exists but its filter refuses this remote
    NO_MAPPING = "no_mapping"  # inbound to a NAT's public address with no live mapping for the port
    BLOCKED = "blocked"  # SimInternet.block() cut this address pair
    NO_LISTENER = "no_listener"  # reached the host, nothing bound on the port
    HOST_DOWN = "host_down"  # sending or receiving host is down
    NO_ROUTE = "no_route"  # no host has that address (any more: roaming)
    NO_HAIRPIN = "no_hairpin"  # internal host sent to its NAT's public address, hairpinning off
    TOO_BIG = "too_big"  # larger than a link's mtu (LinkSpec.mtu)


class TraceEvent(enum.StrEnum):
    """What happened to a datagram at one point of its way."""

    SEND = "send"
    NAT = "nat"
    DELIVER = "deliver"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One datagram event. ``src``/``dst`` are the addresses on the wire at that point."""

    time: float
    packet: int
    event: TraceEvent
    at: str
    src: Address
    dst: Address
    size: int
    digest: str
    new_src: Address | None = None
    new_dst: Address | None = None
    reason: DropReason | None = None

    def line(self) -> str:
        """A one-line human-readable form."""
        s = f"{self.time:12.6f}  #{self.packet:<6} {self.event.value:<7} {self.at:<14} "
        s += f"{fmt_addr(self.src)} -> {fmt_addr(self.dst)}"
        if self.new_src is not None and self.new_dst is not None:
            s += f"  => {fmt_addr(self.new_src)} -> {fmt_addr(self.new_dst)}"
        s += f"  {self.size}B {self.digest}"
        if self.reason is not None:
            s += f"  [{self.reason.value}]"
        return s

    def canonical(self) -> bytes:
        """A stable byte encoding used by ``Trace.digest()``."""
        parts = (
            repr(self.time), str(self.packet), self.event.value, self.at, repr(self.src), repr(self.dst),
            str(self.size), self.digest, repr(self.new_src), repr(self.new_dst),
            self.reason.value if self.reason else "",
        )
        return ("|".join(parts) + "\n").encode()


def fmt_addr(a: Address) -> str:
    """``("10.0.0.2", 5000)`` -> ``"10.0.0.2:5000"``."""
    return f"{a[0]}:{a[1]}"


def payload_digest(data: bytes) -> str:
    """A short (8 hex chars) digest of a payload, to tell datagrams apart in a trace."""
    return hashlib.blake2b(data, digest_size=4).hexdigest()


class Trace:
    """A bounded buffer of ``TraceRecord`` plus a running hash over all records ever added."""

    def __init__(self, max_records: int = 200_000) -> None:
        if max_records <= 0:
            raise ValueError("max_records must be > 0")
        self._records: deque[TraceRecord] = deque(maxlen=max_records)
        self._hash = hashlib.blake2b(digest_size=16)
        self._total = 0

    def add(self, record: TraceRecord) -> None:
        """Append a record (the oldest falls out when the buffer is full; the digest still covers it)."""
        self._records.append(record)
        self._hash.update(record.canonical())
        self._total += 1

    @property
    def records(self) -> list[TraceRecord]:
        """The retained records, oldest first."""
        return list(self._records)

    @property
    def total(self) -> int:
        """How many records were ever added (retained or not)."""
        return self._total

    def __len__(self) -> int:
        return len(self._records)

    def digest(self) -> str:
        """A hex hash of the whole trace, for determinism checks."""
        return self._hash.hexdigest()

    def select(
        self, *, event: TraceEvent | str | None = None, at: str | None = None, packet: int | None = None
    ) -> list[TraceRecord]:
        """Retained records matching all given filters."""
        out = []
        for r in self._records:
            if event is not None and r.event != event:
                continue
            if at is not None and r.at != at:
                continue
            if packet is not None and r.packet != packet:
                continue
            out.append(r)
        return out

    def _tail(self, limit: int | None) -> list[TraceRecord]:
        recs = list(self._records)
        return recs if limit is None else recs[-limit:] if limit > 0 else []

    def dump(self, limit: int | None = None) -> str:
        """Readable text of the last ``limit`` records (all retained ones when None)."""
        return "\n".join(r.line() for r in self._tail(limit))

    def mermaid(self, limit: int | None = None) -> str:
        """A mermaid ``sequenceDiagram`` of the last ``limit`` records (arrows follow each datagram)."""
        recs = self._tail(limit)
        names: dict[str, str] = {}
        for r in recs:
            names.setdefault(r.at, _mermaid_id(r.at, len(names)))
        lines = ["sequenceDiagram"]
        lines += [f"    participant {pid} as {name}" for name, pid in names.items()]
        where: dict[int, str] = {}
        for r in recs:
            me = names[r.at]
            prev = where.get(r.packet, me)
            label = f"p{r.packet} {fmt_addr(r.src)} to {fmt_addr(r.dst)}"
            if r.event == TraceEvent.SEND:
                where[r.packet] = me
            elif r.event == TraceEvent.NAT:
                lines.append(f"    {prev}->>{me}: {label}")
                assert r.new_src is not None and r.new_dst is not None
                lines.append(f"    Note over {me}: now {fmt_addr(r.new_src)} to {fmt_addr(r.new_dst)}")
                where[r.packet] = me
            elif r.event == TraceEvent.DELIVER:
                lines.append(f"    {prev}->>{me}: {label}")
                where.pop(r.packet, None)
            else:
                reason = r.reason.value if r.reason else "?"
                lines.append(f"    {prev}-x{me}: {label} DROP {reason}")
                where.pop(r.packet, None)
        return "\n".join(lines)


def _mermaid_id(name: str, index: int) -> str:
    """A participant id mermaid accepts, unique per name."""
    return f"p{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def format_failure(trace: Trace, last: int = 200) -> str:
    """Text to print when a simulation test fails: the tail of the trace with a header."""
    shown = min(last, len(trace))
    head = f"--- packet trace: last {shown} of {trace.total} records (digest {trace.digest()[:16]}) ---"
    return head + "\n" + trace.dump(limit=last) + "\n--- end of trace ---"
