"""Reliable, in-order delivery of DATA frames between two peers (sans-I/O).

Channel messages, requests and responses travel as DATA frames numbered by a 64-bit sequence number that
never repeats within a stream. The receiver delivers them in order and acknowledges with ACK frames
(cumulative ``next`` plus a 64-bit selective-ack bitmap). The sender keeps at most ``window`` frames in
flight, retransmits on a timeout computed as in RFC 6298 (Karn's rule: only frames sent once give RTT
samples), retransmits holes the selective acks reveal, and backs off exponentially.

Memory is bounded on both sides: the sender's queue by ``reliable_send_queue`` frames (``QueueFull`` is
raised past it, so callers apply back-pressure), the receiver's out-of-order buffer by the window. Control
messages (streams, gossip, punching) may go ``control_send_reserve`` frames beyond that: an application that
fills the queue with channel messages must not make a stream's data fail (a lost stream message resets every
stream with the peer); streams bound their own share by their credit windows.

While the peer has no live path (``hold``), nothing is sent or retransmitted and the give-up clock stops:
messages wait in the queue (bounded by it) and go when a path returns (``release``).

If a frame stays unacknowledged for ``reliable_give_up`` seconds of reachability, the stream gives up: every queued and
in-flight message fails, and the next frame carries the RESET flag so the receiver skips the gap. A peer
that restarted (a new incarnation seen in a handshake) resets the stream on both sides via ``reset()``.

The receiver's caller may decline the frame that begins a message (its host has no receiver for the channel,
or no room): ``hold_back`` keeps it unacknowledged (every later copy is offered again: ``retry``), ``refuse``
answers REFUSE until the sender's RESET moves past it. Either way the acknowledgement never covers a message
the host did not take. The sender, on a REFUSE (``on_refuse``), fails that one message and queues what
followed it again, to go under new sequence numbers after a RESET.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..config import CoreConfig
from ..errors import UsageError
from ..rtt import smooth
from ..wire.frames import DataFrame, MessageKind, RefuseCode, decode_data, encode_ack, encode_data, encode_refuse

SACK_BITS = 64


class QueueFull(UsageError):
    """The peer's send queue is full: wait for acknowledgements before sending more."""


@dataclass(slots=True)
class _Pending:
    first: bool
    last: bool
    kind: MessageKind
    chunk: bytes
    msg_id: int


@dataclass(slots=True)
class _InFlight:
    frame: bytes
    msg_id: int
    last: bool
    first_sent_at: float
    sent_at: float
    retransmitted: bool = False
    sacked: bool = False


@dataclass(slots=True)
class ReliableStats:
    frames_sent: int = 0
    retransmits: int = 0
    frames_received: int = 0
    duplicates: int = 0
    out_of_window: int = 0
    give_ups: int = 0


@dataclass(slots=True)
class _Receiver:
    next_seq: int = 0
    buf: dict[int, DataFrame] = field(default_factory=dict)
    unacked: int = 0
    ack_at: float | None = None
    held: bool = False  # the frame at next_seq (in buf) waits for the host to have room
    refused: tuple[RefuseCode, str] | None = None  # the message at next_seq is refused, until a RESET passes it


