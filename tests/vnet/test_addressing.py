"""Mesh addresses from ids (vnet/addressing.py): determinism, spread, the collision rule, static claims."""

from __future__ import annotations

import hashlib
import ipaddress
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.ids import NetworkId, NodeId
from omerta_mesh.vnet.addressing import (
    DEFAULT_V4_POOL,
    AddressPlan,
    Claim,
    derive_v4,
    derive_v6,
    ula_prefix,
    v4_candidates,
    v4_subnet,
    v4_usable,
    v6_subnet,
    v6_usable,
)

NET = NetworkId(bytes(range(10)))
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def node(i: int) -> NodeId:
    return NodeId(hashlib.sha256(i.to_bytes(4, "big")).digest())


def tiny_plan(prefix: str = "100.64.7.0/29") -> AddressPlan:
    """Five usable IPv4 addresses (.2-.6; .1 is the gateway): collisions come quickly."""
    return AddressPlan.for_network(NET, v4_subnet_override=ipaddress.IPv4Network(prefix))


# ------------------------------------------------------------------------------------------- prefixes
def test_ula_prefix_is_fd_slash48_from_the_network_id() -> None:
    p = ula_prefix(NET)
    assert p.prefixlen == 48 and p.network_address.packed[0] == 0xFD
    assert p.subnet_of(ipaddress.IPv6Network("fc00::/7"))
    # The 40-bit global id is the hash, independently computed.
    gid = hashlib.blake2s(NET.raw, digest_size=5, person=b"om-ula48").digest()
    assert p.network_address.packed[1:6] == gid
    assert ula_prefix(NetworkId(bytes(10))) != p


def test_v6_subnet_is_subnet_zero_of_the_ula() -> None:
    s = v6_subnet(NET)
    assert s.prefixlen == 64 and s.subnet_of(ula_prefix(NET))
    assert s.network_address == ula_prefix(NET).network_address


def test_v4_subnet_is_a_slash16_of_the_shared_pool_chosen_by_the_network() -> None:
    s = v4_subnet(NET)
    assert s.prefixlen == 16 and s.subnet_of(DEFAULT_V4_POOL)
    subs = {v4_subnet(NetworkId(i.to_bytes(10, "big"))) for i in range(400)}
    assert len(subs) > 50  # 64 possible: the hash spreads networks over them
    assert all(x.subnet_of(DEFAULT_V4_POOL) and x.prefixlen == 16 for x in subs)


def test_v4_prefix_is_configurable_and_checked() -> None:
    s = v4_subnet(NET, prefixlen=20)
    assert s.prefixlen == 20 and s.subnet_of(DEFAULT_V4_POOL)
    s = v4_subnet(NET, ipaddress.IPv4Network("10.0.0.0/8"), 24)
    assert s.prefixlen == 24 and s.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    for bad in (31, 7, 9):  # too long, too short, shorter than the /10 pool
        with pytest.raises(UsageError, match="prefix length"):
            v4_subnet(NET, prefixlen=bad)
    with pytest.raises(UsageError, match="/8 to /30"):
        AddressPlan.for_network(NET, v4_subnet_override=ipaddress.IPv4Network("100.64.0.0/31"))


# ------------------------------------------------------------------------------------------- derivation
def test_derivation_is_deterministic_and_inside_the_subnets() -> None:
    plan = AddressPlan.for_network(NET)
    for i in range(50):
        a4, a6 = derive_v4(node(i), plan.v4), derive_v6(node(i), plan.v6)
        assert a4 == derive_v4(NodeId(node(i).raw), AddressPlan.for_network(NetworkId(NET.raw)).v4)
        assert a6 == derive_v6(node(i), plan.v6)
        assert a4 in plan.v4 and a6 in plan.v6 and a6 in plan.ula
        assert v4_usable(a4, plan.v4) and v6_usable(a6, plan.v6)


def test_v6_interface_id_is_the_hash_of_the_node_id() -> None:
    n = node(1)
    iid = hashlib.blake2s(n.raw + bytes(4), digest_size=8, person=b"om-v6iid").digest()
    assert derive_v6(n, v6_subnet(NET)).packed[8:] == iid


def test_spread_over_a_slash16() -> None:
    plan = AddressPlan.for_network(NET)
    addrs = [derive_v4(node(i), plan.v4) for i in range(2000)]
    dup = len(addrs) - len(set(addrs))
    assert dup < 100  # birthday bound for 2000 of 65,024: ~30 expected
    thirds = Counter(a.packed[2] for a in addrs)
    assert len(thirds) > 240 and max(thirds.values()) < 25  # no clumping in the third octet
    assert all(a.packed[3] not in (0, 255) for a in addrs)


