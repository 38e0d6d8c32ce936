"""Netlink (pyroute2) helpers for the driver: the host's addresses, for advertising and NAT checks.

Only addresses on links that are running (up, and with a carrier or virtual) count: an address on an
unplugged or downed interface cannot be reached. ``netmon.py`` reports when these change.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("omerta_mesh.netlink")

SCOPE_UNIVERSE = 0
IFF_RUNNING = 0x40


def _dump(include_loopback: bool) -> list[str]:
    from pyroute2 import IPRoute

    out4: list[str] = []
    out6: list[str] = []
    with IPRoute() as ipr:
        down = {link["index"] for link in ipr.link("dump") if not link["flags"] & IFF_RUNNING}
        for msg in ipr.addr("dump"):
            addr = msg.get("IFA_ADDRESS")
            if not addr or msg["index"] in down:
                continue
            scope = msg["scope"]
            if scope != SCOPE_UNIVERSE and not (include_loopback and addr in ("127.0.0.1", "::1")):
                continue
            (out6 if ":" in addr else out4).append(addr)
    return out4 + out6


async def local_addresses(include_loopback: bool = False, *, strict: bool = False) -> list[str]:
    """Global-scope addresses of this host (namespace), IPv4 first. Empty if netlink is unavailable, or
    with ``strict`` an ``OSError`` (so a caller that already knows the addresses can keep them)."""
    try:
        # The blocking API in a thread (its own event loop there): pyroute2's asyncio transport cannot run
        # on uvloop, which refuses AF_NETLINK datagram endpoints, and the daemon runs on uvloop when it can.
        return await asyncio.to_thread(_dump, include_loopback)
    except Exception as e:  # no netlink (unusual sandbox): advertising falls back to bound addresses
        log.debug("netlink address dump failed: %s", e)
        if strict:
            raise OSError(f"netlink address dump failed: {e}") from e
        return []
