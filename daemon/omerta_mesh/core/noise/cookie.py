"""Defence of the handshake responder: cookies under load and a per-source rate limit (WireGuard-style).

* ``CookieJar`` (responder): a secret drawn every two minutes; the cookie for a source address is a keyed
  BLAKE2s of that address. While the responder is *under load* (more handshake initiations in the last
  second than the configured rate), an initiation without a valid mac2 gets a cookie reply instead of a
  Diffie-Hellman, so a spoofed-source flood costs it hashes only.
* ``RateLimiter``: a token bucket per source IP, in a bounded table (least recently used evicted).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

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
        self._window_start = float("-inf")
        self._count = 0

    def note_initiation(self, now: float) -> None:
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._count = 0
        self._count += 1

    def under_load(self, now: float) -> bool:
        return now - self._window_start < 1.0 and self._count > self.cfg.handshakes_per_second_under_load

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
        self.burst = float(burst)
        self.table_size = table_size
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, src_ip: str, now: float) -> bool:
        tokens, at = self._buckets.pop(src_ip, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        self._buckets[src_ip] = (tokens, now)
        if len(self._buckets) > self.table_size:
            self._buckets.popitem(last=False)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)
