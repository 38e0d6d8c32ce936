"""Minimal IPv4/IPv6 header parsing for routing decisions, ICMP error builders and TCP MSS clamping. Pure.

Parsing reads what routing needs and nothing more::

    IPv4 (RFC 791)                               IPv6 (RFC 8200)
    0      4      8             16             32    0      4           12             32
    +------+------+-------------+--------------+    +------+-----------+--------------+
    | ver  | IHL  |    TOS      | total length |    | ver  |  class    |  flow label  |
    +------+------+-------------+--------------+    +------+-----------+---+----------+
    |   identification   |flags| frag offset   |    |  payload length    |next hd| hops |
    +-------------+------+-----+---------------+    +--------------------+-------+------+
    |    TTL      | protocol   | header csum   |    |   source address (16 bytes)       |
    +-------------+------------+---------------+    +-----------------------------------+
    |   source address (4)  | destination (4)  |    |   destination address (16 bytes)  |
    +-------------------------------------------+    +-----------------------------------+

``parse_header`` returns an ``IpHeader`` or raises ``WireError`` (truncated, not IP, inconsistent lengths);
it never raises anything else on any input (fuzzed). Trailing bytes beyond the IP total length (link padding)
are allowed. IPv6 extension headers are not walked: ``protocol`` is the first next-header value.

ICMP errors (RFC 792 / RFC 1812 4.3.2.3 for IPv4, RFC 4443 for IPv6) quote as much of the offending packet as
fits in 576 bytes (IPv4) or 1280 bytes (IPv6), and are not sent about ICMP errors, non-first IPv4
fragments, multicast or broadcast destinations (except ICMPv6 packet-too-big, RFC 4443 2.4 e.3), or
unspecified/multicast sources: the builders return None then.

MSS clamping rewrites the MSS option of a TCP SYN (or SYN-ACK) in place and updates the TCP checksum
incrementally (RFC 1624). With a virtio-net header flagged NEEDS_CSUM the checksum field holds only the
pseudo-header seed and the kernel computes the rest: pass ``partial_csum=True`` and the field is left alone.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Union

from ..core.errors import DropReason, WireError

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address
Address = Union[IPv4, IPv6]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
IPV4_MIN_HEADER = 20
IPV6_HEADER = 40
ICMP4_MAX_REPLY = 576
ICMP6_MAX_REPLY = 1280
DEFAULT_TTL = 64

ICMP4_DEST_UNREACH = 3
ICMP4_NET_UNREACH = 0
ICMP4_HOST_UNREACH = 1
ICMP4_FRAG_NEEDED = 4
ICMP6_DEST_UNREACH = 1
ICMP6_NO_ROUTE = 0
ICMP6_ADDR_UNREACH = 3
ICMP6_PACKET_TOO_BIG = 2

TCP_SYN = 0x02
TCP_OPT_END = 0
TCP_OPT_NOP = 1
TCP_OPT_MSS = 2


@dataclass(frozen=True, slots=True)
class IpHeader:
    version: int  # 4 or 6
    src: Address
    dst: Address
    protocol: int  # IPv4 protocol, or IPv6 first next header
    total_length: int  # header + payload as the header states it (<= len(packet))
    header_length: int  # 20..60 for IPv4, 40 for IPv6
    ttl: int  # TTL / hop limit
    fragment_offset: int = 0  # IPv4 only, in bytes; IPv6 fragments are extension headers (not walked)
    more_fragments: bool = False


def _bad(reason: DropReason, detail: str) -> WireError:
    return WireError(reason, detail)


def ip_version(packet: bytes | bytearray | memoryview) -> int:
    """The version nibble (0 for an empty packet). Cheap, for the hot path."""
    return packet[0] >> 4 if len(packet) else 0


def parse_header(packet: bytes | bytearray | memoryview) -> IpHeader:
    """Parse the IP header of ``packet``; ``WireError`` (TRUNCATED, UNKNOWN_TYPE, BAD_FRAME) if it is not one."""
    n = len(packet)
    if n == 0:
        raise _bad(DropReason.TRUNCATED, "empty IP packet")
    v = packet[0] >> 4
    if v == 4:
        if n < IPV4_MIN_HEADER:
            raise _bad(DropReason.TRUNCATED, f"IPv4 header needs 20 bytes, got {n}")
        ihl = (packet[0] & 0x0F) * 4
        total, frag, ttl, proto = struct.unpack_from("!2xH2xHBB", packet)
        if ihl < IPV4_MIN_HEADER:
            raise _bad(DropReason.BAD_FRAME, f"IPv4 header length {ihl} < 20")
        if ihl > n or total > n:
            raise _bad(DropReason.TRUNCATED, f"IPv4 packet states {max(ihl, total)} bytes, got {n}")
        if total < ihl:
            raise _bad(DropReason.BAD_FRAME, f"IPv4 total length {total} < header length {ihl}")
        return IpHeader(
            4, IPv4(bytes(packet[12:16])), IPv4(bytes(packet[16:20])), proto, total, ihl, ttl,
            (frag & 0x1FFF) * 8, bool(frag & 0x2000),
        )
    if v == 6:
        if n < IPV6_HEADER:
            raise _bad(DropReason.TRUNCATED, f"IPv6 header needs 40 bytes, got {n}")
        plen, nh, hops = struct.unpack_from("!4xHBB", packet)
        if IPV6_HEADER + plen > n:
            raise _bad(DropReason.TRUNCATED, f"IPv6 packet states {IPV6_HEADER + plen} bytes, got {n}")
        return IpHeader(6, IPv6(bytes(packet[8:24])), IPv6(bytes(packet[24:40])), nh, IPV6_HEADER + plen, IPV6_HEADER, hops)
    raise _bad(DropReason.UNKNOWN_TYPE, f"IP version {v} (not 4 or 6)")


def try_parse(packet: bytes | bytearray | memoryview) -> IpHeader | None:
    """``parse_header`` or None."""
    try:
        return parse_header(packet)
    except WireError:
        return None


# ------------------------------------------------------------------------------------------- checksums
def checksum(data: bytes | bytearray | memoryview, seed: int = 0) -> int:
    """The Internet checksum (RFC 1071) of ``data`` with ``seed`` added to the sum, complemented."""
    b = bytes(data)
    if len(b) % 2:
        b += b"\0"
    s = seed + sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _pseudo6(src: IPv6, dst: IPv6, length: int, nh: int) -> int:
    p = src.packed + dst.packed + struct.pack("!IxxxB", length, nh)
    return sum(struct.unpack("!20H", p))


def _pseudo4(src: IPv4, dst: IPv4, length: int, proto: int) -> int:
    return sum(struct.unpack("!6H", src.packed + dst.packed + struct.pack("!xBH", proto, length)))


# ------------------------------------------------------------------------------------------- ICMP errors
def _ipv4(src: IPv4, dst: IPv4, proto: int, payload: bytes) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, DEFAULT_TTL, proto, 0, src.packed, dst.packed))
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return bytes(hdr) + payload


def _may_answer4(h: IpHeader, packet: bytes | bytearray | memoryview) -> bool:
    src, dst = h.src, h.dst
    if h.fragment_offset or src.is_unspecified or src.is_multicast or dst.is_multicast or int(src) == 0xFFFFFFFF:
        return False
    if int(dst) == 0xFFFFFFFF or src.is_loopback:
        return False
    if h.protocol == PROTO_ICMP and h.total_length > h.header_length:
        icmp_type = packet[h.header_length]
        if icmp_type not in (0, 8, 13, 14, 15, 16, 17, 18):  # an error message (or unknown): never answered
            return False
    return True


def icmp4_error(packet: bytes | bytearray | memoryview, src: IPv4, icmp_type: int, code: int, rest: int = 0) -> bytes | None:
    """An ICMP error from ``src`` to the packet's source, quoting it (None if it must not be answered)."""
    h = try_parse(packet)
    if h is None or h.version != 4 or not _may_answer4(h, packet):
        return None
    quote = bytes(packet[: min(h.total_length, ICMP4_MAX_REPLY - 28)])
    msg = bytearray(struct.pack("!BBHI", icmp_type, code, 0, rest) + quote)
    struct.pack_into("!H", msg, 2, checksum(msg))
    return _ipv4(src, h.src, PROTO_ICMP, bytes(msg))  # type: ignore[arg-type]


