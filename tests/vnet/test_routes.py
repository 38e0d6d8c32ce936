"""Routing in the virtual network (vnet/routes.py): assignment from signed records, forwarding by owner,
ICMP unreachable for unowned addresses, inbound anti-spoofing, our own claim."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.records import AddrClaim, PeerRecord, sign_record
from omerta_mesh.vnet import packet as pk
from omerta_mesh.vnet.addressing import AddressPlan, derive_v4, derive_v6
from omerta_mesh.vnet.routes import Drop, Forward, Reply, Routes, assignment_from_records, own_claim

NET = NetworkId(bytes(range(10)))
PLAN = AddressPlan.for_network(NET)
IDS = [Identity.generate(SeededEntropy(f"route-{i}")) for i in range(3)]
A, B, C = (i.node_id for i in IDS)
V4, V6 = ipaddress.IPv4Address, ipaddress.IPv6Address


def record(i: int, claim: AddrClaim | None, left: bool = False) -> PeerRecord:
    ident = IDS[i]
    return sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, (("192.0.2.1", 1),), addrs=claim, left=left))


def ipv4(src: V4, dst: V4, payload: bytes = b"x" * 8, proto: int = pk.PROTO_UDP) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0, src.packed, dst.packed))
    struct.pack_into("!H", hdr, 10, pk.checksum(hdr) ^ 0xFFFF)
    return bytes(hdr) + payload


def ipv6(src: V6, dst: V6, payload: bytes = b"x" * 8, nh: int = pk.PROTO_UDP) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, src.packed, dst.packed) + payload


def routes(me=A, claims=(None, None, None)) -> Routes:
    recs = [record(i, c) for i, c in enumerate(claims)]
    return Routes(PLAN, assignment_from_records(PLAN, recs), me)


def test_members_without_claims_get_their_derived_addresses() -> None:
    r = routes()
    for n in (A, B, C):
        assert r.addresses(n) == (derive_v4(n, PLAN.v4), derive_v6(n, PLAN.v6))


def test_a_claim_is_honoured_and_a_static_claim_beats_a_derived_one() -> None:
    want = PLAN.v4.network_address + 0x0A0A
    r = routes(claims=(AddrClaim(want.packed, None), AddrClaim(want.packed, None, True), None))
    assert r.owner(want) == B  # B's static claim wins over A's kept one
    assert r.addresses(A)[0] == derive_v4(A, PLAN.v4) != want


def test_departed_members_are_not_assigned() -> None:
    recs = [record(0, None), record(1, None, left=True)]
    a = assignment_from_records(PLAN, recs)
    assert B not in a.v4 and A in a.v4


def test_outbound_goes_to_the_owner_and_unowned_gets_icmp_from_the_gateway() -> None:
    r = routes()
    a4, a6 = r.addresses(A)
    b4, b6 = r.addresses(B)
    assert r.outbound(ipv4(a4, b4)) == Forward(B)
    assert r.outbound(ipv6(a6, b6)) == Forward(B)
    nobody = PLAN.v4.network_address + 0x0909
    assert r.owner(nobody) is None
    reply = r.outbound(ipv4(a4, nobody))
    assert isinstance(reply, Reply)
    h = pk.parse_header(reply.packet)
    assert (h.src, h.dst, h.protocol) == (PLAN.gateway4, a4, pk.PROTO_ICMP)
    reply6 = r.outbound(ipv6(a6, PLAN.v6.network_address + 0x777))
    assert isinstance(reply6, Reply) and pk.parse_header(reply6.packet).src == PLAN.gateway6


def test_outbound_drops_non_ip_multicast_and_foreign_destinations() -> None:
    r = routes()
    a4, a6 = r.addresses(A)
    assert r.outbound(b"\x00garbage") == Drop(DropReason.BAD_FRAME)
    assert r.outbound(ipv4(a4, V4("8.8.8.8"))) == Drop(DropReason.IP_UNROUTED)
    assert r.outbound(ipv6(a6, V6("ff02::2"), nh=pk.PROTO_ICMPV6)) == Drop(DropReason.IP_UNROUTED)  # router solicitation
    # our own address is routed by the kernel, never to us: if it does reach us it is unreachable, not a loop
    assert not isinstance(r.outbound(ipv4(a4, a4)), Forward)


def test_inbound_source_must_be_the_senders_address() -> None:
    r = routes()
    a4, a6 = r.addresses(A)
    b4, b6 = r.addresses(B)
    c4, _ = r.addresses(C)
    assert r.inbound_ok(B, ipv4(b4, a4)) is None
    assert r.inbound_ok(B, ipv6(b6, a6)) is None
    assert r.inbound_ok(B, ipv4(c4, a4)) is DropReason.IP_SPOOFED  # B speaking as C
    assert r.inbound_ok(B, ipv4(V4("10.0.0.1"), a4)) is DropReason.IP_SPOOFED
    assert r.inbound_ok(B, ipv4(b4, V4("8.8.8.8"))) is DropReason.EXIT_NOT_OFFERED  # no exit here: not a gateway elsewhere
    assert r.inbound_ok(B, b"\x45\x00") is DropReason.BAD_FRAME
    unknown = Identity.generate(SeededEntropy("stranger")).node_id
    assert r.inbound_ok(unknown, ipv4(b4, a4)) is DropReason.IP_SPOOFED


def test_the_plain_case_is_a_members_own_source_to_our_address_and_nothing_else() -> None:
    r = routes()
    a4, a6 = r.addresses(A)
    b4, b6 = r.addresses(B)
    c4, c6 = r.addresses(C)
    hdr = bytes(10)  # a virtio-net header in front, as the express lane hands it over
    assert r.plain(B, ipv4(b4, a4)) and r.plain(B, hdr + ipv6(b6, a6), 10)
    for pkt in (ipv4(c4, a4), ipv6(c6, a6),  # B speaking as C
                ipv4(b4, c4), ipv6(b6, c6),  # to another member: not ours to take
                ipv4(b4, V4("8.8.8.8")), ipv4(b4, a4)[:-1], ipv4(b4, a4) + b"pad", ipv6(b6, a6)[:-1], b"\x45" + bytes(10)):
        assert not r.plain(B, pkt)  # (inbound_ok judges these: some it takes, some it refuses)
    with_options = bytearray(ipv4(b4, a4))
    with_options[0] = 0x46  # an IPv4 header with options is left to inbound_ok
    assert not r.plain(B, bytes(with_options))
    unknown = Identity.generate(SeededEntropy("stranger")).node_id
    assert not r.plain(unknown, ipv4(b4, a4))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([4, 6]), st.booleans())
def test_the_plain_case_is_never_one_inbound_ok_refuses(data: bytes, version: int, fit: bool) -> None:
    r = routes()
    a4, a6 = r.addresses(A)
    b4, b6 = r.addresses(B)
    n = len(data)
    if version == 4 and n >= 20:  # B's source and our address (and with ``fit`` the true length): the rest decides
        size = n.to_bytes(2, "big") if fit else data[2:4]
        data = bytes([0x45]) + data[1:2] + size + data[4:12] + b4.packed + a4.packed + data[20:]
    elif version == 6 and n >= 40:
        size = (n - 40).to_bytes(2, "big") if fit else data[4:6]
        data = bytes([0x60]) + data[1:4] + size + data[6:8] + b6.packed + a6.packed + data[40:]
    plain = bool(data) and r.plain(B, data)
    assert plain == (fit and n >= (20 if version == 4 else 40)) or not fit  # (by chance a random length may fit)
    if plain:
        assert r.inbound_ok(B, data) is None


def test_own_claim_static_then_kept_then_derived() -> None:
    kept = str(PLAN.v4.network_address + 0x0505)
    static = str(PLAN.v4.network_address + 0x0606)
    assert own_claim(PLAN, A) == AddrClaim(derive_v4(A, PLAN.v4).packed, derive_v6(A, PLAN.v6).packed)
    assert own_claim(PLAN, A, (kept, None)).v4 == V4(kept).packed
    c = own_claim(PLAN, A, (kept, None), (static, None))
    assert c.v4 == V4(static).packed and c.v4_static and not c.v6_static
    # unusable values (the gateway, outside the subnet, garbage) fall back to deriving
    for bad in (str(PLAN.gateway4), "10.1.2.3", "nonsense", "fd00::5"):
        assert own_claim(PLAN, A, (bad, None)).v4 == derive_v4(A, PLAN.v4).packed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([4, 6, 0]))
def test_inbound_never_raises_and_refuses_whatever_the_parser_refuses(data: bytes, version: int) -> None:
    r = routes()
    b4, b6 = r.addresses(B)
    if version == 4 and len(data) >= 20:  # keep B's source so that only the header's consistency decides
        data = bytes([0x45]) + data[1:12] + b4.packed + data[16:]
    elif version == 6 and len(data) >= 40:
        data = bytes([0x60]) + data[1:8] + b6.packed + data[24:]
    verdict = r.inbound_ok(B, data)
    if pk.try_parse(data) is None:
        assert verdict is not None
    assert r.outbound(data) is not None  # never raises either
