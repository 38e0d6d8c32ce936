"""The client the daemon tests use: the real one (``omerta_clients.rpc.Client``), not a second copy.

Tests add only what the real client must never do: send raw bytes or frames (malformed input, to check
the daemon refuses it), read the next message as it came, and wait for a notification of any method.
``call(method, **params)`` takes the parameters by keyword (every keyword is a parameter, ``timeout``
included); ``call(method, {...})`` works as in the real client. Errors are the real ``RpcError``.
"""

from __future__ import annotations

import json
from typing import Any

from omerta_clients.errors import RpcError
from omerta_clients.rpc import Client

__all__ = ["RpcClient", "RpcError"]


class RpcClient(Client):
    def __init__(self, path: Any, timeout: float = 10.0) -> None:
        super().__init__(str(path), timeout)
        self.notifications: list[dict[str, Any]] = []
        self.raw: dict[Any, dict[str, Any]] = {}
        route = self._router.route

        def keep_notifications(msg: Any) -> Any:  # also seen raw by next_notification, even during a call
            for m in msg if isinstance(msg, list) else [msg]:
                if isinstance(m, dict) and "method" in m and "id" not in m:
                    self.notifications.append(m)
            return route(msg)

        self._router.route = keep_notifications  # type: ignore[method-assign]

    def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:  # type: ignore[override]
        return super().call(method, params if params is not None else (kw or None))

    # ---- the raw wire (malformed input on purpose)
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(len(payload).to_bytes(4, "big") + payload)

    def send_obj(self, obj: Any) -> None:
        self.send_frame(json.dumps(obj).encode())

    def read(self) -> Any:
        """The next message from the daemon as it came (the real client's framing and frame checks)."""
        while True:
            msg = self._take_frame()
            if msg is not None:
                return msg
            self.sock.settimeout(self.timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self._buf += chunk

    def _keep(self, msg: Any) -> None:
        for m in msg if isinstance(msg, list) else [msg]:
            if isinstance(m, dict) and "method" in m and "id" not in m:
                self.notifications.append(m)
            elif isinstance(m, dict):
                self.raw[m.get("id")] = m

    def wait_response(self, req_id: Any) -> dict[str, Any]:
        while req_id not in self.raw:
            self._keep(self.read())
        return self.raw.pop(req_id)

    def call_raw(self, method: str, params: Any = None) -> dict[str, Any]:
        """The whole response object (result or error), without raising."""
        rid = self.request(method, params)
        return self.wait_response(rid)

    def next_notification(self, method: str | None = None) -> dict[str, Any]:
        while True:
            for i, n in enumerate(self.notifications):
                if method is None or n["method"] == method:
                    return self.notifications.pop(i)
            self._keep(self.read())
