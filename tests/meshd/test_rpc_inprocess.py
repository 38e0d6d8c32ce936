"""The JSON-RPC server in-process, where a test needs to reach inside: internal failures never leak,
connection limits, and a slow subscriber is cut off while the daemon never waits for it."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from pathlib import Path

import pytest

from omerta_mesh.meshd import config as config_mod
from omerta_mesh.meshd.api import DaemonAPI
from omerta_mesh.meshd.events import EventHub
from omerta_mesh.meshd.rpc_server import RpcServer
from omerta_mesh.node import MeshNode


class Env:
    def __init__(self, tmp: Path, **api: int) -> None:
        self.cfg = config_mod.default().with_("api", **api) if api else config_mod.default()
        self.node = MeshNode(host="127.0.0.1", port=0, state_dir=str(tmp / "state"))
        self.hub = EventHub(self.cfg.api.subscriber_queue)
        self.api = DaemonAPI(self.node, self.cfg, self.hub, name="t", version="test", endpoints=lambda: [("127.0.0.1", self.node.port)])
        self.server = RpcServer(self.api, tmp / "s.sock", lambda: None)

    async def __aenter__(self) -> "Env":
        await self.node.start()
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()
        await self.node.close()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_unix_connection(str(self.server.path))


async def send(w: asyncio.StreamWriter, obj: object) -> None:
    body = json.dumps(obj).encode()
    w.write(struct.pack(">I", len(body)) + body)
    await w.drain()


async def recv(r: asyncio.StreamReader, timeout: float = 5.0) -> dict:
    n = struct.unpack(">I", await asyncio.wait_for(r.readexactly(4), timeout))[0]
    return json.loads(await asyncio.wait_for(r.readexactly(n), timeout))


async def test_internal_failure_is_logged_but_never_sent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with Env(tmp_path) as env:
        async def broken(req, ctx):
            raise RuntimeError("secret detail /var/lib/omerta/identity line 42")

        env.api.status_get = broken  # type: ignore[method-assign]
        r, w = await env.connect()
        await send(w, {"jsonrpc": "2.0", "method": "status.get", "id": 1})
        resp = await recv(r)
        assert resp["error"]["code"] == -32603 and resp["error"]["data"]["name"] == "INTERNAL"
        assert "secret" not in json.dumps(resp) and "RuntimeError" not in json.dumps(resp)
        assert any("secret detail" in (rec.exc_text or "") or "secret detail" in str(rec.exc_info) for rec in caplog.records)
        await send(w, {"jsonrpc": "2.0", "method": "network.list", "id": 2})
        assert (await recv(r))["result"] == {"networks": []}
        w.close()


async def test_connection_limit_refuses_with_busy_and_frees_slots(tmp_path: Path) -> None:
    async with Env(tmp_path, max_connections=2) as env:
        conns = [await env.connect() for _ in range(2 + 8)]  # root gets 8 slots reserved for writers
        await asyncio.sleep(0.05)
        r, w = await env.connect()
        resp = await recv(r)
        assert resp["error"]["data"]["name"] == "BUSY" and resp["error"]["code"] == 1009
        assert await r.read() == b""  # and closed
        w.close()
        conns[0][1].close()
        await asyncio.sleep(0.05)
        r, w = await env.connect()
        await send(w, {"jsonrpc": "2.0", "method": "status.get", "id": 1})
        assert (await recv(r))["result"]["name"] == "t"
        for _, cw in conns[1:] + [(r, w)]:
            cw.close()


async def test_slow_subscriber_is_cut_off_and_publishing_never_waits(tmp_path: Path) -> None:
    async with Env(tmp_path, subscriber_queue=16) as env:
        slow_r, slow_w = await env.connect()
        await send(slow_w, {"jsonrpc": "2.0", "method": "events.subscribe", "id": 1})
        sub = (await recv(slow_r))["result"]["subscription"]
        fast_r, fast_w = await env.connect()
        await send(fast_w, {"jsonrpc": "2.0", "method": "events.subscribe", "id": 1})
        await recv(fast_r)
        fast_got = 0

        async def read_fast() -> None:
            nonlocal fast_got
            while True:
                m = await recv(fast_r, 10)
                if m.get("method") == "events.event":
                    fast_got += 1

        reader = asyncio.get_running_loop().create_task(read_fast())
        # the slow client reads nothing: its socket buffer and then its queue fill up
        worst = 0.0
        for i in range(2000):
            t0 = time.perf_counter()
            env.hub.publish("test.burst", n=i, pad="x" * 600)
            worst = max(worst, time.perf_counter() - t0)
            if i % 8 == 0:
                await asyncio.sleep(0.002)  # a pace the fast reader keeps up with
        await asyncio.sleep(0.2)
        assert env.hub.cut_off == 1 and env.hub.subscribers == 1
        assert worst < 0.05  # publish is a bounded append; it never waits for a client
        assert fast_got == 2000  # the subscriber that keeps up lost nothing
        reader.cancel()
        # the slow client, reading at last, finds the events it was sent, then events.closed with the fix
        closed = None
        for _ in range(2100):
            m = await recv(slow_r)
            if m.get("method") == "events.closed":
                closed = m["params"]
                break
        assert closed is not None and closed["subscription"] == sub and closed["code"] == 1010
        assert "subscribe again" in closed["fix"]
        # the connection itself still serves requests
        await send(slow_w, {"jsonrpc": "2.0", "method": "network.list", "id": 9})
        assert (await recv(slow_r))["id"] == 9
        slow_w.close()
        fast_w.close()


async def test_write_methods_need_write_access(tmp_path: Path) -> None:
    from omerta_mesh.meshd.api import CallContext
    from omerta_mesh.meshd.auth import Caller
    from omerta_mesh.meshd.errors import ApiError

    async with Env(tmp_path) as env:
        reader = CallContext(Caller(1, 1000, 1000, (), False), "jsonrpc")
        assert (await env.api.call("network.list", {}, reader)) == {"networks": []}
        for method in [s.name for s in env.api.specs.values() if s.access.value == "write"]:
            with pytest.raises(ApiError) as ei:
                await env.api.call(method, {"bogus": 1}, reader)  # refused before params are even read
            assert ei.value.code.name == "PERMISSION_DENIED" and "omerta" in ei.value.fix
        assert env.node.mesh.networks == {}
