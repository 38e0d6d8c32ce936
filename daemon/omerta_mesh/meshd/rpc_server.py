"""JSON-RPC 2.0 on a Unix socket: length-prefixed frames, jsonrpcserver dispatch, notifications.

Framing (docs/api.md): every message in either direction is one frame, a 4-byte big-endian unsigned
length followed by that many bytes of UTF-8 JSON: a request, a batch (array), a response, or a
notification from the daemon. A frame longer than ``api.max_frame`` is answered with ``FRAME_TOO_LARGE``
and the connection is closed (the stream cannot be resynchronised); a frame that is not JSON gets a parse
error and the connection goes on.

Daemon-to-client notifications: ``events.event`` and ``events.closed`` for subscriptions, ``progress`` for
streamed results of a request that passed a ``progress`` token.

The caller's credentials are read once per connection (``auth.caller_of``) and ``DaemonAPI.call_spec``
checks the method's access level before anything else. Limits: connections (``api.max_connections``,
plus a few reserved for callers who may write), frame size, batch size, requests in flight (each item of a
batch counts) per connection (``api.max_inflight``), per non-root uid and in total (``rpc_work.py``: the
reader stops reading while they are all busy; requests start a few per loop turn, uid after uid), reply
bytes buffered for a client that does not read (``api.reply_buffer``: over it the client's requests are
neither read nor started; over it for ``api.slow_reader_timeout`` s, or over four times it, the connection
is closed and counted in ``rpc.slow_readers_closed``), and events queued per subscriber (a slow subscriber
is cut off; the daemon never waits for a client). While requests queue, status.get is answered from a copy
at most ``CACHE_UNDER_LOAD`` s old.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import socket
import stat
import warnings
from pathlib import Path
from typing import Any, Callable

with warnings.catch_warnings():  # jsonrpcserver 5 uses importlib.resources.read_text, deprecated in 3.11
    warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)
    from jsonrpcserver import Error, Success
    from jsonrpcserver.async_main import dispatch_to_serializable

from . import auth
from .api import CallContext, DaemonAPI
from .errors import DEFAULT_FIX, ApiError, Code, internal
from .events import Subscription, SubscriptionClosed
from .registry import MethodSpec
from .rpc_work import Work
from .schema import to_json

log = logging.getLogger("omerta_mesh.meshd.rpc")

HEADER = 4
RESERVED_FOR_WRITERS = 8
CUTOFF_WRITE_TIMEOUT = 5.0
FRAME_TIMEOUT = 10.0  # seconds a frame may take to arrive once its header has (a 1-byte-per-second client is cut)
HALF_CLOSE_WAIT = 120.0  # longest a request may still run after its client closed its sending side
HARD_REPLY_FACTOR = 4  # replies buffered past this many times api.reply_buffer (while not read) close the connection
CACHE_UNDER_LOAD = {"status.get": 0.25}  # method -> seconds its reply may be reused while requests wait for a turn
_MESSAGES = {  # jsonrpcserver's generic messages -> ours
    Code.PARSE_ERROR: "the frame is not valid JSON",
    Code.INVALID_REQUEST: "not a valid JSON-RPC 2.0 request",
    Code.INVALID_PARAMS: "invalid parameters",
}


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str from json.loads every surrogate is a lone one
_UNENCODABLE = (ValueError, TypeError, RecursionError)  # UnicodeEncodeError is a ValueError


def frame(obj: Any) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return len(data).to_bytes(HEADER, "big") + data


def error_obj(e: ApiError, req_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": int(e.code), "message": e.message, "data": e.data()}, "id": req_id}


def _encodable(obj: Any) -> bool:
    try:
        frame(obj)
        return True
    except _UNENCODABLE:
        return False


def bad_id_error() -> ApiError:
    return ApiError(Code.INVALID_REQUEST, "the request id is not well-formed Unicode (a lone surrogate): no answer could carry it",
                    "use a number or a well-formed string as the request id")


def _sendable_one(msg: Any) -> Any:
    """``msg`` if it can be sent as UTF-8 JSON; else what is sent instead: a response becomes an error reply
    (INTERNAL, its id kept; INVALID_REQUEST with id null if the id itself is the problem), a notification
    keeps its text with U+FFFD for what UTF-8 cannot carry (None if even that cannot be encoded)."""
    if _encodable(msg):
        return msg
    if isinstance(msg, dict) and "method" in msg and "id" not in msg:
        try:
            fixed = json.loads(_LONE_SURROGATE.sub("\ufffd", json.dumps(msg, ensure_ascii=False)))
        except _UNENCODABLE:
            return None
        return fixed if _encodable(fixed) else None
    rid = msg.get("id") if isinstance(msg, dict) else None
    if not _encodable(rid):
        return error_obj(bad_id_error(), None)
    return error_obj(ApiError(Code.INTERNAL, "the reply held text that cannot be sent as UTF-8 JSON (such as a lone surrogate); "
                              "details are in the daemon log"), rid)


def safe_frame(obj: Any) -> tuple[bytes | None, bool]:
    """(the frame for ``obj`` or for what replaces it, whether it was replaced). Never raises: an unencodable
    reply is an error reply, not an exception that would end the task that sends it (and leave the client
    waiting for an answer that never comes)."""
    try:
        return frame(obj), False
    except _UNENCODABLE:
        pass
    if isinstance(obj, list):
        items = [m for m in (_sendable_one(m) for m in obj) if m is not None]
        return (frame(items) if items else None), True
    one = _sendable_one(obj)
    return (frame(one) if one is not None else None), True


def bad_ids(doc: Any) -> bool:
    """A request (or a batch with one) whose id cannot be echoed: refused before it runs."""
    reqs = doc if isinstance(doc, list) else [doc]
    return any(isinstance(r, dict) and isinstance(r.get("id"), str) and not _encodable(r["id"]) for r in reqs)


def _sanitize_one(resp: dict[str, Any]) -> dict[str, Any]:
    """Every error leaves in our shape: {code, message, data: {name, fix[, detail]}}, never internals."""
    err = resp.get("error")
    if not isinstance(err, dict):
        return resp
    data = err.get("data")
    if isinstance(data, dict) and "fix" in data:
        return resp
    try:
        code = Code(err["code"])
    except (KeyError, ValueError):
        code = Code.INTERNAL
    if code is Code.INTERNAL or code not in (Code.PARSE_ERROR, Code.INVALID_REQUEST, Code.METHOD_NOT_FOUND, Code.INVALID_PARAMS):
        log.error("dispatch error not mapped by a method: %r", err)
        return error_obj(internal(), resp.get("id"))
    detail = str(data)[:200] if data is not None else None
    msg = f"no method {detail!r}" if code is Code.METHOD_NOT_FOUND else _MESSAGES.get(code, err.get("message", ""))
    new = {"name": code.name, "fix": DEFAULT_FIX[code]}
    if detail and code is not Code.METHOD_NOT_FOUND:
        new["detail"] = detail
    return {**resp, "error": {"code": int(code), "message": msg, "data": new}}


def sanitize(resp: Any) -> Any:
    if isinstance(resp, list):
        return [_sanitize_one(r) for r in resp]
    return _sanitize_one(resp) if isinstance(resp, dict) else resp


class Connection:
    def __init__(self, server: "RpcServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter, caller: auth.Caller) -> None:
        self.server = server
        self.reader, self.writer = reader, writer
        self.caller = caller
        self.subs: dict[int, Subscription] = {}
        self.forwarders: dict[int, asyncio.Task] = {}
        self.pending: list[Subscription] = []
        self.tasks: set[asyncio.Task] = set()
        self.closed = False
        self.inflight = 0  # requests read and not yet answered (each item of a batch counts)
        self._freed = asyncio.Event()
        self.watch: asyncio.Task | None = None  # closes the connection if its replies stay unread
        self.ctx = CallContext(caller, "jsonrpc", progress=self.progress, attach=self.attach, detach=self.detach)
        # past api.reply_buffer unsent bytes, drain() waits (until the client has read down to a quarter of it)
        writer.transport.set_write_buffer_limits(high=server.limits().reply_buffer)

    # ---- output
    def send(self, obj: Any) -> None:
        if self.closed or self.writer.is_closing():
            return
        data, replaced = safe_frame(obj)
        if replaced:
            self.server.stats["replies_unencodable"] += 1
            log.error("a message to %s could not be encoded as UTF-8 JSON; sent %s: %.500r", self.caller.describe(),
                      "a replacement" if data is not None else "nothing", obj)
        if data is not None:
            self.writer.write(data)
            self._check_buffer(len(data))

    # ---- a client that does not read its replies
    def buffered(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    def _check_buffer(self, added: int) -> None:
        size, soft = self.buffered(), self.server.limits().reply_buffer
        if size <= soft:
            return
        if size - added > soft and size > HARD_REPLY_FACTOR * soft:  # it was over the bound already: not reading
            self._cut(f"{size} reply bytes unread, over {HARD_REPLY_FACTOR} x api.reply_buffer ({soft})")
        elif self.watch is None:
            self.watch = asyncio.get_running_loop().create_task(self._watch_slow())

    async def _watch_slow(self) -> None:
        timeout = self.server.limits().slow_reader_timeout
        try:
            await asyncio.wait_for(self.writer.drain(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            self._cut(f"more than api.reply_buffer ({self.server.limits().reply_buffer}) reply bytes unread for {timeout} s")
        except ConnectionError:
            pass
        finally:
            self.watch = None

    def _cut(self, why: str) -> None:
        self.server.stats["slow_readers_closed"] += 1
        log.info("closed the connection of %s: %s", self.caller.describe(), why)
        self.abort()

    async def room(self) -> None:
        """Return once the replies buffered for this client are within api.reply_buffer (it reads them)."""
        if self.buffered() > self.server.limits().reply_buffer:
            await self.writer.drain()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def progress(self, token: str, value: dict[str, Any]) -> None:
        self.notify("progress", {"token": token, "value": value})

    # ---- subscriptions
    def attach(self, sub: Subscription) -> None:
        self.subs[sub.id] = sub
        self.pending.append(sub)  # forwarding starts once the subscribe response is written

    def detach(self, sid: int) -> bool:
        sub = self.subs.pop(sid, None)
        if sub is None:
            return False
        sub.close("unsubscribed")
        t = self.forwarders.pop(sid, None)
        if t is not None:
            t.cancel()
        return True

    def _start_pending(self) -> None:
        for sub in self.pending:
            if sub.closed is None and not self.closed:
                self.forwarders[sub.id] = asyncio.get_running_loop().create_task(self._forward(sub))
        self.pending.clear()

    async def _forward(self, sub: Subscription) -> None:
        try:
            while True:
                for item in await sub.get():
                    self.notify("events.event", {"subscription": sub.id, "event": item})
                await self.writer.drain()
        except SubscriptionClosed as e:
            if e.reason == "unsubscribed" or self.closed:
                return
            code = Code.SUBSCRIBER_TOO_SLOW if "slow" in e.reason else Code.SHUTTING_DOWN
            self.server.stats["subscribers_cut_off" if code is Code.SUBSCRIBER_TOO_SLOW else "subscriptions_ended"] += 1
            log.info("subscription %d of %s ended: %s", sub.id, self.caller.describe(), e.reason)
            self.notify("events.closed", {"subscription": sub.id, "code": int(code), "reason": e.reason, "fix": DEFAULT_FIX[code]})
            try:
                await asyncio.wait_for(self.writer.drain(), CUTOFF_WRITE_TIMEOUT)
            except (asyncio.TimeoutError, TimeoutError, ConnectionError):
                self.abort()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self.subs.pop(sub.id, None)
            self.forwarders.pop(sub.id, None)

    # ---- input
    async def serve(self) -> None:
        try:
            while not self.closed:
                await self.room()  # a client over its reply bound is not read until it reads
                # idle (nothing asked, nothing subscribed): closed after api.idle_timeout, so idle connections
                # cannot hold the slots for ever
                idle = None if self.tasks or self.subs else float(self.server.limits().idle_timeout)
                try:
                    head = await asyncio.wait_for(self.reader.readexactly(HEADER), idle)
                except (asyncio.TimeoutError, TimeoutError):
                    self.server.stats["idle_closed"] += 1
                    return
                n = int.from_bytes(head, "big")
                limit = self.server.limits().max_frame  # read per frame: a reload changes it
                if n > limit:
                    self.server.stats["frames_too_large"] += 1
                    log.debug("refused frame: size=%d limit=%d caller=%s", n, limit, self.caller.describe())
                    self.send(error_obj(ApiError(Code.FRAME_TOO_LARGE, f"frame of {n} bytes; the limit is {limit}")))
                    await asyncio.wait_for(self.writer.drain(), CUTOFF_WRITE_TIMEOUT)
                    return
                try:
                    body = await asyncio.wait_for(self.reader.readexactly(n), FRAME_TIMEOUT)
                except (asyncio.TimeoutError, TimeoutError):
                    self.server.stats["slow_frames_closed"] += 1
                    return
                doc, refusal = self.server.parse(body, self)
                n = len(doc) if refusal is None and isinstance(doc, list) and doc else 1
                await self._admit(n)
                t = asyncio.get_running_loop().create_task(self._handle(doc, refusal))
                self.tasks.add(t)
                t.add_done_callback(self._done_with(n))
        except asyncio.IncompleteReadError as e:
            if not e.partial and self.tasks:  # a clean end of input (shutdown(SHUT_WR)): answer what was asked
                await asyncio.wait(set(self.tasks), timeout=HALF_CLOSE_WAIT)
        except (ConnectionError, asyncio.TimeoutError, TimeoutError):
            return  # the client went away (or would not read): nothing to answer
        finally:
            self.close()

    async def _admit(self, n: int) -> None:
        """Wait until ``n`` more requests fit this connection's api.max_inflight (a bigger batch alone), then
        the bounds per uid and in total."""
        while self.inflight and self.inflight + n > self.server.limits().max_inflight:
            self._freed.clear()
            await self._freed.wait()
        await self.server.work.admit(self.caller.uid, self.caller.may_write, n)
        self.inflight += n

    def _done_with(self, n: int) -> Callable[[asyncio.Task[None]], None]:
        """The done-callback of a request task: forget it and free its in-flight requests."""
        def done(t: asyncio.Task[None]) -> None:
            self.tasks.discard(t)
            self.inflight -= n
            self._freed.set()
            self.server.work.release(self.caller.uid, n)
        return done

    async def _handle(self, doc: Any, refusal: Any) -> None:
        try:
            resp = refusal if refusal is not None else await self.server.dispatch(doc, self)
            if resp is not None:
                self.send(resp)
            self._start_pending()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # never let one request take the connection down silently, nor leave it unanswered
            log.exception("handling a request failed")
            self.send(error_obj(internal(), doc.get("id") if isinstance(doc, dict) else None))

    def abort(self) -> None:
        self.writer.transport.abort()  # (also after close(): drops replies still buffered for a client that never read)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sid in list(self.subs):
            self.detach(sid)
        for t in list(self.tasks):
            t.cancel()
        self.writer.close()
        self.server.connections.discard(self)


class RpcServer:
    def __init__(self, api: DaemonAPI, path: Path, write_gid: Callable[[], int | None]) -> None:
        self.api = api
        self.path = Path(path)
        self.write_gid = write_gid
        self.connections: set[Connection] = set()
        self.serving: set[asyncio.Task] = set()
        self.stats: collections.Counter[str] = collections.Counter()
        self.work = Work(self.limits)
        self._cache: dict[str, tuple[float, Any]] = {}  # method -> (when, result) for CACHE_UNDER_LOAD
        self.methods = {spec.name: self._method(spec) for spec in api.specs.values()}
        api.counter_sources.append(lambda: {f"rpc.{k}": v for k, v in sorted(self.stats.items())} | {"rpc.clients": len(self.connections)})
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None  # the socket file we created; only that one is ours to remove

    def limits(self) -> Any:
        return self.api.config.api

    def _method(self, spec: MethodSpec) -> Callable:
        api = self.api

        ttl = CACHE_UNDER_LOAD.get(spec.name)

        async def method(conn: Connection, /, *args: Any, **kwargs: Any) -> Any:
            try:
                await conn.room()  # nothing is computed for a client that does not read its replies
                await self.work.turn(conn.caller.uid)
            except ConnectionError:  # (closed meanwhile: no answer can be sent)
                gone = ApiError(Code.SHUTTING_DOWN, "the connection is closed")
                return Error(int(gone.code), gone.message, gone.data())
            now = asyncio.get_running_loop().time()
            if ttl is not None and not args and not kwargs:
                hit = self._cache.get(spec.name)
                if hit is not None and now - hit[0] < ttl and self.work.backlog():
                    self.stats["replies_cached"] += 1
                    return Success(hit[1])
            try:
                result = to_json(await api.call_spec(spec, list(args) if args else kwargs, conn.ctx))
            except ApiError as e:
                if e.code is Code.PERMISSION_DENIED:
                    conn.server.stats["permission_denied"] += 1
                    log.info("refused %s to %s: write access needed", spec.name, conn.caller.describe())
                return Error(int(e.code), e.message, e.data())
            if ttl is not None:
                self._cache[spec.name] = (now, result)
            return Success(result)

        method.__name__ = spec.attr
        return method

    def parse(self, body: bytes, conn: Connection) -> tuple[Any, Any]:
        """(the frame's JSON, None), or (None, the error reply) for a frame refused before anything runs."""
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            self.stats["parse_errors"] += 1
            log.debug("refused frame: not JSON (%s) caller=%s", type(e).__name__, conn.caller.describe())
            return None, error_obj(ApiError(Code.PARSE_ERROR, "the frame is not valid UTF-8 JSON"))
        if isinstance(doc, list) and len(doc) > self.limits().max_batch:
            self.stats["batches_too_large"] += 1
            return None, error_obj(ApiError(Code.INVALID_REQUEST, f"a batch of {len(doc)} requests; at most {self.limits().max_batch}"))
        if bad_ids(doc):
            self.stats["bad_request_ids"] += 1
            return None, error_obj(bad_id_error())
        return doc, None

    async def dispatch(self, doc: Any, conn: Connection) -> Any:
        self.stats["requests"] += len(doc) if isinstance(doc, list) else 1
        resp = await dispatch_to_serializable("", methods=self.methods, context=conn, deserializer=lambda _t: doc)
        return sanitize(resp)

    # ---- lifecycle
    async def start(self) -> None:
        self._claim_path()
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        self._inode = os.stat(self.path).st_ino
        os.chmod(self.path, 0o666)  # anyone may connect; credentials decide what they may do

    def _claim_path(self) -> None:
        """Take the socket path if it is free or holds a stale socket; refuse anything else untouched."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{self.path} exists and is not a socket; remove it or pass another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # stale: nobody answers there
            return
        finally:
            probe.close()
        raise OSError(f"another omerta-meshd already answers on {self.path}; stop it first or use another --socket")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            caller = auth.caller_of(sock, self.write_gid())
        except OSError:
            writer.close()
            return
        limit = self.limits().max_connections
        share = self.limits().max_per_user
        mine = sum(1 for c in self.connections if c.caller.uid == caller.uid)
        if caller.uid != 0 and mine >= share:  # one user cannot take every slot (root is never locked out)
            self.stats["connections_refused_per_user"] += 1
            log.info("refused connection from %s: it holds %d connections already", caller.describe(), mine)
            await _refuse(writer, ApiError(Code.BUSY, f"uid {caller.uid} holds {mine} connections already; the limit per "
                                                      f"user is {share} (api.max_per_user): close some"))
            return
        if len(self.connections) >= limit + (RESERVED_FOR_WRITERS if caller.may_write else 0):
            self.stats["connections_refused"] += 1
            log.info("refused connection from %s: %d connections open", caller.describe(), len(self.connections))
            await _refuse(writer, ApiError(Code.BUSY, f"{len(self.connections)} clients are connected; the limit is {limit}"))
            return
        conn = Connection(self, reader, writer, caller)
        self.connections.add(conn)
        self.serving.add(asyncio.current_task())  # type: ignore[arg-type]
        self.stats["connections"] += 1
        try:
            await conn.serve()
        finally:
            self.serving.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        async def bye(conn: Connection) -> None:  # (all at once: 0.5 s in all, not per client that does not read)
            try:
                await asyncio.wait_for(conn.writer.drain(), 0.5)
                conn.close()
            except Exception:  # a client that does not read: drop it without waiting
                conn.abort()

        await asyncio.gather(*(bye(c) for c in list(self.connections)))
        if self.serving:
            _, pending = await asyncio.wait(list(self.serving), timeout=1.0)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._remove_own_socket()

    def _remove_own_socket(self) -> None:
        """Unlink the socket file only if it is the one this server created: a start refused because
        another daemon answers there (or a file someone put there since) is left alone."""
        if self._inode is None:
            return
        try:
            if os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            pass
        self._inode = None


async def _refuse(writer: asyncio.StreamWriter, err: ApiError) -> None:
    """Answer a connection we do not serve with ``err`` and close it."""
    writer.write(frame(error_obj(err)))
    try:
        await asyncio.wait_for(writer.drain(), 1.0)
    except (asyncio.TimeoutError, TimeoutError, ConnectionError):
        pass
    writer.close()