def icmp4_unreachable(packet: bytes | bytearray | memoryview, src: IPv4, code: int = ICMP4_HOST_UNREACH) -> bytes | None:
    """Type 3 destination unreachable; code 1 host (default) or 0 net."""
    return icmp4_error(packet, src, ICMP4_DEST_UNREACH, code)


def icmp4_frag_needed(packet: bytes | bytearray | memoryview, src: IPv4, mtu: int) -> bytes | None:
    """Type 3 code 4, "fragmentation needed and DF set", with the next-hop MTU (RFC 1191)."""
    return icmp4_error(packet, src, ICMP4_DEST_UNREACH, ICMP4_FRAG_NEEDED, mtu & 0xFFFF)


def _may_answer6(h: IpHeader, packet: bytes | bytearray | memoryview, too_big: bool) -> bool:
    src, dst = h.src, h.dst
    if src.is_unspecified or src.is_multicast or src.is_loopback:
        return False
    if dst.is_multicast and not too_big:
        return False
    if h.protocol == PROTO_ICMPV6 and h.total_length > IPV6_HEADER and packet[IPV6_HEADER] < 128:
        return False  # an ICMPv6 error message (types 0-127) is never answered
    return True


def icmp6_error(
    packet: bytes | bytearray | memoryview, src: IPv6, icmp_type: int, code: int, rest: int = 0
) -> bytes | None:
    h = try_parse(packet)
    if h is None or h.version != 6 or not _may_answer6(h, packet, icmp_type == ICMP6_PACKET_TOO_BIG):
        return None
    dst: IPv6 = h.src  # type: ignore[assignment]
    quote = bytes(packet[: min(h.total_length, ICMP6_MAX_REPLY - 48)])
    body = bytearray(struct.pack("!BBHI", icmp_type, code, 0, rest) + quote)
    struct.pack_into("!H", body, 2, checksum(body, _pseudo6(src, dst, len(body), PROTO_ICMPV6)))
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(body), PROTO_ICMPV6, DEFAULT_TTL, src.packed, dst.packed)
    return ip + bytes(body)


