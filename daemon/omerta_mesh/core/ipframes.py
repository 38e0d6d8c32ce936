"""IP frames: the virtual network's packets inside sessions (per packet; an owned sub-machine of the core).

One IP packet travels as one ``IP`` frame (``wire/frames.py``: ``0x01 | packet``) in one transport datagram,
sealed in the peer's current session and sent on its current path, directly or through a relay (the relay
forwards it like any other datagram, within its quota). It is never queued behind the reliable stream:
a packet that finds no session is lost, as on a link coming up (the caller starts a handshake).

Receiving: only networks whose packets a driver writes to a device (``open``) accept IP frames; for the
others (no TUN here) a frame is dropped and counted (``drop.ip_unrouted``), so nothing piles up. Accepted
packets wait, at most ``limit`` (``CoreConfig.max_ip_queue``), until the driver drains them with
``to_write()`` after each input; beyond that they are dropped (``drop.ip_queue_full``). The anti-spoofing check (the inner source must be
the sending member's assigned address) needs the address assignment, which the virtual-network layer owns:
it checks every drained packet before writing it.
"""

from __future__ import annotations

from collections import deque

from .counters import Counters
from .errors import DropReason
from .ids import NetworkId, NodeId
from .wire import frames as fw

_IP = bytes([fw.FrameType.IP])


class IpFrames:
    __slots__ = ("counters", "limit", "mtu", "_open", "_in")

    def __init__(self, counters: Counters, mtu: int, limit: int) -> None:
        self.counters = counters
        self.limit = limit
        self.mtu = mtu  # the largest IP packet one frame carries (over a relay too)
        self._open: set[bytes] = set()
        self._in: deque[tuple[NetworkId, NodeId, bytes]] = deque()

    def open(self, network: NetworkId) -> None:
        """A driver writes ``network``'s packets to a device from now on."""
        self._open.add(network.raw)

    def close(self, network: NetworkId) -> None:
        self._open.discard(network.raw)
        if self._in:
            self._in = deque(p for p in self._in if p[0] != network)

    def is_open(self, network: NetworkId) -> bool:
        return network.raw in self._open

    def frame(self, packet: bytes | bytearray | memoryview) -> bytes | None:
        """The frame for ``packet``, or None (counted) when it is empty or larger than ``mtu``."""
        if not 0 < len(packet) <= self.mtu:
            self.counters.inc("ip.tx_oversized")
            return None
        return _IP + packet

    def receive(self, network: NetworkId, node: NodeId, frame: bytes) -> None:
        """An IP frame from member ``node`` of ``network`` (decrypted, authenticated)."""
        if network.raw not in self._open:
            self.counters.drop(DropReason.IP_UNROUTED)
        elif len(self._in) >= self.limit:
            self.counters.drop(DropReason.IP_QUEUE_FULL)
        elif len(frame) < 2:
            self.counters.drop(DropReason.TRUNCATED)
        else:
            self._in.append((network, node, frame[1:]))

    def to_write(self) -> list[tuple[NetworkId, NodeId, bytes]]:
        """Every packet received since the last call: (network, sending member, IP packet)."""
        if not self._in:
            return []
        out = list(self._in)
        self._in.clear()
        return out
