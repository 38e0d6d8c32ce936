"""Streams: reliable, ordered, flow-controlled byte streams to peers (an owned sub-machine; ``mesh.streams``).

A stream is opened to ``peer:port``; the far host decides (``StreamRequested``: it accepts if that port is
exposed, else resets with the reason, e.g. "port 22 not exposed on bravo"). Stream messages
(``core/wire/streams.py``) ride the peer's reliable channel as control messages, so they are ordered,
retransmitted, and never held or refused by channel admission (``Receivers``).

Flow control is by credit, per stream and per direction: the receiver grants ``stream_window`` bytes at
open/accept, and grants more (``stream.credit``) as its host reports bytes consumed (``consumed``), once a
quarter of the window has been consumed. A sender never has more unconsumed bytes outstanding than
granted (``send`` accepts at most the credit), so a receiver always has room for what arrives, and a stream
whose reader stalls stops its sender without blocking the shared channel or other streams: bytes queued on
the channel are at most ``stream_window`` per stream. Data beyond the credit (``drop.stream_overrun``), or
for a stream we do not have (``drop.stream_unknown``), is answered with a reset; opens past
``max_streams_per_peer`` or ``max_streams`` are refused (``drop.stream_limit``).

Half-close: ``close`` sends ``stream.close`` (no more data from us); the peer's is ``StreamEnded``. A stream
closed both ways, or reset by either side, is forgotten. ``drop_peer`` resets every stream of a peer that
went away (restart, leave, removal); ``lost`` resets them both ways when a stream message to the peer will
never arrive (its channel gave up on it, or the peer's send queue was full): the bytes would have a hole.
Like every sub-machine it never holds the ``Mesh``: messages go into the ``Outbox`` as controls, events as
events.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import events as ev
from .config import CoreConfig
from .counters import Counters
from .errors import DropReason, UsageError, WireError
from .outbox import Outbox
from .peers.peer import Peer
from .wire import streams as sw

CHUNK = 65536  # bytes of stream data per message at most (a read of the local socket: io/streams.py READ_MAX)


@dataclass(slots=True)
class Stream:
    peer: Peer
    sid: int
    port: int
    outgoing: bool
    accepted: bool = False
    credit: int = 0  # bytes we may still send
    window: int = 0  # bytes the peer may still send us before we grant more
    unconsumed: int = 0  # bytes delivered to the host, not yet reported consumed
    sent_close: bool = False
    got_close: bool = False


class Streams:
    def __init__(self, config: CoreConfig, counters: Counters) -> None:
        self.cfg = config
        self.counters = counters
        self._streams: dict[tuple[tuple[bytes, bytes], int], Stream] = {}
        self._per_peer: dict[tuple[bytes, bytes], int] = {}
        self._next: dict[tuple[bytes, bytes], int] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def get(self, peer: Peer, sid: int) -> Stream | None:
        return self._streams.get((peer.key, sid))

    # ------------------------------------------------------------------ commands (the host)
    def open(self, peer: Peer, port: int, now: float, out: Outbox, mine: bytes) -> int:
        """Ask ``peer`` for a stream to its local ``port`` (``mine``: our node id, for the id's parity).
        ``StreamAccepted`` or ``StreamReset`` follows. UsageError past the stream limits."""
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is not a TCP port (1-65535)")
        if why := self._full(peer):
            raise UsageError(f"{why}; close some first")
        n = self._next.get(peer.key, 0)
        parity = 1 if mine > peer.node.raw else 0
        while (peer.key, 2 * n + parity) in self._streams:
            n = (n + 1) % (1 << 31)
        self._next[peer.key] = (n + 1) % (1 << 31)
        sid = 2 * n + parity
        self._add(Stream(peer, sid, port, True, window=self.cfg.stream_window))
        out.control(peer, sw.OPEN, sw.encode_open(sid, port, self.cfg.stream_window))
        return sid

    def accept(self, peer: Peer, sid: int, out: Outbox) -> None:
        s = self._need(peer, sid)
        if s.outgoing or s.accepted:
            raise UsageError(f"stream {sid} is not waiting to be accepted")
        s.accepted, s.window = True, self.cfg.stream_window
        out.control(peer, sw.ACCEPT, sw.encode_pair(sid, self.cfg.stream_window))

    def send(self, peer: Peer, sid: int, data: bytes | memoryview, out: Outbox) -> int:
        """Send what the credit allows of ``data``; how many bytes were taken (0: wait for ``StreamCredit``)."""
        s = self._need(peer, sid)
        if s.sent_close:
            raise UsageError(f"stream {sid} is closed for sending")
        n = min(len(data), s.credit) if s.accepted else 0
        for off in range(0, n, CHUNK):
            out.control(peer, sw.DATA, sw.encode_id(sid, data[off:min(n, off + CHUNK)]))
        s.credit -= n
        return n

    def consumed(self, peer: Peer, sid: int, n: int, out: Outbox) -> None:
        """The host passed ``n`` received bytes on: grant them again once a quarter window has been consumed."""
        s = self.get(peer, sid)
        if s is None:
            return
        s.unconsumed -= n
        given = self.cfg.stream_window - s.window - s.unconsumed  # consumed, not granted yet
        if given >= self.cfg.stream_window // 4 and not s.got_close:
            s.window += given
            out.control(peer, sw.CREDIT, sw.encode_pair(sid, given))

    def close(self, peer: Peer, sid: int, out: Outbox) -> None:
        """No more data from us (half-close); the stream is forgotten once the peer closed too."""
        s = self.get(peer, sid)
        if s is None or s.sent_close:
            return
        s.sent_close = True
        out.control(peer, sw.CLOSE, sw.encode_id(sid))
        if s.got_close:
            self._forget(s)

    def reset(self, peer: Peer, sid: int, reason: str, out: Outbox) -> None:
        """Drop the stream both ways, telling the peer why (a refusal is a reset of a stream not accepted)."""
        s = self.get(peer, sid)
        if s is not None:
            self._forget(s)
            out.control(peer, sw.RESET, sw.encode_reset(sid, reason))

    def drop_peer(self, peer_key: tuple[bytes, bytes], reason: str, out: Outbox, tell: bool = False) -> None:
        """Every stream with the peer is reset (``StreamReset`` for each); ``tell``: the peer too (else it went
        away: nothing sent)."""
        for s in [s for (k, _), s in self._streams.items() if k == peer_key]:
            self._forget(s)
            if tell:
                out.control(s.peer, sw.RESET, sw.encode_reset(s.sid, reason))
            out.event(ev.StreamReset(s.peer.network.id, s.peer.node, s.sid, reason))
        if not tell:
            self._next.pop(peer_key, None)

    def lost(self, peer: Peer, name: str, out: Outbox) -> None:
        """The control message ``name`` to ``peer`` will never arrive: if it was a stream's, every stream with
        the peer may now miss bytes or credit, so each is reset both ways (``streams.lost``)."""
        if name in sw.NAMES and self._per_peer.get(peer.key):
            self.counters.inc("streams.lost", self._per_peer[peer.key])
            self.drop_peer(peer.key, "stream data was lost: the channel to the peer gave up on it", out, tell=True)

    # ------------------------------------------------------------------ receiving
    def receive(self, peer: Peer, name: str, body: bytes, now: float, out: Outbox) -> None:
        """A stream message from ``peer`` (raises WireError on a malformed body; the caller counts it)."""
        net, node = peer.network.id, peer.node
        if name == sw.OPEN:
            sid, port, window = sw.decode_open(body)
            if (peer.key, sid) in self._streams:
                self._refuse(peer, sid, DropReason.STREAM_UNKNOWN, "stream id already in use", out)
                return
            if why := self._full(peer):
                self._refuse(peer, sid, DropReason.STREAM_LIMIT, why, out)
                return
            self._add(Stream(peer, sid, port, False, credit=window))
            out.event(ev.StreamRequested(net, node, sid, port))
            return
        sid, rest = sw.decode_id(body)
        s = self._streams.get((peer.key, sid))
        if s is None:
            if name != sw.RESET:  # (a reset of what we already forgot needs no answer)
                self._refuse(peer, sid, DropReason.STREAM_UNKNOWN, "no such stream", out)
            return
        if name == sw.RESET:
            self._forget(s)
            out.event(ev.StreamReset(net, node, sid, sw.decode_reset(rest)))
        elif name == sw.ACCEPT:
            sid, window = sw.decode_pair(body)
            if not s.outgoing or s.accepted:
                return self._violation(s, DropReason.STREAM_UNKNOWN, "unexpected accept", out)
            s.accepted, s.credit = True, window
            out.event(ev.StreamAccepted(net, node, sid))
            out.event(ev.StreamCredit(net, node, sid, s.credit))
        elif name == sw.DATA:
            if s.got_close or len(rest) > s.window or not s.accepted:
                return self._violation(s, DropReason.STREAM_OVERRUN, "window overrun", out)
            s.window -= len(rest)
            s.unconsumed += len(rest)
            out.event(ev.StreamData(net, node, sid, rest))
        elif name == sw.CREDIT:
            sid, more = sw.decode_pair(body)
            if s.sent_close:
                return
            s.credit += more
            out.event(ev.StreamCredit(net, node, sid, s.credit))
        elif name == sw.CLOSE:
            s.got_close = True
            out.event(ev.StreamEnded(net, node, sid))
            if s.sent_close:
                self._forget(s)
        else:
            raise WireError(DropReason.UNKNOWN_FRAME, name)

    # ------------------------------------------------------------------ table
    def _full(self, peer: Peer) -> str:
        """Why no stream may be added with ``peer`` ("" when one may)."""
        if self._per_peer.get(peer.key, 0) >= self.cfg.max_streams_per_peer:
            return f"{self.cfg.max_streams_per_peer} streams already open with this peer"
        if len(self._streams) >= self.cfg.max_streams:
            return f"{self.cfg.max_streams} streams already open"
        return ""

    def _add(self, s: Stream) -> None:
        self._streams[(s.peer.key, s.sid)] = s
        self._per_peer[s.peer.key] = self._per_peer.get(s.peer.key, 0) + 1

    def _forget(self, s: Stream) -> None:
        if self._streams.pop((s.peer.key, s.sid), None) is not None:
            left = self._per_peer[s.peer.key] - 1
            if left:
                self._per_peer[s.peer.key] = left
            else:
                del self._per_peer[s.peer.key]

    def _need(self, peer: Peer, sid: int) -> Stream:
        s = self.get(peer, sid)
        if s is None:
            raise UsageError(f"no stream {sid} with {peer.node.short()} (it was closed or reset)")
        return s

    def _refuse(self, peer: Peer, sid: int, reason: DropReason, text: str, out: Outbox) -> None:
        self.counters.drop(reason)
        out.control(peer, sw.RESET, sw.encode_reset(sid, text))

    def _violation(self, s: Stream, reason: DropReason, text: str, out: Outbox) -> None:
        self._forget(s)
        self._refuse(s.peer, s.sid, reason, text, out)
        out.event(ev.StreamReset(s.peer.network.id, s.peer.node, s.sid, text))
