"""Virtual time for the simulator: a clock that only moves when told, and an event heap.

Nothing here reads a real clock. The heap orders events by ``(at, seq)`` where ``seq`` is the insertion
sequence number, so two events due at the same instant run in the order they were scheduled and the
payloads are never compared. That is what makes a seeded simulation replay the same trace exactly.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

from omerta_mesh.core.errors import MeshError

T = TypeVar("T")


class SimError(MeshError):
    """The simulator was used wrongly (unknown address, port already bound, time going backwards...)."""


class SimLimitError(SimError):
    """A run processed more events than its safety limit: most likely a livelock or a packet storm."""


class VirtualClock:
    """Simulated monotonic time in seconds. It starts at ``start`` and never goes backwards."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    @property
    def now(self) -> float:
        """The current virtual time."""
        return self._now

    def advance_to(self, t: float) -> None:
        """Move the clock to ``t``; raises ``SimError`` if ``t`` is in the past."""
        if t < self._now:
            raise SimError(f"virtual clock cannot go backwards: now={self._now!r}, asked {t!r}")
        self._now = float(t)


class EventQueue(Generic[T]):
    """A min-heap of ``(at, seq, item)``; ties on ``at`` break on insertion order, never on ``item``."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0

    def push(self, at: float, item: T) -> int:
        """Schedule ``item`` at time ``at``; returns its sequence number."""
        self._seq += 1
        heapq.heappush(self._heap, (float(at), self._seq, item))
        return self._seq

    def pop(self) -> tuple[float, T]:
        """Remove and return the earliest ``(at, item)``; raises ``IndexError`` when empty."""
        at, _seq, item = heapq.heappop(self._heap)
        return at, item

    def peek_time(self) -> float | None:
        """The time of the earliest event, or None when the queue is empty."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
