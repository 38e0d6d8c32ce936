"""Named integer counters: one per drop reason, and free-form ones for traffic."""

from __future__ import annotations

from collections import Counter
from typing import Callable

from .errors import DropReason


class Counters:
    """A bag of named counters. ``drop(reason)`` counts a silent drop under ``drop.<reason>``."""

    __slots__ = ("_c", "_sources")

    def __init__(self) -> None:
        self._c: Counter[str] = Counter()
        self._sources: list[Callable[[], dict[str, int]]] = []  # counters kept elsewhere as plain integers

    def attach(self, source: Callable[[], dict[str, int]]) -> None:
        """Counters a per-packet path keeps as plain integers (cheaper than ``inc``), shown with these."""
        self._sources.append(source)

    def inc(self, name: str, n: int = 1) -> None:
        self._c[name] += n

    def drop(self, reason: DropReason, n: int = 1) -> None:
        self._c["drop." + reason.value] += n

    def dropped(self, reason: DropReason) -> int:
        return self._c["drop." + reason.value]

    def __getitem__(self, name: str) -> int:
        for source in self._sources:
            if name in (got := source()):
                return got[name]
        return self._c[name]

    def snapshot(self) -> dict[str, int]:
        out = dict(self._c)
        for source in self._sources:
            out.update(source())
        return dict(sorted(out.items()))

    def total_drops(self) -> int:
        return sum(v for k, v in self._c.items() if k.startswith("drop."))
