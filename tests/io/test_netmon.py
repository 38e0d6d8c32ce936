"""AddressMonitor without changing any address: lifecycle, debouncing, netlink unavailable, MeshNode wiring.

Real address changes need a namespace of our own: ``tests/netns/test_netmon.py`` (root).
Every test runs on the default loop and on uvloop (when installed), since the daemon prefers uvloop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Awaitable, Callable

import pytest

from omerta_mesh.io import netmon
from omerta_mesh.io.netmon import AddressMonitor
from omerta_mesh.node import MeshNode

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed"))]


def run(loop: str, main: Callable[[], Awaitable[None]]) -> None:
    if loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("loop", LOOPS)
def test_start_and_stop_leave_no_fd_or_thread_and_stop_is_idempotent(loop: str) -> None:
    async def main() -> None:
        before_fds, before_threads = fds(), threading.active_count()
        mon = AddressMonitor(lambda: None)
        assert mon.start() and mon.running
        assert mon.start()  # already running: nothing more opened
        assert fds() == before_fds + 1 and threading.active_count() == before_threads
        mon.poke()  # a pending debounce timer is cancelled by stop()
        mon.stop()
        mon.stop()
        assert not mon.running and fds() == before_fds
        await asyncio.sleep(mon.debounce + 0.1)
        assert mon.runs == 0

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_burst_runs_the_callback_once_after_the_quiet_period(loop: str) -> None:
    async def main() -> None:
        runs: list[float] = []
        mon = AddressMonitor(lambda: runs.append(asyncio.get_running_loop().time()), debounce=0.2, max_delay=1.0)
        assert mon.start()
        try:
            t0 = asyncio.get_running_loop().time()
            for _ in range(5):
                mon.poke()
                last = asyncio.get_running_loop().time()  # the quiet period runs from the last poke (a busy
                await asyncio.sleep(0.03)                 # machine may return from this sleep much later)
            await asyncio.sleep(0.5)
            expected = min(last + 0.2, t0 + 1.0)  # (max_delay caps a burst that lasted longer, on a busy machine)
            assert len(runs) == 1 and runs[0] >= expected - 0.01, (runs, last, t0)
        finally:
            mon.stop()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_steady_stream_of_events_still_runs_the_callback_within_max_delay(loop: str) -> None:
    async def main() -> None:
        runs: list[float] = []
        mon = AddressMonitor(lambda: runs.append(asyncio.get_running_loop().time()), debounce=0.2, max_delay=0.5)
        assert mon.start()
        try:
            t0 = asyncio.get_running_loop().time()
            while asyncio.get_running_loop().time() - t0 < 0.9:
                mon.poke()
                await asyncio.sleep(0.05)
            assert runs and runs[0] - t0 <= 0.6, runs
        finally:
            mon.stop()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_async_runs_never_overlap_and_a_change_during_a_run_runs_it_once_more(loop: str) -> None:
    async def main() -> None:
        active, log = 0, []

        async def handler() -> None:
            nonlocal active
            active += 1
            log.append(active)
            await asyncio.sleep(0.3)
            active -= 1

        mon = AddressMonitor(handler, debounce=0.05)
        assert mon.start()
        try:
            mon.poke()
            await asyncio.sleep(0.1)  # the first run (0.05 s to 0.35 s) is under way
            for _ in range(3):
                mon.poke()
                await asyncio.sleep(0.03)
            await asyncio.sleep(0.8)
            assert log == [1, 1] and mon.runs == 2
        finally:
            mon.stop()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_no_netlink_is_logged_and_the_caller_carries_on(loop: str, monkeypatch, caplog) -> None:
    def no_netlink(groups: int):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(netmon, "_open", no_netlink)

    async def main() -> None:
        mon = AddressMonitor(lambda: None)
        with caplog.at_level(logging.WARNING, logger="omerta_mesh.netmon"):
            assert not mon.start()
        assert not mon.running and "cannot watch local address changes" in caplog.text
        mon.stop()
        async with MeshNode(port=0, host="0.0.0.0") as node:  # the node starts without it
            assert node._netmon is None and node.mesh.local_endpoints

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_node_watches_only_when_bound_to_a_wildcard_and_stops_on_close(loop: str) -> None:
    async def main() -> None:
        async with MeshNode(port=0, host="127.0.0.1") as fixed:
            assert fixed._netmon is None  # a fixed address cannot change under us
        async with MeshNode(port=0, host="0.0.0.0", watch_addresses=False) as off:
            assert off._netmon is None
        before = fds()
        node = MeshNode(port=0, host="0.0.0.0")
        await node.start()
        mon = node._netmon
        assert mon is not None and mon.running
        await node.close()
        await node.close()
        assert not mon.running and node._netmon is None and fds() == before

    run(loop, main)
