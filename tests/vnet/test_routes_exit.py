"""Exit nodes in the routing table (vnet/routes.py) and the signed offer (wire/records.py flag bit 4): where
Internet-bound packets go with and without an exit, which sources the exit may send us, what a member may send
an exit, and that a record without the offer or with a damaged one is no offer."""

from __future__ import annotations

import ipaddress

import pytest
from tests.vnet.test_routes import IDS, NET, PLAN, V4, V6, A, B, C, ipv4, ipv6, record

from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.wire.records import EXIT_V4, EXIT_V6, FLAG_EXIT, PeerRecord, decode_record, sign_record
from omerta_mesh.io.nft import table_empty
from omerta_mesh.vnet.exitrules import lan_prefixes, offer_script, remove_script
from omerta_mesh.vnet.routes import Drop, Forward, Reply, Routes, assignment_from_records

INTERNET4, INTERNET6 = V4("198.51.100.7"), V6("2001:db8::7")


def table(me=A, **opts) -> Routes:
    return Routes(PLAN, assignment_from_records(PLAN, [record(i, None) for i in range(3)]), me, **opts)


def test_without_an_exit_internet_packets_are_dropped_as_before() -> None:
    r = table()
    a4, a6 = r.addresses(A)
    assert r.outbound(ipv4(a4, INTERNET4)) == Drop(DropReason.IP_UNROUTED)
    assert r.outbound(ipv6(a6, INTERNET6)) == Drop(DropReason.IP_UNROUTED)


def test_with_an_exit_internet_packets_go_to_it_and_members_still_go_direct() -> None:
    r = table(exit=B)
    a4, a6 = r.addresses(A)
    c4, _ = r.addresses(C)
    assert r.outbound(ipv4(a4, INTERNET4)) == Forward(B)
    assert r.outbound(ipv6(a6, INTERNET6)) == Forward(B)
    assert r.outbound(ipv4(a4, c4)) == Forward(C)  # a member's address: to the member, not the exit
    for local in (V4("224.0.0.251"), V4("169.254.1.1"), V4("127.0.0.1")):  # never to an exit
        assert r.outbound(ipv4(a4, local)) == Drop(DropReason.IP_UNROUTED)
    assert isinstance(r.outbound(ipv4(a4, PLAN.v4.network_address + 0x0A0A)), Reply)  # nobody's mesh IP: unreachable


def test_an_exit_that_no_longer_offers_gets_icmp_unreachable_not_a_leak() -> None:
    r = table(exit=None, exit_lost=True)
    a4, _ = r.addresses(A)
    assert isinstance(r.outbound(ipv4(a4, INTERNET4)), Reply)


def test_an_exit_that_offers_ipv4_only_gets_ipv6_answered_with_icmpv6_unreachable_not_sent() -> None:
    r = table(exit=B, exit_v6=False)
    a4, a6 = r.addresses(A)
    assert r.outbound(ipv4(a4, INTERNET4)) == Forward(B)
    reply = r.outbound(ipv6(a6, INTERNET6))
    assert isinstance(reply, Reply) and reply.packet[0] >> 4 == 6 and reply.packet[40] == 1  # ICMPv6 unreachable
    assert r.outbound(ipv6(a6, r.addresses(C)[1])) == Forward(C)  # members' ULA addresses as before


def test_answers_from_the_exit_may_carry_internet_sources_but_not_members_ones() -> None:
    r = table(exit=B)
    a4, a6 = r.addresses(A)
    c4, c6 = r.addresses(C)
    assert r.inbound_ok(B, ipv4(INTERNET4, a4)) is None
    assert r.inbound_ok(B, ipv6(INTERNET6, a6)) is None
    assert r.inbound_ok(B, ipv4(c4, a4)) is DropReason.IP_SPOOFED  # the exit cannot speak for C
    assert r.inbound_ok(B, ipv6(c6, a6)) is DropReason.IP_SPOOFED
    assert r.inbound_ok(C, ipv4(INTERNET4, a4)) is DropReason.IP_SPOOFED  # C is not our exit
    assert r.inbound_ok(B, ipv4(INTERNET4, INTERNET4)) is DropReason.IP_UNROUTED  # never onwards
    assert table().inbound_ok(B, ipv4(INTERNET4, a4)) is DropReason.IP_SPOOFED  # no exit chosen: as before
    assert r.inbound_ok(C, ipv6(INTERNET6, a6)) is DropReason.IP_SPOOFED  # IPv6 Internet sources: the exit's only
    assert table().inbound_ok(B, ipv6(INTERNET6, a6)) is DropReason.IP_SPOOFED


