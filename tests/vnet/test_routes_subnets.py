"""Subnet routes (issue 15, item 2) without a kernel: the signed advertisement (wire/records.py flag bit 5), the
rules of vnet/subnets.py (default routes and overlaps refused, which accepted advertisement is in force) and the
routing table with accepted prefixes (vnet/routes.py): longest-prefix match outbound, anti-spoofing inbound, and
the advertiser letting members' packets for its prefixes through."""

from __future__ import annotations

import ipaddress

import pytest
from tests.vnet.test_routes import IDS, NET, PLAN, V4, A, B, C, ipv4, ipv6, record

from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.wire.records import FLAG_ROUTES, MAX_RECORD, MAX_ROUTES, PeerRecord, decode_record, fit_host_keys, sign_record
from omerta_mesh.vnet.routes import Drop, Forward, Reply, Routes, assignment_from_records
from omerta_mesh.vnet.subnets import REFUSED_DEFAULT, REFUSED_OVERLAP, PrefixError, SubnetTable, parse_prefix, refusal, settle

P = ipaddress.ip_network
LAN, WIDE = P("10.20.0.0/24"), P("10.20.0.0/16")
NET2 = NetworkId(bytes(range(1, 11)))


def table(me=A, **opts) -> Routes:
    return Routes(PLAN, assignment_from_records(PLAN, [record(i, None) for i in range(3)]), me, **opts)


def test_before_accepting_a_subnet_is_unrouted_and_its_sources_are_spoofed() -> None:
    r = table()
    a4, _ = r.addresses(A)
    assert r.outbound(ipv4(a4, V4("10.20.0.5"))) == Drop(DropReason.IP_UNROUTED)
    assert r.inbound_ok(B, ipv4(V4("10.20.0.5"), a4)) is DropReason.IP_SPOOFED


def test_an_accepted_prefix_goes_to_its_advertiser_and_only_it_may_send_from_it() -> None:
    r = table(subnets={LAN: B})
    a4, a6 = r.addresses(A)
    c4, _ = r.addresses(C)
    assert r.outbound(ipv4(a4, V4("10.20.0.5"))) == Forward(B)
    assert r.outbound(ipv4(a4, c4)) == Forward(C)  # members still go direct
    assert r.inbound_ok(B, ipv4(V4("10.20.0.5"), a4)) is None  # the subnet's answer through its advertiser
    assert r.inbound_ok(C, ipv4(V4("10.20.0.5"), a4)) is DropReason.IP_SPOOFED  # C speaking for B's subnet
    assert r.inbound_ok(B, ipv4(V4("10.21.0.5"), a4)) is DropReason.IP_SPOOFED  # outside what B advertises
    assert r.inbound_ok(B, ipv4(c4, a4)) is DropReason.IP_SPOOFED  # still never another member's mesh IP
    assert r.inbound_ok(B, ipv4(V4("10.20.0.5"), V4("10.20.0.6"))) is DropReason.IP_UNROUTED  # never onwards


def test_even_our_exit_cannot_speak_for_an_accepted_prefix() -> None:
    r = table(subnets={LAN: B}, exit=C)
    a4, _ = r.addresses(A)
    assert r.inbound_ok(C, ipv4(V4("10.20.0.5"), a4)) is DropReason.IP_SPOOFED
    assert r.inbound_ok(C, ipv4(V4("198.51.100.7"), a4)) is None  # the Internet's answers still do
    assert r.outbound(ipv4(a4, V4("10.20.0.5"))) == Forward(B)  # the subnet before the exit


def test_the_longest_prefix_wins_both_ways() -> None:
    r = table(subnets={WIDE: B, LAN: C})
    a4, _ = r.addresses(A)
    assert r.outbound(ipv4(a4, V4("10.20.0.5"))) == Forward(C)
    assert r.outbound(ipv4(a4, V4("10.20.9.5"))) == Forward(B)
    assert r.inbound_ok(C, ipv4(V4("10.20.0.5"), a4)) is None
    assert r.inbound_ok(B, ipv4(V4("10.20.0.5"), a4)) is DropReason.IP_SPOOFED  # the /24 is C's
    assert r.inbound_ok(B, ipv4(V4("10.20.9.5"), a4)) is None


def test_ipv6_prefixes_route_and_check_the_same_way() -> None:
    r = table(subnets={P("2001:db8:5::/48"): B})
    _, a6 = r.addresses(A)
    dst = ipaddress.IPv6Address("2001:db8:5::9")
    assert r.outbound(ipv6(a6, dst)) == Forward(B)
    assert r.inbound_ok(B, ipv6(dst, a6)) is None
    assert r.inbound_ok(C, ipv6(dst, a6)) is DropReason.IP_SPOOFED


def test_the_advertiser_forwards_members_packets_only_for_its_prefixes() -> None:
    a4, _ = table().addresses(A)
    r = table(me=B, advertising=(LAN,))
    assert r.inbound_ok(A, ipv4(a4, V4("10.20.0.5"))) is None  # for the kernel to forward
    assert r.inbound_ok(A, ipv4(a4, V4("10.99.0.5"))) is DropReason.EXIT_NOT_OFFERED
    assert r.inbound_ok(A, ipv4(V4("10.20.0.7"), V4("10.20.0.5"))) is DropReason.IP_SPOOFED  # A's own source only
    assert table(me=B).inbound_ok(A, ipv4(a4, V4("10.20.0.5"))) is DropReason.EXIT_NOT_OFFERED
    assert isinstance(table(me=B, advertising=(LAN,)).outbound(ipv4(r.addresses(B)[0], PLAN.v4.network_address + 0x0A0A)), Reply)


