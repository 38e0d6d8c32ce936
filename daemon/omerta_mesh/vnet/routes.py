"""Routing in the virtual network: which member owns a destination, and whether an inbound source is honest.

Pure: the caller hands in the network's ``AddressPlan`` and the signed records it holds; nothing here reads a
device or a socket.

* ``assignment_from_records(plan, records)``: every live record is a member; its address claim (if any) is
  its wish; ``AddressPlan.assign`` settles them, the same way on every node that holds the same records.
* ``Routes.outbound(packet)``: a packet read from our TUN goes to the member that holds its destination
  (``Forward``). A destination in the network's prefixes that nobody holds, or our own, gets an ICMP
  unreachable from the network's gateway address written back into the TUN (``Reply``). Anything else
  (non-IP bytes, multicast such as IPv6 router solicitations, destinations outside the network) is dropped
  (``Drop`` with a reason).
* ``Routes.inbound_ok(node, packet)``: a packet received from ``node`` must carry that member's assigned
  address as its inner source (anti-spoofing); the caller counts a refusal as ``drop.ip_spoofed``.

Exit nodes (docs/vnet.md). ``exit``: the member we send Internet traffic to (we chose it, and its signed record
offers it). Outbound, a destination outside the network's prefixes goes to it instead of being dropped; with
``exit_lost`` (we chose an exit that no longer offers, or is gone) such a packet is answered with ICMP
unreachable, so it neither leaks elsewhere nor hangs; so is an IPv6 one when the exit offers IPv4 only
(``exit_v6`` false: the user's policy routing sends IPv6 to it all the same, so nothing leaks). Inbound, packets
from the exit may carry any source outside the network's prefixes (the Internet's answers); a source inside them
must still be the exit's own.
``offering``: we are an exit, so a member's packet (its own source, checked as always) may be for anywhere; the
kernel forwards it and nftables filters it (``vnet/exitrules.py``). Without an offer such a packet is dropped as
``drop.exit_not_offered``.

Subnet routes (``vnet/subnets.py``, docs/vnet.md). ``subnets``: accepted prefixes in force, each to its
advertiser. Outbound, a destination outside the network goes to the longest matching prefix's advertiser (before
any exit). Inbound, a source inside an accepted prefix is honest only from the member that prefix routes to (an
exit cannot speak for it either). ``advertising``: our own advertised prefixes; a member's packet (its own source)
for one of them is accepted, for the kernel to forward, as an exit's would be.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Union

from ..core.errors import DropReason
from ..core.ids import NodeId
from ..core.wire.records import AddrClaim, PeerRecord
from .addressing import AddressPlan, Assignment, Claim, derive_v4, derive_v6
from .packet import try_parse, unreachable
from .subnets import Prefix, SubnetTable

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address
Address = Union[IPv4, IPv6]


def claims_of(records: Iterable[PeerRecord]) -> tuple[list[NodeId], list[Claim]]:
    """The members (every live record's node) and their address claims."""
    members: list[NodeId] = []
    claims: list[Claim] = []
    for r in records:
        if r.left:
            continue
        members.append(r.node)
        a = r.addrs
        if a is None:
            continue
        if a.v4 is not None:
            claims.append(Claim(r.node, IPv4(a.v4), a.v4_static))
        if a.v6 is not None:
            claims.append(Claim(r.node, IPv6(a.v6), a.v6_static))
    return members, claims


def assignment_from_records(plan: AddressPlan, records: Iterable[PeerRecord]) -> Assignment:
    members, claims = claims_of(records)
    return plan.assign(members, claims)


@dataclass(frozen=True, slots=True)
class Forward:
    node: NodeId


@dataclass(frozen=True, slots=True)
class Reply:
    packet: bytes  # an ICMP error to write back into the TUN


@dataclass(frozen=True, slots=True)
class Drop:
    reason: DropReason


Decision = Union[Forward, Reply, Drop]
_NOT_IP = Drop(DropReason.BAD_FRAME)
_ELSEWHERE = Drop(DropReason.IP_UNROUTED)
_NONE = (b"", b"")  # a node without assigned addresses


class Routes:
    """The routing table of one network, built from an assignment (rebuild it when the assignment changes)."""

    __slots__ = ("plan", "me", "assignment", "_owner", "_addr_of", "_fast", "_src", "_net4", "_mask4", "_ula",
                 "exit", "exit_lost", "exit_v6", "offering", "_to_exit", "subnets", "_adv")

    def __init__(self, plan: AddressPlan, assignment: Assignment, me: NodeId, *, exit: NodeId | None = None,
                 exit_lost: bool = False, exit_v6: bool = True, offering: bool = False, subnets: dict[Prefix, NodeId] | None = None,
                 advertising: tuple[Prefix, ...] = ()) -> None:
        self.plan = plan
        self.me = me
        self.assignment = assignment
        self.exit = exit if exit != me else None
        self.exit_lost = exit_lost and self.exit is None
        self.exit_v6 = exit_v6
        self.offering = offering
        self._to_exit = Forward(self.exit) if self.exit is not None else None
        self.subnets = SubnetTable({p: n for p, n in (subnets or {}).items() if n != me})
        self._adv = SubnetTable({p: me for p in advertising})
        self._owner: dict[Address, NodeId] = {}
        self._addr_of: dict[NodeId, tuple[IPv4 | None, IPv6 | None]] = {}
        for node, a4 in assignment.v4.items():
            self._owner[a4] = node
        for node, a6 in assignment.v6.items():
            self._owner[a6] = node
        for node in set(assignment.v4) | set(assignment.v6):
            self._addr_of[node] = (assignment.v4.get(node), assignment.v6.get(node))
        # the hot path: a packed destination -> its decision, for every member but us
        self._fast: dict[bytes, Forward] = {a.packed: Forward(n) for a, n in self._owner.items() if n != me}
        self._src: dict[NodeId, tuple[bytes, bytes]] = {
            n: (a4.packed if a4 else b"", a6.packed if a6 else b"") for n, (a4, a6) in self._addr_of.items()}
        self._net4, self._mask4 = int(plan.v4.network_address), int(plan.v4.netmask)
        self._ula = plan.ula.network_address.packed[: plan.ula.prefixlen // 8]  # a /48: 6 bytes

    def owner(self, addr: Address) -> NodeId | None:
        return self._owner.get(addr)

    def is_member(self, packed: bytes) -> bool:
        """Whether a packed destination (4 or 16 bytes) is another member's mesh IP."""
        return packed in self._fast

    def plain(self, node: NodeId, buf: bytes, off: int = 0) -> bool:
        """Whether the packet at ``buf[off:]`` from member ``node`` is the plain case ``inbound_ok`` accepts: IPv4
        without options or IPv6, its length field the packet's, from ``node``'s own mesh IP to ours. (Written flat for
        the per-packet path; False says nothing: ``inbound_ok`` judges the rest.)"""
        src4, src6 = self._src.get(node, _NONE)
        our4, our6 = self._src.get(self.me, _NONE)
        size, b = len(buf) - off, buf[off]
        if b == 0x45:
            return size >= 20 and ((buf[off + 2] << 8) | buf[off + 3]) == size and bool(src4) \
                and buf[off + 12 : off + 16] == src4 and buf[off + 16 : off + 20] == our4
        return b >> 4 == 6 and size >= 40 and 40 + ((buf[off + 4] << 8) | buf[off + 5]) == size and bool(src6) \
            and buf[off + 8 : off + 24] == src6 and buf[off + 24 : off + 40] == our6

    def addresses(self, node: NodeId) -> tuple[IPv4 | None, IPv6 | None]:
        """(IPv4, IPv6) assigned to ``node`` (None where it has none)."""
        return self._addr_of.get(node, (None, None))

    def _ours(self, addr: Address) -> bool:
        if isinstance(addr, IPv4):
            return addr in self.plan.v4
        return addr in self.plan.ula

    def outbound(self, packet: bytes | bytearray | memoryview) -> Decision:
        """Where a packet read from our TUN goes. Our own kernel wrote it: a member's destination, or one outside
        the network that a subnet route or our exit takes, is decided from its packed bytes (no parsing);
        anything else is parsed and answered or dropped."""
        n = len(packet)
        if n >= 20:
            v = packet[0] >> 4
            key = bytes(packet[16:20]) if v == 4 else bytes(packet[24:40]) if v == 6 and n >= 40 else b""
            hit = self._fast.get(key)
            if hit is not None:
                return hit
            if key and (self.subnets or self._to_exit is not None) and not self._inside(key):
                hit = self._far(key)
                if hit is not None:
                    return hit
        h = try_parse(packet)
        if h is None:
            return _NOT_IP
        node = self._owner.get(h.dst)
        if node is not None and node != self.me:
            return Forward(node)
        refused = self.exit_lost or (self.exit is not None and h.dst.version == 6 and not self.exit_v6)
        if refused and not self._ours(h.dst) and _global(h.dst):
            icmp = unreachable(packet, self.plan.gateway4, self.plan.gateway6)
            return Reply(icmp) if icmp is not None else _ELSEWHERE
        if not self._ours(h.dst) or h.dst.is_multicast:
            return _ELSEWHERE
        icmp = unreachable(packet, self.plan.gateway4, self.plan.gateway6)
        return Reply(icmp) if icmp is not None else _ELSEWHERE

    def _inside(self, packed: bytes) -> bool:
        """Whether a packed address (4 or 16 bytes) is in the network's prefixes."""
        if len(packed) == 4:
            return int.from_bytes(packed, "big") & self._mask4 == self._net4
        return packed[: len(self._ula)] == self._ula

    def _far(self, packed: bytes) -> Forward | None:
        """Where a destination outside the network goes: the longest accepted subnet prefix's advertiser, else our
        exit (for an address it may forward to); None: neither (dropped, or unreachable if our exit is lost)."""
        via = self.subnets.owner(packed) if self.subnets else None
        if via is not None:
            return Forward(via)
        if self._to_exit is not None and (len(packed) == 4 or self.exit_v6) and _global(ipaddress.ip_address(packed)):
            return self._to_exit
        return None

    def inbound_ok(self, node: NodeId, packet: bytes | bytearray | memoryview) -> DropReason | None:
        """None when ``packet`` from ``node`` may be written to the TUN, else why not: not a consistent IP
        header (BAD_FRAME), a source other than the sender's assigned address (IP_SPOOFED; from our exit: any
        source outside the network), a destination outside the network (IP_UNROUTED: the TUN is no gateway to
        elsewhere; EXIT_NOT_OFFERED from a member while we are no exit). The same checks as ``parse_header``
        (lengths), on the packed bytes."""
        n = len(packet)
        if n < 20:
            return DropReason.BAD_FRAME
        b0 = packet[0]
        src4, src6 = self._src.get(node, (b"", b""))
        if b0 >> 4 == 4:
            ihl = (b0 & 0x0F) * 4
            total = (packet[2] << 8) | packet[3]
            if ihl < 20 or ihl > n or not ihl <= total <= n:
                return DropReason.BAD_FRAME
            if not src4 or packet[12:16] != src4:
                if not self._foreign_ok(node, bytes(packet[12:16])):
                    return DropReason.IP_SPOOFED
            if int.from_bytes(packet[16:20], "big") & self._mask4 != self._net4:
                return self._outside(node, packet[12:16] == src4, packet[16:20])
            return None
        if b0 >> 4 == 6:
            if n < 40 or 40 + ((packet[4] << 8) | packet[5]) > n:
                return DropReason.BAD_FRAME
            if not src6 or packet[8:24] != src6:
                if not self._foreign_ok(node, bytes(packet[8:24])):
                    return DropReason.IP_SPOOFED
            if packet[24 : 24 + len(self._ula)] != self._ula:
                return self._outside(node, bool(src6) and packet[8:24] == src6, packet[24:40])
            return None
        return DropReason.BAD_FRAME

    def _foreign_ok(self, node: NodeId, src: bytes) -> bool:
        """Whether ``node`` may send a source that is not its mesh IP: one in an accepted prefix it advertises
        (the longest match's advertiser only), else any outside source from our exit; never another mesh IP."""
        if self._inside(src):
            return False
        if self.subnets:
            via = self.subnets.owner(src)
            if via is not None:
                return via == node
        return node == self.exit

    def _outside(self, node: NodeId, own_source: bool, dst: bytes | bytearray | memoryview) -> DropReason | None:
        """A packet for outside the network from ``node``: only a member's own packets, and only to an exit or
        a prefix we advertise."""
        if not own_source:  # (answers from the Internet or a subnet are for us, never onwards)
            return DropReason.IP_UNROUTED
        if self.offering or (self._adv and self._adv.owner(bytes(dst)) is not None):
            return None
        return DropReason.EXIT_NOT_OFFERED


def _global(addr: Address) -> bool:
    """An address an exit may forward to: not multicast, link-local, loopback or unspecified."""
    return not (addr.is_multicast or addr.is_link_local or addr.is_loopback or addr.is_unspecified)


def own_claim(plan: AddressPlan, me: NodeId, kept: tuple[str | None, str | None] = (None, None),
              static: tuple[str | None, str | None] = (None, None)) -> AddrClaim:
    """What we claim in our record: a configured static address, else the one we held last (``kept``,
    persisted across restarts), else our first derived candidate. Unusable values fall back to deriving."""
    out: list[tuple[bytes, bool]] = []
    for fam, derive in ((0, derive_v4), (1, derive_v6)):
        subnet = plan.v4 if fam == 0 else plan.v6
        chosen: tuple[bytes, bool] | None = None
        for text, is_static in ((static[fam], True), (kept[fam], False)):
            if not text:
                continue
            try:
                a = ipaddress.ip_address(text)
            except ValueError:
                continue
            if a.version == (4 if fam == 0 else 6) and plan.usable(a):
                chosen = (a.packed, is_static)
                break
        out.append(chosen or (derive(me, subnet).packed, False))  # type: ignore[arg-type]
    return AddrClaim(out[0][0], out[1][0], out[0][1], out[1][1])
