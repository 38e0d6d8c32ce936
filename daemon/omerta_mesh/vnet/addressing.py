"""Mesh IP addresses without a coordinator: derived from ids, collisions settled by one deterministic rule.

Pure: no I/O, no clock, no randomness. Every node that knows the same members and claims computes the same
assignment (docs/vnet.md has the scheme and the rule; this docstring is its source).

**IPv6.** A network's ULA /48 is ``fd`` followed by 40 bits of BLAKE2s(network id) (RFC 4193 style: the
global id is a hash, not a registry). Members live in subnet 0 of it (``fdXX:XXXX:XXXX:0::/64``). A member's
64-bit interface id is BLAKE2s(node id || counter), counter 0 first; the all-zero id (subnet-router anycast)
the RFC 5453 reserved range ``fdff:ffff:ffff:ff80``-``ffff`` and ``::1`` (the gateway, below) are skipped.

**IPv4.** A per-network subnet inside a pool, by default a /16 of 100.64.0.0/10 (RFC 6598 shared space: 64
of them, the one chosen by BLAKE2s(network id) mod 64). The pool, the prefix length (8..30) or the subnet
itself are configurable. The host part is BLAKE2s(node id || counter) mod the subnet size. Addresses whose
last octet is 0 or 255 are never handed out: that excludes the /16's network and broadcast addresses and
keeps clear of stacks and firewalls that treat ``x.y.z.0`` / ``x.y.z.255`` as special (a /16 keeps 65,024
of 65,536). In subnets smaller than /24 the subnet's own network and broadcast addresses are excluded too.
Two networks can hash to the same /16 (1 in 64): a node in both should configure one of them explicitly.

**Gateway.** The first host of each subnet (``x.y.0.1`` in a /16, ``<prefix>::1`` in the /64) belongs to no
member: it is the virtual network's own address, the source of the ICMP errors the daemon writes into the
TUN (unreachable, too big). A real address is needed there: Linux drops packets arriving on an interface
with one of the host's own addresses as source (martian), and it must lie inside the routed prefix.

**Collisions.** Input: the members and the claims known for a network, a claim being (node id, wanted
address, static?) per address family, where "wanted" is the address the node announces in its signed peer
record (what it used last, persisted across restarts, or its counter-0 candidate when new), and "static" marks
an address the node's admin configured. Per family:

1. Claims outside the subnet, on a reserved address, or by non-members are ignored (reported in
   ``Assignment.ignored``); the node derives an address as if it had not claimed.
2. Every claimed address goes to one claimant: a static claim beats a derived one, and among equals the
   lower node id (byte order) keeps it. So a configured static address wins if no other *static* claim
   wants it; two static claims on one address are settled like any other: the lower node id keeps it and
   the other falls back to a derived address (reported in ``Assignment.conflicts`` so its admin hears).
3. Every member without an address yet (losers, and members without a claim), in ascending node id order,
   takes the first candidate of its own sequence (counter 0, 1, 2, ...) that nobody holds. After
   ``HASH_TRIES`` hashed candidates a deterministic linear walk through the subnet finds any free address,
   so a member is left without an IPv4 address only when the subnet is full (``Assignment.unassigned``).

No two members ever share an address in an assignment (property-tested).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Union

from ..core.errors import UsageError
from ..core.ids import NetworkId, NodeId

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address
Address = Union[IPv4, IPv6]

DEFAULT_V4_POOL = ipaddress.IPv4Network("100.64.0.0/10")
DEFAULT_V4_PREFIXLEN = 16
V6_PREFIXLEN = 48  # the network's ULA prefix
V6_SUBNET_PREFIXLEN = 64  # members live in subnet 0 of it
V6_SUBNET_ID = 0
HASH_TRIES = 32  # hashed candidates before the linear walk (IPv4) or giving up (IPv6, never seen in practice)
_RESERVED_IID_LOW = 0xFDFF_FFFF_FFFF_FF80  # RFC 5453 reserved subnet anycast interface ids, up to 2**64-1


def _h(person: bytes, *parts: bytes, size: int = 8) -> int:
    return int.from_bytes(hashlib.blake2s(b"".join(parts), digest_size=size, person=person).digest(), "big")


def _counter(i: int) -> bytes:
    return i.to_bytes(4, "big")


# ------------------------------------------------------------------------------------------- prefixes
def ula_prefix(network: NetworkId) -> ipaddress.IPv6Network:
    """The network's ULA /48: ``fd`` + 40 bits of a hash of the network id."""
    global_id = _h(b"om-ula48", network.raw, size=5)
    return ipaddress.IPv6Network(((0xFD << 120) | (global_id << 80), V6_PREFIXLEN))