def test_our_own_advertisement_is_never_routed_to_us() -> None:
    r = table(subnets={LAN: A})
    a4, _ = r.addresses(A)
    assert r.outbound(ipv4(a4, V4("10.20.0.5"))) == Drop(DropReason.IP_UNROUTED)


def test_default_routes_mesh_prefixes_and_local_routes_are_refused_with_the_reason() -> None:
    mesh = [PLAN.v4, PLAN.ula]
    for d in ("0.0.0.0/0", "::/0"):
        why = refusal(P(d), mesh)
        assert why is not None and why[0] == REFUSED_DEFAULT and "exit node" in why[1]
    why = refusal(P(str(PLAN.v4.supernet(new_prefix=8))), mesh)
    assert why is not None and why[0] == REFUSED_OVERLAP and str(PLAN.v4) in why[1]
    why = refusal(P("192.168.1.128/25"), mesh, [(P("192.168.1.0/24"), "eth0")])
    assert why is not None and why[0] == REFUSED_OVERLAP and "192.168.1.0/24 dev eth0" in why[1]
    assert refusal(LAN, mesh, [(P("192.168.1.0/24"), "eth0"), (P("0.0.0.0/0"), "eth0")]) is None
    with pytest.raises(PrefixError, match="did you mean 10.20.0.0/24"):
        parse_prefix("10.20.0.1/24")
    with pytest.raises(PrefixError, match="not a prefix"):
        parse_prefix("ten dot twenty")


def test_settle_only_advertised_pairs_and_the_lower_node_id_wins_equal_prefixes() -> None:
    lo, hi = sorted((B, C), key=lambda n: n.raw)
    adverts = [(NET, B, (LAN, WIDE)), (NET, C, (LAN,))]
    s = settle([(B, LAN), (C, LAN), (A, LAN), (B, WIDE), (B, P("0.0.0.0/0"))], adverts,
               lambda p: refusal(p, [PLAN.v4]))
    assert s.winners == {LAN: (NET, lo), WIDE: (NET, B)}
    assert s.states[(lo, LAN)] == "active" and s.states[(hi, LAN)].startswith(f"shadowed by {lo.short()}")
    assert s.states[(A, LAN)].startswith("not advertised")
    assert s.states[(B, P("0.0.0.0/0"))].startswith("refused: 0.0.0.0/0 is a default route")
    # the order of acceptance does not matter; the loser takes over when the winner stops advertising
    assert settle([(C, LAN), (B, LAN)], adverts).winners == {LAN: (NET, lo)}
    only_hi = [(NET, hi, (LAN,))]
    assert settle([(B, LAN), (C, LAN)], only_hi).winners == {LAN: (NET, hi)}
    # a member in two networks: the first network (by id) carries it
    assert settle([(B, LAN)], [(NET2, B, (LAN,)), (NET, B, (LAN,))]).winners[LAN][0] == min(NET, NET2, key=lambda n: n.raw)


def test_subnet_table_is_longest_first() -> None:
    t = SubnetTable({WIDE: B, LAN: C, P("10.20.0.128/25"): A})
    assert t.owner(V4("10.20.0.200").packed) == A and t.owner(V4("10.20.0.5").packed) == C
    assert t.owner(V4("10.20.3.5").packed) == B and t.owner(V4("10.21.0.1").packed) is None


def test_the_advertisement_is_signed_round_trips_and_older_records_have_none() -> None:
    ident = IDS[1]
    prefixes = (LAN, P("10.30.0.0/23"), P("172.16.0.0/12"), P("2001:db8::/32"), P("192.0.2.7/32"), P("0.0.0.0/0"))
    rec = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, (("192.0.2.1", 1),), routes=prefixes))
    assert decode_record(rec.raw, NET).routes == prefixes  # (a default route is carried; refusing is the receiver's)
    assert rec.raw[45] & FLAG_ROUTES
    assert decode_record(record(1, None).raw, NET).routes == ()


def test_the_section_is_bounded_and_leaves_room_for_host_keys() -> None:
    ident = IDS[1]
    many = tuple(P(f"10.{i}.0.0/16") for i in range(40))
    rec = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, routes=many))
    assert decode_record(rec.raw, NET).routes == many[:MAX_ROUTES]
    keys = (b"k" * 51, b"e" * 104)
    wide = tuple(P(f"2001:db8:{i:x}::/48") for i in range(16))  # 7 bytes each: not all fit beside the keys
    rec = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, host_keys=keys, exit=1, routes=wide))
    got = decode_record(rec.raw, NET)
    assert got.host_keys == fit_host_keys(keys) and 0 < len(got.routes) < 16 and got.routes == wide[: len(got.routes)]
    assert len(rec.raw) <= MAX_RECORD


@pytest.mark.parametrize("damage", ["count0", "count17", "length", "hostbits", "trailing", "v4len"])
def test_a_damaged_routes_section_makes_the_record_invalid(damage: str) -> None:
    ident = IDS[1]
    rec = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, routes=(LAN,)))
    body = bytearray(rec.raw[:-64])
    sec_at = len(body) - 5  # | length (2) | count | len byte | 3 bytes | -> count at -5
    if damage == "count0":
        body[sec_at] = 0
    elif damage == "count17":
        body[sec_at] = 17
    elif damage == "length":
        body[sec_at + 1] = 32  # /32 needs 4 bytes, 3 are there
    elif damage == "hostbits":
        body[sec_at + 1], body[-1] = 23, 1  # 10.20.1.0/23: a host bit set
    elif damage == "trailing":
        body[sec_at - 2] += 1
        body += b"\x00"
    elif damage == "v4len":
        body[sec_at + 1] = 40
    with pytest.raises(WireError):
        decode_record(bytes(body) + ident.sign(NET.raw + bytes(body)), NET)
