"""Defence of the handshake responder: cookies under load and a per-source rate limit (WireGuard-style).

* ``CookieJar`` (responder): a secret drawn every two minutes; the cookie for a source address is a keyed
  BLAKE2s of that address. While the responder is *under load*, an initiation without a valid mac2 gets a
  cookie reply instead of a Diffie-Hellman, so a spoofed-source flood costs it hashes only. Under load means:
  more initiations than ``handshakes_per_second_under_load`` in the last second (a sliding second, so no
  fixed window lets the first N of each second through), or the global DH budget ran dry; it then holds for
  ``under_load_hold`` seconds after the last time it was true (WireGuard's UNDER_LOAD_AFTER_TIME).
* ``RateLimiter``: a token bucket per source IP, in a bounded table (least recently used evicted).
* ``TokenBucket``: the global Diffie-Hellman budget (``handshake_dh_per_second``): however many sources a
  flood comes from, the responder spends at most this many DHs per second on initiations.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..config import CoreConfig
from ..entropy import Entropy
from ..wire.handshake import COOKIE_NONCE_LEN, mac

Address = tuple[str, int]


def _addr_bytes(src: Address) -> bytes:
    try:
        packed = ipaddress.ip_address(src[0]).packed
    except ValueError:
        packed = src[0].encode()
    return packed + (src[1] & 0xFFFF).to_bytes(2, "big")


class CookieJar:
    def __init__(self, config: CoreConfig, entropy: Entropy) -> None:
        self.cfg = config
        self.entropy = entropy
        self._secret = b""
        self._secret_at = float("-inf")
        # the times of the last threshold+1 initiations: more than the threshold in the last second when the
        # oldest of them is less than a second old (a sliding second; bounded memory at any rate)
        self._recent: deque[float] = deque(maxlen=min(config.handshakes_per_second_under_load, 1 << 20) + 1)
        self._load_until = float("-inf")

    def note_initiation(self, now: float) -> None:
        self._recent.append(now)
        if len(self._recent) == self._recent.maxlen and now - self._recent[0] < 1.0:
            self.mark_load(now)

    def mark_load(self, now: float) -> None:
        """Under load from now until ``under_load_hold`` seconds from now (a flood, or the DH budget ran dry)."""
        self._load_until = max(self._load_until, now + self.cfg.under_load_hold)

    def under_load(self, now: float) -> bool:
        return now < self._load_until

    def cookie(self, src: Address, now: float) -> bytes:
        if now - self._secret_at >= self.cfg.cookie_secret_lifetime:
            self._secret = self.entropy.random_bytes(32)
            self._secret_at = now
        return mac(self._secret, _addr_bytes(src))

    def seal(self, key: bytes, cookie: bytes, mac1: bytes) -> tuple[bytes, bytes]:
        """(nonce, encrypted cookie) for a cookie reply."""
        nonce = self.entropy.random_bytes(COOKIE_NONCE_LEN)
        return nonce, ChaCha20Poly1305(key).encrypt(nonce, cookie, mac1)


def open_cookie(key: bytes, nonce: bytes, sealed: bytes, mac1: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, sealed, mac1)
    except InvalidTag:
        return None


class RateLimiter:
    def __init__(self, rate: float, burst: int, table_size: int) -> None:
        self.rate = rate
        self.burst = burst
        self.table_size = table_size
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float, n: float = 1.0) -> bool:
        """Spend ``n`` tokens of ``key``'s bucket if it has them (a new key starts full)."""
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self._buckets[key] = bucket  # most recently used last
        if len(self._buckets) > self.table_size:
            self._buckets.popitem(last=False)
        return bucket.take(now, n)

    def __len__(self) -> int:
        return len(self._buckets)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take`` spends ``n`` (one) if there are that many."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at: float | None = None

    def take(self, now: float, n: float = 1.0) -> bool:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False
