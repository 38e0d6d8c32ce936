"""State survives kill -9; a crash between writing a state file and renaming it leaves the old state."""

from __future__ import annotations

import json
import subprocess
import sys

from meshd.harness import ROOT, join, wait_connected, wait_peer_cached


def test_kill_9_and_restart_keeps_identity_networks_and_peer_cache(daemon_factory) -> None:
    a = daemon_factory("a").start()
    b = daemon_factory("b").start()
    net, a_id, b_id = join(a, b, "keep")
    nets_before = b.call("network.list")
    wait_peer_cached(b, a_id)  # (saved some time after the join; what a kill -9 keeps)

    b.kill()  # SIGKILL: no chance to save anything on the way out
    b.start()
    assert b.call("status.get")["node_id"] == b_id
    assert b.call("network.list")["networks"][0]["network"] == net["network"]
    assert [n["network"] for n in b.call("network.list")["networks"]] == [n["network"] for n in nets_before["networks"]]
    # the peer cache brings A back without the invite
    peer = wait_connected(b, a_id)
    assert peer["network"] == net["network"]
    b.call("ping", peer=a_id)  # and the session works


CRASH = r"""
import asyncio, json, os, sys
sys.path.insert(0, {daemon!r})
from omerta_mesh.node import MeshNode

async def main():
    node = MeshNode(host="127.0.0.1", port=0, state_dir={state!r})
    await node.start()
    node.create_network("first")
    print(json.dumps({{"node_id": str(node.node_id)}}), flush=True)
    def crash(src, dst):  # the temp file is written and fsynced; die before the rename
        os._exit(137)
    os.replace = crash
    node.create_network("second")
    print("not reached", flush=True)

asyncio.run(main())
"""


def test_crash_between_write_and_rename_leaves_the_previous_state(daemon_factory, tmp_path) -> None:
    d = daemon_factory("d")
    d.state.mkdir(parents=True)
    script = CRASH.format(daemon=str(ROOT / "daemon"), state=str(d.state))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 137, r.stderr
    node_id = json.loads(r.stdout.splitlines()[0])["node_id"]
    assert "not reached" not in r.stdout
    saved = json.loads((d.state / "networks.json").read_text())
    assert [n["name"] for n in saved["networks"]] == ["first"]  # the old file, whole
    leftovers = list(d.state.glob(".networks.json.*.tmp"))
    assert len(leftovers) == 1 and "second" in leftovers[0].read_text()  # the new one never replaced it

    d.start()
    assert d.call("status.get")["node_id"] == node_id
    assert [n["name"] for n in d.call("network.list")["networks"]] == ["first"]
    assert list(d.state.glob("*.tmp")) == list(d.state.glob(".*.tmp")) == []  # debris cleared at start
    assert "left by a crash" in d.log_text()


def test_second_daemon_on_the_same_state_dir_is_refused(daemon_factory) -> None:
    a = daemon_factory("a").start()
    twin = daemon_factory("a")  # same directories
    twin.socket = twin.run / "other.sock"
    twin.extra = ["--socket", str(twin.socket)]
    twin.start(wait=False)
    assert twin.proc.wait(15) == 1
    assert "another omerta-meshd" in twin.log_text() and "is using" in twin.log_text()
    assert a.alive() and a.call("status.get")


def test_bootstrap_reconnects_without_invite_or_peer_cache(daemon_factory) -> None:
    a = daemon_factory("a").start()
    b = daemon_factory("b").start()
    net, _, _ = join(a, b, "boot")
    a_status = a.call("status.get")
    b.stop()
    (b.state / "peers.json").unlink()
    b.extra = ["--bootstrap", f"{a_status['node_id']}@{a_status['listen'][0]}"]
    b.start()
    assert wait_connected(b, a_status["node_id"])["network"] == net["network"]