def test_an_exit_accepts_members_internet_packets_only_while_offering() -> None:
    b4, b6 = table().addresses(B)
    assert table().inbound_ok(B, ipv4(b4, INTERNET4)) is DropReason.EXIT_NOT_OFFERED
    assert table(offering=True).inbound_ok(B, ipv4(b4, INTERNET4)) is None
    assert table(offering=True).inbound_ok(B, ipv6(b6, INTERNET6)) is None
    assert table(offering=True).inbound_ok(B, ipv4(INTERNET4, INTERNET4)) is DropReason.IP_SPOOFED


def test_the_offer_is_signed_and_round_trips_and_older_records_have_none() -> None:
    ident = IDS[1]
    both = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, exit=EXIT_V4 | EXIT_V6))
    assert decode_record(both.raw, NET).exit == EXIT_V4 | EXIT_V6
    rec = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, (("192.0.2.1", 1),), exit=EXIT_V4))
    assert decode_record(rec.raw, NET).exit == EXIT_V4
    assert rec.raw[45] & FLAG_EXIT  # the flags byte
    assert decode_record(record(1, None).raw, NET).exit == 0


def test_a_damaged_offer_section_is_refused() -> None:
    ident = IDS[1]
    rec = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 10_000, exit=EXIT_V4))
    body = bytearray(rec.raw[:-64])
    body[-1] = 0x80  # an unknown family bit (re-signed, so only the section is wrong)
    with pytest.raises(WireError):
        decode_record(bytes(body) + ident.sign(NET.raw + bytes(body)), NET)


def test_the_ruleset_names_only_exit_objects_and_lists_members() -> None:
    members = [ipaddress.ip_address("100.64.3.4"), ipaddress.ip_address("100.64.5.6")]
    script = offer_script(members)
    assert "add element inet omerta exit_members4 { 100.64.3.4, 100.64.5.6 }" in script
    assert "masquerade" in script and "exit_members6 {" not in script.split("add element")[-1]
    assert "delete table" not in remove_script() and "delete chain inet omerta exit_forward" in remove_script()
    assert table_empty({"nftables": [{"metainfo": {}}, {"table": {}}]})
    assert not table_empty({"nftables": [{"table": {}}, {"chain": {"name": "rules"}}]})



def test_the_ruleset_masquerades_members_ula_addresses_nat66() -> None:
    members = [ipaddress.ip_address("100.64.3.4"), ipaddress.ip_address("fd5a:1:2::9")]
    script = offer_script(members)
    assert "add element inet omerta exit_members6 { fd5a:1:2::9 }" in script
    assert 'ip6 saddr @exit_members6 counter masquerade' in script
    assert 'iifname "om-*" ip6 saddr @exit_members6 accept' in script


def N(text: str):
    return ipaddress.ip_network(text)


def test_the_lan_is_the_uplinks_routes_not_the_mesh_nor_other_devices() -> None:
    routes = [
        (N("0.0.0.0/0"), "wlan0"), (N("192.168.1.0/24"), "wlan0"), (N("10.20.0.0/16"), "wlan0"),  # via the LAN's router
        (N("169.254.0.0/16"), "wlan0"),  # link-local: never
        (N("172.17.0.0/16"), "docker0"),  # a container bridge is not the LAN
        (N("100.64.0.0/10"), "wlan0"), (N("100.64.0.0/16"), "om-home"),  # a CGNAT uplink holding the mesh prefix
        (N("10.9.0.0/24"), "om-home"),  # an accepted subnet route
        (N("::/0"), "wlan0"), (N("2001:db8:1::/64"), "wlan0"), (N("fe80::/64"), "wlan0"), (N("fd5a::/48"), "om-home"),
        (N("2001:db8:2::/64"), "eth1"),  # no IPv6 default there: not an uplink
    ]
    got = lan_prefixes(routes, lambda dev: dev.startswith("om-"))
    assert got == [N("10.20.0.0/16"), N("192.168.1.0/24"), N("2001:db8:1::/64")]
    assert lan_prefixes([(N("192.168.1.0/24"), "wlan0")], lambda d: False) == []  # no default route: no uplink
    assert lan_prefixes([(N("0.0.0.0/0"), "om-x"), (N("10.0.0.0/8"), "om-x")], lambda d: d.startswith("om-")) == []
