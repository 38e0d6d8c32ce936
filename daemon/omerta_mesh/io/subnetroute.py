"""Kernel routes for accepted subnet routes (pyroute2): a route per prefix in force, via the mesh device of the
network its advertiser is in, in the main table; and this host's own routes, to refuse prefixes overlapping them.

Only prefixes the daemon installed are ever deleted (it keeps the list: ``meshd/subnets.py``). A crashed run's
routes need no cleaning: they went with its device, which the kernel deletes when the daemon's fd closes.
Everything acts on the caller's network namespace; the blocking calls run in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..core.wire.records import Prefix

MAIN_TABLE = 254


def _family(p: Prefix) -> int:
    return socket.AF_INET6 if p.version == 6 else socket.AF_INET


def install(prefix: Prefix, device: str) -> None:
    """Route ``prefix`` into ``device`` (replacing an earlier route of ours for it)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=device)
        if not found:
            raise OSError(errno.ENODEV, f"no device {device}: the advertiser's network has no TUN here (see omertactl status)")
        ipr.route("replace", dst=str(prefix), oif=found[0], family=_family(prefix), table=MAIN_TABLE)


def remove(prefix: Prefix, device: str) -> None:
    """Delete our route for ``prefix`` via ``device``; nothing when it is gone already (with its device, say)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=device)
        if not found:
            return
        try:
            ipr.route("del", dst=str(prefix), oif=found[0], family=_family(prefix), table=MAIN_TABLE)
        except NetlinkError as e:
            if e.code not in (errno.ENOENT, errno.ESRCH, errno.ENODEV):
                raise


def local_routes(ours: Iterable[str]) -> list[tuple[Prefix, str]]:
    """This host's main-table routes but default ones and those via the devices named in ``ours``, with their
    device names."""
    skip = set(ours)
    out: list[tuple[Prefix, str]] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for fam, zero in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            for rt in ipr.get_routes(family=fam, table=MAIN_TABLE):
                dev = names.get(rt.get_attr("RTA_OIF"), "?")
                if rt["dst_len"] == 0 or dev in skip:
                    continue
                net = ipaddress.ip_network(f"{rt.get_attr('RTA_DST') or zero}/{rt['dst_len']}", strict=False)
                if not (net.is_link_local or net.is_multicast):
                    out.append((net, dev))
    return out


async def ainstall(prefix: Prefix, device: str) -> None:
    await asyncio.to_thread(install, prefix, device)


async def aremove(prefix: Prefix, device: str) -> None:
    await asyncio.to_thread(remove, prefix, device)


async def alocal_routes(ours: Iterable[str]) -> list[tuple[Prefix, str]]:
    return await asyncio.to_thread(local_routes, list(ours))
