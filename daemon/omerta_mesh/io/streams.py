"""StreamHub: the asyncio side of mesh byte streams (``core/streams.py``): opening, accepting, and splicing
each stream with a local socket.

* ``open(peer, port)`` asks the peer for a stream and waits for its answer: a ``Spliced`` stream to attach a
  socket to (the daemon hands the other end of a socketpair to its client), or ``StreamRefused`` with the
  peer's reason.
* A stream the peer asks for is offered to ``policy(port)`` (the daemon: is the port exposed?); refused with
  its reason, or connected to ``127.0.0.1:port`` (then ``::1``) and accepted once that connection is made.
  Port ``DISCARD_PORT`` (9, RFC 863's discard) is the daemon's own sink and never asks ``policy`` nor touches a
  local port: accepted at once from any member, every byte counted (``streams.discard_bytes``) and its credit
  returned at once; on the opener's half-close it answers with the count (ASCII decimal and a newline) and
  closes. The core's stream limits apply to it as to any stream (``omertactl doctor``'s throughput ramp).
* Splicing: the socket's bytes go out as the stream's credit allows (never read beyond it); received bytes are
  written to the socket and reported consumed once its write buffer is below the high-water mark, so a
  reader that stalls stops its sender at one window and the daemon holds at most a window per stream. EOF
  either way is a half-close; an error or a reset closes both.

The hub takes the core's events about streams (``MeshNode`` routes ``StreamEvent``s here) and drives the core
through ``Mesh.act``; it never holds the ``MeshNode``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from ..core import events as ev
from ..core.errors import MeshError, UsageError
from ..core.ids import NetworkId, NodeId
from ..core.mesh import Mesh
from ..core.outbox import Outbox
from ..core.peers.peer import Peer

log = logging.getLogger("omerta_mesh.io.streams")
READ_MAX = 65536
DISCARD_PORT = 9  # the daemon's discard sink: answered here, never connected to a local 127.0.0.1:9


class StreamRefused(MeshError):
    """The peer refused or reset the stream; the message is its reason."""


class StreamUnanswered(StreamRefused):
    """The peer did not answer the stream in time (unreachable, or gone)."""


@dataclass
class Spliced:
    """One open stream and the local socket it is spliced with."""

    peer: Peer
    sid: int
    port: int
    outgoing: bool
    opened: float = field(default_factory=time.monotonic)
    credit: asyncio.Event = field(default_factory=asyncio.Event)
    incoming: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)  # None: the peer half-closed
    answer: asyncio.Future[None] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    writer: asyncio.StreamWriter | None = None
    bytes_in: int = 0
    bytes_out: int = 0


class StreamHub:
    def __init__(self, core: Callable[[], Mesh], now: Callable[[], float], flush: Callable[[], None]) -> None:
        self._core, self._now, self._flush = core, now, flush
        self.policy: Callable[[int], str | None] = lambda port: "streams are not served here"  # a refusal reason, or None
        self.streams: dict[tuple[tuple[bytes, bytes], int], Spliced] = {}
        self._in_event = False

    def _act(self, fn: Callable[[Outbox], object]) -> object:
        m = self._core()
        result = m.act(self._now(), fn)
        if not self._in_event:  # (the driver's flush that delivered the event sends it)
            self._flush()
        return result

    # ------------------------------------------------------------------ opening
    async def open(self, node: NodeId, port: int, network: NetworkId | None = None, timeout: float = 15.0) -> Spliced:
        m = self._core()
        peer = m.find_peer(node, network, self._now())  # a member known by its record gets a session
        sid = self._act(lambda out: m.streams.open(peer, port, self._now(), out, m.node_id.raw))
        assert isinstance(sid, int)
        s = Spliced(peer, sid, port, True)
        s.answer = asyncio.get_running_loop().create_future()
        self.streams[(peer.key, sid)] = s
        try:
            await asyncio.wait_for(asyncio.shield(s.answer), timeout)
        except asyncio.TimeoutError:
            self.reset(s, "no answer in time")
            raise StreamUnanswered(f"{node.short()} did not answer the stream to port {port} within {timeout:g} s") from None
        except asyncio.CancelledError:  # the opener went away (its client left, a forward was removed): no stream
            self.reset(s, "the opener went away")  # left behind for the peer to accept
            raise
        return s

    def is_open(self, s: Spliced) -> bool:
        """Whether ``s`` is still open (not reset, not ended both ways) at this moment."""
        return self.streams.get((s.peer.key, s.sid)) is s

    def attach(self, s: Spliced, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Splice the stream with a connected socket until both directions are closed, or either side resets.
        False: the stream ended before it was attached (reset while the opener awaited something else); the
        socket is aborted, so nothing waits on a stream that is gone."""
        if not self.is_open(s):
            writer.transport.abort()
            return False
        s.writer = writer
        loop = asyncio.get_running_loop()
        s.tasks = [loop.create_task(self._up(s, reader)), loop.create_task(self._down(s, writer))]
        return True

    def close(self) -> None:
        """The node stops: every stream is reset (its peer hears why) and its socket closed."""
        for s in list(self.streams.values()):
            self.reset(s, "the daemon stopped")

    # ------------------------------------------------------------------ events from the core
    def on_event(self, e: ev.StreamEvent | ev.PeerRestarted | ev.PeerLeft) -> bool:
        """Take an event about streams (True: it is the hub's alone), or a peer's restart or departure (False)."""
        self._in_event = True
        try:
            self._on_event(e)
        finally:
            self._in_event = False
        return isinstance(e, ev.StreamEvent)

    def _on_event(self, e: ev.StreamEvent | ev.PeerRestarted | ev.PeerLeft) -> None:
        m = self._core()
        if not isinstance(e, ev.StreamEvent):  # the peer restarted or left: its streams are gone
            try:
                gone = m.find_peer(e.peer, e.network)
            except UsageError:
                return
            m.act(self._now(), lambda out: m.streams.drop_peer(gone.key, "peer restarted" if isinstance(e, ev.PeerRestarted)
                                                               else "peer left the network", out))
            return
        if isinstance(e, ev.StreamRequested):
            peer = m.find_peer(e.peer, e.network)
            new = Spliced(peer, e.stream, e.port, False)
            self.streams[(peer.key, e.stream)] = new
            new.tasks.append(asyncio.get_running_loop().create_task(self._serve(new)))
            return
        peer = m.find_peer(e.peer, e.network)
        if (s := self.streams.get((peer.key, e.stream))) is None:
            return
        if isinstance(e, ev.StreamAccepted):
            if s.answer is not None and not s.answer.done():
                s.answer.set_result(None)
        elif isinstance(e, ev.StreamCredit):
            s.credit.set()
        elif isinstance(e, ev.StreamData):
            s.bytes_in += len(e.data)
            s.incoming.put_nowait(e.data)  # bounded by the credit we granted
        elif isinstance(e, ev.StreamEnded):
            s.incoming.put_nowait(None)
        elif isinstance(e, ev.StreamReset):
            self._gone(s, e.reason)

    async def _serve(self, s: Spliced) -> None:
        m = self._core()
        if s.port == DISCARD_PORT:
            self._act(lambda out: m.streams.accept(s.peer, s.sid, out))
            await self._discard(s)
            return
        why = self.policy(s.port)
        if why is not None:
            self.reset(s, why)
            return
        try:
            reader, writer = await asyncio.open_connection(sock=await connect_local(s.port))
        except OSError as e:
            self.reset(s, refused_locally(s.port, m.name or m.node_id.short(), e))
            return
        if not self.is_open(s):  # reset while we connected
            writer.close()
            return
        self._act(lambda out: m.streams.accept(s.peer, s.sid, out))
        self.attach(s, reader, writer)

    async def _discard(self, s: Spliced) -> None:
        """The sink: count and consume what arrives (``_arrived``, as ``_down``); on the peer's
        half-close answer with the count and close (the stream is then gone both ways). A reset cancels it."""
        m = self._core()
        total, ended = 0, False
        while not ended:
            parts, ended = await _arrived(s)
            if n := sum(map(len, parts)):
                total += n
                m.counters.inc("streams.discard_bytes", n)
                self._act(lambda out: m.streams.consumed(s.peer, s.sid, n, out))  # noqa: B023 (called at once)
        if self.is_open(s):
            self._act(lambda out: self._answer(s, b"%d\n" % total, out))
            self._gone(s, None)

    def _answer(self, s: Spliced, data: bytes, out: Outbox) -> None:
        m = self._core()
        m.streams.send(s.peer, s.sid, data, out)  # (within the window the opener granted: nothing was sent before)
        m.streams.close(s.peer, s.sid, out)

    # ------------------------------------------------------------------ splicing
    async def _up(self, s: Spliced, reader: asyncio.StreamReader) -> None:
        """Socket -> mesh, within the stream's credit."""
        m = self._core()
        try:
            while True:
                st = m.streams.get(s.peer, s.sid)
                if st is None:
                    return
                if st.credit <= 0:
                    s.credit.clear()
                    await s.credit.wait()
                    continue
                data = await reader.read(min(st.credit, READ_MAX))
                if (st := m.streams.get(s.peer, s.sid)) is None:
                    return
                if not data:
                    self._act(lambda out: m.streams.close(s.peer, s.sid, out))
                    return
                self._act(lambda out: m.streams.send(s.peer, s.sid, data, out))  # noqa: B023 (called at once)
                s.bytes_out += len(data)
        except (OSError, UsageError) as e:
            self.reset(s, f"local socket: {e}")

    async def _down(self, s: Spliced, writer: asyncio.StreamWriter) -> None:
        """Mesh -> socket; bytes are consumed (credit returns) once the socket has taken them. What arrived while
        the socket was written goes in one write (one system call, one credit): a 16 KiB write per message cost
        the receiving daemon a fifth of its time (bench/streams.py)."""
        m = self._core()
        try:
            ended = False
            while not ended:
                parts, ended = await _arrived(s)
                if parts:
                    n = sum(map(len, parts))
                    writer.writelines(parts)
                    await writer.drain()
                    self._act(lambda out: m.streams.consumed(s.peer, s.sid, n, out))  # noqa: B023 (called at once)
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError) as e:
            self.reset(s, f"local socket: {e}")
            return
        await self._both_closed(s)

    async def _both_closed(self, s: Spliced) -> None:
        if s.tasks and s.tasks[0] is not asyncio.current_task():
            await asyncio.gather(s.tasks[0], return_exceptions=True)
        self._gone(s, None)

    def reset(self, s: Spliced, reason: str) -> None:
        """End the stream: the peer hears ``reason``, the local socket is aborted."""
        m = self._core()
        self._act(lambda out: m.streams.reset(s.peer, s.sid, reason, out))
        self._gone(s, reason)

    def _gone(self, s: Spliced, reason: str | None) -> None:
        if self.streams.pop((s.peer.key, s.sid), None) is None:
            return
        if s.answer is not None and not s.answer.done():
            s.answer.set_exception(StreamRefused(reason or "closed"))
        s.credit.set()
        if s.writer is not None:
            if reason is not None:
                s.writer.transport.abort()
            else:
                s.writer.close()
        me = asyncio.current_task()
        for t in s.tasks:
            if t is not me and reason is not None:
                t.cancel()


async def connect_local(port: int) -> socket.socket:
    """A non-blocking TCP socket connected to this host's ``127.0.0.1:port``, else ``[::1]:port``; OSError."""
    loop = asyncio.get_running_loop()
    failed = OSError(f"no local address for port {port}")
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (host, port))
            return sock
        except OSError as e:
            sock.close()
            failed = e
        except BaseException:
            sock.close()
            raise
    raise failed


def refused_locally(port: int, name: str, e: OSError) -> str:
    """The reason a peer hears when nothing here accepted the connection to an exposed port."""
    return f"port {port} refused the connection on {name}: {e.strerror or e}"


async def _arrived(s: Spliced) -> tuple[list[bytes], bool]:
    """What the peer sent: waits for the next piece, then takes all queued behind it (one write, one credit);
    True once the peer half-closed (``None`` in the queue: nothing follows it)."""
    parts: list[bytes] = []
    data = await s.incoming.get()
    while data is not None:
        parts.append(data)
        if s.incoming.empty():
            return parts, False
        data = s.incoming.get_nowait()
    return parts, True
