"""Regression (issue 12, fault 6): a lone surrogate in a network name stalled the daemon for good.

`network.create` with the name "\\ud800" (a lone surrogate: JSON allows the escape, UTF-8 cannot carry it)
answered INTERNAL, but the network was already created and saved (the invite encoder failed after it).
From then on every reply holding that name (`status.get`, `network.list`, `events.subscribe`) failed to
encode inside the connection task, which logged it and sent nothing: the client waited forever, also
after a restart (networks.json kept the name). Now every string parameter is checked where requests are
decoded (well-formed Unicode, length, the name rules), a reply that cannot be encoded becomes an error
reply, and a networks.json entry with such a name is repaired at load (the network is kept).
Real daemons, raw JSON-RPC frames with the escape in the bytes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from meshd.harness import DaemonProc
from meshd.rpcclient import RpcClient

LONE = "\ud800"
FAST = 5.0  # seconds: an answer that takes longer is a stall


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    d = DaemonProc(tmp_path_factory.mktemp("badstr"), "d").start()
    yield d
    d.close()


def raw_call(c: RpcClient, rid: Any, method: str, params: Any) -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
    c.send_frame(body)
    return c.wait_response(rid)


def invalid_params(resp: dict[str, Any], param: str) -> dict[str, Any]:
    assert "error" in resp, resp
    e = resp["error"]
    assert e["code"] == -32602 and e["data"]["name"] == "INVALID_PARAMS", e
    assert repr(param) in e["message"], e  # names the parameter
    assert e["data"]["fix"], e
    return e


def assert_serving(d: DaemonProc, networks: int | None = None) -> None:
    assert d.alive(), d.log_text()[-3000:]
    with d.client(timeout=FAST) as c:
        st = c.call("status.get")
        json.dumps(st, ensure_ascii=False).encode("utf-8")  # well-formed
        nets = c.call("network.list")["networks"]
        if networks is not None:
            assert len(nets) == networks, nets
        sub = c.call("events.subscribe")
        assert sub["subscription"] > 0 and sub["snapshot"], sub


def test_lone_surrogate_network_name_is_refused_and_nothing_is_saved(daemon: DaemonProc) -> None:
    with daemon.client(timeout=FAST) as c:
        c.send_frame(b'{"jsonrpc":"2.0","id":1,"method":"network.create","params":{"name":"\\ud800"}}')
        e = invalid_params(c.wait_response(1), "name")
        assert "surrogate" in e["message"] or "Unicode" in e["message"], e
        assert c.call("network.list") == {"networks": []}  # no state changed
    assert_serving(daemon, networks=0)
    daemon.stop()
    daemon.start()
    assert_serving(daemon, networks=0)


@pytest.mark.parametrize(
    "method, params, param",
    [
        ("network.create", {"name": "ok" + LONE + "ok"}, "name"),
        ("network.create", {"name": "tab\there"}, "name"),  # control characters are not in a name
        ("network.create", {"name": "\u00e9" * 40}, "name"),  # 80 bytes of UTF-8: over the 64 an invite carries
        ("network.join", {"invite": "omerta1-" + LONE}, "invite"),
        ("network.join", {"invite": "omerta1-" + "a" * 5000}, "invite"),
        ("network.leave", {"network": LONE}, "network"),
        ("network.invite", {"network": LONE}, "network"),
        ("peers.get", {"peer": LONE}, "peer"),
        ("peers.get", {"peer": "x" * 5000}, "peer"),
        ("peers.list", {"network": LONE}, "network"),
        ("ip.get", {"peer": LONE}, "peer"),
        ("ping", {"peer": "abcdefgh", "progress": LONE}, "progress"),
        ("channel.send", {"peer": LONE, "channel": "c", "data": "x"}, "peer"),
        ("channel.send", {"peer": "abcdefgh", "channel": LONE, "data": "x"}, "channel"),
        ("channel.send", {"peer": "abcdefgh", "channel": "c" * 65, "data": "x"}, "channel"),
        ("channel.send", {"peer": "abcdefgh", "channel": "c", "data": "hi " + LONE}, "data"),
        ("channel.send", {"peer": "abcdefgh", "channel": "c", "data": "x", "encoding": LONE}, "encoding"),
        ("channel.receive", {"channel": LONE}, "channel"),
        ("channel.receive", {"channel": "bell\x07"}, "channel"),
        ("channel.receive", {"channel": "c" * 65}, "channel"),
        ("channel.receive", {"channel": "c", "encoding": LONE}, "encoding"),
    ],
)
def test_bad_string_params_get_invalid_params(daemon: DaemonProc, method: str, params: dict, param: str) -> None:
    with daemon.client(timeout=FAST) as c:
        invalid_params(raw_call(c, 7, method, params), param)
        assert c.call("network.list") == {"networks": []}  # the same connection goes on; nothing was created
    assert_serving(daemon, networks=0)


def test_unencodable_reply_is_an_error_reply(daemon: DaemonProc) -> None:
    """A request id with a lone surrogate: its reply cannot be UTF-8; the client gets an error, not silence."""
    with daemon.client(timeout=FAST) as c:
        c.send_frame(b'{"jsonrpc":"2.0","id":"\\udc80x","method":"status.get"}')
        resp = c.read()
        assert "error" in resp and "result" not in resp, resp
        assert resp["error"]["code"] in (-32600, -32603) and resp["error"]["data"]["fix"], resp
        assert c.call("status.get")["api_version"] == 1  # the connection still serves
    assert_serving(daemon)


def test_saved_lone_surrogate_name_is_repaired_at_load(tmp_path: Path) -> None:
    """networks.json written by an older daemon with such a name: the daemon starts, keeps the network
    (its key and id), serves a sanitized name, and says so in its log."""
    d = DaemonProc(tmp_path, "old")
    try:
        d.start()
        net = d.call("network.create", name="keep")
        d.stop()
        path = d.state / "networks.json"
        doc = json.loads(path.read_text())
        doc["networks"][0]["name"] = "keep" + LONE  # what the old daemon wrote (json.dumps escapes it)
        path.write_text(json.dumps(doc, indent=1))
        assert "\\ud800" in path.read_text()
        d.start()
        started = time.monotonic()
        assert_serving(d, networks=1)
        assert time.monotonic() - started < 3 * FAST
        nets = d.call("network.list")["networks"]  # type: ignore[index]
        assert nets[0]["network"] == net["network"]  # type: ignore[index]
        assert nets[0]["name"].startswith("keep") and LONE not in nets[0]["name"], nets
        log = d.log_text()
        assert str(path) in log and "networks.json" in log, log[-3000:]
        assert "\\ud800" not in path.read_text()  # repaired on disk too
        assert d.call("network.invite", network=net["network"])["invite"].startswith("omerta1-")  # type: ignore[index]
        d.stop()
        d.start()
        assert_serving(d, networks=1)
    finally:
        d.close()


async def test_unencodable_result_and_event_in_process(tmp_path: Path) -> None:
    """Where the stall was: a result (or event) holding a lone surrogate. A result becomes an INTERNAL
    error reply with the request's id, an event goes out with U+FFFD, and both the connection and the
    subscription's forwarder go on serving."""
    from meshd.test_rpc_inprocess import Env, recv, send

    async with Env(tmp_path) as env:
        real = env.api.status_get

        async def poisoned(req: Any, ctx: Any) -> Any:
            st = await real(req, ctx)
            st.name = "bad" + LONE
            return st

        env.api.status_get = poisoned  # type: ignore[method-assign]
        r, w = await env.connect()
        await send(w, {"jsonrpc": "2.0", "method": "status.get", "id": 1})
        resp = await recv(r)
        assert resp["id"] == 1 and resp["error"]["code"] == -32603 and resp["error"]["data"]["name"] == "INTERNAL", resp
        await send(w, {"jsonrpc": "2.0", "method": "events.subscribe", "id": 2})
        sub = await recv(r)
        assert sub["id"] == 2 and sub["result"]["subscription"] > 0, sub
        env.hub.publish("daemon.reloaded", changed=["x" + LONE])
        env.hub.publish("daemon.reloaded", changed=["fine"])
        first, second = await recv(r), await recv(r)
        assert first["params"]["event"]["changed"] == ["x\ufffd"], first
        assert second["params"]["event"]["changed"] == ["fine"], second
        await send(w, {"jsonrpc": "2.0", "method": "network.list", "id": 3})
        assert (await recv(r))["result"] == {"networks": []}
        w.close()
