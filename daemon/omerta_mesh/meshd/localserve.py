"""What the daemon's local TCP services (the metrics endpoint, the SOCKS5 gateway) share: starting one, taking
a client in under its cap, stopping one."""

from __future__ import annotations

import asyncio
from typing import Any

from .views import ep


async def listen(handler: Any, host: str, port: int, option: str, **kw: Any) -> asyncio.Server | str:
    """Serve ``host:port``; a string: why it could not, with the fix naming the setting ``option``."""
    try:
        return await asyncio.start_server(handler, host, port, **kw)
    except OSError as e:
        return (f"not started: cannot listen on {ep((host, port))}: {e.strerror or e}; "
                f"stop what uses it or choose another {option}")


def admit(clients: set[asyncio.Task[None]], limit: int, writer: asyncio.StreamWriter) -> asyncio.Task[None] | None:
    """The running client's task, now counted in ``clients`` (discard it when done); None when ``limit`` clients
    are served already: the connection is closed unread (abort) and the caller counts the refusal."""
    if len(clients) >= limit:
        writer.transport.abort()
        return None
    me = asyncio.current_task()
    assert me is not None, "a client is served in a task of its own"
    clients.add(me)
    return me


async def stop_serving(server: asyncio.Server | None, clients: set[asyncio.Task[None]]) -> None:
    """Stop accepting, then end every client's task and wait for them (each closes its own socket)."""
    if server is not None:
        server.close()
    for t in list(clients):
        t.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
