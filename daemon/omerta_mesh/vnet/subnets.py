"""Subnet routes, pure: checking a prefix, settling which accepted advertisement is in force, longest-prefix match.

A member advertises prefixes it can reach in its signed record (``records.py`` flag bit 5); another member
routes to one only after its admin accepted that (peer, prefix). The rules (docs/vnet.md, "Subnet routes"):

* a default route (0.0.0.0/0, ::/0) is never a subnet route, advertised or accepted: egress is an exit node's
  job, which the exit offer consents to (refused, ``routes.refused_default``);
* a prefix overlapping one of the mesh's own prefixes, or a route of this host that is not via our devices,
  is refused naming what it overlaps (``routes.refused_overlap``): a subnet route never shadows a local one;
* an accepted (peer, prefix) is in force only while the peer's live record advertises that exact prefix;
* overlapping advertisements: per destination the longest accepted prefix wins (ordinary longest-prefix match;
  a /24 inside another member's /16 goes to the /24's advertiser); the same prefix accepted from two members:
  the lower node id wins (the same answer on every node, whatever the order of acceptance), the other is
  shown as shadowed and takes over if the winner withdraws it or leaves;
* inbound, a source inside an accepted prefix is honest only from the member the same lookup routes it to
  (``SubnetTable.owner``), so nobody else, an exit included, can speak for the subnet.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from ..core.ids import NetworkId, NodeId
from ..core.wire.records import Prefix

REFUSED_DEFAULT = "routes.refused_default"
REFUSED_OVERLAP = "routes.refused_overlap"


class PrefixError(ValueError):
    pass


def parse_prefix(text: str) -> Prefix:
    """A prefix in CIDR form, host bits zero (PrefixError naming the fix)."""
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError as e:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise PrefixError(f"{text!r} is not a prefix ({e}); write it as ADDRESS/LENGTH, e.g. 10.0.0.0/24") from None
        raise PrefixError(f"{text!r} has host bits set; did you mean {loose}?") from None


def refusal(p: Prefix, mesh: Iterable[Prefix], local: Iterable[tuple[Prefix, str]] = ()) -> tuple[str, str] | None:
    """(counter, reason) when ``p`` may not be a subnet route here, else None. ``local``: this host's routes
    that are not via our devices, each with its device."""
    if p.prefixlen == 0:
        return REFUSED_DEFAULT, (f"{p} is a default route: that is an exit node's job (omertactl exit offer / exit use), "
                                 "never a subnet route")
    for m in mesh:
        if m.version == p.version and p.overlaps(m):  # type: ignore[arg-type]
            return REFUSED_OVERLAP, f"{p} overlaps the mesh's own prefix {m}"
    for r, dev in local:
        if r.version == p.version and r.prefixlen and p.overlaps(r):  # type: ignore[arg-type]
            return REFUSED_OVERLAP, (f"{p} overlaps the local route {r} dev {dev}; a subnet route never shadows a "
                                     "local one (remove that route, or accept a prefix that does not overlap it)")
    return None


@dataclass(frozen=True)
class Settled:
    winners: dict[Prefix, tuple[NetworkId, NodeId]]  # prefix in force -> the network and member it goes to
    states: dict[tuple[NodeId, Prefix], str]  # every accepted (peer, prefix): "active" or why not


def settle(accepted: Iterable[tuple[NodeId, Prefix]], adverts: Iterable[tuple[NetworkId, NodeId, tuple[Prefix, ...]]],
           refuse: Callable[[Prefix], tuple[str, str] | None] = lambda p: None) -> Settled:
    """Which accepted (peer, prefix) pairs are in force, given each live member's advertisements per network."""
    where: dict[tuple[NodeId, Prefix], NetworkId] = {}
    for net, node, prefixes in sorted(adverts, key=lambda a: (a[0].raw, a[1].raw)):
        for p in prefixes:
            where.setdefault((node, p), net)
    states: dict[tuple[NodeId, Prefix], str] = {}
    candidates: dict[Prefix, list[NodeId]] = {}
    for node, p in sorted(set(accepted), key=lambda a: (a[1].version, str(a[1]), a[0].raw)):
        why = refuse(p)
        if why is not None:
            states[(node, p)] = f"refused: {why[1]}"
        elif (node, p) not in where:
            states[(node, p)] = "not advertised (accepted ahead: in force once its record advertises it)"
        else:
            candidates.setdefault(p, []).append(node)
    winners: dict[Prefix, tuple[NetworkId, NodeId]] = {}
    for p, nodes in candidates.items():
        first = min(nodes, key=lambda n: n.raw)
        winners[p] = (where[(first, p)], first)
        for n in nodes:
            states[(n, p)] = "active" if n == first else f"shadowed by {first.short()} (the same prefix: the lower node id wins)"
    return Settled(winners, states)


class SubnetTable:
    """Longest-prefix match over accepted prefixes in force (a few dozen at most: a scan, longest first)."""

    __slots__ = ("_v4", "_v6", "prefixes")

    def __init__(self, table: Mapping[Prefix, NodeId]) -> None:
        self.prefixes = dict(table)
        rows = sorted(table.items(), key=lambda kv: -kv[0].prefixlen)
        self._v4 = [(int(p.network_address), int(p.netmask), n) for p, n in rows if p.version == 4]
        self._v6 = [(int(p.network_address), int(p.netmask), n) for p, n in rows if p.version == 6]

    def __bool__(self) -> bool:
        return bool(self.prefixes)

    def owner(self, packed: bytes | memoryview) -> NodeId | None:
        """The member a destination (or source) address, as 4 or 16 packed bytes, is routed to; None: no prefix."""
        x = int.from_bytes(packed, "big")
        for net, mask, node in (self._v4 if len(packed) == 4 else self._v6):
            if x & mask == net:
                return node
        return None
