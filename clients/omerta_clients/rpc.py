"""JSON-RPC client for omerta-meshd's Unix socket: synchronous (``Client``) and asyncio (``AsyncClient``).

Framing (docs/api.md): every message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
Both clients:

* ``call(method, params)`` returns the ``result`` unchanged, or raises ``errors.RpcError`` carrying the
  daemon's code, message and fix;
* ``call_streamed(method, params, on_progress)`` passes a ``progress`` token and hands each ``progress``
  notification's value to ``on_progress`` before the result arrives (``ping``);
* ``subscribe()`` returns the ``events.subscribe`` result (the snapshot); later ``events.event``
  notifications come out of ``next_event``; an ``events.closed`` notification raises a ``ClientError``.

Connection failures become ``DaemonNotRunning`` (no socket, nobody listening) or
``SocketPermissionDenied`` (the file or directory is closed to this user), so callers map them to exit
codes without looking at errno.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import json
import os
import socket
import stat
import time
from collections import deque
from typing import Any, Callable, Iterator

from .errors import DAEMON_DOWN, ClientError, DaemonNotRunning, RpcError, SocketPermissionDenied, Timeout

DEFAULT_SOCKET = "/run/omerta/meshd.sock"
HEADER = 4
MAX_FRAME = 64 << 20  # refuse absurd frames instead of allocating them
DEFAULT_TIMEOUT = 30.0

Json = dict[str, Any]
Progress = Callable[[Json], None]


def default_socket() -> str:
    """``$OMERTA_SOCKET`` if set, else the system daemon's socket."""
    return os.environ.get("OMERTA_SOCKET") or DEFAULT_SOCKET


def encode_frame(obj: Any) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return len(body).to_bytes(HEADER, "big") + body


def connect_error(path: str, e: OSError) -> ClientError:
    """The user-facing error for a failed ``connect()`` on the daemon's socket."""
    if e.errno in (errno.EACCES, errno.EPERM):
        return SocketPermissionDenied(path)
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return DaemonNotRunning(path, "no such socket")
    if e.errno == errno.ECONNREFUSED:
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            is_socket = True
        if not is_socket:
            return ClientError(f"{path} is not a socket (it is a regular file or another kind of file)",
                               "pass the daemon's socket with --socket (default /run/omerta/meshd.sock)", DAEMON_DOWN, "DAEMON_NOT_RUNNING")
        return DaemonNotRunning(path, "connection refused: a stale socket")
    return ClientError(f"cannot connect to {path}: {e.strerror or e}", "check the --socket path and that omerta-meshd runs", DAEMON_DOWN)


def frame_length(head: bytes | bytearray) -> int:
    """The body length a frame header announces (refusing absurd ones)."""
    n = int.from_bytes(head[:HEADER], "big")
    if n > MAX_FRAME:
        raise ClientError(f"the daemon sent a frame of {n} bytes", "check that --socket points at omerta-meshd")
    return n


def lost(path: str) -> ClientError:
    return ClientError(f"the daemon closed the connection on {path}", "it may have stopped: see `journalctl -u omerta-meshd`",
                       DAEMON_DOWN, "DAEMON_NOT_RUNNING")


