"""Kernel state for exit nodes: the user side's policy routing, the exit side's IPv4 forwarding (pyroute2, /proc).

User side (``use``/``clear``), IPv4, as wg-quick does it: routing table ``RT_TABLE`` holds one default route via
the mesh device of the exit's network; ``ip rule`` at ``RULE_PRIORITY`` sends everything not marked ``FWMARK``
to that table, and one rule before it looks up ``main`` with ``suppress_prefixlength 0`` (every route of the main
table but its default still wins: the LAN, the mesh's own prefixes). The daemon marks its UDP sockets with
``FWMARK`` (``io/udp.py`` ``set_mark``), so its datagrams to every peer, the exit's endpoint and relays
included, are routed by the main table as before and never loop into the tunnel. ``clear`` deletes the two
rules and empties the table (whether or not they exist: on ``exit use --off``, on stop and at start, where a
crashed run's are stale).

Exit side: ``set_forwarding(True)`` turns on ``net.ipv4.ip_forward`` and returns what it was, so the caller
can put it back; ``hold_forwarding`` shares it between the exit offer and advertised subnet routes.
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
FORWARD = "/proc/sys/net/ipv4/ip_forward"


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


def set_forwarding(on: bool) -> bool:
    """Set IPv4 forwarding; returns the value it had."""
    with open(FORWARD) as f:
        was = f.read().strip() == "1"
    if was != on:
        with open(FORWARD, "w") as f:
            f.write("1\n" if on else "0\n")
    return was


_holders: set[str] = set()
_forward_was: list[bool] = []  # what forwarding was before the first holder turned it on


def hold_forwarding(who: str, on: bool) -> None:
    """IPv4 forwarding on while anyone holds it (``"exit"``: the exit offer, ``"subnets"``: advertised subnet
    routes); put back as it was when the last holder lets go."""
    if on and who not in _holders:
        was = set_forwarding(True)
        if not _holders:
            _forward_was[:] = [was]
        _holders.add(who)
    elif not on and who in _holders:
        _holders.discard(who)
        if not _holders and _forward_was:
            set_forwarding(_forward_was.pop())


async def aclear() -> bool:
    return await asyncio.to_thread(clear)


async def ause(device: str) -> None:
    await asyncio.to_thread(use, device)
