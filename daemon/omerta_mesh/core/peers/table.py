"""PeerTable: peers by (network, node id), and our receiver indexes -> the session or handshake they name.

The table is bounded, and its eviction order is written down here (and in docs/architecture.md):

* A peer is *unproven* until a transport frame from it decrypted (``prove``, called by ``Sessions.decrypt``)
  or we added it ourselves (an invite, a command, the peer cache: ``Members.add_peer`` with ``wanted``). A
  completed handshake alone proves nothing: anyone holding the network key can make one from a fresh
  identity every few milliseconds. Unproven peers are never persisted (``MeshNode`` saves proven ones only).
* At most ``max_unproven`` unproven peers, all networks together: a new one evicts the oldest unproven one
  (oldest admitted first), whatever its state (``peers.evicted_unproven``).
* At most ``max_per_network`` peers per network: a newcomer to a full network evicts, in this order, the
  oldest unproven peer of that network, else the proven peer of that network with no live session (no
  current or next session) whose last handshake is oldest (``peers.evicted_idle``). A peer with a live
  session that is proven is never evicted: when every peer has one, the newcomer is refused (UsageError;
  the handshake path counts it as a drop).

Evicted peers are out of the table at once (their indexes released) and wait in ``evicted`` until the
owner of membership (``Members.evict``) finishes dropping them (sessions, timers, punching).
"""

from __future__ import annotations

from typing import Iterator

from ..counters import Counters
from ..entropy import Entropy
from ..errors import UsageError
from ..ids import NetworkId, NodeId
from ..session.session import Session
from .peer import Peer

Key = tuple[bytes, bytes]


class PeerTable:
    def __init__(self, entropy: Entropy, max_per_network: int, max_unproven: int | None = None,
                 counters: Counters | None = None) -> None:
        self.entropy = entropy
        self.max_per_network = max_per_network
        self.max_unproven = max_unproven if max_unproven is not None else max_per_network
        self.counters = counters or Counters()
        self._peers: dict[Key, Peer] = {}
        self._count: dict[bytes, int] = {}
        self._unproven: dict[Key, Peer] = {}  # in admission order: the oldest first
        self.evicted: list[Peer] = []  # out of the table, for Members.evict to finish dropping
        # local index -> (peer, session) for sessions, (peer, None) for a pending initiation
        self._index: dict[int, tuple[Peer, Session | None]] = {}

    # ---- peers
    def by_key(self, key: tuple[bytes, bytes]) -> Peer | None:
        return self._peers.get(key)

    def get(self, network: NetworkId, node: NodeId) -> Peer | None:
        return self._peers.get((network.raw, node.raw))

    def add(self, peer: Peer) -> Peer:
        """``peer`` in the table (or the one already there), evicting by the order above to make room.
        Raises UsageError when its network is full of proven peers with live sessions."""
        k = peer.key
        if k in self._peers:
            return self._peers[k]
        if self._count.get(k[0], 0) >= self.max_per_network:
            victim = self._victim(k[0])
            if victim is None:
                raise UsageError(f"network already has {self._count[k[0]]} peers with live sessions, the configured maximum")
            self._evict(victim)
        if not peer.proven:
            while len(self._unproven) >= max(1, self.max_unproven):
                self._evict(next(iter(self._unproven.values())))
            self._unproven[k] = peer
        self._peers[k] = peer
        self._count[k[0]] = self._count.get(k[0], 0) + 1
        return peer

    def prove(self, peer: Peer) -> None:
        """Authenticated traffic came from ``peer`` (or we added it ourselves): it leaves the unproven pool."""
        peer.proven = True
        if self._unproven.get(peer.key) is peer:
            del self._unproven[peer.key]

    def unproven_count(self) -> int:
        return len(self._unproven)

    def _victim(self, network: bytes) -> Peer | None:
        for k, p in self._unproven.items():
            if k[0] == network:
                return p
        idle = [p for p in self._peers.values() if p.key[0] == network and p.current is None and p.next is None]
        return min(idle, key=lambda p: p.stats.last_handshake_at or float("-inf"), default=None)

    def _evict(self, peer: Peer) -> None:
        self.counters.inc("peers.evicted_idle" if peer.proven else "peers.evicted_unproven")
        self.remove(peer)
        self.evicted.append(peer)

    def take_evicted(self) -> list[Peer]:
        out, self.evicted = self.evicted, []
        return out

    def remove(self, peer: Peer) -> None:
        k = peer.key
        if self._peers.get(k) is peer:  # (not a newer peer under the same key: an evicted one may be back)
            del self._peers[k]
            self._count[k[0]] -= 1
        if self._unproven.get(k) is peer:
            del self._unproven[k]
        mine = [s.local_index for s in peer.sessions()] + ([peer.pending.local_index] if peer.pending is not None else [])
        for idx in mine:  # (the peer's own indexes, not a walk over every index: eviction runs per fresh identity)
            if self._index.get(idx, (None, None))[0] is peer:
                del self._index[idx]

    def count(self, network: NetworkId) -> int:
        return self._count.get(network.raw, 0)

    def __iter__(self) -> Iterator[Peer]:
        return iter(list(self._peers.values()))

    def in_network(self, network: NetworkId) -> list[Peer]:
        return [p for p in self._peers.values() if p.key[0] == network.raw]

    def by_node(self, node: NodeId) -> list[Peer]:
        return [p for p in self._peers.values() if p.key[1] == node.raw]

    # ---- receiver indexes
    def new_index(self, peer: Peer, session: Session | None = None) -> int:
        while True:
            idx = int.from_bytes(self.entropy.random_bytes(4), "little")
            if idx and idx not in self._index:
                self._index[idx] = (peer, session)
                return idx

    def bind_index(self, idx: int, peer: Peer, session: Session) -> None:
        self._index[idx] = (peer, session)

    def lookup(self, idx: int) -> tuple[Peer, Session | None] | None:
        return self._index.get(idx)

    def release(self, *indexes: int) -> None:
        for i in indexes:
            self._index.pop(i, None)

    def index_count(self) -> int:
        return len(self._index)
