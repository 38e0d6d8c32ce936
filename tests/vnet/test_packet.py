"""IP header parsing, ICMP error builders and MSS clamping (vnet/packet.py), against an independent checksum."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.vnet import packet as pk

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
A4, B4, R4 = V4("100.64.1.2"), V4("100.64.9.9"), V4("100.64.1.1")
A6, B6, R6 = V6("fd12:3456:789a::2"), V6("fd12:3456:789a::9"), V6("fd12:3456:789a::1")


def oracle_sum(data: bytes) -> int:
    """One's complement sum written differently from the module's: byte pairs, fold at every step."""
    s = 0
    for i in range(0, len(data), 2):
        hi = data[i]
        lo = data[i + 1] if i + 1 < len(data) else 0
        s += hi * 256 + lo
        s = (s & 0xFFFF) + (s >> 16)
    return s


def oracle_ok(data: bytes, pseudo: bytes = b"") -> bool:
    return oracle_sum(pseudo + data) == 0xFFFF


def pseudo4(src: V4, dst: V4, proto: int, n: int) -> bytes:
    return src.packed + dst.packed + bytes([0, proto]) + n.to_bytes(2, "big")


def pseudo6(src: V6, dst: V6, nh: int, n: int) -> bytes:
    return src.packed + dst.packed + n.to_bytes(4, "big") + bytes([0, 0, 0, nh])


def fill_csum(buf: bytearray, at: int, pseudo: bytes, start: int) -> None:
    struct.pack_into("!H", buf, at, 0)
    struct.pack_into("!H", buf, at, ~oracle_sum(pseudo + bytes(buf[start:])) & 0xFFFF)


def ipv4(payload: bytes, proto: int = pk.PROTO_UDP, src: V4 = A4, dst: V4 = B4, df: bool = True, frag: int = 0) -> bytearray:
    flags = (0x4000 if df else 0) | frag
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, flags, 64, proto, 0, src.packed, dst.packed))
    struct.pack_into("!H", h, 10, ~oracle_sum(bytes(h)) & 0xFFFF)
    return h + payload


def ipv6(payload: bytes, nh: int = pk.PROTO_UDP, src: V6 = A6, dst: V6 = B6) -> bytearray:
    return bytearray(struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, src.packed, dst.packed) + payload)


def tcp_syn(options: bytes, v6: bool = False, flags: int = 0x02) -> bytearray:
    assert len(options) % 4 == 0
    seg = bytearray(struct.pack("!HHIIBBHHH", 40000, 22, 1, 0, (5 + len(options) // 4) << 4, flags, 64240, 0, 0) + options + b"data")
    if v6:
        fill_csum(seg, 16, pseudo6(A6, B6, 6, len(seg)), 0)
        return ipv6(bytes(seg), pk.PROTO_TCP)
    fill_csum(seg, 16, pseudo4(A4, B4, 6, len(seg)), 0)
    return ipv4(bytes(seg), pk.PROTO_TCP)


UDP = b"\x12\x34\x00\x35\x00\x0c\x00\x00ping"


# ------------------------------------------------------------------------------------------- parsing
def test_parse_ipv4() -> None:
    p = ipv4(UDP) + b"\0\0pad"
    h = pk.parse_header(p)
    assert (h.version, h.src, h.dst, h.protocol, h.total_length, h.header_length, h.ttl) == (4, A4, B4, 17, 32, 20, 64)
    assert h.fragment_offset == 0 and not h.more_fragments
    h = pk.parse_header(ipv4(UDP, frag=0x2000 | 3))
    assert h.fragment_offset == 24 and h.more_fragments


def test_parse_ipv6() -> None:
    h = pk.parse_header(ipv6(UDP))
    assert (h.version, h.src, h.dst, h.protocol, h.total_length, h.header_length) == (6, A6, B6, 17, 52, 40)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", DropReason.TRUNCATED),
        (b"\x45" + bytes(10), DropReason.TRUNCATED),
        (bytes(ipv4(UDP))[:25], DropReason.TRUNCATED),  # total length says 32
        (b"\x44" + bytes(ipv4(UDP))[1:], DropReason.BAD_FRAME),  # IHL 4
        (b"\x4f" + bytes(ipv4(UDP))[1:], DropReason.TRUNCATED),  # IHL 60 > 32 bytes
        (bytes(ipv4(UDP))[:2] + b"\x00\x10" + bytes(ipv4(UDP))[4:], DropReason.BAD_FRAME),  # total 16 < 20
        (bytes(ipv6(UDP))[:45], DropReason.TRUNCATED),
        (bytes(30), DropReason.UNKNOWN_TYPE),
        (b"\x50" + bytes(60), DropReason.UNKNOWN_TYPE),
    ],
)
def test_parse_refuses(data: bytes, reason: DropReason) -> None:
    with pytest.raises(WireError) as e:
        pk.parse_header(data)
    assert e.value.reason is reason
    assert pk.try_parse(data) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_parse_never_crashes(data: bytes) -> None:
    try:
        h = pk.parse_header(data)
    except WireError:
        return
    assert h.version in (4, 6) and h.total_length <= len(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([4, 6]), st.binary(max_size=70), st.integers(0, 79))
def test_fuzz_mutated_headers(v: int, tail: bytes, cut: int) -> None:
    base = bytes(ipv4(UDP) if v == 4 else ipv6(UDP))
    data = (base[:cut] + tail)[:80]
    pk.try_parse(data)
    pk.unreachable(data, R4, R6)
    pk.too_big(data, 1280, R4, R6)
    pk.clamp_mss(bytearray(data), 1200)


# ------------------------------------------------------------------------------------------- ICMP
def test_icmp4_host_unreachable_quotes_and_checksums() -> None:
    orig = ipv4(UDP)
    r = pk.icmp4_unreachable(orig, R4)
    assert r is not None
    h = pk.parse_header(r)
    assert (h.src, h.dst, h.protocol, h.total_length) == (R4, A4, 1, len(r))
    assert oracle_ok(r[:20])  # IP header checksum
    icmp = r[20:]
    assert icmp[:2] == bytes([3, 1]) and icmp[4:8] == bytes(4) and icmp[8:] == bytes(orig)
    assert oracle_ok(icmp)
    assert pk.icmp4_unreachable(orig, R4, code=0)[21] == 0  # type: ignore[index]


def test_icmp4_frag_needed_carries_the_mtu_and_needs_df() -> None:
    orig = ipv4(UDP + bytes(1400))
    r = pk.too_big(orig, 1380, R4, R6)
    assert r is not None and r[20:22] == bytes([3, 4]) and struct.unpack("!H", r[26:28])[0] == 1380
    assert oracle_ok(r[20:])
    assert pk.too_big(ipv4(UDP, df=False), 1380, R4, R6) is None


def test_icmp4_quote_is_bounded_to_576() -> None:
    r = pk.icmp4_unreachable(ipv4(UDP + bytes(3000)), R4)
    assert r is not None and len(r) == 576 and oracle_ok(r[20:])


def test_icmp6_unreachable_and_too_big() -> None:
    orig = ipv6(UDP)
    r = pk.icmp6_unreachable(orig, R6)
    assert r is not None
    h = pk.parse_header(r)
    assert (h.src, h.dst, h.protocol, h.total_length) == (R6, A6, 58, len(r))
    body = r[40:]
    assert body[:2] == bytes([1, 3]) and body[8:] == bytes(orig)
    assert oracle_ok(body, pseudo6(R6, A6, 58, len(body)))
    big = ipv6(UDP + bytes(3000))
    r = pk.too_big(big, 1400, R4, R6)
    assert r is not None and len(r) == 1280 and r[40] == 2 and struct.unpack("!I", r[44:48])[0] == 1400
    assert oracle_ok(r[40:], pseudo6(R6, A6, 58, 1240))


def test_no_error_about_errors_fragments_multicast_or_broadcast() -> None:
    icmp_err = bytes([3, 1, 0, 0]) + bytes(4) + bytes(ipv4(UDP))
    assert pk.icmp4_unreachable(ipv4(icmp_err, proto=1), R4) is None
    echo = bytes([8, 0, 0, 0]) + bytes(8)
    assert pk.icmp4_unreachable(ipv4(echo, proto=1), R4) is not None
    assert pk.icmp4_unreachable(ipv4(UDP, frag=5), R4) is None  # non-first fragment
    assert pk.icmp4_unreachable(ipv4(UDP, dst=V4("224.0.0.1")), R4) is None
    assert pk.icmp4_unreachable(ipv4(UDP, dst=V4("255.255.255.255")), R4) is None
    assert pk.icmp4_unreachable(ipv4(UDP, src=V4("0.0.0.0")), R4) is None
    err6 = bytes([1, 0, 0, 0]) + bytes(4) + bytes(ipv6(UDP))
    assert pk.icmp6_unreachable(ipv6(err6, nh=58), R6) is None
    assert pk.icmp6_unreachable(ipv6(bytes([128, 0, 0, 0]) + bytes(4), nh=58), R6) is not None
    mc = ipv6(UDP, dst=V6("ff02::1"))
    assert pk.icmp6_unreachable(mc, R6) is None
    assert pk.icmp6_packet_too_big(mc, R6, 1280) is not None  # RFC 4443 2.4 (e.3)
    assert pk.icmp6_unreachable(ipv6(UDP, src=V6("::")), R6) is None
    assert pk.unreachable(b"garbage", R4, R6) is None and pk.unreachable(ipv6(UDP), R4, None) is None


# ------------------------------------------------------------------------------------------- MSS clamping
MSS_1460 = bytes([2, 4, 0x05, 0xB4])


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        MSS_1460,
        bytes([1]) + MSS_1460 + bytes([1, 1, 1]),  # MSS value at an odd offset
        bytes([1, 1]) + MSS_1460 + bytes([1, 1]),
        bytes([4, 2]) + bytes([8, 10]) + bytes(8) + MSS_1460,  # SACK-permitted, timestamps, then MSS
    ],
)
def test_clamp_mss_rewrites_and_keeps_the_checksum_valid(options: bytes, v6: bool) -> None:
    buf = tcp_syn(options, v6)
    off = 40 if v6 else 20
    pseudo = (pseudo6(A6, B6, 6, len(buf) - off) if v6 else pseudo4(A4, B4, 6, len(buf) - off))
    assert oracle_ok(bytes(buf[off:]), pseudo)
    assert pk.clamp_mss(buf, 1360)
    i = bytes(buf).index(bytes([2, 4]), off + 20)
    assert struct.unpack("!H", buf[i + 2 : i + 4])[0] == 1360
    assert oracle_ok(bytes(buf[off:]), pseudo) and pk.tcp_checksum_ok(buf)


def test_clamp_mss_leaves_the_rest_alone() -> None:
    small = tcp_syn(bytes([2, 4, 0x04, 0x00]))  # MSS 1024 already below
    assert not pk.clamp_mss(small, 1360) and small == tcp_syn(bytes([2, 4, 0x04, 0x00]))
    ack = tcp_syn(MSS_1460, flags=0x10)  # not a SYN
    assert not pk.clamp_mss(ack, 1360)
    synack = tcp_syn(MSS_1460, flags=0x12)
    assert pk.clamp_mss(synack, 1360) and pk.tcp_checksum_ok(synack)
    no_mss = tcp_syn(bytes([1, 1, 4, 2]))
    assert not pk.clamp_mss(no_mss, 1360)
    after_end = tcp_syn(bytes([0, 1, 1, 1]) + MSS_1460)
    assert not pk.clamp_mss(after_end, 1360)
    udp = ipv4(UDP)
    assert not pk.clamp_mss(udp, 1360)


def test_clamp_mss_with_partial_checksum_leaves_the_field() -> None:
    buf = tcp_syn(MSS_1460)
    csum = bytes(buf[36:38])
    assert pk.clamp_mss(buf, 1360, partial_csum=True)
    assert bytes(buf[36:38]) == csum and not pk.tcp_checksum_ok(buf)


@settings(max_examples=300, deadline=None)
@given(
    pre=st.lists(st.sampled_from([b"\x01", b"\x04\x02", b"\x08\x0a" + bytes(8), b"\x03\x03\x07"]), max_size=3),
    mss=st.integers(0, 0xFFFF),
    clamp=st.integers(500, 9000),
    v6=st.booleans(),
)
def test_property_clamp_keeps_checksums(pre: list[bytes], mss: int, clamp: int, v6: bool) -> None:
    opts = b"".join(pre) + bytes([2, 4]) + mss.to_bytes(2, "big")
    opts += b"\x01" * (-len(opts) % 4)
    buf = tcp_syn(opts, v6)
    changed = pk.clamp_mss(buf, clamp)
    assert changed == (mss > clamp)
    assert pk.tcp_checksum_ok(buf)
    off = 40 if v6 else 20
    pseudo = pseudo6(A6, B6, 6, len(buf) - off) if v6 else pseudo4(A4, B4, 6, len(buf) - off)
    assert oracle_ok(bytes(buf[off:]), pseudo)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=20, max_size=120), st.integers(0, 0xFFFF))
def test_fuzz_clamp_never_crashes(data: bytes, clamp: int) -> None:
    buf = bytearray(b"\x45" + data[1:])
    n = len(buf)
    pk.clamp_mss(buf, clamp)
    assert len(buf) == n


@pytest.mark.parametrize("v6", [False, True])
def test_the_syn_filter_reads_the_protocol_and_flags_bytes(v6: bool) -> None:
    hdr = bytes(10)  # a virtio-net header in front, as read from the device
    for flags, syn in ((0x02, True), (0x12, True), (0x10, False), (0x18, False), (0x11, False)):
        buf = tcp_syn(MSS_1460, v6, flags=flags)
        assert pk.is_tcp_syn(buf) is syn and pk.is_tcp_syn(hdr + buf, 10) is syn
    udp = ipv6(bytes(8) + b"\x02" * 20) if v6 else ipv4(bytes(8) + b"\x02" * 20)  # a "flags" byte with SYN, not TCP
    assert not pk.is_tcp_syn(udp)
    syn = tcp_syn(MSS_1460, v6)
    flags_at = 53 if v6 else 33
    assert not any(pk.is_tcp_syn(syn[:n]) for n in range(flags_at + 1))  # cut before the flags byte
    assert not pk.is_tcp_syn(b"") and not pk.is_tcp_syn(bytes(60))
    assert pk.mss_for(syn, 1340) == (1280 if v6 else 1300)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 90))
def test_fuzz_the_syn_filter_never_crashes(data: bytes, off: int) -> None:
    pk.is_tcp_syn(data, off)


@pytest.mark.parametrize("v6", [False, True])
def test_a_pure_ack_is_told_from_data_and_syns(v6: bool) -> None:
    hdr = bytes(10)  # a virtio-net header in front, as read from the device
    tcp = struct.pack("!HHIIBBHHH", 40000, 22, 1, 1, 5 << 4, 0x10, 64240, 0, 0)
    ack = ipv6(tcp, pk.PROTO_TCP) if v6 else ipv4(tcp, pk.PROTO_TCP)
    with_opts = struct.pack("!HHIIBBHHH", 40000, 22, 1, 1, 8 << 4, 0x10, 64240, 0, 0) + b"\x01\x01\x08\x0a" + bytes(8)
    sack_ack = ipv6(with_opts, pk.PROTO_TCP) if v6 else ipv4(with_opts, pk.PROTO_TCP)  # options (timestamps), no data
    assert pk.is_tcp_pure_ack(ack) and pk.is_tcp_pure_ack(hdr + ack, 10) and pk.is_tcp_pure_ack(hdr + sack_ack, 10)
    data = tcp_syn(b"", v6, flags=0x18)  # PSH ACK with 4 bytes of data
    syn = tcp_syn(MSS_1460, v6)
    assert not pk.is_tcp_pure_ack(data) and not pk.is_tcp_pure_ack(hdr + syn, 10)
    assert not any(pk.is_tcp_pure_ack(ack[:n]) for n in range(len(ack)))  # cut short: never an ACK


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=80))
def test_fuzz_the_ack_filter_never_crashes(data: bytes) -> None:
    pk.is_tcp_pure_ack(data)
