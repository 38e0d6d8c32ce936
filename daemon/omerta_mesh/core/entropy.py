"""Randomness is injected: the real source for production, a seeded one so simulations replay exactly."""

from __future__ import annotations

import hashlib
import os
from typing import Protocol


class Entropy(Protocol):
    def random_bytes(self, n: int) -> bytes: ...

    def randbelow(self, n: int) -> int: ...

    def uniform(self, a: float, b: float) -> float: ...


class _Base:
    def random_bytes(self, n: int) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def randbelow(self, n: int) -> int:
        if n <= 0:
            raise ValueError("randbelow needs n > 0")
        k = max(1, (n.bit_length() + 7) // 8 + 1)
        # rejection sampling keeps the result unbiased
        limit = (256**k // n) * n
        while True:
            v = int.from_bytes(self.random_bytes(k), "big")
            if v < limit:
                return v % n

    def uniform(self, a: float, b: float) -> float:
        v = int.from_bytes(self.random_bytes(7), "big") >> 3  # 53 bits
        return a + (b - a) * (v / float(1 << 53))


class SystemEntropy(_Base):
    """The operating system's CSPRNG."""

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


class SeededEntropy(_Base):
    """A deterministic stream (BLAKE2b in counter mode) for simulations and tests. Not for real keys."""

    def __init__(self, seed: int | bytes | str) -> None:
        if isinstance(seed, int):
            seed = seed.to_bytes(16, "big", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode()
        self._key = hashlib.blake2b(seed, digest_size=32).digest()
        self._counter = 0
        self._buf = b""

    def random_bytes(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += hashlib.blake2b(self._counter.to_bytes(8, "big"), key=self._key).digest()
            self._counter += 1
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def fork(self, label: str) -> "SeededEntropy":
        """An independent stream derived from this one, so adding a consumer does not shift others."""
        return SeededEntropy(self._key + label.encode())
