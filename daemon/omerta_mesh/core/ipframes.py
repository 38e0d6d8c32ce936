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

from . import ipseg
from .counters import Counters
from .errors import DropReason, WireError
from .ids import NetworkId, NodeId
from .ipseg import Reassembly, SegmentRun
from .wire import frames as fw

_IP = bytes([fw.FrameType.IP])


Written = bytes | SegmentRun  # a packet (or virtio-net frame) to write, or a run of an incomplete super-segment


class IpFrames:
    __slots__ = ("counters", "limit", "mtu", "_open", "_in", "_segs", "_seg_id", "_armed")

    def __init__(self, counters: Counters, mtu: int, limit: int) -> None:
        self.counters = counters
        self.limit = limit
        self.mtu = mtu  # the largest IP packet one frame carries (over a relay too)
        self._open: set[bytes] = set()
        self._in: deque[tuple[NetworkId, NodeId, Written]] = deque()
        self._segs: dict[tuple[bytes, bytes], Reassembly] = {}  # per peer: super-segments in progress
        self._seg_id = 0
        self._armed = False  # a flush is due (the caller set its timer): no new deadline per fragment

    def open(self, network: NetworkId) -> None:
        """A driver writes ``network``'s packets to a device from now on."""
        self._open.add(network.raw)

    def close(self, network: NetworkId) -> None:
        self._open.discard(network.raw)
        for key in [k for k in self._segs if k[0] == network.raw]:
            del self._segs[key]
        if self._in:
            self._in = deque(p for p in self._in if p[0] != network)

    def is_open(self, network: NetworkId) -> bool:
        return network.raw in self._open

    def frame(self, packet: bytes | bytearray | memoryview) -> tuple[bytes] | None:
        """The frame for ``packet``, or None (counted) when it is empty or larger than ``mtu``."""
        if not 0 < len(packet) <= self.mtu:
            self.counters.inc("ip.tx_oversized")
            return None
        return (_IP + packet,)

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

    # ------------------------------------------------------------------ super-segments (core/ipseg.py)
    def seg_frames(self, frame: bytes | memoryview) -> list[bytes] | None:
        """The IPSEG frames for one TUN read (virtio-net header and packet); None (counted) when it cannot go."""
        self._seg_id = (self._seg_id + 1) & 0xFFFFFFFF
        try:
            out = ipseg.fragments(frame, self._seg_id)
        except WireError as e:
            self.counters.inc("ip.tx_bad_frame." + e.reason.value)
            return None
        if len(out[0]) > self.mtu + 1:  # a piece larger than a datagram carries: the device MTU is wrong
            self.counters.inc("ip.tx_oversized")
            return None
        return out

    def receive_seg(self, network: NetworkId, node: NodeId, frame: bytes, now: float) -> float | None:
        """An IPSEG fragment from member ``node`` (authenticated). Returns when to call ``flush`` if that timer
        is not set yet (None: it is, or nothing waits)."""
        return self.receive_segs(network, node, [frame], now)

    def receive_segs(self, network: NetworkId, node: NodeId, frames: list[bytes], now: float) -> float | None:
        """IPSEG fragments from member ``node`` (authenticated), in order: one, or a GRO run's (one call). Returns
        when to call ``flush`` if that timer is not set yet (None: it is, or nothing waits); a fragment refused is a
        counted drop."""
        if network.raw not in self._open:
            self.counters.drop(DropReason.IP_UNROUTED, len(frames))
            return None
        key = (network.raw, node.raw)
        r = self._segs.get(key)
        if r is None:
            r = self._segs[key] = Reassembly()
        ready = r.add_many(frames, now, lambda e: self.counters.drop(e.reason))
        if ready:
            self._queue(network, node, ready)
        if self._armed or not len(r):
            return None
        self._armed = True
        return now + ipseg.FLUSH_AFTER

    def flush(self, now: float, everything: bool = False) -> float | None:
        """Deliver super-segments incomplete for too long, as runs (their lost pieces counted)."""
        for (net, node), r in list(self._segs.items()):
            if len(r):
                lost = r.lost_pieces
                self._queue(NetworkId(net), NodeId(node), r.flush(now, everything))
                self.counters.inc("ip.rx_pieces_lost", r.lost_pieces - lost)
        at = self.next_flush()
        self._armed = at is not None
        return at

    def next_flush(self) -> float | None:
        t = min((o for r in self._segs.values() if (o := r.oldest()) is not None), default=None)
        return None if t is None else t + ipseg.FLUSH_AFTER

    def forget(self, network: NetworkId, node: NodeId) -> None:
        self._segs.pop((network.raw, node.raw), None)

    def _queue(self, network: NetworkId, node: NodeId, ready: list[Written]) -> None:
        for x in ready:
            if len(self._in) >= self.limit:
                self.counters.drop(DropReason.IP_QUEUE_FULL)
            else:
                self._in.append((network, node, x))

    def to_write(self) -> list[tuple[NetworkId, NodeId, Written]]:
        """Everything received since the last call: (network, sending member, IP packet | virtio-net frame |
        run of an incomplete super-segment)."""
        if not self._in:
            return []
        out = list(self._in)
        self._in.clear()
        return out
