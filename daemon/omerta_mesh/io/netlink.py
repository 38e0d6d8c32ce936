"""Netlink (pyroute2) helpers for the driver: the host's addresses, for advertising and NAT checks."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("omerta_mesh.netlink")

SCOPE_UNIVERSE = 0


def _dump(include_loopback: bool) -> list[str]:
    from pyroute2 import IPRoute

    out4: list[str] = []
    out6: list[str] = []
    with IPRoute() as ipr:
        for msg in ipr.addr("dump"):
            addr = msg.get("IFA_ADDRESS")
            if not addr:
                continue
            scope = msg["scope"]
            if scope != SCOPE_UNIVERSE and not (include_loopback and addr in ("127.0.0.1", "::1")):
                continue
            (out6 if ":" in addr else out4).append(addr)
    return out4 + out6


async def local_addresses(include_loopback: bool = False) -> list[str]:
    """Global-scope addresses of this host (namespace), IPv4 first. Empty if netlink is unavailable."""
    try:
        # The blocking API in a thread (its own event loop there): pyroute2's asyncio transport cannot run
        # on uvloop, which refuses AF_NETLINK datagram endpoints, and the daemon runs on uvloop when it can.
        return await asyncio.to_thread(_dump, include_loopback)
    except Exception as e:  # no netlink (unusual sandbox): advertising falls back to bound addresses
        log.debug("netlink address dump failed: %s", e)
        return []
