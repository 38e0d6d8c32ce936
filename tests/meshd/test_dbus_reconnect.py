"""The D-Bus face outlives its bus: a real omerta-meshd on a private dbus-daemon that is killed and started
again on the same address, and one started before its bus exists. JSON-RPC answers throughout, status.get
reports the face as the ``dbus`` feature, and the face answers again within a few seconds of the bus."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from meshd.dbus_harness import PrivateBus, have_dbus_daemon
from meshd.harness import DaemonProc
from omerta_mesh.meshd.dbus_codec import unwrap
from omerta_mesh.meshd.dbus_service import retry_delay
from omerta_mesh.meshd.registry import DBUS_IFACE, DBUS_NAME, DBUS_PATH

pytestmark = pytest.mark.skipif(not have_dbus_daemon(), reason="dbus-daemon is not installed (apt-get install dbus)")

from dbus_fast import Message, MessageType  # noqa: E402  (after the skip mark)
from dbus_fast.aio import MessageBus  # noqa: E402

BACK_WITHIN = 5.0  # seconds from the bus being there to the face answering on it
# Signs of a task or resource left behind at shutdown (the daemon runs with -W error).
LEFT_BEHIND = ("Task was destroyed but it is pending", "exception was never retrieved", "Traceback", "ResourceWarning")


def _address(base: Path) -> str:
    return f"unix:path={base / 'bus' / 'bus.sock'}"  # what PrivateBus(base) listens on, without the guid


async def _ask(address: str) -> dict | None:
    """StatusGet on the face, or None if the bus or the face does not answer."""
    try:
        b = await asyncio.wait_for(MessageBus(bus_address=address).connect(), 2.0)
    except (OSError, asyncio.TimeoutError, EOFError):
        return None
    try:
        msg = Message(destination=DBUS_NAME, path=DBUS_PATH, interface=DBUS_IFACE, member="StatusGet")
        reply = await asyncio.wait_for(b.call(msg), 2.0)
        return unwrap(reply.body[0]) if reply.message_type == MessageType.METHOD_RETURN else None
    except asyncio.TimeoutError:
        return None
    finally:
        b.disconnect()
        await b.wait_for_disconnect()


def _face_answers(address: str, within: float) -> tuple[dict, float]:
    """(StatusGet's result, seconds it took) once the face answers; fails after ``within`` seconds."""
    t0 = time.monotonic()
    while True:
        got = asyncio.run(_ask(address))
        if got is not None:
            return got, time.monotonic() - t0
        assert time.monotonic() - t0 < within, f"the D-Bus face did not answer within {within} s"
        time.sleep(0.1)


def _signals_after_network_create(d: DaemonProc, address: str, name: str) -> tuple[list[dict], list[int]]:
    """(Events, EventsDropped) signals on the bus while a network is created over JSON-RPC."""

    async def go() -> tuple[list[dict], list[int]]:
        b = await MessageBus(bus_address=address).connect()
        obj = b.get_proxy_object(DBUS_NAME, DBUS_PATH, await b.introspect(DBUS_NAME, DBUS_PATH))
        got: list[dict] = []
        dropped: list[int] = []
        obj.get_interface(DBUS_IFACE).on_events(lambda evs: got.extend(unwrap(evs)))
        obj.get_interface(DBUS_IFACE).on_events_dropped(dropped.append)
        await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(None, lambda: d.call("network.create", name=name))
        for _ in range(100):
            if any(e["type"] == "network.joined" for e in got):
                break
            await asyncio.sleep(0.02)
        b.disconnect()
        await b.wait_for_disconnect()
        return got, dropped

    return asyncio.run(go())


def _stop_cleanly(d: DaemonProc) -> None:
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < 5.0, "stopping took too long: the retry loop held it up"
    log = d.log_text()
    assert not [w for w in LEFT_BEHIND if w in log], log


def test_retry_delay_doubles_from_half_a_second_to_thirty() -> None:
    assert [retry_delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert retry_delay(10_000) == 30


def test_face_comes_back_after_the_bus_restarts(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    address = _address(tmp_path)
    bus = PrivateBus(tmp_path)
    d = DaemonProc(tmp_path, "d", extra=["--dbus-address", address])
    try:
        d.start()
        node_id = d.call("status.get")["node_id"]
        assert _face_answers(address, 1.0)[0]["node_id"] == node_id
        st = d.call("status.get")
        assert st["dbus"]["enabled"] and st["dbus"]["active"] and st["counters"]["dbus.disconnects"] == 0

        bus.proc.kill()  # the bus dies under the daemon
        bus.close()
        deadline = time.monotonic() + 3.0
        while d.call("status.get")["counters"]["dbus.disconnects"] == 0:  # JSON-RPC answers throughout
            assert time.monotonic() < deadline, "the daemon did not notice the bus was gone"
            time.sleep(0.05)
        st = d.call("status.get")
        assert st["dbus"]["enabled"] and not st["dbus"]["active"]
        assert "lost the connection" in st["dbus"]["detail"] or "cannot reach" in st["dbus"]["detail"], st["dbus"]
        assert "next try in" in st["dbus"]["detail"] or "trying now" in st["dbus"]["detail"], st["dbus"]
        time.sleep(1.0)  # an outage of a second or so: the daemon tries and fails meanwhile
        st = d.call("status.get")
        assert not st["dbus"]["active"] and "cannot reach" in st["dbus"]["detail"], st["dbus"]
        assert d.call("network.create", name="during-outage")["name"] == "during-outage"  # an event nobody on D-Bus hears
        assert d.alive()

        bus = PrivateBus(tmp_path)  # a new dbus-daemon on the same address
        assert bus.address.startswith(address + ",")
        got, took = _face_answers(address, BACK_WITHIN)
        assert got["node_id"] == node_id
        print(f"the face answered {took:.2f} s after the bus came back")
        st = d.call("status.get")
        assert st["dbus"]["active"] and st["counters"]["dbus.reconnects"] == 1 and st["counters"]["dbus.disconnects"] == 1
        events, dropped = _signals_after_network_create(d, address, "after-restart")  # signals flow on the new bus
        assert [e for e in events if e["type"] == "network.joined"], events
        assert dropped and dropped[0] >= 1, "the events of the outage were not counted in EventsDropped"
        assert d.call("status.get")["counters"]["dbus.events_dropped"] >= 1
        assert "D-Bus face is back" in d.log_text()
        assert d.log_text().count("D-Bus face is off") == 1  # the loss is logged once
        _stop_cleanly(d)
    finally:
        d.close()
        bus.close()


def test_face_comes_up_when_the_bus_appears_after_the_daemon(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    address = _address(tmp_path)
    d = DaemonProc(tmp_path, "d", extra=["--dbus-address", address])
    bus: PrivateBus | None = None
    try:
        d.start()  # READY=1 without a bus
        st = d.call("status.get")
        assert st["dbus"]["enabled"] and not st["dbus"]["active"]
        assert "cannot reach" in st["dbus"]["detail"] and "next try in" in st["dbus"]["detail"], st["dbus"]
        time.sleep(1.5)
        assert not d.call("status.get")["dbus"]["active"]

        bus = PrivateBus(tmp_path)
        got, took = _face_answers(address, BACK_WITHIN)
        assert got["node_id"] == d.call("status.get")["node_id"]
        print(f"the face answered {took:.2f} s after the bus appeared")
        st = d.call("status.get")
        assert st["dbus"]["active"] and st["counters"]["dbus.reconnects"] == 1 and st["counters"]["dbus.disconnects"] == 0
        _stop_cleanly(d)
    finally:
        d.close()
        if bus is not None:
            bus.close()


async def _in_process(address: str, required: bool = False):
    from omerta_mesh.meshd import config as config_mod
    from omerta_mesh.meshd.api import DaemonAPI
    from omerta_mesh.meshd.dbus_service import DbusService
    from omerta_mesh.meshd.events import EventHub
    from omerta_mesh.node import MeshNode

    node = MeshNode(host="127.0.0.1", port=0)
    await node.start()
    api = DaemonAPI(node, config_mod.default(), EventHub(), name="inproc", version="t", endpoints=lambda: [])
    return node, DbusService(api, address, required=required)


def test_close_ends_the_retry_loop(tmp_path: Path) -> None:
    """In process: a face retrying a bus that is not there leaves no task behind once closed."""

    async def go() -> None:
        before = asyncio.all_tasks()
        node, svc = await _in_process(_address(tmp_path))
        await svc.start()
        await asyncio.sleep(0.1)
        feature = svc.feature(time.monotonic())
        assert feature.enabled and not feature.active and "next try in" in feature.detail, feature
        assert asyncio.all_tasks() - before, "no retry loop runs"
        await svc.close()
        assert asyncio.all_tasks() - before == set(), "close() left tasks behind"
        assert not svc.feature(time.monotonic()).active
        await node.close()

    asyncio.run(go())


def test_a_refused_name_stops_only_a_required_face(tmp_path: Path) -> None:
    """The bus is there but another connection owns the name: a required face (dbus.enabled = true) fails
    to start, since only the admin can fix that; an "auto" one keeps trying and says why."""
    from omerta_mesh.meshd.dbus_service import NameRefused

    async def go() -> None:
        owner = await MessageBus(bus_address=bus.address).connect()
        await owner.request_name(DBUS_NAME)
        node, svc = await _in_process(bus.address, required=True)
        with pytest.raises(NameRefused, match="another omerta-meshd runs"):
            await svc.start()
        await svc.close()
        await node.close()
        node, svc = await _in_process(bus.address)
        await svc.start()
        feature = svc.feature(time.monotonic())
        assert not feature.active and "another omerta-meshd runs" in feature.detail and "next try in" in feature.detail
        owner.disconnect()  # the other owner goes away: the name is ours at the next try
        await owner.wait_for_disconnect()
        for _ in range(50):
            if svc.feature(time.monotonic()).active:
                break
            await asyncio.sleep(0.1)
        assert svc.feature(time.monotonic()).active and svc.reconnects == 1
        await svc.close()
        await node.close()

    bus = PrivateBus(tmp_path)
    try:
        asyncio.run(go())
    finally:
        bus.close()


def test_stop_while_retrying_is_clean_and_disabled_means_off(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    d = DaemonProc(tmp_path, "retrying", extra=["--dbus-address", _address(tmp_path)])
    off = DaemonProc(tmp_path, "off")  # the harness passes --no-dbus
    try:
        d.start()
        time.sleep(1.2)  # a second try has failed and the third waits
        assert not d.call("status.get")["dbus"]["active"]
        _stop_cleanly(d)
        off.start()
        st = off.call("status.get")
        assert st["dbus"] == {"enabled": False, "active": False, "detail": "off"}
        assert "dbus.reconnects" not in st["counters"]
    finally:
        d.close()
        off.close()


@pytest.mark.parametrize("loop", ["auto", "asyncio"])  # auto: uvloop when installed
def test_a_start_that_fails_after_the_api_socket_opened_exits(tmp_path: Path, loop: str) -> None:
    """A required face refused its name fails the start after the JSON-RPC socket is open: the daemon must
    close what it opened and exit 1 with the reason, not linger (it did, under uvloop)."""

    async def own() -> MessageBus:
        owner = await MessageBus(bus_address=bus.address).connect()
        await owner.request_name(DBUS_NAME)
        return owner

    bus = PrivateBus(tmp_path)
    os.chmod(tmp_path, 0o755)
    d = DaemonProc(tmp_path, "refused", extra=["--dbus-address", bus.address, "--loop", loop])
    loop_ = asyncio.new_event_loop()
    try:
        owner = loop_.run_until_complete(own())
        d.start(wait=False)
        assert d.proc is not None
        try:
            rc = d.proc.wait(timeout=15)
        except Exception:
            pytest.fail(f"the daemon did not exit after a failed start:\n{d.log.read_text()}")
        log = d.log.read_text()
        assert rc == 1, log
        assert "cannot start: D-Bus service failed to start" in log
        assert not d.socket.exists(), "the API socket was left behind"
        assert not any(s in log for s in LEFT_BEHIND), log
        owner.disconnect()
        loop_.run_until_complete(owner.wait_for_disconnect())
    finally:
        d.close()
        loop_.close()
        bus.close()
