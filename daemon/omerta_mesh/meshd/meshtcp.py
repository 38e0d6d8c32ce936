"""Mesh streams as kernel TCP over the virtual network (issue 13, item 2's second half): the stream gate.

A mesh stream (``io/streams.py``) moves every byte through both daemons in Python; the virtual network's data plane
(TUN with GSO/GRO, ``meshd/vnet.py``) moves TCP several times faster. So when both ends have a device in a network
they share, ``omertactl connect`` (and ``omerta-ssh``) gets a kernel TCP socket instead:

* **The gate** (far side, ``Gate``): on each of its devices' mesh IPs the daemon listens on TCP ``GATE_PORT``
  (51888, bound to the device: what arrives on other interfaces never reaches it). A connection must come from
  another member's mesh IP in that device's network (the virtual network drops packets whose inner source is not
  the sending peer's address, so the source names the peer); it asks for a port (``core/wire/gate.py``) and is
  answered as a mesh stream is: refused with the reason (the port not exposed, ``[serve] ports`` / ``omertactl
  serve``; nothing listening; the per-peer and total stream limits; the discard port 9, which is the stream path's),
  else connected to ``127.0.0.1:PORT`` (then ``::1``) and spliced with it in the kernel (``io/splice.py``: no byte
  enters Python). So the exposure rule holds on either path: the gate is the only way from a mesh IP to a port
  listening on 127.0.0.1, and it asks the same ``policy``.
* **The opener** (``Gate.dial``): for ``omertactl connect PEER PORT`` with TUN on here, a device in a network the peer
  is in and a mesh IP of the peer's there, the daemon connects to the peer's gate (``CONNECT_TIMEOUT``), asks, and
  hands the connected socket itself to the client (SCM_RIGHTS, ``meshd/streams.py``): nothing is copied in this
  daemon. A refusal is the client's answer, as on the stream path. A gate that does not answer (TUN off there, an
  older daemon, the far side's ``[[rules]]`` dropping port 51888 on its device: meshd/firewall.py applies there) sends
  this stream over the mesh stream (``streams.tcp_fallback``); one that cost time (no answer within ``CONNECT_TIMEOUT``,
  not our gate's answer) sends that peer's streams over the mesh stream for ``HOLD`` seconds too.

Counters (``status.get``): ``streams.tcp_opened`` / ``streams.tcp_fallback`` (opener), ``streams.gate_accepted``,
``streams.gate_refused``, ``streams.gate_bad`` (malformed or silent askers, non-members), ``streams.gate_bytes_in`` /
``_out`` (gate, counted when a connection ends). ``Gate.open`` is listed by ``streams.list`` (via "tcp").
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import DropReason, WireError
from ..core.ids import NetworkId, NodeId
from ..core.wire import gate as wire
from ..core.wire.gate import GATE_PORT
from ..io.freebind import bound
from ..io.splice import Spliced
from ..io.streams import DISCARD_PORT, connect_local, refused_locally
from . import refresher
from .errors import ApiError, Code

if TYPE_CHECKING:  # pragma: no cover
    from .vnet import VirtualNetworks

log = logging.getLogger("omerta_mesh.meshtcp")
REFRESH = 0.5  # seconds between looks at the devices' addresses (listeners follow them)
CONNECT_TIMEOUT = 2.0  # seconds for the peer's gate to accept and answer
REQUEST_TIMEOUT = 5.0  # seconds a connection to our gate has to ask
HOLD = 60.0  # seconds a peer whose gate did not answer is reached by mesh streams only


@dataclass
class GateConn:
    """A peer's connection through our gate, spliced with a local port."""

    node: NodeId
    port: int
    spliced: Spliced


