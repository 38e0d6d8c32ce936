"""Super-segments of the virtual network, cut into independently sealed fragments (``IPSEG`` frames).

A TUN opened with virtio-net headers and TSO/USO hands over TCP (or UDP) *super-segments*: one virtio-net header
and one IP packet of up to 64 KB whose payload the kernel would cut into ``gso_size`` pieces. Sealing the whole
super-segment with one AEAD is cheapest, but one lost datagram then loses all ~45 of them, and TCP collapsed at
1% loss (BRIEF.md 4b). So each piece travels as a fragment of its own, sealed in its own transport datagram
(its own counter: the replay window covers it, and a forged fragment fails authentication before it takes any
reassembly memory), and every fragment carries the super-segment's headers::

    IPSEG frame = 0x0A | seg id (u32 LE) | index (u8) | count (u8) | virtio-net header (10) | L3+L4 header | piece

A fragment lost costs only its piece, as on a plain link: the receiver writes the complete super-segment back
with one TUN write (the kernel segments it), or, when pieces are missing, each contiguous run of pieces as a
super-segment of its own (``SegmentRun``; the virtual-network layer rewrites lengths, sequence number, IP id and
checksum seed: ``vnet/packet.py`` ``rebuild_run``). A packet that is not a super-segment (``gso_type`` 0: ping,
a small UDP datagram) is one fragment (count 1).

Reassembly is bounded per peer (``MAX_OPEN`` super-segments in progress, the oldest delivered as it stands when
more arrive) and keeps TCP's order: when a later super-segment begins, what is still missing of earlier ones
was lost, and they are delivered at once, before it (held back, the later data overtook them and TCP resent
the whole gap: 55% of segments retransmitted at 1% datagram loss). The last one is delivered by time
(``FLUSH_AFTER``, 5 ms: the rest of a super-segment arrives within a millisecond or not at all).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from .errors import DropReason, WireError

FRAME_TYPE = 0x0A
HEAD = struct.Struct("<BIBB")  # frame type, seg id, index, count
HEAD_LEN = HEAD.size  # 7
VNET = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_LEN = VNET.size  # 10
OVERHEAD = HEAD_LEN + VNET_LEN  # bytes a fragment carries beyond one IP packet of its size
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4 = 0, 1, 3, 4, 5
GSO_ECN = 0x80
NEEDS_CSUM = 1
MAX_OPEN = 8  # super-segments in reassembly per peer
FLUSH_AFTER = 0.005  # seconds: a super-segment still incomplete then (the last one sent) is delivered as it stands
MAX_PIECES = 128  # the kernel refuses to write more segments


def l4_header_end(frame: bytes | memoryview) -> int:
    """Where the super-segment's payload starts in ``frame`` (virtio-net header included): after the TCP or
    UDP header whose offset the kernel gave as ``csum_start``. Raises WireError for a malformed one."""
    flags, gso, _hl, _size, start, _off = VNET.unpack_from(frame)
    kind = gso & ~GSO_ECN
    l4 = VNET_LEN + int(start)
    if not flags & NEEDS_CSUM or l4 + 8 > len(frame):
        raise WireError(DropReason.TRUNCATED, "a super-segment without its transport header")
    if kind in (GSO_TCPV4, GSO_TCPV6):
        if l4 + 20 > len(frame):
            raise WireError(DropReason.TRUNCATED, "a TCP super-segment cut in its header")
        end = l4 + (int(frame[l4 + 12]) >> 4) * 4
    elif kind in (GSO_UDP_L4, GSO_UDP):
        end = l4 + 8
    else:
        raise WireError(DropReason.FRAGMENT_INVALID, f"unknown GSO type {gso}")
    if end > len(frame):
        raise WireError(DropReason.TRUNCATED, "a super-segment cut in its header")
    return end


def fragments(frame: bytes | memoryview, seg_id: int) -> list[bytes]:
    """The IPSEG frames (plaintext, to be sealed one by one) for one TUN read ``frame`` (virtio-net header and
    packet). Raises WireError for a frame that cannot be cut."""
    if len(frame) <= VNET_LEN:
        raise WireError(DropReason.TRUNCATED, "a TUN frame without a packet")
    mv = memoryview(frame)
    gso = mv[1] & ~GSO_ECN
    size = VNET.unpack_from(mv)[3]
    if gso == GSO_NONE or size == 0:
        return [HEAD.pack(FRAME_TYPE, seg_id, 0, 1) + mv]
    end = l4_header_end(mv)
    payload = len(mv) - end
    count = -(-payload // size)
    if not 0 < count <= MAX_PIECES:
        raise WireError(DropReason.OVERSIZED, f"a super-segment of {count} pieces")
    head = mv[:end]
    if count == 1:
        return [HEAD.pack(FRAME_TYPE, seg_id, 0, 1) + mv]
    return [b"".join((HEAD.pack(FRAME_TYPE, seg_id, i, count), head, mv[end + i * size : end + (i + 1) * size]))
            for i in range(count)]


@dataclass(frozen=True, slots=True)
class SegmentRun:
    """Consecutive pieces ``first`` .. ``first + len(pieces) - 1`` of a super-segment of ``count`` pieces whose
    other pieces were lost: ``head`` is its virtio-net header and L3+L4 header as sent (for the whole)."""

    head: bytes
    first: int
    count: int
    pieces: tuple[bytes, ...]


class _Open:
    __slots__ = ("count", "head", "pieces", "got", "at")

    def __init__(self, count: int, head: bytes, at: float) -> None:
        self.count = count
        self.head = head
        self.pieces: list[bytes | None] = [None] * count
        self.got = 0
        self.at = at


class Reassembly:
    """One peer's super-segments in progress. ``add`` takes an authenticated fragment and returns what is ready
    to write: complete frames (bytes) and runs of incomplete ones (``SegmentRun``)."""

    __slots__ = ("_open", "lost_pieces", "partial", "complete")

    def __init__(self) -> None:
        self._open: dict[int, _Open] = {}
        self.lost_pieces = 0  # pieces that never came (counted when their super-segment was delivered)
        self.partial = 0  # super-segments delivered in runs
        self.complete = 0

    def __len__(self) -> int:
        return len(self._open)

    def oldest(self) -> float | None:
        return min((o.at for o in self._open.values()), default=None)

    def add(self, frame: bytes, now: float) -> list[bytes | SegmentRun]:
        if len(frame) < HEAD_LEN + VNET_LEN + 1:
            raise WireError(DropReason.TRUNCATED, "IPSEG frame")
        _t, seg, idx, count = HEAD.unpack_from(frame)
        if count <= 1:
            return [frame[HEAD_LEN:]] if count == 1 and idx == 0 else self._bad("IPSEG index")
        if idx >= count or count > MAX_PIECES:
            return self._bad("IPSEG index")
        o = self._open.get(seg)
        out: list[bytes | SegmentRun] = []
        if o is None:
            end = HEAD_LEN + l4_header_end(memoryview(frame)[HEAD_LEN:])
            # a later super-segment begins: what is still missing of earlier ones was lost (a GRO run brings a
            # super-segment's fragments together and in order). Deliver those first, at once: held back, they
            # would reach TCP after the later data, a gap of ~45 segments it resends in full
            for old in [k for k in self._open if 0 < (seg - k) & 0xFFFFFFFF < 0x80000000]:
                out += self._deliver(self._open.pop(old))
            if len(self._open) >= MAX_OPEN:  # (newer ones open, from reordering) the oldest goes as it stands
                old = min(self._open, key=lambda k: self._open[k].at)
                out += self._deliver(self._open.pop(old))
            o = self._open[seg] = _Open(count, frame[HEAD_LEN:end], now)
        else:
            end = HEAD_LEN + len(o.head)
            if o.count != count or frame[HEAD_LEN:end] != o.head:
                return out + self._bad("IPSEG fragment disagrees with its super-segment")
        if o.pieces[idx] is None:
            o.pieces[idx] = frame[end:]
            o.got += 1
            if o.got == count:
                del self._open[seg]
                self.complete += 1
                out.append(b"".join([o.head, *o.pieces]))  # type: ignore[list-item]
        return out

    def add_many(self, frames: list[bytes], now: float, bad: Callable[[WireError], None]) -> list[bytes | SegmentRun]:
        """``add`` for each frame in order (a GRO run's fragments), what it refuses handed to ``bad``. The next piece of
        a super-segment already open, the usual case, is taken here (the same checks as ``add``: its count, index
        and headers agree with the super-segment's); anything else goes to ``add``."""
        out: list[bytes | SegmentRun] = []
        unpack, opened, least = HEAD.unpack_from, self._open, HEAD_LEN + VNET_LEN + 1
        for frame in frames:
            if len(frame) >= least:
                _t, seg, idx, count = unpack(frame)
                o = opened.get(seg)
                if o is not None and o.count == count and idx < count and frame.startswith(o.head, HEAD_LEN):
                    if o.pieces[idx] is None:
                        o.pieces[idx] = frame[HEAD_LEN + len(o.head) :]
                        o.got += 1
                        if o.got == count:
                            del opened[seg]
                            self.complete += 1
                            out.append(b"".join([o.head, *o.pieces]))  # type: ignore[list-item]
                    continue
            try:
                out += self.add(frame, now)
            except WireError as e:
                bad(e)
        return out

    def flush(self, now: float, everything: bool = False) -> list[bytes | SegmentRun]:
        """Super-segments incomplete for ``FLUSH_AFTER``: delivered in runs (their missing pieces are lost)."""
        out: list[bytes | SegmentRun] = []
        for seg in [s for s, o in self._open.items() if everything or now >= o.at + FLUSH_AFTER]:
            out += self._deliver(self._open.pop(seg))
        return out

    def _deliver(self, o: _Open) -> list[bytes | SegmentRun]:
        self.partial += 1
        self.lost_pieces += o.count - o.got
        out: list[bytes | SegmentRun] = []
        run: list[bytes] = []
        for i, p in enumerate([*o.pieces, None]):
            if p is not None:
                run.append(p)
            elif run:
                out.append(SegmentRun(o.head, i - len(run), o.count, tuple(run)))
                run = []
        return out

    @staticmethod
    def _bad(why: str) -> list[bytes | SegmentRun]:
        raise WireError(DropReason.FRAGMENT_INVALID, why)
