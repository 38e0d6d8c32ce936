"""The daemon's refreshers: a part that keeps state in step with the mesh (the virtual network's devices and
routes, the exit node's member set, subnet routes, firewall rules, mesh DNS listeners) runs one step every few
seconds in a task of its own. A step that
raises is logged and the next one runs anyway: a refresher never dies before ``stop``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable


async def _every(seconds: float, step: Callable[[], Awaitable[None]], log: logging.Logger, what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await step()
        except Exception:  # never let the refresher die: log and try again next time
            log.exception("%s refresh failed", what)


def start(seconds: float, step: Callable[[], Awaitable[None]], log: logging.Logger, what: str) -> asyncio.Task:
    """Run ``step()`` every ``seconds`` (the first time ``seconds`` from now) until ``stop``."""
    return asyncio.get_running_loop().create_task(_every(seconds, step, log, what))


async def stop(task: asyncio.Task | None) -> None:
    """Cancel a refresher (None: never started) and wait until it has ended."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
