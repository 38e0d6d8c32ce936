"""Kernel state for exit nodes: the user side's policy routing (pyroute2).

User side (``use``/``clear``), IPv4 and IPv6 alike, as wg-quick does it: routing table ``RT_TABLE`` holds one
default route (``0.0.0.0/0`` and ``::/0``) via the mesh device of the exit's network; ``ip rule`` /
``ip -6 rule`` at ``RULE_PRIORITY`` sends everything not marked ``FWMARK`` to that table, and one rule before it
looks up ``main`` with ``suppress_prefixlength 0`` (every route of the main table but its default still wins: the
mesh's own prefixes, accepted subnet routes, and, with "allow LAN access", the LAN). The daemon marks its UDP
sockets with ``FWMARK`` (``io/udp.py`` ``set_mark``), so its datagrams to every peer, the exit's endpoint and
relays included, are routed by the main table as before and never loop into the tunnel.

Without "allow LAN access" (``lan`` given to ``use``, kept current by ``set_lan``) the LAN's prefixes
(``vnet/exitrules.py`` ``lan_prefixes``) go to ``RT_TABLE`` too, for unmarked packets only: at ``LAN_PRIORITY``
one rule per prefix ``to PREFIX lookup RT_TABLE``, and before them ``MARK_PRIORITY`` ``fwmark FWMARK lookup main``
(a rule's ``not`` inverts all its selectors at once, so "not marked and to PREFIX" needs these two rules).

``clear`` deletes every rule of ours in both families and empties the table (whether or not they exist: on
``exit use --off``, on stop and at start, where a crashed run's are stale). A host without IPv6 gets the IPv4
half only.

The exit side's forwarding is ``io/forwarding.py``'s (``hold``, shared with advertised subnet routes).
Everything acts on the caller's network namespace; the blocking calls run in a thread.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Any, Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

MAIN_TABLE = 254
RT_TABLE = 51889  # the user side's routing table: default via the mesh device of the exit's network
FWMARK = 0x51889  # on the daemon's UDP sockets (SO_MARK): its datagrams to peers skip RT_TABLE
RULE_PRIORITY = 5188  # ip rule: "not fwmark FWMARK lookup RT_TABLE"; one less: "lookup main suppress_prefixlength 0"
LAN_PRIORITY = 5186  # without "allow LAN access": "to PREFIX lookup RT_TABLE", one per LAN prefix
MARK_PRIORITY = 5185  # ... and before them "fwmark FWMARK lookup main" (our own datagrams to the LAN stay there)
FIB_RULE_INVERT = 0x2
RTN_UNICAST = 1
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_OURS = {(RULE_PRIORITY, RT_TABLE), (RULE_PRIORITY - 1, MAIN_TABLE), (LAN_PRIORITY, RT_TABLE), (MARK_PRIORITY, MAIN_TABLE)}
_DEFAULT = {4: "0.0.0.0/0", 6: "::/0"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ignore_missing(fn: Any, *args: Any, **kw: Any) -> None:
    try:
        fn(*args, **kw)
    except NetlinkError as e:
        if e.code not in (errno.ENOENT, errno.ESRCH, errno.EEXIST):
            raise


def _families(ipr: IPRoute) -> list[int]:
    """4, and 6 when this host has IPv6 (a kernel booted with ipv6.disable=1 refuses IPv6 rules)."""
    try:
        ipr.get_rules(family=socket.AF_INET6)
    except NetlinkError as e:
        if e.code in (errno.EAFNOSUPPORT, errno.EOPNOTSUPP):
            return [4]
        raise
    return [4, 6]


def _del_rules(ipr: IPRoute, version: int, which: set[tuple[int, int]]) -> bool:
    found = False
    for r in ipr.get_rules(family=FAMILIES[version]):
        prio, table = r.get_attr("FRA_PRIORITY"), r.get_attr("FRA_TABLE")
        if (prio, table) in which:
            dst, dst_len = r.get_attr("FRA_DST"), r["dst_len"]
            kw = {"dst": dst, "dst_len": dst_len} if dst else {}
            _ignore_missing(ipr.rule, "del", family=FAMILIES[version], priority=prio, table=table, **kw)
            found = True
    return found


def clear() -> bool:
    """Remove our rules and routes in both families; True when there was something to remove."""
    found = False
    with IPRoute() as ipr:
        for v in _families(ipr):
            found = _del_rules(ipr, v, _OURS) or found
            for rt in ipr.get_routes(family=FAMILIES[v], table=RT_TABLE):
                _ignore_missing(ipr.route, "del", family=FAMILIES[v], table=RT_TABLE, dst=_DEFAULT[v],
                                oif=rt.get_attr("RTA_OIF"))
                found = True
    return found


def use(device: str, lan: Iterable[Network] = ()) -> None:
    """Default traffic (IPv4 and IPv6) through ``device``, our own marked datagrams excepted; ``lan``: prefixes
    sent through it too (without "allow LAN access"; module docstring)."""
    clear()
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=device)
        if not found:
            raise OSError(errno.ENODEV, f"no device {device}: the exit's network has no TUN here (see omertactl status)")
        for v in _families(ipr):
            fam = FAMILIES[v]
            ipr.route("replace", family=fam, dst=_DEFAULT[v], oif=found[0], table=RT_TABLE)
            ipr.rule("add", family=fam, table=MAIN_TABLE, priority=RULE_PRIORITY - 1, suppress_prefixlen=0)
            ipr.rule("add", family=fam, table=RT_TABLE, priority=RULE_PRIORITY, fwmark=FWMARK, fwmask=0xFFFFFFFF,
                     flags=FIB_RULE_INVERT)
    set_lan(lan)


def set_lan(lan: Iterable[Network]) -> None:
    """Replace the LAN rules: ``lan``'s prefixes to RT_TABLE for unmarked packets; none (allow LAN access): no rules."""
    lan = list(lan)
    with IPRoute() as ipr:
        families = _families(ipr)
        for v in families:
            _del_rules(ipr, v, {(LAN_PRIORITY, RT_TABLE), (MARK_PRIORITY, MAIN_TABLE)})
            mine = [n for n in lan if n.version == v]
            if not mine:
                continue
            fam = FAMILIES[v]
            ipr.rule("add", family=fam, table=MAIN_TABLE, priority=MARK_PRIORITY, fwmark=FWMARK, fwmask=0xFFFFFFFF)
            for n in mine:
                ipr.rule("add", family=fam, table=RT_TABLE, priority=LAN_PRIORITY, dst=str(n.network_address),
                         dst_len=n.prefixlen)


def main_routes() -> list[tuple[Network, str]]:
    """The main table's unicast routes as (prefix, device name), both families (what ``lan_prefixes`` reads)."""
    out: list[tuple[Network, str]] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for v in _families(ipr):
            for rt in ipr.get_routes(family=FAMILIES[v], table=MAIN_TABLE):
                if rt["type"] != RTN_UNICAST:
                    continue
                dst = rt.get_attr("RTA_DST") or _DEFAULT[v].split("/")[0]
                net = ipaddress.ip_network(f"{dst}/{rt['dst_len']}", strict=False)
                oifs = [rt.get_attr("RTA_OIF")] + [nh["oif"] for nh in rt.get_attr("RTA_MULTIPATH") or []]
                out += [(net, names[i]) for i in oifs if i in names]
    return out


async def aclear() -> bool:
    return await asyncio.to_thread(clear)


async def ause(device: str, lan: Iterable[Network] = ()) -> None:
    await asyncio.to_thread(use, device, list(lan))
