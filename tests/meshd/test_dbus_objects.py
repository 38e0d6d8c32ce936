"""The D-Bus object tree, seen by desktop tools: busctl and gdbus against a private dbus-daemon running the
shipped policy, with a joined pair of real daemons (alpha on the bus, bravo its peer).

ObjectManager lists the network and the peer with typed properties; bravo joining raises InterfacesAdded,
a ping moves RttMs in a PropertiesChanged, bravo leaving raises InterfacesRemoved; an unknown peer is
org.omerta.Mesh1.Error.PeerNotFound; method signatures are the ones the registry's schema gives."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from meshd.dbus_harness import PrivateBus, have_dbus_daemon
from meshd.harness import DaemonProc, join
from omerta_mesh.meshd.registry import DBUS_NAME, DBUS_PATH

pytestmark = pytest.mark.skipif(not (have_dbus_daemon() and shutil.which("busctl") and shutil.which("gdbus")),
                                reason="needs dbus-daemon, busctl and gdbus (apt-get install dbus systemd libglib2.0-bin)")

PEER, NETWORK = "org.omerta.Mesh1.Peer", "org.omerta.Mesh1.Network"


def tool(address: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run busctl or gdbus on the private bus; as nobody when we are root, so the shipped policy decides."""
    cmd = list(args)
    if cmd[0] == "busctl":
        cmd.insert(1, f"--address={address}")
    else:
        cmd[2:2] = ["--address", address]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r


class Signals:
    """Every signal alpha's name sends below /org/omerta/Mesh1, collected by a dbus-fast client in a thread."""

    def __init__(self, address: str) -> None:
        self.got: list[tuple[str, str, list]] = []  # (path, member, body)
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(address),), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _run(self, address: str) -> None:
        from dbus_fast import Message
        from dbus_fast.aio import MessageBus

        from omerta_mesh.meshd.dbus_codec import unwrap

        bus = await MessageBus(bus_address=address).connect()
        await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                               member="AddMatch", signature="s", body=[f"type='signal',path_namespace='{DBUS_PATH}'"]))

        def on(msg: Message) -> None:
            with self.lock:
                self.got.append((msg.path, msg.member, unwrap(msg.body)))

        bus.add_message_handler(on)
        self.stop = asyncio.Event()
        self.ready.set()
        await self.stop.wait()
        bus.disconnect()
        await bus.wait_for_disconnect()

    def wait(self, pred, what: str, timeout: float = 20.0) -> tuple[str, str, list]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for s in self.got:
                    if pred(*s):
                        return s
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s; signals: {[(p, m) for p, m, _ in self.got]}")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture()
def pair(tmp_path: Path):
    # the bus socket in a directory of its own under /tmp: nobody must reach it, and pytest resets its own
    # base directory to 0700 whenever another pytest session starts
    bus_dir = Path(tempfile.mkdtemp(prefix="omerta-dbus-"))
    os.chmod(bus_dir, 0o755)
    bus = PrivateBus(bus_dir, "root")
    a = DaemonProc(tmp_path, "alpha", extra=["--dbus-address", bus.address]).start()
    b = DaemonProc(tmp_path, "bravo").start()
    sig = Signals(bus.address)
    yield a, b, bus, sig
    sig.close()
    b.close()
    a.close()
    bus.close()
    shutil.rmtree(bus_dir, ignore_errors=True)