class ReliableStream:
    def __init__(self, config: CoreConfig) -> None:
        self.cfg = config
        self.window = config.reliable_window
        self.stats = ReliableStats()
        self._init_state()

    def _init_state(self) -> None:
        # sender
        self._next_seq = 0
        self._acked_below = 0
        self._queue: deque[_Pending] = deque()
        self._inflight: dict[int, _InFlight] = {}
        self._msg_ends: deque[tuple[int, int]] = deque()  # (last seq, msg id) in order
        self._reset_next = False
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = self.cfg.reliable_initial_rto
        self.rto_at: float | None = None
        self.held_at: float | None = None  # the peer has no live path since then
        # receiver
        self._rx = _Receiver()

    # ---------------------------------------------------------------- sender side
    def queued_frames(self) -> int:
        return len(self._queue) + len(self._inflight)

    def counts(self) -> tuple[int, int]:
        """(frames waiting behind the window, frames sent and not acknowledged yet)."""
        return len(self._queue), len(self._inflight)

    def has_room(self, frames: int = 1, kind: MessageKind = MessageKind.MESSAGE) -> bool:
        limit = self.cfg.reliable_send_queue + (self.cfg.control_send_reserve if kind is MessageKind.CONTROL else 0)
        return len(self._queue) + frames <= limit

    def enqueue(self, kind: MessageKind, chunks: list[bytes], msg_id: int) -> None:
        """Queue a message already split into chunks (the first carries the message header)."""
        if not self.has_room(len(chunks), kind):
            raise QueueFull(f"send queue full ({len(self._queue)} frames waiting); wait for delivery and retry")
        n = len(chunks)
        for i, chunk in enumerate(chunks):
            self._queue.append(_Pending(i == 0, i == n - 1, kind, chunk, msg_id))

    def hold(self, now: float) -> None:
        """The peer has no live path: send nothing, retransmit nothing, and stop the give-up clock."""
        if self.held_at is None:
            self.held_at = now
            self.rto_at = None

    def release(self, now: float) -> None:
        """A path answers again: the time held does not count towards giving up."""
        if self.held_at is None:
            return
        held, self.held_at = now - self.held_at, None
        for f in self._inflight.values():
            f.first_sent_at += held
        if self._inflight:
            self.rto_at = now + self.rto

    def frames_to_send(self, now: float) -> list[bytes]:
        """New frames the window allows; arms the retransmission timer."""
        out: list[bytes] = []
        if self.held_at is not None:
            return out
        limit = self._acked_below + self.window
        while self._queue and self._next_seq < limit:
            p = self._queue.popleft()
            seq = self._next_seq
            self._next_seq += 1
            frame = encode_data(seq, p.first, p.last, p.kind, p.chunk, reset=self._reset_next)
            self._reset_next = False
            self._inflight[seq] = _InFlight(frame, p.msg_id, p.last, now, now)
            if p.last:
                self._msg_ends.append((seq, p.msg_id))
            out.append(frame)
        if out:
            self.stats.frames_sent += len(out)
            if self.rto_at is None:
                self.rto_at = now + self.rto
        return out

    def on_ack(self, next_seq: int, sack: int, now: float) -> tuple[list[int], list[bytes]]:
        """Apply an ACK. Returns (ids of messages now fully delivered, frames to retransmit at once)."""
        if next_seq > self._next_seq:
            return [], []  # acknowledges frames never sent: bogus, ignore
        advanced = next_seq > self._acked_below
        sample: float | None = None
        for seq in range(self._acked_below, next_seq):
            f = self._inflight.pop(seq, None)
            if f is not None and not f.retransmitted:
                sample = now - f.sent_at
        if advanced:
            self._acked_below = next_seq
        highest_sacked = -1
        bits = sack
        i = 0
        while bits:
            if bits & 1:
                seq = next_seq + 1 + i
                f = self._inflight.get(seq)
                if f is not None and not f.sacked:
                    f.sacked = True
                    if not f.retransmitted:
                        sample = now - f.sent_at
                highest_sacked = seq
            bits >>= 1
            i += 1
        if sample is not None:
            self._rtt_sample(sample)
        delivered: list[int] = []
        ends = self._msg_ends
        while ends and ends[0][0] < self._acked_below:
            delivered.append(ends.popleft()[1])
        if advanced:
            self.rto_at = (now + self.rto) if self._inflight else None
        # fast retransmit: holes below a selectively acked frame that have had time to arrive
        resend: list[bytes] = []
        if highest_sacked >= 0:
            srtt = self.srtt if self.srtt is not None else self.rto
            for seq in range(next_seq, highest_sacked):
                f = self._inflight.get(seq)
                if f is not None and not f.sacked and now - f.sent_at > srtt * 1.25:
                    f.sent_at = now
                    f.retransmitted = True
                    resend.append(f.frame)
            self.stats.retransmits += len(resend)
        return delivered, resend

    def on_refuse(self, seq: int, now: float) -> tuple[list[int], int | None]:
        """A REFUSE: every frame before ``seq`` arrived, the message beginning at ``seq`` is refused. Returns (ids of
        messages now delivered, the refused message's id, or None for a stale or bogus refusal). What was sent
        after it is queued again, to go under new sequence numbers, the first with RESET."""
        delivered, _ = self.on_ack(seq, 0, now)
        f = self._inflight.get(seq)
        if seq != self._acked_below or f is None or not decode_data(f.frame).first:
            return delivered, None
        mid = f.msg_id
        again = [_Pending(d.first, d.last, d.kind, d.chunk, x.msg_id)
                 for _, x in sorted(self._inflight.items()) if x.msg_id != mid for d in (decode_data(x.frame),)]
        self._queue = deque([*again, *(p for p in self._queue if p.msg_id != mid)])
        self._inflight.clear()
        self._msg_ends.clear()
        self._acked_below = self._next_seq
        self._reset_next = True
        self.rto_at = None
        return delivered, mid

    def _rtt_sample(self, r: float) -> None:
        self.srtt, self.rttvar = smooth(self.srtt, self.rttvar, r)
        self.rto = min(self.cfg.reliable_max_rto, max(self.cfg.reliable_min_rto, self.srtt + 4 * self.rttvar))

    def on_timeout(self, now: float) -> tuple[list[bytes], list[int]]:
        """The retransmission timer fired. Returns (frames to resend, ids of messages that failed)."""
        if self.rto_at is None or now < self.rto_at or self.held_at is not None:
            return [], []
        if not self._inflight:
            self.rto_at = None
            return [], []
        oldest = min(self._inflight)
        if now >= self._inflight[oldest].first_sent_at + self.cfg.reliable_give_up:
            return [], self._give_up()
        resend = []
        for f in self._inflight.values():
            if not f.sacked and now - f.sent_at >= self.rto * 0.5:
                f.sent_at = now
                f.retransmitted = True
                resend.append(f.frame)
        self.stats.retransmits += len(resend)
        self.rto = min(self.cfg.reliable_max_rto, self.rto * 2)
        self.rto_at = now + self.rto
        return resend, []

    def resend_all(self, now: float) -> list[bytes]:
        """The path changed because the old one died: what is in flight was lost with it. The frames to
        send again at once, with the retransmission timer started afresh (its backoff was the dead path's)."""
        resend: list[bytes] = []
        if self.held_at is not None:
            return resend
        for f in self._inflight.values():
            if not f.sacked:
                f.sent_at = now
                f.retransmitted = True
                resend.append(f.frame)
        self.stats.retransmits += len(resend)
        if self._inflight:
            self.rto = max(self.cfg.reliable_min_rto, min(self.rto, self.cfg.reliable_initial_rto))
            self.rto_at = now + self.rto
        return resend

    def _give_up(self) -> list[int]:
        failed = list(dict.fromkeys([f.msg_id for f in self._inflight.values()] + [p.msg_id for p in self._queue]))
        self.stats.give_ups += 1
        self._inflight.clear()
        self._queue.clear()
        self._msg_ends.clear()
        self._acked_below = self._next_seq
        self._reset_next = True
        self.rto_at = None
        self.rto = self.cfg.reliable_initial_rto
        return failed

    def reset(self) -> list[int]:
        """The peer restarted: forget both directions. Returns ids of messages that failed."""
        failed = list(dict.fromkeys([f.msg_id for f in self._inflight.values()] + [p.msg_id for p in self._queue]))
        self._init_state()
        return failed

    # ---------------------------------------------------------------- receiver side
    def on_data(self, frame: DataFrame, now: float) -> list[DataFrame]:
        """Accept a DATA frame; return the frames now deliverable in order."""
        rx = self._rx
        seq = frame.seq
        if frame.reset and seq > rx.next_seq:
            rx.buf = {s: f for s, f in rx.buf.items() if s >= seq}
            rx.next_seq = seq
            rx.held, rx.refused = False, None
        if rx.refused is not None and seq <= rx.next_seq:  # the refused message (or older) again: refuse again
            self.stats.duplicates += 1
            rx.ack_at = now
            return []
        if rx.held and seq == rx.next_seq:  # the held frame again: the caller asks its host once more
            return self.retry(now)
        if seq < rx.next_seq or seq in rx.buf:
            self.stats.duplicates += 1
            rx.ack_at = now  # our ack was probably lost: answer at once
            return []
        if seq >= rx.next_seq + self.window:
            self.stats.out_of_window += 1
            return []
        self.stats.frames_received += 1
        rx.unacked += 1
        if seq != rx.next_seq:
            rx.buf[seq] = frame
            rx.ack_at = now  # a hole: tell the sender now
            return []
        return self._in_order(frame, now)

    def _in_order(self, frame: DataFrame, now: float) -> list[DataFrame]:
        rx = self._rx
        out = [frame]
        nxt = frame.seq + 1
        while nxt in rx.buf:
            out.append(rx.buf.pop(nxt))
            nxt += 1
        rx.next_seq = nxt
        if rx.unacked >= 16:
            rx.ack_at = now
        elif rx.ack_at is None:
            rx.ack_at = now + self.cfg.reliable_ack_delay
        return out

    def hold_back(self, frames: list[DataFrame]) -> None:
        """The caller cannot take ``frames[0]`` (which begins a message) yet, nor what follows it (``frames`` is the
        rest of what ``on_data`` or ``retry`` returned): keep them, unacknowledged, for ``retry``."""
        rx = self._rx
        for f in frames:
            rx.buf[f.seq] = f
        rx.next_seq = frames[0].seq
        rx.held = True

    def retry(self, now: float) -> list[DataFrame]:
        """The frames held back, in order, to offer the host again (none when nothing is held)."""
        rx = self._rx
        first = rx.buf.pop(rx.next_seq, None) if rx.held else None
        rx.held = False
        if first is None:
            return []
        rx.ack_at = now  # the sender waits for this answer
        return self._in_order(first, now)

    def refuse(self, frames: list[DataFrame], code: RefuseCode, reason: str, now: float) -> None:
        """The caller will not take the message beginning at ``frames[0]`` (``frames`` as for ``hold_back``): answer
        REFUSE for it until the sender's RESET passes it; what followed it comes again under new numbers."""
        rx = self._rx
        rx.next_seq = frames[0].seq
        rx.buf.clear()
        rx.held = False
        rx.refused = (code, reason)
        rx.ack_at = now

    @property
    def receive_held(self) -> bool:
        return self._rx.held

    def cancel_ack(self) -> None:
        """No session to send an ACK on: forget it (the sender retransmits, and we ack then)."""
        self._rx.ack_at = None

    def ack_due(self, now: float) -> bytes | None:
        rx = self._rx
        if rx.ack_at is None or now < rx.ack_at:
            return None
        rx.ack_at = None
        rx.unacked = 0
        if rx.refused is not None:
            return encode_refuse(rx.next_seq, *rx.refused)
        sack = 0
        base = rx.next_seq + 1
        for s in rx.buf:
            off = s - base
            if 0 <= off < SACK_BITS:
                sack |= 1 << off
        return encode_ack(rx.next_seq, sack)

    # ---------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        a, b = self.rto_at, self._rx.ack_at
        if a is None:
            return b
        if b is None:
            return a
        return a if a < b else b

    @property
    def receive_next(self) -> int:
        return self._rx.next_seq
