"""Sliding-window replay protection (RFC 6479 in spirit) over 64-bit counters.

``check_and_update(counter)`` accepts a counter at most once and refuses counters older than the window.
The window is kept as one Python integer used as a bitmap: bit i set means ``top - i`` was seen.
"""

from __future__ import annotations


class ReplayWindow:
    __slots__ = ("size", "_top", "_bits", "_mask")

    def __init__(self, size: int = 2048) -> None:
        if size < 64:
            raise ValueError("replay window must hold at least 64 packets")
        self.size = size
        self._top = -1  # highest counter accepted so far
        self._bits = 0
        self._mask = (1 << size) - 1

    def would_accept(self, counter: int) -> bool:
        top = self._top
        if counter > top:
            return True
        back = top - counter
        return back < self.size and not (self._bits >> back) & 1

    def check_and_update(self, counter: int) -> bool:
        """Record ``counter`` and return True if it is new and inside the window; False otherwise."""
        top = self._top
        if counter > top:
            shift = counter - top
            self._bits = ((self._bits << shift) | 1) & self._mask if shift < self.size else 1
            self._top = counter
            return True
        back = top - counter
        if back >= self.size:
            return False
        bit = 1 << back
        if self._bits & bit:
            return False
        self._bits |= bit
        return True

    @property
    def highest(self) -> int:
        return self._top