class _Router:
    """What both clients share: request ids and frames out; responses by id, progress by token, events
    queued in."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.responses: dict[Any, Json] = {}
        self.progress: dict[str, Progress] = {}
        self.events: deque[Json | ClientError] = deque()

    def request(self, method: str, params: Json | None) -> tuple[int, bytes]:
        """A fresh request id and the frame that carries the request."""
        rid = next(self.ids)
        req: Json = {"jsonrpc": "2.0", "method": method, "id": rid}
        if params:
            req["params"] = params
        return rid, encode_frame(req)

    @contextlib.contextmanager
    def streaming(self, method: str, params: Json, on_progress: Progress) -> Iterator[Json]:
        """``params`` with a fresh progress token whose notifications go to ``on_progress`` meanwhile."""
        token = f"{method}-{os.getpid()}-{next(self.ids)}"
        self.progress[token] = on_progress
        try:
            yield {**params, "progress": token}
        finally:
            self.progress.pop(token, None)

    def route(self, msg: Any) -> ClientError | None:
        """File one message; returns an error the daemon sent without an id (BUSY, FRAME_TOO_LARGE)."""
        if isinstance(msg, list):
            for m in msg:
                self.route(m)
            return None
        if not isinstance(msg, dict):
            return None
        method = msg.get("method")
        if method is not None and "id" not in msg:
            params = msg.get("params") or {}
            if method == "progress":
                token = params.get("token")
                cb = self.progress.get(token) if isinstance(token, str) else None
                if cb is not None:
                    cb(params.get("value") or {})
            elif method == "events.event":
                self.events.append(params.get("event") or {})
            elif method == "events.closed":
                self.events.append(ClientError(
                    f"the daemon ended the event subscription: {params.get('reason', 'closed')}",
                    str(params.get("fix") or "subscribe again"), DAEMON_DOWN if params.get("code") == 1011 else 1,
                    "SUBSCRIPTION_CLOSED"))
            return None
        if msg.get("id") is None and "error" in msg:
            return RpcError(msg["error"])
        self.responses[msg.get("id")] = msg
        return None


def _result(resp: Json) -> Any:
    if "error" in resp:
        raise RpcError(resp["error"])
    return resp.get("result")


# ====================================================================== synchronous
class Client:
    """A blocking client on one connection. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path or default_socket()
        self.timeout = timeout
        self._router = _Router()
        self._buf = bytearray()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(min(timeout, 10.0))
            self.sock.connect(self.path)
        except OSError as e:
            self.sock.close()
            raise connect_error(self.path, e) from None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # ---- wire
    def _send(self, frame: bytes) -> None:
        try:
            self.sock.sendall(frame)
        except OSError:
            raise lost(self.path) from None

    def _take_frame(self) -> Any | None:
        if len(self._buf) < HEADER:
            return None
        n = frame_length(self._buf)
        if len(self._buf) < HEADER + n:
            return None
        body = bytes(self._buf[HEADER:HEADER + n])
        del self._buf[:HEADER + n]
        try:
            return json.loads(body)
        except ValueError:
            raise ClientError("the daemon sent a frame that is not JSON", "check that --socket points at omerta-meshd") from None

    def _pump(self, deadline: float | None) -> None:
        """Read and route at least one message (or raise Timeout at the deadline)."""
        while True:
            msg = self._take_frame()
            if msg is not None:
                err = self._router.route(msg)
                if err is not None:
                    raise err
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout("the daemon did not answer in time", "retry, or pass a longer --timeout")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Timeout("the daemon did not answer in time", "retry, or pass a longer --timeout") from None
            except OSError:
                raise lost(self.path) from None
            if not chunk:
                raise lost(self.path)
            self._buf += chunk

    # ---- calls
    def request(self, method: str, params: Json | None = None) -> int:
        rid, frame = self._router.request(method, params)
        self._send(frame)
        return rid

    def wait(self, rid: int, timeout: float | None = None) -> Any:
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        while rid not in self._router.responses:
            self._pump(deadline)
        return _result(self._router.responses.pop(rid))

    def call(self, method: str, params: Json | None = None, *, timeout: float | None = None) -> Any:
        return self.wait(self.request(method, params), timeout)

    def call_streamed(self, method: str, params: Json, on_progress: Progress, *, timeout: float | None = None) -> Any:
        with self._router.streaming(method, params, on_progress) as streamed:
            return self.call(method, streamed, timeout=timeout)

    # ---- events
    def subscribe(self) -> Json:
        return self.call("events.subscribe")

    def next_event(self, timeout: float | None = None) -> Json | None:
        """The next event, or None after ``timeout`` seconds (None: wait forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._router.events:
            try:
                self._pump(deadline)
            except Timeout:
                return None
        item = self._router.events.popleft()
        if isinstance(item, ClientError):
            raise item
        return item


# ====================================================================== asyncio
class AsyncClient:
    """The asyncio twin of ``Client``: ``await AsyncClient.connect(path)``, then calls and events."""

    def __init__(self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.reader, self.writer = reader, writer
        self._router = _Router()
        self._waiters: dict[int, asyncio.Future] = {}
        self._event_wake = asyncio.Event()
        self._lost: ClientError | None = None
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, path: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> "AsyncClient":
        path = path or default_socket()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path, limit=MAX_FRAME), min(timeout, 10.0))
        except OSError as e:
            raise connect_error(path, e) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise Timeout(f"connecting to {path} timed out", "check that omerta-meshd is healthy") from None
        return cls(path, reader, writer, timeout)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, ConnectionError):
            pass

    async def _read_loop(self) -> None:
        try:
            while True:
                n = frame_length(await self.reader.readexactly(HEADER))
                msg = json.loads(await self.reader.readexactly(n))
                err = self._router.route(msg)
                if err is not None:
                    raise err
                for rid in [r for r in self._router.responses if r in self._waiters]:
                    fut = self._waiters.pop(rid)
                    if not fut.done():
                        fut.set_result(self._router.responses.pop(rid))
                if self._router.events:
                    self._event_wake.set()
        except asyncio.CancelledError:
            self._fail(lost(self.path))
            raise
        except ClientError as e:
            self._fail(e)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            self._fail(lost(self.path))

    def _fail(self, err: ClientError) -> None:
        self._lost = err
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(err)
        self._waiters.clear()
        self._event_wake.set()

    async def call(self, method: str, params: Json | None = None, *, timeout: float | None = None) -> Any:
        if self._lost is not None:
            raise self._lost
        rid, frame = self._router.request(method, params)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        try:
            self.writer.write(frame)
            await self.writer.drain()
            # asyncio.wait, not wait_for: wait_for can swallow a cancellation that races the answer
            # (Python < 3.12), and a loop around call() would then never stop
            done, _ = await asyncio.wait({fut}, timeout=self.timeout if timeout is None else timeout)
        except (ConnectionError, OSError):
            raise lost(self.path) from None
        finally:
            self._waiters.pop(rid, None)
        if not done:
            raise Timeout(f"the daemon did not answer {method} in time", "retry, or pass a longer timeout")
        return _result(fut.result())

    async def call_streamed(self, method: str, params: Json, on_progress: Progress, *, timeout: float | None = None) -> Any:
        with self._router.streaming(method, params, on_progress) as streamed:
            return await self.call(method, streamed, timeout=timeout)

    async def subscribe(self) -> Json:
        return await self.call("events.subscribe")

    async def next_event(self, timeout: float | None = None) -> Json | None:
        """The next event, or None after ``timeout`` seconds; raises once the subscription or link ends."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while not self._router.events:
            if self._lost is not None:
                raise self._lost
            self._event_wake.clear()
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                return None
            waiter = asyncio.ensure_future(self._event_wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=left)
            finally:
                waiter.cancel()
        item = self._router.events.popleft()
        if isinstance(item, ClientError):
            raise item
        return item
