"""A small synchronous JSON-RPC client for tests (the real client library comes with the clients work).

Framing as in docs/api.md: 4-byte big-endian length, then UTF-8 JSON. Notifications that arrive while
waiting for a response are kept in ``notifications``.
"""

from __future__ import annotations

import itertools
import json
import socket
from typing import Any


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error
        self.code = error.get("code")
        self.name = (error.get("data") or {}).get("name")
        self.fix = (error.get("data") or {}).get("fix")


class RpcClient:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.ids = itertools.count(1)
        self.notifications: list[dict[str, Any]] = []
        self.responses: dict[Any, dict[str, Any]] = {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RpcClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- framing
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(len(payload).to_bytes(4, "big") + payload)

    def send_obj(self, obj: Any) -> None:
        self.send_frame(json.dumps(obj).encode())

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            buf += chunk
        return bytes(buf)

    def read(self) -> Any:
        n = int.from_bytes(self._recv_exact(4), "big")
        return json.loads(self._recv_exact(n))

    # ---- calls
    def _keep(self, msg: Any) -> None:
        """File a message read while waiting for another: a notification, a response, or a batch of them."""
        if isinstance(msg, list):
            for m in msg:
                self.responses[m.get("id")] = m
        elif "method" in msg and "id" not in msg:
            self.notifications.append(msg)
        else:
            self.responses[msg.get("id")] = msg

    def wait_response(self, req_id: Any) -> dict[str, Any]:
        while req_id not in self.responses:
            self._keep(self.read())
        return self.responses.pop(req_id)

    def call_raw(self, method: str, params: Any = None) -> dict[str, Any]:
        rid = next(self.ids)
        req: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": rid}
        if params is not None:
            req["params"] = params
        self.send_obj(req)
        return self.wait_response(rid)

    def call(self, method: str, **params: Any) -> Any:
        resp = self.call_raw(method, params)
        if "error" in resp:
            raise RpcError(resp["error"])
        return resp["result"]

    def next_notification(self, method: str | None = None) -> dict[str, Any]:
        for i, n in enumerate(self.notifications):
            if method is None or n["method"] == method:
                return self.notifications.pop(i)
        while True:
            msg = self.read()
            if isinstance(msg, dict) and "method" in msg and "id" not in msg and (method is None or msg["method"] == method):
                return msg
            self._keep(msg)
