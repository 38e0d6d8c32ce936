"""Regression (issue 12, fault 7): a full state filesystem.

On a full disk ``network.create`` and ``network.join`` answered INTERNAL ("this is a bug") with the network
half-made in memory (listed, but not in networks.json: gone after a restart); a failed peer-cache save
escaped into the event loop; a graceful stop raised before the goodbye, so peers waited for the session to
time out. Now a save that fails is the ``STATE_NOT_SAVED`` error naming the file and the cause, with nothing
changed; a background save (the peer cache) is counted and retried with back-off until it succeeds; and a
stop says goodbye (CLOSE) before its last save.

Real daemons whose state directory is a small tmpfs (tests/smalldisk.py), filled to the last page (root).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest

from meshd.harness import DaemonProc, join, wait_connected
from meshd.rpcclient import RpcClient, RpcError
from smalldisk import SmallDisk

pytestmark = pytest.mark.root("mounts a small tmpfs")

FULL = "no space left on device"


@pytest.fixture
def disks() -> Iterator[list[SmallDisk]]:
    made: list[SmallDisk] = []
    yield made
    for d in made:
        d.unmount()


def on_small_disk(disks: list[SmallDisk], tmp_path: Path, name: str) -> tuple[DaemonProc, SmallDisk]:
    d = DaemonProc(tmp_path, name)
    disk = SmallDisk(d.state)
    disks.append(disk)
    return d, disk


def assert_not_saved(ei: pytest.ExceptionInfo[RpcError], path: Path) -> None:
    err = ei.value
    assert err.name == "STATE_NOT_SAVED", (err.name, err.message)
    assert err.daemon_message == f"state could not be saved: {path}: {FULL}", err.daemon_message
    assert "free space" in err.fix and str(path.parent) in err.fix, err.fix


def test_create_and_join_on_a_full_disk_change_nothing_and_work_once_space_is_freed(tmp_path: Path, disks: list[SmallDisk]) -> None:
    a = DaemonProc(tmp_path, "a")
    b, disk = on_small_disk(disks, tmp_path, "b")
    try:
        a.start()
        b.start()
        disk.fill()
        with pytest.raises(RpcError) as ei:
            b.call("network.create", name="full")
        assert_not_saved(ei, b.state / "networks.json")
        assert b.call("network.list")["networks"] == []  # not created in memory either

        net = a.call("network.create", name="shared")
        a_id = a.call("status.get")["node_id"]
        with pytest.raises(RpcError) as ei:
            b.call("network.join", invite=net["invite"], wait=0)
        assert_not_saved(ei, b.state / "networks.json")
        assert b.call("network.list")["networks"] == []
        assert b.call("peers.list")["peers"] == []  # the inviter was not contacted

        disk.free()
        made = b.call("network.create", name="full")
        assert b.call("network.join", invite=net["invite"], wait=10)["connected"]  # no stall: it connects at once
        wait_connected(b, a_id)
        assert sorted(n["name"] for n in b.call("network.list")["networks"]) == ["full", "shared"]
        saved = json.loads((b.state / "networks.json").read_text())
        assert sorted(n["id"] for n in saved["networks"]) == sorted([made["network"], net["network"]])
        assert "Traceback" not in b.log_text()
    finally:
        a.close()
        b.close()


def test_leave_on_a_full_disk_keeps_the_network(tmp_path: Path, disks: list[SmallDisk]) -> None:
    b, disk = on_small_disk(disks, tmp_path, "b")
    try:
        b.start()
        net = b.call("network.create", name="kept")
        disk.fill()
        with pytest.raises(RpcError) as ei:
            b.call("network.leave", network="kept")
        assert_not_saved(ei, b.state / "networks.json")
        assert [n["network"] for n in b.call("network.list")["networks"]] == [net["network"]]
        disk.free()
        b.call("network.leave", network="kept")
        assert b.call("network.list")["networks"] == []
        assert json.loads((b.state / "networks.json").read_text())["networks"] == []
    finally:
        b.close()


def counters(d: DaemonProc) -> dict[str, int]:
    return d.call("status.get")["counters"]  # type: ignore[index,return-value]


def test_a_failed_peer_cache_save_is_counted_and_retried_until_it_succeeds(tmp_path: Path, disks: list[SmallDisk]) -> None:
    a = DaemonProc(tmp_path, "a")
    b, disk = on_small_disk(disks, tmp_path, "b")
    try:
        a.start()
        b.start()
        _, a_id, _ = join(a, b)
        disk.fill()
        a.stop()
        a.start()  # on a new port: it reconnects to b from its peer cache, and b saves its peer cache
        port = int(a.call("status.get")["listen"][0].rsplit(":", 1)[1])
        deadline = time.monotonic() + 20
        while not (counters(b).get("state.save_failed", 0) >= 1 and counters(b).get("state.save_pending", 0) >= 1):
            assert time.monotonic() < deadline, f"no failed save counted and waiting for a retry: {counters(b)}\n{b.log_text()}"
            time.sleep(0.1)
        assert b.alive() and b.call("peers.list")["peers"]  # the daemon keeps serving
        wait_connected(b, a_id)

        disk.free()
        deadline = time.monotonic() + 30
        while True:  # retried (with back-off) without anyone asking, and the new address is in the file
            cache = b.state / "peers.json"  # (the first save may be the one that failed: no file yet)
            peers = json.loads(cache.read_text())["peers"] if cache.exists() else []
            if any(["127.0.0.1", port] in p["endpoints"] for p in peers if p["node"] == a_id):
                break
            assert time.monotonic() < deadline, f"peer cache never saved after space came back: {peers}"
            time.sleep(0.2)
        c = counters(b)
        assert c["state.save_pending"] == 0 and c["state.save_retried"] >= 1, c
        log = b.log_text()
        assert "Traceback" not in log and f"{b.state / 'peers.json'}: {FULL}" in log, log
    finally:
        a.close()
        b.close()


def test_stop_on_a_full_disk_still_says_goodbye(tmp_path: Path, disks: list[SmallDisk]) -> None:
    a = DaemonProc(tmp_path, "a")
    b, disk = on_small_disk(disks, tmp_path, "b")
    try:
        a.start()
        b.start()
        _, _, b_id = join(a, b)
        with RpcClient(str(a.socket)) as watcher:
            watcher.call("events.subscribe")
            disk.fill()
            b.signal(signal.SIGTERM)
            t0 = time.monotonic()
            assert b.proc is not None and b.proc.wait(15) == 0, b.log_text()
            while True:
                e = watcher.next_notification("events.event")["params"]["event"]
                if e["type"] == "peer.disconnected" and e["node_id"] == b_id:
                    break
            assert e["reason"] == "peer closed the session", e  # the goodbye, not a session timeout
            assert time.monotonic() - t0 < 10
        log = b.log_text()
        assert "Traceback" not in log and f"{b.state / 'peers.json'}: {FULL}" in log, log
    finally:
        a.close()
        b.close()