def test_edge_octets_are_never_usable() -> None:
    s = ipaddress.IPv4Network("100.70.0.0/16")
    for text in ("100.70.0.0", "100.70.255.255", "100.70.3.0", "100.70.3.255", "100.71.0.1"):
        assert not v4_usable(V4(text), s)
    assert v4_usable(V4("100.70.3.1"), s) and v4_usable(V4("100.70.0.254"), s)
    assert not v4_usable(V4("100.70.0.1"), s)  # the gateway
    small = ipaddress.IPv4Network("100.64.7.8/29")
    assert not v4_usable(V4("100.64.7.8"), small) and not v4_usable(V4("100.64.7.15"), small)
    assert not v4_usable(V4("100.64.7.9"), small) and v4_usable(V4("100.64.7.10"), small)


def test_reserved_v6_interface_ids_are_not_usable() -> None:
    s = v6_subnet(NET)
    base = int(s.network_address)
    assert not v6_usable(V6(base), s)  # subnet-router anycast
    assert not v6_usable(V6(base | 0xFDFF_FFFF_FFFF_FF80), s)  # RFC 5453
    assert not v6_usable(V6(base | 0xFFFF_FFFF_FFFF_FFFF), s)
    assert not v6_usable(V6(base | 1), s)  # the gateway
    assert v6_usable(V6(base | 2), s)
    assert not v6_usable(V6("fd00::1"), s)


def test_candidates_cover_the_whole_subnet_once_hashes_run_out() -> None:
    s = ipaddress.IPv4Network("100.64.7.0/29")
    assert set(v4_candidates(node(3), s)) == {V4(f"100.64.7.{i}") for i in range(2, 7)}


# ------------------------------------------------------------------------------------------- the plan
def test_members_without_claims_get_their_derived_addresses() -> None:
    plan = AddressPlan.for_network(NET)
    members = [node(i) for i in range(5)]
    a = plan.assign(members)
    assert a.v4 == {n: derive_v4(n, plan.v4) for n in members}
    assert a.v6 == {n: derive_v6(n, plan.v6) for n in members}
    assert a.conflicts == () and a.unassigned == ()
    assert a.owner(a.v4[members[2]]) == members[2] and a.owner(V4("100.64.0.1")) in (None, *members)
    assert plan.gateway4 == plan.v4.network_address + 1 and plan.gateway6 == plan.v6.network_address + 1
    assert plan.gateway4 not in a.v4.values() and not plan.usable(plan.gateway4) and not plan.usable(plan.gateway6)


def test_collision_lower_node_id_keeps_the_address() -> None:
    plan = tiny_plan()
    lo, hi = sorted([node(1), node(2)])
    want = V4("100.64.7.3")
    a = plan.assign([hi, lo], [Claim(hi, want), Claim(lo, want)])
    assert a.v4[lo] == want and a.v4[hi] != want and a.v4[hi] in plan.v4
    # The loser takes its own first free candidate.
    assert a.v4[hi] == next(c for c in v4_candidates(hi, plan.v4) if c != want)
    assert [(c.claim.node, c.holder) for c in a.conflicts] == [(hi, lo)]


def test_derived_collisions_in_a_tiny_subnet() -> None:
    """Five addresses, five members: everyone gets one, all different, whatever the hashes say."""
    plan = tiny_plan()
    members = [node(i) for i in range(5)]
    firsts = [derive_v4(n, plan.v4) for n in members]
    assert len(set(firsts)) < 5  # the hashes do collide here (so the rule is exercised)
    a = plan.assign(members)
    assert sorted(a.v4.values()) == [V4(f"100.64.7.{i}") for i in range(2, 7)]
    lowest = min(members)
    assert a.v4[lowest] == derive_v4(lowest, plan.v4)  # the lowest id always keeps its first candidate


def test_full_subnet_leaves_the_highest_ids_unassigned() -> None:
    plan = tiny_plan()
    members = [node(i) for i in range(8)]
    a = plan.assign(members)
    assert len(a.v4) == 5 and len(set(a.v4.values())) == 5
    assert sorted(a.unassigned) == sorted(members)[5:]
    assert len(a.v6) == 8  # IPv6 is never short


def test_static_wins_over_a_lower_ids_derived_claim() -> None:
    plan = tiny_plan()
    lo, hi = sorted([node(1), node(2)])
    want = V4("100.64.7.5")
    a = plan.assign([lo, hi], [Claim(lo, want), Claim(hi, want, static=True)])
    assert a.v4[hi] == want and a.v4[lo] != want
    assert [(c.claim.node, c.holder) for c in a.conflicts] == [(lo, hi)]


