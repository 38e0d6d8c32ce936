"""Named integer counters: one per drop reason, and free-form ones for traffic."""

from __future__ import annotations

from collections import Counter

from .errors import DropReason


class Counters:
    """A bag of named counters. ``drop(reason)`` counts a silent drop under ``drop.<reason>``."""

    __slots__ = ("_c",)

    def __init__(self) -> None:
        self._c: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        self._c[name] += n

    def drop(self, reason: DropReason) -> None:
        self._c["drop." + reason.value] += 1

    def dropped(self, reason: DropReason) -> int:
        return self._c["drop." + reason.value]

    def __getitem__(self, name: str) -> int:
        return self._c[name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._c.items()))

    def total_drops(self) -> int:
        return sum(v for k, v in self._c.items() if k.startswith("drop."))