def icmp6_unreachable(packet: bytes | bytearray | memoryview, src: IPv6, code: int = ICMP6_ADDR_UNREACH) -> bytes | None:
    """ICMPv6 type 1 destination unreachable; code 3 address unreachable (default) or 0 no route."""
    return icmp6_error(packet, src, ICMP6_DEST_UNREACH, code)


def icmp6_packet_too_big(packet: bytes | bytearray | memoryview, src: IPv6, mtu: int) -> bytes | None:
    """ICMPv6 type 2 packet too big with the MTU."""
    return icmp6_error(packet, src, ICMP6_PACKET_TOO_BIG, 0, mtu & 0xFFFFFFFF)


def unreachable(packet: bytes | bytearray | memoryview, v4_src: IPv4 | None, v6_src: IPv6 | None) -> bytes | None:
    """The right unreachable reply for either family (None when there is no source of that family or no reply)."""
    v = ip_version(packet)
    if v == 4 and v4_src is not None:
        return icmp4_unreachable(packet, v4_src)
    if v == 6 and v6_src is not None:
        return icmp6_unreachable(packet, v6_src)
    return None


def too_big(packet: bytes | bytearray | memoryview, mtu: int, v4_src: IPv4 | None, v6_src: IPv6 | None) -> bytes | None:
    """Frag-needed (IPv4, only for packets with DF set) or packet-too-big (IPv6) for a packet over ``mtu``."""
    v = ip_version(packet)
    if v == 4 and v4_src is not None:
        if len(packet) < 8 or not packet[6] & 0x40:  # DF clear: the sender lets routers fragment; no error
            return None
        return icmp4_frag_needed(packet, v4_src, mtu)
    if v == 6 and v6_src is not None:
        return icmp6_packet_too_big(packet, v6_src, mtu)
    return None


def is_tcp_pure_ack(buf: bytes | bytearray | memoryview, off: int = 0) -> bool:
    """Whether the TCP packet at ``buf[off:]`` (its protocol byte already seen to be TCP) carries no data and no
    SYN: an acknowledgement alone. IPv6: only a TCP header right after the fixed header is seen."""
    n = len(buf) - off
    if n < 40:
        return False
    v = buf[off]
    if v >> 4 == 4:
        ihl = (v & 15) * 4
        t = off + ihl
        total = (buf[off + 2] << 8) | buf[off + 3]
        return ihl >= 20 and n >= ihl + 20 and not buf[t + 13] & TCP_SYN and total == ihl + (buf[t + 12] >> 4) * 4
    t = off + 40
    return n >= 60 and not buf[t + 13] & TCP_SYN and ((buf[off + 4] << 8) | buf[off + 5]) == (buf[t + 12] >> 4) * 4


