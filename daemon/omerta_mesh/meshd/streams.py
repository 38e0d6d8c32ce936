"""The stream socket: local clients get mesh byte streams (``io/streams.py``) as file descriptors.

It sits next to the JSON-RPC socket (``meshd.sock`` -> ``meshd.streams.sock``: the RPC socket's name with
``.streams`` before its suffix, which is how clients find it), 0666, and the same ``SO_PEERCRED`` rule
applies: opening a stream changes the daemon's state (it makes a connection on the peer), so only callers
who may write (root, the daemon's user, the ``api.group``) may; anyone else gets PERMISSION_DENIED with the
RPC socket's words and fix.

One request per connection, framed as JSON-RPC frames are (4-byte big-endian length, UTF-8 JSON)::

    -> {"peer": "bravo", "port": 22, "network": null, "via": "auto"}
    <- {"result": {"peer": "<node id>", "name": "bravo", "port": 22, "via": "stream", "stream": 6, "address": null}}
       + one fd (SCM_RIGHTS)
    <- {"error": {"code": 1015, "message": "port 22 not exposed on bravo", "data": {"name": "REFUSED", "fix": ...}}}

``via`` (optional): "auto" (the default), "stream" or "tcp". On the stream path the fd is one end of a
socketpair; the daemon splices the other end with the mesh stream (``StreamHub.attach``), so the bytes never pass
through JSON-RPC. On the TCP path (``meshd/meshtcp.py``: "auto" takes it when the virtual network reaches the peer
and its stream gate answers) the fd is a kernel TCP socket connected through the peer's gate to its port, and
``address`` is the peer's mesh IP it was dialled at. Either way, shutting down the write side of the fd
half-closes the stream.
"""

from __future__ import annotations

import array
import asyncio
import json
import logging
import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import UsageError
from ..io.streams import DISCARD_PORT, StreamRefused
from . import auth, destination
from .errors import ApiError, Code

if TYPE_CHECKING:  # pragma: no cover
    from .api import DaemonAPI
    from .meshtcp import Gate

log = logging.getLogger("omerta_mesh.meshd.streams")
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 10.0
VIAS = ("auto", "stream", "tcp")


def stream_socket_path(rpc_socket: Path) -> Path:
    return rpc_socket.with_name(rpc_socket.stem + ".streams" + rpc_socket.suffix)


def _frame(obj: Any) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return len(body).to_bytes(4, "big") + body


class StreamServer:
    def __init__(self, api: "DaemonAPI", path: Path, write_gid: Callable[[], int | None], gate: "Gate | None" = None) -> None:
        self.api = api
        self.gate = gate  # the kernel TCP path (meshd/meshtcp.py); None: mesh streams only
        self.path = path
        self.write_gid = write_gid
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                self.path.unlink()  # (the RPC socket's claim already showed no other daemon runs here)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # anyone may connect; credentials decide
        sock.listen(64)
        sock.setblocking(False)
        self._sock = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        for t in list(self._conns):
            t.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            try:
                self.path.unlink()
            except OSError:
                pass

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as e:
                log.warning("stream socket: accept failed: %s", e)
                await asyncio.sleep(0.1)
                continue
            t = loop.create_task(self._serve(conn))
            self._conns.add(t)
            t.add_done_callback(self._conns.discard)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            conn.setblocking(False)
            try:
                caller = auth.caller_of(conn, self.write_gid())  # (as of connect(): before anything is read)
                req = await asyncio.wait_for(self._read_request(conn), REQUEST_TIMEOUT)  # (read first: no EPIPE)
                if not caller.may_write:
                    raise ApiError(Code.PERMISSION_DENIED,
                                   f"opening a stream changes the daemon's state; {caller.describe()} may only read")
                result, theirs = await self._open(req)
            except ApiError as e:
                await loop.sock_sendall(conn, _frame({"error": {"code": int(e.code), "message": e.message, "data": e.data()}}))
                return
            except asyncio.TimeoutError:
                return
            try:
                conn.sendmsg([_frame({"result": result})], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno()]))])
            finally:
                theirs.close()
        except OSError as e:
            log.debug("stream socket client went away: %s", e)
        finally:
            conn.close()

    async def _read_request(self, conn: socket.socket) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
            if len(buf) >= 4 and int.from_bytes(buf[:4], "big") > MAX_REQUEST:
                raise ApiError(Code.INVALID_REQUEST, f"a stream request is at most {MAX_REQUEST} bytes")
            chunk = await loop.sock_recv(conn, 4096)
            if not chunk:
                raise ApiError(Code.INVALID_REQUEST, "the request ended early")
            buf += chunk
        try:
            doc = json.loads(buf[4:4 + int.from_bytes(buf[:4], "big")])
        except ValueError:
            raise ApiError(Code.PARSE_ERROR, "the stream request is not JSON") from None
        doc = doc if isinstance(doc, dict) else {}
        port, peer, network, via = doc.get("port"), doc.get("peer"), doc.get("network"), doc.get("via", "auto")
        if not isinstance(peer, str) or not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536 \
                or not (network is None or isinstance(network, str)) or via not in VIAS:
            raise ApiError(Code.INVALID_PARAMS, 'a stream request is {"peer": NAME, "port": 1-65535, "network": NAME or null, '
                                                '"via": "auto" | "stream" | "tcp"}')
        return {"peer": peer, "port": port, "network": network, "via": via}

    async def _open(self, req: dict[str, Any]) -> tuple[dict[str, Any], socket.socket]:
        api = self.api
        node, net = destination.resolve(api, req["peer"], req["network"])  # a name, NAME.NETWORK, id, prefix or mesh IP
        base = {"peer": str(node), "name": api.name_of(node), "port": req["port"]}
        if req["via"] != "stream" and req["port"] != DISCARD_PORT:  # (the discard sink is the stream path's own)
            if self.gate is None and req["via"] == "tcp":
                raise ApiError(Code.REFUSED, "this daemon has no kernel TCP path (its stream gate is not running)",
                               "drop --via tcp: the mesh stream path works everywhere")
            got = await self.gate.dial(node, net, req["port"], base["name"] or str(node), req["via"] == "tcp") \
                if self.gate is not None else None
            if got is not None:
                return {**base, "via": "tcp", "stream": None, "address": got[1]}, got[0]
        try:
            s = await api.node.streams.open(node, req["port"], net)
        except StreamRefused as e:
            raise ApiError(Code.REFUSED, str(e), "expose the port on the peer (`omertactl serve add PORT` there), "
                                                  "or check that something listens on it") from None
        except UsageError as e:  # (the stream limits)
            raise ApiError(Code.BUSY, str(e), "close some streams first") from None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=ours)
        if not api.node.streams.attach(s, reader, writer):
            theirs.close()
            raise ApiError(Code.REFUSED, f"the stream to port {req['port']} was reset as it opened", "try again")
        return {**base, "via": "stream", "stream": s.sid, "address": None}, theirs
