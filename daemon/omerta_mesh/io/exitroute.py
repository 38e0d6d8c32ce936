"""Kernel state for exit nodes: the user side's policy routing (pyroute2).

User side (``use``/``clear``), IPv4, as wg-quick does it: routing table ``RT_TABLE`` holds one default route via
the mesh device of the exit's network; ``ip rule`` at ``RULE_PRIORITY`` sends everything not marked ``FWMARK``
to that table, and one rule before it looks up ``main`` with ``suppress_prefixlength 0`` (every route of the main
table but its default still wins: the LAN, the mesh's own prefixes). The daemon marks its UDP sockets with
``FWMARK`` (``io/udp.py`` ``set_mark``), so its datagrams to every peer, the exit's endpoint and relays
included, are routed by the main table as before and never loop into the tunnel. ``clear`` deletes the two
rules and empties the table (whether or not they exist: on ``exit use --off``, on stop and at start, where a
crashed run's are stale).

The exit side's forwarding is ``io/forwarding.py``'s (``hold``, shared with advertised subnet routes).
Everything acts on the caller's network namespace; the blocking calls run in a thread.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

MAIN_TABLE = 254
RT_TABLE = 51889  # the user side's routing table: default via the mesh device of the exit's network
FWMARK = 0x51889  # on the daemon's UDP sockets (SO_MARK): its datagrams to peers skip RT_TABLE
RULE_PRIORITY = 5188  # ip rule: "not fwmark FWMARK lookup RT_TABLE"; one less: "lookup main suppress_prefixlength 0"
FIB_RULE_INVERT = 0x2


def _ignore_missing(fn: Any, *args: Any, **kw: Any) -> None:
    try:
        fn(*args, **kw)
    except NetlinkError as e:
        if e.code not in (errno.ENOENT, errno.ESRCH, errno.EEXIST):
            raise


def clear() -> bool:
    """Remove our rules and routes; True when there was something to remove."""
    found = False
    with IPRoute() as ipr:
        for r in ipr.get_rules(family=socket.AF_INET):
            prio = r.get_attr("FRA_PRIORITY")
            table = r.get_attr("FRA_TABLE")
            if (prio, table) in ((RULE_PRIORITY, RT_TABLE), (RULE_PRIORITY - 1, MAIN_TABLE)):
                _ignore_missing(ipr.rule, "del", family=socket.AF_INET, priority=prio, table=table)
                found = True
        for rt in ipr.get_routes(family=socket.AF_INET, table=RT_TABLE):
            _ignore_missing(ipr.route, "del", table=RT_TABLE, dst=f"0.0.0.0/{rt['dst_len']}", oif=rt.get_attr("RTA_OIF"))
            found = True
    return found


def use(device: str) -> None:
    """Default traffic (IPv4) through ``device``, our own marked datagrams excepted (module docstring)."""
    clear()
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=device)
        if not found:
            raise OSError(errno.ENODEV, f"no device {device}: the exit's network has no TUN here (see omertactl status)")
        ipr.route("replace", dst="0.0.0.0/0", oif=found[0], table=RT_TABLE)
        ipr.rule("add", family=socket.AF_INET, table=MAIN_TABLE, priority=RULE_PRIORITY - 1, suppress_prefixlen=0)
        ipr.rule("add", family=socket.AF_INET, table=RT_TABLE, priority=RULE_PRIORITY, fwmark=FWMARK, fwmask=0xFFFFFFFF,
                 flags=FIB_RULE_INVERT)


def in_use() -> bool:
    """Whether our rule is installed (what ``status`` reports)."""
    with IPRoute() as ipr:
        return any(r.get_attr("FRA_PRIORITY") == RULE_PRIORITY and r.get_attr("FRA_TABLE") == RT_TABLE
                   for r in ipr.get_rules(family=socket.AF_INET))


async def aclear() -> bool:
    return await asyncio.to_thread(clear)


async def ause(device: str) -> None:
    await asyncio.to_thread(use, device)
