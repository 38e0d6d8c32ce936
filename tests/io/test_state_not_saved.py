"""Saves that fail (issue 12, fault 7): ``StateNotSaved`` names the file and the cause; the node saves
networks.json before it changes the core, so a failed save changes nothing in memory; saves made from the
event loop (``BackgroundSaves``) are counted and retried with back-off, never raised into the loop."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from omerta_mesh.core.errors import UsageError
from omerta_mesh.io.store import BackgroundSaves, StateNotSaved, StateStore
from omerta_mesh.node import MeshNode
from smalldisk import SmallDisk

PEERS = Path("/var/lib/omerta/peers.json")


def refused(code: int = errno.ENOSPC) -> StateNotSaved:
    return StateNotSaved(PEERS, OSError(code, os.strerror(code)))


async def until(cond: Callable[[], bool], what: str) -> None:
    """Loop turns until ``cond`` (a bounded number: the retries below are due at once)."""
    for _ in range(10_000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never: {what}")


def test_the_message_names_the_file_and_the_cause_and_the_fix_fits_it() -> None:
    full = refused()
    assert str(full) == f"state could not be saved: {PEERS}: no space left on device"
    assert "free space" in full.fix and "/var/lib/omerta" in full.fix
    broken = refused(errno.EIO)
    assert str(broken) == f"state could not be saved: {PEERS}: input/output error"
    assert "check the disk" in broken.fix
    assert "read-only" in refused(errno.EROFS).fix


class Disk:
    """Writes that fail while ``full``; what was written last."""

    def __init__(self) -> None:
        self.full = True
        self.calls = 0
        self.written: Any = None

    def write(self, value: Any) -> Callable[[], None]:
        def write() -> None:
            self.calls += 1
            if self.full:
                raise refused()
            self.written = value

        return write


async def test_a_failing_background_save_backs_off_and_writes_the_latest_once_it_can(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    delays: list[float] = []
    call_later = loop.call_later

    def record(delay: float, cb: Any, *args: Any) -> asyncio.TimerHandle:  # the back-off asked for, run at once
        delays.append(delay)
        return call_later(0, cb, *args)

    monkeypatch.setattr(loop, "call_later", record)
    saves, disk = BackgroundSaves(first=1.0, most=8.0), Disk()
    assert saves.save("peer cache", disk.write(1)) is False  # failed: no exception
    assert saves.pending == ["peer cache"] and saves.failed == 1
    assert saves.save("peer cache", disk.write(2)) is False  # a retry is waiting: it will write this, not now
    assert disk.calls == 1
    await until(lambda: saves.failed == 6, "six failed attempts")
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    disk.full = False
    await until(lambda: not saves.pending, "the save went through")
    assert disk.written == 2 and saves.retried == 6 and saves.failed == 6
    assert saves.save("peer cache", disk.write(3)) is True and disk.written == 3  # and the next one goes at once


async def test_close_writes_what_is_pending_and_the_last_save_once_and_never_raises() -> None:
    saves, cache, ips = BackgroundSaves(first=3600.0), Disk(), Disk()
    saves.save("our mesh IPs", ips.write("ips"))
    cache.full = False
    ips.full = False
    saves.close(("peer cache", cache.write("peers")))
    assert (ips.written, cache.written) == ("ips", "peers") and saves.pending == []
    full = Disk()
    saves.close(("peer cache", full.write("lost")))  # at stop there is no later: logged, not raised
    assert full.calls == 1 and saves.failed == 2 and saves.pending == []


async def test_a_core_change_that_fails_after_the_save_puts_networks_json_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = await MeshNode(host="127.0.0.1", state_dir=str(tmp_path / "n"), watch_addresses=False).start()
    other = await MeshNode(host="127.0.0.1", watch_addresses=False).start()
    try:
        node.create_network("kept")
        assert node.store is not None
        before = node.store.networks_path.read_bytes()

        def refuse(*args: object) -> None:
            raise UsageError("refused by the core")

        monkeypatch.setattr(node.core, "join", refuse)
        with pytest.raises(UsageError, match="refused by the core"):
            await node.join(other.invite(other.create_network("theirs").id), timeout=None)
        assert node.store.networks_path.read_bytes() == before
    finally:
        await other.close()
        await node.close()


@pytest.mark.root("mounts a small tmpfs")
async def test_on_a_full_disk_create_join_and_leave_change_nothing_in_memory(tmp_path: Path) -> None:
    disk = SmallDisk(tmp_path / "state")
    try:
        node = await MeshNode(host="127.0.0.1", state_dir=str(disk.path), watch_addresses=False).start()
        other = await MeshNode(host="127.0.0.1", watch_addresses=False).start()
        try:
            assert node.store is not None
            kept = node.create_network("kept")
            invite = other.invite(other.create_network("theirs").id)
            disk.fill()
            with pytest.raises(StateNotSaved, match="networks.json: no space left on device"):
                node.create_network("new")
            with pytest.raises(StateNotSaved, match="networks.json: no space left on device"):
                await node.join(invite, timeout=None)
            with pytest.raises(StateNotSaved, match="networks.json: no space left on device"):
                node.leave(kept.id)
            assert list(node.core.networks) == [kept.id.raw] and node.core.peers() == []
            assert node.store.counters()["state.save_failed"] == 3
            disk.free()
            await node.join(invite, timeout=5)  # connects: the join is flushed at once
            node.leave(kept.id)
            assert [n.name for n in StateStore(disk.path).load_networks()] == ["theirs"]
        finally:
            await other.close()
            await node.close()
    finally:
        disk.unmount()
