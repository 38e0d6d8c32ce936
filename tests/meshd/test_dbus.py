"""The D-Bus face against a real private dbus-daemon running our policy file: methods, properties,
signals, errors, the policy (nobody reads, only the group writes), a 10,000-event burst, and parity with
the JSON-RPC face."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from meshd.asuser import TempGroup, run_as
from meshd.dbus_harness import PrivateBus, have_dbus_daemon
from meshd.harness import DaemonProc
from omerta_mesh.meshd.api import DaemonAPI
from omerta_mesh.meshd.dbus_codec import in_args, out_args, unwrap
from omerta_mesh.meshd.registry import DBUS_ADMIN_IFACE, DBUS_IFACE, DBUS_NAME, DBUS_PATH, methods

pytestmark = pytest.mark.skipif(not have_dbus_daemon(), reason="dbus-daemon is not installed (apt-get install dbus)")

from dbus_fast import DBusError, Message, MessageType  # noqa: E402  (after the skip mark)
from dbus_fast.aio import MessageBus  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("dbus")
    os.chmod(base, 0o755)
    group = TempGroup() if os.geteuid() == 0 else None  # must exist before the bus reads its policy
    bus = PrivateBus(base, group.name if group else "omerta")
    d = DaemonProc(base, "d", extra=["--dbus-address", bus.address]).start()
    yield d, bus, group
    d.close()
    bus.close()
    if group:
        group.close()


async def _proxy(address: str):
    b = await MessageBus(bus_address=address).connect()
    intro = await b.introspect(DBUS_NAME, DBUS_PATH)
    obj = b.get_proxy_object(DBUS_NAME, DBUS_PATH, intro)
    return b, obj.get_interface(DBUS_IFACE), obj.get_interface(DBUS_ADMIN_IFACE), obj.get_interface("org.freedesktop.DBus.Properties")


def test_methods_properties_and_signals(env) -> None:
    d, bus, _ = env

    async def go() -> None:
        b, mesh, admin, props = await _proxy(bus.address)
        events: list[dict] = []
        changed: list[dict] = []
        mesh.on_events(lambda evs: events.extend(unwrap(evs)))
        props.on_properties_changed(lambda iface, ch, inv: changed.append(unwrap(ch)))

        status = unwrap(await mesh.call_status_get())
        assert status["node_id"] == await mesh.get_node_id() == d.call("status.get")["node_id"]
        assert await mesh.get_api_version() == 1 and await mesh.get_peer_count() == 0
        snap = unwrap(await mesh.call_events_subscribe())
        assert snap["snapshot"]["status"]["node_id"] == status["node_id"] and snap["seq"] >= 0

        network, name, invite = await admin.call_network_create("dbus-net", False)  # a fixed result: typed out arguments
        assert name == "dbus-net" and invite.startswith("omerta1-")
        listed = unwrap(await mesh.call_network_list())
        assert [n["name"] for n in listed["networks"]] == ["dbus-net"]
        assert d.call("network.list")["networks"][0]["network"] == network  # one daemon, two faces

        for _ in range(100):
            if events and changed:
                break
            await asyncio.sleep(0.02)
        joined = [e for e in events if e["type"] == "network.joined"]
        assert joined and joined[0]["network"] == network and joined[0]["seq"] > snap["seq"]
        assert changed and "StatusText" in changed[-1] and "1 network" in changed[-1]["StatusText"]
        assert "1 network" in await mesh.get_status_text()

        with pytest.raises(DBusError) as ei:
            await mesh.call_peers_get("zzzzzzzzzz", "")
        assert ei.value.type == "org.omerta.Mesh1.Error.PeerNotFound" and "fix:" in ei.value.text
        with pytest.raises(DBusError) as ei:
            await mesh.call_ping("zzzzzzzzzz", 0, 1.0, 1.0, "")
        assert ei.value.type == "org.omerta.Mesh1.Error.InvalidParams" and "'count'" in ei.value.text
        b.disconnect()

    asyncio.run(go())
    assert d.alive()


def test_parity_both_faces_expose_the_same_operations(env) -> None:
    """Both faces come from the one registry: the same operations, and every D-Bus signature (in and out) the
    one the schema gives (dbus_codec); a few pinned, as firewalld pins its D-Bus types."""
    d, bus, _ = env
    specs = methods(DaemonAPI)

    async def go() -> dict[str, dict[str, tuple[str, str]]]:
        b = await MessageBus(bus_address=bus.address).connect()
        intro = await b.introspect(DBUS_NAME, DBUS_PATH)
        b.disconnect()
        return {i.name: {m.name: ("".join(a.signature for a in m.in_args), "".join(a.signature for a in m.out_args))
                         for m in i.methods} for i in intro.interfaces}

    live = asyncio.run(go())
    for iface, access in ((DBUS_IFACE, "read"), (DBUS_ADMIN_IFACE, "write")):
        assert live[iface] == {s.dbus_name: ("".join(t for _, t in in_args(s)), "".join(t for _, t in out_args(s.result)))
                               for s in specs if s.access.value == access}
    assert "org.freedesktop.DBus.ObjectManager" in live
    pinned = {"Ping": ("sxdds", "a{sv}"), "PeersList": ("s", "a{sv}"), "PeersGet": ("ss", "a{sv}"), "NetworkCreate": ("sb", "sss"),
              "ServeAdd": ("x", "xbax"), "MetricsGet": ("", "s"), "StatusGet": ("", "a{sv}"),
              "RulesList": ("", "a{sv}")}
    assert {k: (live[DBUS_IFACE] | live[DBUS_ADMIN_IFACE])[k] for k in pinned} == pinned
    from types import SimpleNamespace

    from omerta_mesh.meshd.rpc_server import RpcServer

    fake_api = SimpleNamespace(specs={s.name: s for s in specs}, counter_sources=[])
    rpc_names = set(RpcServer(fake_api, Path("/nonexistent"), lambda: None).methods)  # type: ignore[arg-type]
    assert rpc_names == {s.name for s in specs}
    assert len(rpc_names) == len(specs) == len({s.dbus_name for s in specs})
    # and the JSON-RPC face answers every one of these names (METHOD_NOT_FOUND would mean a gap)
    with d.client() as c:
        for name in rpc_names:
            resp = c.call_raw(name, {"__probe__": 1})
            assert resp["error"]["data"]["name"] in ("INVALID_PARAMS", "PERMISSION_DENIED"), (name, resp)


@pytest.mark.root("a client as nobody, a temporary group")
def test_policy_nobody_reads_group_writes_root_owns(env) -> None:
    d, bus, group = env
    address = bus.address

    def attempt() -> dict:
        async def go() -> dict:
            out: dict = {}
            b, mesh, admin, props = await _proxy(address)
            out["status"] = unwrap(await mesh.call_status_get())["node_id"]
            out["prop"] = await mesh.get_node_id()
            for name, call in (("create", admin.call_network_create("x", False)), ("shutdown", admin.call_daemon_shutdown())):
                try:
                    out[name] = unwrap(await call)
                except DBusError as e:
                    out[name] = e.type
            reply = await b.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                                         member="RequestName", signature="su", body=[DBUS_NAME, 4]))
            out["own"] = reply.message_type == MessageType.ERROR and reply.error_name
            b.disconnect()
            return out

        return asyncio.run(go())

    node_id = d.call("status.get")["node_id"]
    res = run_as("nobody", attempt)
    assert res["status"] == res["prop"] == node_id
    assert res["create"] == res["shutdown"] == "org.freedesktop.DBus.Error.AccessDenied"
    assert res["own"] == "org.freedesktop.DBus.Error.AccessDenied"
    before = {n["name"] for n in d.call("network.list")["networks"]}
    assert "x" not in before and d.alive()

    def member() -> dict:
        async def go() -> dict:
            b, mesh, admin, props = await _proxy(address)
            network, name, invite = await admin.call_network_create("by-group", False)
            b.disconnect()
            return {"name": name}

        return asyncio.run(go())

    assert run_as("nobody", member, groups=(group.gid,))["name"] == "by-group"
    assert "by-group" in {n["name"] for n in d.call("network.list")["networks"]}


def test_event_burst_keeps_the_bus_connection(tmp_path: Path) -> None:
    """10,000 events at once: dbus-fast drops a connection whose send buffer fills, so the service must
    coalesce and pace its signals. Every event is either delivered or counted as dropped."""
    bus = PrivateBus(tmp_path)
    try:
        asyncio.run(_burst(bus.address, tmp_path))
    finally:
        bus.close()


async def _burst(address: str, tmp: Path) -> None:
    from omerta_mesh.meshd import config as config_mod
    from omerta_mesh.meshd.dbus_service import DbusService
    from omerta_mesh.meshd.events import EventHub
    from omerta_mesh.node import MeshNode

    node = MeshNode(host="127.0.0.1", port=0)
    await node.start()
    cfg = config_mod.default()
    hub = EventHub()
    api = DaemonAPI(node, cfg, hub, name="burst", version="t", endpoints=lambda: [])
    svc = DbusService(api, address)
    await svc.start()
    b, mesh, admin, props = await _proxy(address)
    got: list[int] = []
    dropped: list[int] = []
    mesh.on_events(lambda evs: got.extend(int(e["n"].value) for e in evs))
    mesh.on_events_dropped(lambda n: dropped.append(n))
    await asyncio.sleep(0.05)
    for i in range(10_000):
        hub.publish("test.burst", n=i, pad="x" * 100)
    deadline = asyncio.get_running_loop().time() + 20
    while len(got) + sum(dropped) < 10_000 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert svc.bus is not None and svc.bus.connected, "the service lost its bus connection"
    assert len(got) + sum(dropped) == 10_000
    assert got == sorted(got) and len(got) >= 8192 - 1  # in order; at most the oldest beyond the queue dropped
    assert svc.signals_sent < 10_000 / 10  # coalesced: many events per signal
    assert unwrap(await mesh.call_status_get())["name"] == "burst"  # the service still answers
    b.disconnect()
    await svc.close()
    await node.close()
