"""JSON-RPC errors over the real socket of a real daemon: each refusal is the documented error, and the
daemon keeps serving afterwards (the module's last test checks it is still alive and answering)."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from meshd.rpcclient import RpcClient, RpcError

MAX_FRAME = 4194304


def assert_serving(d) -> None:
    assert d.alive(), d.log_text()
    with d.client() as c:
        assert c.call("status.get")["api_version"] == 1


def err(resp: dict) -> dict:
    assert "error" in resp and "result" not in resp, resp
    e = resp["error"]
    assert set(e) == {"code", "message", "data"} and {"name", "fix"} <= set(e["data"]), e
    return e


def test_unknown_method(shared_daemon) -> None:
    with shared_daemon.client() as c:
        e = err(c.call_raw("peers.delete_everything", {}))
        assert e["code"] == -32601 and e["data"]["name"] == "METHOD_NOT_FOUND"
        assert "peers.delete_everything" in e["message"]
        assert c.call("network.list") == {"networks": []}  # same connection goes on
    assert_serving(shared_daemon)


@pytest.mark.parametrize(
    "method, params, needle",
    [
        ("peers.list", {"network": 5}, "'network' must be a string or null"),
        ("peers.get", {}, "missing required parameter 'peer'"),
        ("ping", {"peer": "abcdefgh", "count": 0}, "'count' must be between 1 and 100"),
        ("ping", {"peer": "abcdefgh", "count": True}, "'count' must be a integer"),
        ("peers.list", {"network": None, "colour": "red"}, "unknown parameter 'colour'"),
        ("peers.list", ["a", "b"], "too many parameters"),
        ("network.create", {"name": "x" * 65}, "too long"),
        ("events.unsubscribe", {"subscription": 1.5}, "must be a integer"),
        ("status.get", "params-as-a-string", None),
    ],
)
def test_bad_params(shared_daemon, method, params, needle) -> None:
    with shared_daemon.client() as c:
        if needle is None:  # not even a valid request shape: refused with id null, as JSON-RPC says
            c.send_obj({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
            resp = c.read()
            assert resp["id"] is None and err(resp)["code"] == -32600 and resp["error"]["data"]["name"] == "INVALID_REQUEST"
        else:
            e = err(c.call_raw(method, params))
            assert e["code"] == -32602 and e["data"]["name"] == "INVALID_PARAMS"
            assert needle in e["message"], e["message"]


def test_api_errors_carry_code_message_and_fix(shared_daemon) -> None:
    with shared_daemon.client() as c:
        with pytest.raises(RpcError) as ei:
            c.call("peers.get", peer="zzzzzzzzzzzz")
        assert ei.value.code == 1002 and ei.value.name == "PEER_NOT_FOUND" and "omertactl peers" in ei.value.fix
        with pytest.raises(RpcError) as ei:
            c.call("network.join", invite="omerta1-notreally", wait=0)
        assert ei.value.name == "INVITE_INVALID" and ei.value.code == 1005
        with pytest.raises(RpcError) as ei:
            c.call("network.leave", network="nosuchnet")
        assert ei.value.name == "NETWORK_NOT_FOUND"
        with pytest.raises(RpcError) as ei:
            c.call("channel.send", peer="x" * 10, channel="c", data="***", encoding="base64")
        assert ei.value.name == "INVALID_PARAMS" and "base64" in str(ei.value)


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"this is not json", -32700),
        (b"\xff\xfe\x00garbage", -32700),
        (b"[" * 200_000, -32700),  # nesting deeper than the JSON parser's recursion limit
        (b"42", -32600),
        (b'{"jsonrpc": "1.0", "method": "status.get", "id": 1}', -32600),
        (b"[]", -32600),
        (b"", -32700),
    ],
)
def test_garbage_inside_a_frame_is_refused_and_the_connection_goes_on(shared_daemon, payload, code) -> None:
    with shared_daemon.client() as c:
        c.send_frame(payload)
        resp = c.read()
        assert err(resp)["code"] == code and resp["id"] is None
        assert c.call("status.get")["api_version"] == 1


def test_garbage_bytes_instead_of_frames(shared_daemon) -> None:
    with shared_daemon.client() as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # "GET " read as a length of 1.2 GB
        e = err(c.read())
        assert e["code"] == 1008 and e["data"]["name"] == "FRAME_TOO_LARGE"
        with pytest.raises((ConnectionError, OSError)):
            c.read()  # the stream cannot be resynchronised: the daemon closed it
    assert_serving(shared_daemon)


def test_oversized_frame(shared_daemon) -> None:
    with shared_daemon.client() as c:
        c.send_raw(struct.pack(">I", MAX_FRAME + 1) + b"{")
        e = err(c.read())
        assert e["code"] == 1008 and str(MAX_FRAME) in e["message"]
    with shared_daemon.client() as c:  # a frame just under the limit is read and parsed
        body = json.dumps({"jsonrpc": "2.0", "method": "status.get", "id": 1, "params": {"pad": "x" * (MAX_FRAME - 200)}}).encode()
        assert len(body) <= MAX_FRAME
        c.send_frame(body)
        assert err(c.read())["code"] == -32602  # unknown parameter 'pad', not a frame error
    assert_serving(shared_daemon)


def test_abrupt_disconnects(shared_daemon) -> None:
    path = str(shared_daemon.socket)
    for send in (b"", b"\x00\x00", b"\x00\x00\x00\x40{\"jsonrpc\"", None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        if send is None:  # a request whose answer nobody reads: reset the connection under it
            body = json.dumps({"jsonrpc": "2.0", "method": "channel.receive", "params": {"channel": "x", "timeout": 0.3}, "id": 1}).encode()
            s.sendall(struct.pack(">I", len(body)) + body)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            s.sendall(send)
        s.close()
    # many clients that subscribe and vanish
    for _ in range(20):
        c = RpcClient(path)
        c.call("events.subscribe")
        c.close()
    assert_serving(shared_daemon)


def test_a_client_that_half_closes_still_gets_its_answers(shared_daemon) -> None:
    with shared_daemon.client() as c:
        c.send_obj([{"jsonrpc": "2.0", "method": "channel.receive", "params": {"channel": "hc", "timeout": 0.2}, "id": 1}])
        c.send_obj({"jsonrpc": "2.0", "method": "status.get", "id": 2})
        c.sock.shutdown(socket.SHUT_WR)
        got = [c.read(), c.read()]
        assert {(r[0] if isinstance(r, list) else r)["id"] for r in got} == {1, 2}
        assert c.sock.recv(1) == b""  # then the daemon closes


def test_batches_and_notifications(shared_daemon) -> None:
    with shared_daemon.client() as c:
        batch = [
            {"jsonrpc": "2.0", "method": "status.get", "id": "a"},
            {"jsonrpc": "2.0", "method": "network.list"},  # a notification: no answer
            {"jsonrpc": "2.0", "method": "nope", "id": "b"},
            {"jsonrpc": "2.0", "method": "peers.list", "params": {"network": 1}, "id": "c"},
        ]
        c.send_obj(batch)
        resp = c.read()
        assert isinstance(resp, list) and {r["id"] for r in resp} == {"a", "b", "c"}
        by_id = {r["id"]: r for r in resp}
        assert by_id["a"]["result"]["api_version"] == 1
        assert err(by_id["b"])["code"] == -32601 and err(by_id["c"])["code"] == -32602
        # a lone notification gets nothing back: the next frame read answers the next request
        c.send_obj({"jsonrpc": "2.0", "method": "status.get"})
        c.send_obj({"jsonrpc": "2.0", "method": "network.list", "id": 7})
        assert c.read()["id"] == 7
        c.send_obj([{"jsonrpc": "2.0", "method": "status.get", "id": i} for i in range(65)])
        e = err(c.read())
        assert e["code"] == -32600 and "at most 64" in e["message"]


def test_still_serving_after_everything(shared_daemon) -> None:
    assert_serving(shared_daemon)
    counters = shared_daemon.call("status.get")["counters"]
    assert counters["rpc.parse_errors"] >= 4 and counters["rpc.frames_too_large"] >= 2 and counters["rpc.batches_too_large"] == 1
    assert "Traceback" not in shared_daemon.log_text()
