"""PeerTable: peers by (network, node id), and our receiver indexes -> the session or handshake they name."""

from __future__ import annotations

from typing import Iterator

from ..entropy import Entropy
from ..errors import UsageError
from ..ids import NetworkId, NodeId
from ..session.session import Session
from .peer import Peer


class PeerTable:
    def __init__(self, entropy: Entropy, max_per_network: int) -> None:
        self.entropy = entropy
        self.max_per_network = max_per_network
        self._peers: dict[tuple[bytes, bytes], Peer] = {}
        self._count: dict[bytes, int] = {}
        # local index -> (peer, session) for sessions, (peer, None) for a pending initiation
        self._index: dict[int, tuple[Peer, Session | None]] = {}

    # ---- peers
    def get(self, network: NetworkId, node: NodeId) -> Peer | None:
        return self._peers.get((network.raw, node.raw))

    def add(self, peer: Peer) -> Peer:
        k = peer.key
        if k in self._peers:
            return self._peers[k]
        n = self._count.get(k[0], 0)
        if n >= self.max_per_network:
            raise UsageError(f"network already has {n} peers, the configured maximum")
        self._peers[k] = peer
        self._count[k[0]] = n + 1
        return peer

    def remove(self, peer: Peer) -> None:
        if self._peers.pop(peer.key, None) is not None:
            self._count[peer.key[0]] -= 1
        for idx in [i for i, (p, _) in self._index.items() if p is peer]:
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
