"""The JSON-RPC client library (sync and asyncio) against a real daemon, and its error mapping to exit codes.

(Peers are resolved by the daemon, not here: tests/regression/test_issue_10_names.py.)"""

from __future__ import annotations

import socket

import pytest

from clients.ctlharness import check_event, check_result
from omerta_clients import errors
from omerta_clients.rpc import AsyncClient, Client
from omerta_mesh.meshd.errors import DEFAULT_FIX, Code


def test_sync_client_calls_streams_and_events(mesh3) -> None:
    bob = mesh3.ids["bob"]
    with Client(str(mesh3.sock("alice")), timeout=10) as c:
        check_result("status.get", c.call("status.get"))
        sub = check_result("events.subscribe", c.subscribe())
        seen: list[dict] = []
        res = check_result("ping", c.call_streamed("ping", {"peer": bob, "count": 2, "interval": 0.05}, seen.append))
        assert [p["seq"] for p in seen] == [1, 2] and res["probes"] == seen  # progress came before the result
        ev = check_event(c.next_event(timeout=5))
        while ev["type"] != "peer.pong":  # other events may come first (path or NAT changes)
            ev = check_event(c.next_event(timeout=5))
        assert ev["node_id"] == bob and ev["seq"] > sub["seq"]
        with pytest.raises(errors.RpcError) as ei:
            c.call("peers.get", {"peer": "a" * 52})
        assert ei.value.name == "PEER_NOT_FOUND" and ei.value.exit_code == errors.NOT_FOUND and "omertactl peers" in ei.value.fix
        with pytest.raises(errors.RpcError) as ei:
            c.call("peers.frobnicate")
        assert ei.value.name == "METHOD_NOT_FOUND" and ei.value.exit_code == errors.ERROR
        assert c.call("network.list")["networks"][0]["name"] == "home"  # the connection goes on after errors


async def test_async_client_calls_streams_and_events(mesh3) -> None:
    carol = mesh3.ids["carol"]
    async with await AsyncClient.connect(str(mesh3.sock("alice")), timeout=10) as c:
        sub = check_result("events.subscribe", await c.subscribe())
        assert {p["name"] for p in sub["snapshot"]["peers"]} == {"bob", "carol"}
        seen: list[dict] = []
        res = await c.call_streamed("ping", {"peer": carol, "count": 2, "interval": 0.05}, seen.append)
        assert check_result("ping", res)["received"] == 2 and len(seen) == 2
        pongs = []
        while len(pongs) < 2:
            ev = check_event(await c.next_event(timeout=5))
            if ev["type"] == "peer.pong":
                pongs.append(ev)
        assert [e["rtt_ms"] for e in pongs] == [p["rtt_ms"] for p in seen]
        with pytest.raises(errors.RpcError) as ei:
            await c.call("network.leave", {"network": "nope"})
        assert ei.value.exit_code == errors.NOT_FOUND and ei.value.message.startswith("unknown network")


async def test_connect_failures_map_to_exit_codes(tmp_path) -> None:
    with pytest.raises(errors.DaemonNotRunning) as ei:
        Client(str(tmp_path / "missing.sock"))
    assert ei.value.exit_code == 3 and "systemctl start omerta-meshd" in ei.value.fix
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    with pytest.raises(errors.DaemonNotRunning):
        await AsyncClient.connect(str(stale))


def test_every_daemon_error_code_has_an_exit_code() -> None:
    expected = {
        Code.PERMISSION_DENIED: 4, Code.PEER_NOT_FOUND: 5, Code.PEER_AMBIGUOUS: 5, Code.NETWORK_NOT_FOUND: 5,
        Code.NOT_CONNECTED: 6, Code.TIMEOUT: 6, Code.INVALID_PARAMS: 2, Code.SHUTTING_DOWN: 3,
    }
    for code in Code:
        with_data = errors.RpcError({"code": int(code), "message": "m", "data": {"name": code.name, "fix": DEFAULT_FIX[code]}})
        bare = errors.RpcError({"code": int(code), "message": "m"})  # no data: mapped from the number
        want = expected.get(code, 1)
        assert with_data.exit_code == want and bare.exit_code == want, code
        assert with_data.fix == DEFAULT_FIX[code]
    denied = {"code": 1001, "message": "x", "data": {"name": "PERMISSION_DENIED", "fix": "f"}}
    assert errors.RpcError(denied).message == "permission denied: x"
