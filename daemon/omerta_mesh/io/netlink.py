"""Netlink (pyroute2) helpers for the driver: the host's addresses, for advertising and NAT checks."""

from __future__ import annotations

import logging

log = logging.getLogger("omerta_mesh.netlink")

SCOPE_UNIVERSE = 0


async def local_addresses(include_loopback: bool = False) -> list[str]:
    """Global-scope addresses of this host (namespace), IPv4 first. Empty if netlink is unavailable."""
    try:
        from pyroute2 import AsyncIPRoute

        out4: list[str] = []
        out6: list[str] = []
        async with AsyncIPRoute() as ipr:
            async for msg in await ipr.addr("dump"):
                addr = msg.get("IFA_ADDRESS")
                if not addr:
                    continue
                scope = msg["scope"]
                if scope != SCOPE_UNIVERSE and not (include_loopback and addr in ("127.0.0.1", "::1")):
                    continue
                (out6 if ":" in addr else out4).append(addr)
        return out4 + out6
    except Exception as e:  # no netlink (unusual sandbox): advertising falls back to bound addresses
        log.debug("netlink address dump failed: %s", e)
        return []
