"""Deadlines as data: a heap of (at, key) with lazy cancellation.

The core never arms a timer itself. It records absolute deadlines; the driver asks ``next_deadline()`` and
calls ``handle_timer(now)`` when that moment has come. ``pop_due(now)`` yields the keys that are due.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass
from typing import Hashable, Iterator


class DeadlineQueue:
    __slots__ = ("_heap", "_at", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._at: dict[Hashable, float] = {}
        self._seq = 0  # insertion order breaks ties deterministically

    def set(self, key: Hashable, at: float) -> None:
        """Arm (or re-arm) ``key`` for ``at``. An earlier entry for the same key is superseded."""
        if self._at.get(key) == at:
            return
        self._at[key] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, key))

    def cancel(self, key: Hashable) -> None:
        self._at.pop(key, None)

    def put(self, key: Hashable, at: float | None, cancel: bool = False) -> None:
        """``set`` when ``at`` is a time; when it is None, ``cancel`` if asked, else leave ``key`` as it is."""
        if at is not None:
            self.set(key, at)
        elif cancel:
            self.cancel(key)

    def get(self, key: Hashable) -> float | None:
        return self._at.get(key)

    def __len__(self) -> int:
        return len(self._at)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            at, _, key = heap[0]
            if self._at.get(key) == at:
                return at
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> Iterator[Hashable]:
        """Yield every key whose deadline is <= now, removing it. Keys re-armed meanwhile are honoured."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if self._at.get(key) == at:
                del self._at[key]
                yield key
        if len(heap) > 4 * len(self._at) + 64:
            self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._at.get(e[2]) == e[0]]
        heapq.heapify(self._heap)


class Timer(enum.Enum):
    """The core's singleton timers (``Mesh.handle_timer`` dispatches on them through a table)."""

    GOSSIP = "gossip"  # the next gossip round (core/discovery/gossip.py)
    NAT = "nat"  # the next NAT test deadline (core/nat/probing.py)
    REQUESTS = "requests"  # the earliest request timeout
    IP_FLUSH = "ip_flush"  # the oldest incomplete super-segment is delivered as it stands (core/ipseg.py)
    RENEW = "renew"  # the earliest renewal of our certificates in owned networks (core/member/renewal.py)


@dataclass(frozen=True, slots=True)
class PeerTimer:
    """One peer's computed deadline: sessions, handshakes, its stream, probes and punching."""

    key: tuple[bytes, bytes]  # (network id, node id)


TimerKey = Timer | PeerTimer