def v6_subnet(network: NetworkId) -> ipaddress.IPv6Network:
    """The /64 the members' addresses live in (subnet 0 of the ULA /48)."""
    p = ula_prefix(network)
    return ipaddress.IPv6Network((int(p.network_address) | (V6_SUBNET_ID << 64), V6_SUBNET_PREFIXLEN))


def v4_subnet(
    network: NetworkId, pool: ipaddress.IPv4Network = DEFAULT_V4_POOL, prefixlen: int = DEFAULT_V4_PREFIXLEN
) -> ipaddress.IPv4Network:
    """The network's IPv4 subnet: one of the pool's /``prefixlen`` subnets, chosen by a hash of the network id."""
    if not 8 <= prefixlen <= 30 or prefixlen < pool.prefixlen:
        raise UsageError(
            f"IPv4 prefix length /{prefixlen} does not fit: use /8 to /30, and no shorter than the pool {pool}"
        )
    count = 1 << (prefixlen - pool.prefixlen)
    index = _h(b"om-v4net", network.raw) % count
    size = 1 << (32 - prefixlen)
    return ipaddress.IPv4Network((int(pool.network_address) + index * size, prefixlen))


# ------------------------------------------------------------------------------------------- validity
def gateway_v4(subnet: ipaddress.IPv4Network) -> IPv4:
    """The network's own address (ICMP source), never a member's: the subnet's first host."""
    return subnet.network_address + 1


def gateway_v6(subnet: ipaddress.IPv6Network) -> IPv6:
    return subnet.network_address + 1


def v4_usable(addr: IPv4, subnet: ipaddress.IPv4Network) -> bool:
    """Whether ``addr`` may be handed out in ``subnet`` (inside; last octet not 0/255; not network/broadcast
    or the gateway)."""
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address, gateway_v4(subnet)):
        return False
    return int(addr) & 0xFF not in (0, 255)


def v6_usable(addr: IPv6, subnet: ipaddress.IPv6Network) -> bool:
    """Whether ``addr`` may be handed out in the /64 ``subnet`` (inside; not anycast-zero, the gateway ::1 or
    RFC 5453 reserved)."""
    if addr not in subnet:
        return False
    iid = int(addr) & ((1 << 64) - 1)
    return iid > 1 and iid < _RESERVED_IID_LOW


# ------------------------------------------------------------------------------------------- candidates
def v4_candidate(node: NodeId, subnet: ipaddress.IPv4Network, counter: int) -> IPv4:
    """Candidate ``counter`` of a node in a subnet (possibly unusable: callers check ``v4_usable``)."""
    host = _h(b"om-v4hst", node.raw, _counter(counter)) % subnet.num_addresses
    return IPv4(int(subnet.network_address) + host)


def v6_candidate(node: NodeId, subnet: ipaddress.IPv6Network, counter: int) -> IPv6:
    iid = _h(b"om-v6iid", node.raw, _counter(counter))
    return IPv6(int(subnet.network_address) | iid)


def v4_candidates(node: NodeId, subnet: ipaddress.IPv4Network) -> Iterator[IPv4]:
    """A node's usable IPv4 candidates: ``HASH_TRIES`` hashed ones, then every usable address of the subnet
    once, walking up from the last hashed position (wrapping). Finite; deterministic."""
    last = subnet.network_address
    for i in range(HASH_TRIES):
        last = v4_candidate(node, subnet, i)
        if v4_usable(last, subnet):
            yield last
    base, n = int(subnet.network_address), subnet.num_addresses
    start = int(last) - base
    for k in range(n):
        a = IPv4(base + (start + k) % n)
        if v4_usable(a, subnet):
            yield a


def v6_candidates(node: NodeId, subnet: ipaddress.IPv6Network) -> Iterator[IPv6]:
    for i in range(HASH_TRIES):
        a = v6_candidate(node, subnet, i)
        if v6_usable(a, subnet):
            yield a


def derive_v4(node: NodeId, subnet: ipaddress.IPv4Network) -> IPv4:
    """A node's preferred IPv4 address (its first usable candidate), ignoring collisions."""
    return next(v4_candidates(node, subnet))


def derive_v6(node: NodeId, subnet: ipaddress.IPv6Network) -> IPv6:
    return next(v6_candidates(node, subnet))


# ------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True, slots=True)
class Claim:
    """A node wants ``address`` (IPv4 or IPv6); ``static`` when its admin configured it."""

    node: NodeId
    address: Address
    static: bool = False