def test_static_wins_over_a_derived_address_nobody_claimed() -> None:
    plan = tiny_plan()
    lo, hi = sorted([node(1), node(2)])
    want = derive_v4(lo, plan.v4)  # what lo would derive, but lo claims nothing
    a = plan.assign([lo, hi], [Claim(hi, want, static=True)])
    assert a.v4[hi] == want and a.v4[lo] != want and a.conflicts == ()


def test_two_static_claims_lower_id_keeps_it_and_the_other_is_told() -> None:
    plan = AddressPlan.for_network(NET)
    lo, hi = sorted([node(1), node(2)])
    want4, want6 = V4(int(plan.v4.network_address) + 77), V6(int(plan.v6.network_address) + 77)
    claims = [Claim(hi, want4, True), Claim(lo, want4, True), Claim(hi, want6, True), Claim(lo, want6, True)]
    a = plan.assign([lo, hi], claims)
    assert a.v4[lo] == want4 and a.v6[lo] == want6
    assert a.v4[hi] == derive_v4(hi, plan.v4) and a.v6[hi] == derive_v6(hi, plan.v6)
    assert [(c.claim.address.version, c.claim.node, c.holder) for c in a.conflicts] == [(4, hi, lo), (6, hi, lo)]


def test_invalid_claims_are_ignored_and_reported() -> None:
    plan = tiny_plan()
    n, stranger = node(1), node(99)
    bad = [
        Claim(n, V4("100.64.8.1"), True),  # outside the subnet
        Claim(n, V4("100.64.7.0")),  # network address
        Claim(n, V6("fd00::1")),  # outside the ULA subnet
        Claim(stranger, V4("100.64.7.2")),  # not a member
    ]
    a = plan.assign([n], bad)
    assert a.v4[n] == derive_v4(n, plan.v4) and set(a.ignored) == set(bad)


def test_claimed_address_is_kept_across_restarts() -> None:
    """A member announcing the address it held keeps it even if it is not its first candidate."""
    plan = AddressPlan.for_network(NET)
    n = node(5)
    held = V4(int(plan.v4.network_address) + 1234)
    assert plan.assign([n], [Claim(n, held)]).v4[n] == held


def test_order_of_input_does_not_matter() -> None:
    plan = tiny_plan()
    members = [node(i) for i in range(7)]
    claims = [Claim(m, V4("100.64.7.2"), static=(i % 3 == 0)) for i, m in enumerate(members)]
    a = plan.assign(members, claims)
    b = plan.assign(list(reversed(members)), list(reversed(claims)))
    assert a == b


node_ids = st.binary(min_size=32, max_size=32).map(NodeId)
prefixes = st.sampled_from(["100.64.7.0/29", "100.64.9.0/28", "100.64.0.0/24", "100.64.0.0/16"])


@settings(max_examples=150, deadline=None)
@given(
    members=st.lists(node_ids, min_size=1, max_size=20, unique=True),
    prefix=prefixes,
    picks=st.lists(st.tuples(st.integers(0, 19), st.integers(0, 300), st.booleans(), st.booleans()), max_size=30),
)
def test_property_no_two_members_share_an_address(members, prefix, picks) -> None:
    plan = tiny_plan(prefix)
    base4, base6 = int(plan.v4.network_address), int(plan.v6.network_address)
    claims = []
    for who, off, static, v6 in picks:
        n = members[who % len(members)]
        claims.append(Claim(n, V6(base6 + off) if v6 else V4(base4 + off % plan.v4.num_addresses), static))
    a = plan.assign(members, claims)
    assert len(set(a.v4.values())) == len(a.v4) and len(set(a.v6.values())) == len(a.v6)
    assert all(plan.usable(x) for x in [*a.v4.values(), *a.v6.values()])
    assert set(a.v4) | set(a.unassigned) == set(members) and set(a.v6) == set(members)
    usable = sum(1 for i in range(plan.v4.num_addresses) if v4_usable(V4(base4 + i), plan.v4))
    assert len(a.v4) == min(len(members), usable)  # nobody is left out while space remains
    # A static claim on a valid address that no lower-id static claim wants is always honoured.
    for c in claims:
        if c.static and plan.usable(c.address):
            rivals = [d.node for d in claims if d.static and d.address == c.address and plan.usable(d.address)]
            fam = c.address.version
            mine = [d for d in claims if d.node == c.node and d.static and plan.usable(d.address) and d.address.version == fam]
            if c.node == min(rivals) and int(c.address) == min(int(d.address) for d in mine):
                assert (a.v4 if c.address.version == 4 else a.v6)[c.node] == c.address
    assert a == plan.assign(list(reversed(members)), list(reversed(claims)))