# ------------------------------------------------------------------------------------------- MSS clamping
def is_tcp_syn(buf: bytes | bytearray | memoryview, off: int = 0) -> bool:
    """Whether the IP packet at ``buf[off:]`` looks like a TCP SYN (or SYN-ACK), from its protocol byte and
    its TCP flags byte alone: the per-packet filter before ``clamp_mss``, which checks the rest. IPv6: only
    a TCP header right after the fixed header (no extension headers) is seen."""
    n = len(buf)
    if n <= off + 40:
        return False
    v = buf[off]
    if v >> 4 == 4:
        f = off + (v & 15) * 4 + 13
        return buf[off + 9] == PROTO_TCP and f < n and bool(buf[f] & TCP_SYN)
    return v >> 4 == 6 and n > off + 53 and buf[off + 6] == PROTO_TCP and bool(buf[off + 53] & TCP_SYN)


def mss_for(packet: bytes | bytearray | memoryview, mtu: int) -> int:
    """The largest TCP MSS whose segments fit in ``mtu`` bytes: less the IPv4 (20 + 20) or IPv6 (40 + 20)
    headers, for the family of ``packet``."""
    return mtu - (60 if packet[0] >> 4 == 6 else 40)


def clamp_mss(buf: bytearray | memoryview, max_mss: int, *, partial_csum: bool = False) -> bool:
    """Lower the MSS option of a TCP SYN in ``buf`` (an IP packet) to ``max_mss``, in place.

    Returns True when the packet was changed. Anything that is not a well-formed unfragmented TCP SYN with
    an MSS option above ``max_mss`` is left as it is (never raises on garbage).
    """
    h = try_parse(buf)
    if h is None or h.protocol != PROTO_TCP or h.fragment_offset or h.more_fragments:
        return False
    t = h.header_length
    seg_end = h.total_length
    if seg_end - t < 20 or not buf[t + 13] & TCP_SYN:
        return False
    doff = (buf[t + 12] >> 4) * 4
    if doff < 20 or t + doff > seg_end:
        return False
    i, end = t + 20, t + doff
    while i < end:
        kind = buf[i]
        if kind == TCP_OPT_END:
            return False
        if kind == TCP_OPT_NOP:
            i += 1
            continue
        if i + 1 >= end or buf[i + 1] < 2 or i + buf[i + 1] > end:
            return False
        if kind == TCP_OPT_MSS and buf[i + 1] == 4:
            old = (buf[i + 2] << 8) | buf[i + 3]
            if old <= max_mss:
                return False
            struct.pack_into("!H", buf, i + 2, max_mss)
            if not partial_csum:
                # RFC 1624 eqn 3: HC' = ~(~HC + ~m + m'). NOPs can put the value at an odd offset in the
                # segment, where its bytes count swapped in the 16-bit sum.
                hc = (buf[t + 16] << 8) | buf[t + 17]
                aligned = (i + 2 - t) % 2 == 0
                m_old, m_new = (old, max_mss) if aligned else (_swap(old), _swap(max_mss))
                s = (~hc & 0xFFFF) + (~m_old & 0xFFFF) + m_new
                while s >> 16:
                    s = (s & 0xFFFF) + (s >> 16)
                struct.pack_into("!H", buf, t + 16, ~s & 0xFFFF)
            return True
        i += buf[i + 1]
    return False


def _swap(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


def tcp_checksum_ok(packet: bytes | bytearray | memoryview) -> bool:
    """Whether the TCP checksum of an IP packet verifies (for tests and debugging)."""
    h = try_parse(packet)
    if h is None or h.protocol != PROTO_TCP:
        return False
    seg = bytes(packet[h.header_length : h.total_length])
    seed = _pseudo4(h.src, h.dst, len(seg), PROTO_TCP) if h.version == 4 else _pseudo6(h.src, h.dst, len(seg), PROTO_TCP)  # type: ignore[arg-type]
    return checksum(seg, seed) == 0