@dataclass(frozen=True, slots=True)
class Conflict:
    """``claim`` lost its address to ``holder`` and got a derived one instead."""

    claim: Claim
    holder: NodeId


@dataclass(frozen=True, slots=True)
class Assignment:
    v4: dict[NodeId, IPv4] = field(default_factory=dict)
    v6: dict[NodeId, IPv6] = field(default_factory=dict)
    conflicts: tuple[Conflict, ...] = ()
    ignored: tuple[Claim, ...] = ()  # outside the subnet, reserved, or not a member
    unassigned: tuple[NodeId, ...] = ()  # no free IPv4 address left in the subnet

    def owner(self, addr: Address) -> NodeId | None:
        """Which member holds ``addr`` (linear; routing builds its own index)."""
        table = self.v4 if isinstance(addr, IPv4) else self.v6
        for node, a in table.items():
            if a == addr:
                return node
        return None


@dataclass(frozen=True, slots=True)
class AddressPlan:
    """The addressing of one network: its subnets, and ``assign`` to settle claims into an ``Assignment``."""

    network: NetworkId
    v4: ipaddress.IPv4Network
    v6: ipaddress.IPv6Network
    ula: ipaddress.IPv6Network

    @classmethod
    def for_network(
        cls,
        network: NetworkId,
        *,
        v4_pool: ipaddress.IPv4Network = DEFAULT_V4_POOL,
        v4_prefixlen: int = DEFAULT_V4_PREFIXLEN,
        v4_subnet_override: ipaddress.IPv4Network | None = None,
    ) -> "AddressPlan":
        if v4_subnet_override is not None:
            if not 8 <= v4_subnet_override.prefixlen <= 30:
                raise UsageError(f"IPv4 subnet {v4_subnet_override} does not fit: use a /8 to /30")
            sub4 = v4_subnet_override
        else:
            sub4 = v4_subnet(network, v4_pool, v4_prefixlen)
        return cls(network, sub4, v6_subnet(network), ula_prefix(network))

    @property
    def gateway4(self) -> IPv4:
        return gateway_v4(self.v4)

    @property
    def gateway6(self) -> IPv6:
        return gateway_v6(self.v6)

    def usable(self, addr: Address) -> bool:
        if isinstance(addr, IPv4):
            return v4_usable(addr, self.v4)
        return v6_usable(addr, self.v6)

    def assign(self, members: Iterable[NodeId], claims: Iterable[Claim] = ()) -> Assignment:
        """Settle the claims of ``members`` (rule in the module docstring). Same input, same output, anywhere."""
        mem = sorted(set(members))
        memset = set(mem)
        ignored: list[Claim] = []
        by_family: dict[int, list[Claim]] = {4: [], 6: []}
        for c in claims:
            if c.node not in memset or not self.usable(c.address):
                ignored.append(c)
            else:
                by_family[c.address.version].append(c)
        conflicts: list[Conflict] = []
        unassigned: list[NodeId] = []
        v4 = self._family(mem, by_family[4], lambda n: v4_candidates(n, self.v4), conflicts, unassigned)
        v6 = self._family(mem, by_family[6], lambda n: v6_candidates(n, self.v6), conflicts, unassigned)
        return Assignment(
            v4=v4,  # type: ignore[arg-type]
            v6=v6,  # type: ignore[arg-type]
            conflicts=tuple(sorted(conflicts, key=lambda c: (c.claim.address.version, c.claim.node))),
            ignored=tuple(sorted(ignored, key=lambda c: (c.node, c.address.version, int(c.address), c.static))),
            unassigned=tuple(unassigned),
        )

    @staticmethod
    def _family(mem, claims, candidates, conflicts, unassigned) -> dict:  # type: ignore[no-untyped-def]
        # One claim per node and family: a static claim before a derived one, then the lowest address.
        mine: dict[NodeId, Claim] = {}
        for c in sorted(claims, key=lambda c: (not c.static, int(c.address))):
            mine.setdefault(c.node, c)
        holder: dict[Address, Claim] = {}
        for c in sorted(mine.values(), key=lambda c: (not c.static, c.node)):
            if c.address not in holder:
                holder[c.address] = c
            else:
                conflicts.append(Conflict(c, holder[c.address].node))
        out = {c.node: a for a, c in holder.items()}
        taken = set(holder)
        for node in mem:
            if node in out:
                continue
            got = next((a for a in candidates(node) if a not in taken), None)
            if got is None:
                unassigned.append(node)
                continue
            out[node] = got
            taken.add(got)
        return dict(sorted(out.items()))
