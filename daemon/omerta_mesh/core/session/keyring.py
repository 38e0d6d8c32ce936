"""KeyRing: the network keys a node accepts handshakes under (an owned part of ``Handshakes``).

Each network has its current key, which we initiate under, and after a key rotation (docs/membership.md,
section 6) its previous keys, each accepted until the end of its grace (monotonic seconds), at most
``MAX_PREVIOUS`` of them. A responder tries mac1 under every key accepted now and answers under the key that
matched: the Noise pre-shared key, the response's mac1 and the cookie are that key's, so a member that was away
during a rotation still completes its handshake, and learns the new key in the session that follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..wire.handshake import mac1_key

MAX_PREVIOUS = 4
FOREVER = float("inf")


@dataclass(frozen=True, slots=True)
class Accepted:
    mac1: bytes  # the mac1 key for messages to us, under ``key``
    key: bytes  # the network key
    until: float  # monotonic seconds; FOREVER for the current key


class KeyRing:
    def __init__(self, public: bytes) -> None:
        self.public = public  # ours: mac1 keys for messages to us are keyed by it
        self._keys: dict[bytes, list[Accepted]] = {}  # network id -> current first, then the previous newest first

    def set(self, network: bytes, key: bytes) -> None:
        """``key`` is the network's current key (a network added: nothing previous)."""
        self._keys[network] = [Accepted(mac1_key(key, self.public), key, FOREVER)]

    def rotate(self, network: bytes, key: bytes, previous: bytes, until: float, now: float) -> None:
        """``key`` is the current key from now on; ``previous`` (the one it replaces) is still accepted until ``until``."""
        older = [a for a in self._keys.get(network, [])[1:] if a.until > now and a.key not in (key, previous)]
        ring = [Accepted(mac1_key(key, self.public), key, FOREVER)]
        if until > now:
            ring.append(Accepted(mac1_key(previous, self.public), previous, until))
        self._keys[network] = ring + older[: MAX_PREVIOUS - len(ring) + 1]

    def restore(self, network: bytes, previous: list[tuple[bytes, float]], now: float) -> None:
        """Previous keys the host saved (key, until), after ``set`` of the current one."""
        ring = self._keys.get(network)
        if ring is None:
            return
        kept = [Accepted(mac1_key(k, self.public), k, u) for k, u in previous if u > now and k != ring[0].key]
        self._keys[network] = ring[:1] + sorted(kept, key=lambda a: -a.until)[:MAX_PREVIOUS]

    def remove(self, network: bytes) -> None:
        self._keys.pop(network, None)

    def accepted(self, now: float) -> Iterator[tuple[bytes, Accepted]]:
        """(network id, key) for every key accepted now, the current keys first."""
        for nid, ring in self._keys.items():
            yield nid, ring[0]
        for nid, ring in self._keys.items():
            for a in ring[1:]:
                if a.until > now:
                    yield nid, a

    def of(self, network: bytes, now: float) -> list[Accepted]:
        """``network``'s keys accepted now, the current first."""
        return [a for a in self._keys.get(network, []) if a.until > now]

    def previous(self, network: bytes, now: float) -> list[tuple[bytes, float]]:
        """``network``'s previous keys still accepted, with when each stops (what the host saves)."""
        return [(a.key, a.until) for a in self._keys.get(network, [])[1:] if a.until > now]