def test_object_tree_with_busctl_and_gdbus(pair) -> None:
    a, b, bus, sig = pair
    addr = bus.address
    objs = json.loads(tool(addr, "busctl", "--json=short", "call", DBUS_NAME, DBUS_PATH, "org.freedesktop.DBus.ObjectManager",
                           "GetManagedObjects").stdout)
    assert objs["type"] == "a{oa{sa{sv}}}" and objs["data"] == [{}]  # nothing joined: no objects yet

    net, a_id, b_id = join(a, b)
    nid = net["network"]
    peer_path, net_path = f"{DBUS_PATH}/peer/{nid}_{b_id}", f"{DBUS_PATH}/network/{nid}"
    _, _, body = sig.wait(lambda p, m, body: m == "InterfacesAdded" and body[0] == peer_path, "InterfacesAdded for bravo")
    assert body[1][PEER]["NodeId"] == b_id and body[1][PEER]["NetworkObject"] == net_path
    added = [s for s in sig.got if s[1] == "InterfacesAdded"]
    assert {s[0] for s in added} == {DBUS_PATH}  # sent by the object manager, as the specification says
    assert [s[2][0] for s in added].index(net_path) < [s[2][0] for s in added].index(peer_path)

    tree = tool(addr, "busctl", "tree", DBUS_NAME).stdout
    assert peer_path in tree and net_path in tree
    objs = json.loads(tool(addr, "busctl", "--json=short", "call", DBUS_NAME, DBUS_PATH, "org.freedesktop.DBus.ObjectManager",
                           "GetManagedObjects").stdout)["data"][0]
    assert set(objs) == {peer_path, net_path}
    p = objs[peer_path][PEER]
    types = {k: v["type"] for k, v in p.items()}
    assert types["NodeId"] == "s" and types["Connected"] == "b" and types["BytesIn"] == "x" and types["RttMs"] == "d"
    assert types["NetworkObject"] == "o" and types["MeshIPv4"] == "s"
    assert p["NodeId"]["data"] == b_id and p["Connected"]["data"] is True and p["State"]["data"] == "connected"
    assert p["PathKind"]["data"] == "direct" and p["Endpoint"]["data"].startswith("127.0.0.1:")
    n = objs[net_path][NETWORK]
    assert n["Id"]["data"] == nid and n["Name"]["data"] == "n" and n["PeerCount"] == {"type": "x", "data": 1}

    intro = tool(addr, "busctl", "introspect", DBUS_NAME, peer_path).stdout
    assert any(line.split()[:3] == [".RttMs", "property", "d"] for line in intro.splitlines()), intro
    assert tool(addr, "busctl", "get-property", DBUS_NAME, peer_path, PEER, "NodeId").stdout.strip() == f's "{b_id}"'
    assert tool(addr, "busctl", "get-property", DBUS_NAME, net_path, NETWORK, "ConnectedPeers").stdout.strip() == "x 1"
    gd = tool(addr, "gdbus", "introspect", "--dest", DBUS_NAME, "--object-path", DBUS_PATH, "--recurse").stdout
    assert "interface org.freedesktop.DBus.ObjectManager" in gd and f"interface {PEER}" in gd and f"interface {NETWORK}" in gd
    assert "readonly d RttMs" in gd and "readonly o NetworkObject" in gd
    assert "Ping(in  s peer,\n" in gd and "in  s network,\n" in gd and "progress" not in gd  # no JSON-RPC-only argument
    assert "NetworkCreate(in  s name,\n" in gd and "out s invite)" in gd  # a fixed result: one typed out argument per field

    # a ping gives alpha an RTT for bravo: PropertiesChanged on bravo's object carries it
    a.call("ping", peer=b_id, count=2, interval=0.05)
    _, _, body = sig.wait(lambda p, m, body: p == peer_path and m == "PropertiesChanged" and "RttMs" in body[1],
                          "PropertiesChanged with RttMs")
    assert body[0] == PEER and body[1]["RttMs"] > 0

    r = tool(addr, "gdbus", "call", "--dest", DBUS_NAME, "--object-path", DBUS_PATH, "--method", "org.omerta.Mesh1.PeersGet",
             "zzzzzzzzzz", "", check=False)
    assert r.returncode != 0 and "org.omerta.Mesh1.Error.PeerNotFound" in r.stderr and "fix:" in r.stderr
    peers = tool(addr, "busctl", "--json=short", "call", DBUS_NAME, DBUS_PATH, "org.omerta.Mesh1", "PeersList", "s", "").stdout
    got = json.loads(peers)
    assert got["type"] == "a{sv}" and got["data"][0]["peers"]["type"] == "aa{sv}"  # typed, not JSON-shaped av
    assert got["data"][0]["peers"]["data"][0]["rtt_ms"]["type"] == "d"

    b.call("network.leave", network=nid)
    sig.wait(lambda p, m, body: m == "InterfacesRemoved" and body[0] == peer_path and p == DBUS_PATH, "InterfacesRemoved for bravo")
    objs = json.loads(tool(addr, "busctl", "--json=short", "call", DBUS_NAME, DBUS_PATH, "org.freedesktop.DBus.ObjectManager",
                           "GetManagedObjects").stdout)["data"][0]
    assert set(objs) == {net_path} and objs[net_path][NETWORK]["PeerCount"]["data"] == 0
    assert a.call("status.get")["counters"]["dbus.objects_removed"] >= 1  # type: ignore[index]
    assert a.alive() and b.alive()
