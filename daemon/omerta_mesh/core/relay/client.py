"""The relay client: reaching peers through relays.

A peer's record names up to two relays it keeps sessions with; each relay we also have a session with gives
the peer a relay path (``ViaRelay(relay id)``), a path like any other: heartbeat probes travel it end
to end (through the relay to the peer and back), so a relay that dies, or loses the peer, is seen as a DOWN
path within the probe timeout, and ``paths.choose`` moves to another relay (the lowest measured RTT) or,
with none left, the peer counts as unreachable. While traffic flows the standby relay paths are probed
too, so their RTTs are known and a failover lands on a path already measured.

A relay path is usable only while our own path to the relay is direct and not down: we never send a RELAY
frame through another relay.
"""

from __future__ import annotations

from ..config import CoreConfig
from ..counters import Counters
from ..errors import DropReason, WireError
from ..ids import NodeId
from ..outbox import Outbox
from ..peers.paths import Address, PathId, PathState, ViaRelay, path_state
from ..peers.peer import Peer
from ..peers.table import PeerTable
from ..wire import frames as fw

STANDBY = 3  # relay paths kept measured besides the current one


class RelayClient:
    def __init__(self, config: CoreConfig, counters: Counters, table: PeerTable) -> None:
        self.cfg = config
        self.counters = counters
        self.table = table

    def relay_of(self, peer: Peer, addr: ViaRelay) -> Peer | None:
        """The relay peer behind the relay path ``addr`` to ``peer``."""
        try:
            node = NodeId.parse(addr.node)
        except Exception:
            return None
        r = self.table.get(peer.network.id, node)
        return None if r is peer else r

    def relay_ok(self, r: Peer | None, now: float) -> bool:
        """Our own path to relay ``r`` is direct and not down."""
        if r is None or not r.connected or r.endpoint is None or isinstance(r.endpoint, ViaRelay):
            return False
        p = r.paths.get(r.endpoint)
        return p is None or path_state(p, now) is not PathState.DOWN

    def relay_up(self, peer: Peer, now: float) -> dict[PathId, bool]:
        return {a: self.relay_ok(self.relay_of(peer, a), now) for a in peer.paths if isinstance(a, ViaRelay)}

    def wrap(self, peer: Peer, addr: ViaRelay, data: bytes, out: Outbox) -> bool:
        """Send the end-to-end datagram ``data`` for ``peer`` via the relay path ``addr``: a RELAY frame to
        the relay, on our direct path to it. False (counted) if there is no such relay."""
        r = self.relay_of(peer, addr)
        if r is None:
            self.counters.inc("relay.no_relay_session")
            return False
        if r.endpoint is None or isinstance(r.endpoint, ViaRelay):
            self.counters.inc("relay.no_direct_path_to_relay")
            return False
        out.frame(r, fw.encode_relay(peer.node.raw, data), r.endpoint)
        return True

    def unwrap(self, relay: Peer, frame: bytes, src: PathId) -> tuple[bytes, ViaRelay]:
        """A RELAYED frame from ``relay``: the inner datagram and the relay path it counts as arriving on."""
        f = fw.decode_relay(frame)
        if not f.relayed or isinstance(src, ViaRelay):
            raise WireError(DropReason.RELAY_LOOP, "a RELAYED frame that came through a relay")
        self.counters.inc("relay.received")
        return f.datagram, ViaRelay(relay.node.text())

    def offered(self, peer: Peer, relays: tuple[bytes, ...], own: bytes) -> list[ViaRelay]:
        """``peer`` says it is reachable through ``relays``: the relay paths to add (relays we have a
        session with, other than us and the peer)."""
        peer.relays = relays
        out = []
        for rid in relays:
            if rid in (own, peer.node.raw):
                continue
            r = self.table.get(peer.network.id, NodeId(rid))
            if r is not None and r.connected:
                addr = ViaRelay(NodeId(rid).text())
                if addr not in peer.paths:
                    out.append(addr)
        return out

    def standby(self, peer: Peer, now: float) -> list[ViaRelay]:
        """Relay paths to probe besides the current path while traffic flows (or the peer is unreachable)."""
        up = self.relay_up(peer, now)
        cands = [a for a, ok in up.items() if ok and isinstance(a, ViaRelay) and a != peer.endpoint]
        cands.sort(key=lambda a: (peer.paths[a].srtt if peer.paths[a].srtt is not None else 1e9, a.node))
        return cands[:STANDBY]

    def dead_relays(self, peer: Peer, now: float) -> list[tuple[Peer, Address]]:
        """Relays behind DOWN relay paths of ``peer`` whose own direct path has no probe out: probe them, so a
        dead relay is itself noticed (and dropped from our record) rather than only the paths through it."""
        out: list[tuple[Peer, Address]] = []
        for a, p in peer.paths.items():
            if isinstance(a, ViaRelay) and path_state(p, now) is PathState.DOWN:
                r = self.relay_of(peer, a)
                if r is not None and r.endpoint is not None and not isinstance(r.endpoint, ViaRelay):
                    rp = r.paths.get(r.endpoint)
                    if rp is None or not rp.pending:
                        out.append((r, r.endpoint))
        return out
