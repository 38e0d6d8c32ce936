"""A run of an incomplete super-segment, made writable (the receiving half of ``core/ipseg.py``).

When pieces of a TCP (or UDP) super-segment were lost on the way, each contiguous run of the pieces that came
is written to the TUN as a super-segment of its own, exactly as the sender's kernel would have cut it: the
IPv4 total length (IPv6 payload length), the IPv4 id (the kernel numbers a super-segment's segments from its
id) and header checksum, the TCP sequence number (``first * gso_size`` further on), the flags (CWR only on the
first segment, FIN and PSH only on the last), the UDP length, and the transport checksum field, which in a
super-segment holds only the pseudo-header seed (``NEEDS_CSUM``: the kernel adds the header and payload), are
rewritten; nothing else is touched. A run of one piece is an ordinary packet (no larger than ``gso_size``) and
goes without GSO.
"""

from __future__ import annotations

import struct

from ..core.errors import DropReason, WireError
from ..core.ipseg import GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, VNET, VNET_LEN, SegmentRun
from .packet import checksum


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo_seed(ip: bytes | bytearray | memoryview, proto: int, l4_len: int) -> int:
    """What a super-segment's transport checksum field holds: the folded pseudo-header sum (not complemented)."""
    if ip[0] >> 4 == 4:
        words = struct.unpack_from("!4H", ip, 12)
        return _fold(sum(words) + proto + l4_len)
    words = struct.unpack_from("!16H", ip, 8)
    return _fold(sum(words) + (l4_len >> 16) + (l4_len & 0xFFFF) + proto)


def rebuild_run(run: SegmentRun) -> bytes:
    """The virtio-net frame (header and packet) that carries ``run`` as the sender's kernel would have.
    Raises WireError for headers that do not add up (a member sent them; they are authenticated, not sane)."""
    flags, gso, hdr_len, size, start, off = VNET.unpack_from(run.head)
    payload = b"".join(run.pieces)
    pkt = bytearray(run.head[VNET_LEN:])
    l4 = start
    tcp = gso & ~GSO_ECN in (GSO_TCPV4, GSO_TCPV6)
    v = pkt[0] >> 4 if pkt else 0
    floor = (pkt[0] & 0xF) * 4 if v == 4 else 40
    if v not in (4, 6) or len(pkt) < floor or not floor <= l4 <= len(pkt) - (20 if tcp else 8) \
            or l4 + off + 2 > len(pkt) or size == 0:
        raise WireError(DropReason.FRAGMENT_INVALID, "a super-segment header that does not add up")
    last = run.first + len(run.pieces) == run.count
    l4_len = len(pkt) - l4 + len(payload)
    if pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 0xF) * 4
        ident = (struct.unpack_from("!H", pkt, 4)[0] + run.first) & 0xFFFF
        struct.pack_into("!HH", pkt, 2, len(pkt) + len(payload), ident)
        struct.pack_into("!H", pkt, 10, 0)
        struct.pack_into("!H", pkt, 10, checksum(pkt[:ihl]))
        proto = pkt[9]
    else:
        struct.pack_into("!H", pkt, 4, len(pkt) - 40 + len(payload))
        proto = 6 if tcp else 17
    if tcp:
        seq = (struct.unpack_from("!I", pkt, l4 + 4)[0] + run.first * size) & 0xFFFFFFFF
        struct.pack_into("!I", pkt, l4 + 4, seq)
        if run.first:
            pkt[l4 + 13] &= ~0x80 & 0xFF  # CWR
        if not last:
            pkt[l4 + 13] &= ~0x09 & 0xFF  # FIN, PSH
    else:
        struct.pack_into("!H", pkt, l4 + 4, l4_len)
    struct.pack_into("!H", pkt, l4 + off, pseudo_seed(pkt, proto, l4_len))
    one = len(payload) <= size
    head = VNET.pack(flags, GSO_NONE if one else gso, hdr_len, 0 if one else size, start, off)
    return b"".join((head, pkt, payload))
