"""What the daemon's local TCP services (the metrics endpoint, the SOCKS5 gateway) share: stopping one."""

from __future__ import annotations

import asyncio


async def stop_serving(server: asyncio.Server | None, clients: set[asyncio.Task[None]]) -> None:
    """Stop accepting, then end every client's task and wait for them (each closes its own socket)."""
    if server is not None:
        server.close()
    for t in list(clients):
        t.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