class Gate:
    def __init__(self, vnet: "VirtualNetworks", policy: Callable[[int], str | None], name: Callable[[], str],
                 limits: tuple[int, int]) -> None:
        self.vnet, self.policy, self.name = vnet, policy, name
        self.per_peer, self.total = limits  # the core's max_streams_per_peer and max_streams
        self.counters = vnet.node.core.counters
        self.listeners: dict[tuple[str, str], tuple[socket.socket, asyncio.Task]] = {}  # (device, addr) -> ...
        self.errors: dict[tuple[str, str], str] = {}
        self.open: dict[int, GateConn] = {}  # id(spliced) -> connection
        self.held: dict[NodeId, tuple[float, str]] = {}  # peer -> (until, why): its gate did not answer
        self._task: asyncio.Task | None = None
        self._serving: set[asyncio.Task] = set()  # connections being asked and answered

    # ------------------------------------------------------------------ the gate's listeners
    async def start(self) -> None:
        if not self.vnet.enabled:
            return  # (no devices: every stream takes the mesh stream path)
        await self.refresh()
        self._task = refresher.start(REFRESH, self.refresh, log, "stream gate")

    async def close(self) -> None:
        await refresher.stop(self._task)
        for key in list(self.listeners):
            self._close(key)
        for t in list(self._serving):
            t.cancel()
        for c in list(self.open.values()):
            c.spliced.abort()

    async def refresh(self) -> None:
        want = set(self.vnet.device_addresses())
        for key in [k for k in self.listeners if k not in want]:
            self._close(key)
        self.errors = {k: v for k, v in self.errors.items() if k in want}
        for key in want - set(self.listeners):
            dev, addr = key
            try:
                sock = bound(addr, socket.SOCK_STREAM, GATE_PORT, 64, dev)
            except OSError as e:
                why = f"the stream gate cannot listen on {addr} port {GATE_PORT}: {e.strerror or e}"
                if self.errors.get(key) != why:
                    log.warning("%s; streams to this node take the mesh stream path", why)
                self.errors[key] = why
                continue
            self.errors.pop(key, None)
            self.listeners[key] = (sock, asyncio.get_running_loop().create_task(self._accept(sock, dev)))

    def _close(self, key: tuple[str, str]) -> None:
        sock, task = self.listeners.pop(key)
        task.cancel()
        sock.close()

    async def _accept(self, lsock: socket.socket, device: str) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(lsock)
            except OSError as e:
                log.debug("stream gate: accept failed: %s", e)
                await asyncio.sleep(0.1)
                continue
            t = loop.create_task(self._serve(conn, addr[0], device))
            self._serving.add(t)  # (held until done: the loop keeps only weak references to tasks)
            t.add_done_callback(self._serving.discard)

    async def _serve(self, conn: socket.socket, source: str, device: str) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            if (node := self._member(source, device)) is None:
                raise WireError(DropReason.UNKNOWN_PEER, f"{source} is no other member's mesh IP on {device}")
            port = wire.decode_request(await asyncio.wait_for(_exactly(conn, wire.REQUEST_LEN), REQUEST_TIMEOUT))
        except (WireError, OSError, asyncio.TimeoutError, EOFError) as e:
            self.counters.inc("streams.gate_bad")
            log.debug("stream gate: dropped a connection from %s: %s", source, e)
            conn.close()
            return
        except asyncio.CancelledError:  # (the daemon stops)
            conn.close()
            raise
        why, local = self._refusal(node, port), None
        if why is None:
            try:
                local = await connect_local(port)
            except OSError as e:
                why = refused_locally(port, self.name(), e)
        try:
            await loop.sock_sendall(conn, wire.encode_answer(why))
        except OSError:
            why = why or "the opener went away"
        if why is not None or local is None:
            self.counters.inc("streams.gate_refused")
            conn.close()
            if local is not None:
                local.close()
            return
        self.counters.inc("streams.gate_accepted")
        sp = Spliced(conn, local, functools.partial(_later, loop, self._ended))
        self.open[id(sp)] = GateConn(node, port, sp)

    def _member(self, source: str, device: str) -> NodeId | None:
        """The member whose mesh IP on ``device``'s network ``source`` is (None: ours, or nobody's)."""
        try:
            hit = self.vnet.owner_of(ipaddress.ip_address(source.partition("%")[0]))
        except ValueError:
            return None
        if hit is None or hit[0] == self.vnet.node.core.node_id or self.vnet.device_of(hit[1]) != device:
            return None
        return hit[0]

    def _refusal(self, node: NodeId, port: int) -> str | None:
        if port == DISCARD_PORT:
            return f"port {DISCARD_PORT} is the daemon's discard sink, reached by mesh stream only"
        if (why := self.policy(port)) is not None:
            return why
        if sum(c.node == node for c in self.open.values()) >= self.per_peer:
            return f"{self.per_peer} streams already open with this peer"
        if len(self.open) >= self.total:
            return f"{self.total} streams already open"
        return None

    def _ended(self, sp: Spliced) -> None:
        if self.open.pop(id(sp), None) is not None:
            self.counters.inc("streams.gate_bytes_in", sp.bytes_ab)
            self.counters.inc("streams.gate_bytes_out", sp.bytes_ba)

    # ------------------------------------------------------------------ the opener
    def address_of(self, node: NodeId, network: NetworkId | None) -> str | None:
        """The peer's mesh IP in a network where we have a device (None: no kernel TCP path to it)."""
        if not self.vnet.enabled:
            return None
        for n in list(self.vnet.nets.values()):
            if n.tun is None or (network is not None and n.network.id != network):
                continue
            v4, v6 = self.vnet.addresses(n.network.id, node)
            if v4 or v6:
                return v4 or v6
        return None

    async def dial(self, node: NodeId, network: NetworkId | None, port: int, name: str, forced: bool) -> tuple[socket.socket, str] | None:
        """A blocking TCP socket connected through the peer's gate to its ``port``, and the address dialled; None:
        take the mesh stream (no kernel TCP path, or its gate did not answer: held for ``HOLD`` s). ApiError
        REFUSED: the peer refused (its reason); ``forced`` (``--via tcp``): every failure is an ApiError."""
        ip = self.address_of(node, network)
        held = self.held.get(node)
        if held is not None and held[0] <= time.monotonic():
            del self.held[node]
            held = None
        why = (f"no kernel TCP path to {name}: " + (self.vnet.reason or f"{name} has no mesh IP in a network with a "
               "device here")) if ip is None else held[1] if held is not None else None
        if why is None:
            assert ip is not None
            try:
                return await self._ask(ip, port, name), ip
            except ConnectionError as e:
                why = str(e)
                self.counters.inc("streams.tcp_fallback")
                if isinstance(e, ConnectionRefusedError):  # (refused at once: asking again next time costs one round trip)
                    log.debug("%s; this stream to %s takes the mesh stream path", why, name)
                else:
                    self.held[node] = (time.monotonic() + HOLD, why)
                    log.info("%s; streams to %s take the mesh stream path for %g s", why, name, HOLD)
        if forced:
            raise ApiError(Code.REFUSED, why, "drop --via tcp (the mesh stream path works without TUN), or turn TUN on at both "
                                              f"ends and let TCP port {GATE_PORT} in on the peer's mesh device")
        return None

    async def _ask(self, ip: str, port: int, name: str) -> socket.socket:
        """ConnectionError: no gate answered (fall back); ApiError REFUSED: the gate refused."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await loop.sock_connect(sock, (ip, GATE_PORT))
                    await loop.sock_sendall(sock, wire.encode_request(port))
                    ok, n = wire.decode_answer_head(await _exactly(sock, wire.ANSWER_LEN))
                    reason = wire.decode_reason_text(await _exactly(sock, n)) if not ok else None
            except ConnectionRefusedError:
                raise ConnectionRefusedError(f"the stream gate of {name} at {ip} port {GATE_PORT}: nothing listens there "
                                             "(TUN off there, or an older daemon)") from None
            except (OSError, EOFError, WireError, TimeoutError) as e:
                cause = ("no answer within %g s (a firewall on its mesh device?)" % CONNECT_TIMEOUT if isinstance(e, TimeoutError)
                         else "it answered something else" if isinstance(e, WireError)
                         else "it closed the connection" if isinstance(e, EOFError) else e.strerror or str(e))
                raise ConnectionError(f"the stream gate of {name} at {ip} port {GATE_PORT}: {cause}") from None
            if reason is not None:
                raise ApiError(Code.REFUSED, reason, "expose the port on the peer (`omertactl serve add PORT` there), "
                                                     "or check that something listens on it")
        except BaseException:
            sock.close()
            raise
        self.counters.inc("streams.tcp_opened")
        sock.setblocking(True)
        return sock

    def info(self) -> list[dict[str, Any]]:
        """The gate's open connections, for streams.list."""
        now = time.monotonic()
        return [{"node": c.node, "port": c.port, "bytes_in": c.spliced.bytes_ab, "bytes_out": c.spliced.bytes_ba,
                 "age_s": round(now - c.spliced.opened, 3)} for c in list(self.open.values())]


def _later(loop: asyncio.AbstractEventLoop, fn: Callable[[Spliced], None], sp: Spliced) -> None:
    """From a splice thread: ``fn(sp)`` on the loop (nothing once the loop has closed: the daemon stopped)."""
    try:
        loop.call_soon_threadsafe(fn, sp)
    except RuntimeError:
        pass


async def _exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from a non-blocking socket, never more (what follows is the service's); EOFError if it ends first."""
    loop = asyncio.get_running_loop()
    buf = b""
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise EOFError(f"the connection ended after {len(buf)} of {n} bytes")
        buf += chunk
    return buf
