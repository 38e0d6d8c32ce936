"""ReliableStream on its own: two streams joined by a tiny lossy, reordering in-test wire on a virtual clock."""

from __future__ import annotations

import heapq
import random

import pytest

from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.session.reliable import QueueFull, ReliableStream
from omerta_mesh.core.wire import frames as fw

CFG = CoreConfig()
MSG = fw.MessageKind.MESSAGE
T0 = 100.0


def data_frames(frames: list[bytes]) -> list[fw.DataFrame]:
    return [fw.decode_data(f) for f in frames]


class Link:
    """Side A sends messages to side B; both directions lose and reorder frames (seeded)."""

    def __init__(self, seed: int, loss: float = 0.0, cfg: CoreConfig = CFG, jitter: float = 0.0) -> None:
        self.a, self.b = ReliableStream(cfg), ReliableStream(cfg)
        self.rng = random.Random(seed)
        self.loss = loss
        self.jitter = jitter
        self.now = T0
        self.wire: list[tuple[float, int, ReliableStream, bytes]] = []
        self.n = 0
        self.delivered: list[fw.DataFrame] = []  # frames B handed up, in order
        self.acked_ids: list[int] = []  # MessageDelivered ids A reported
        self.failed_ids: list[int] = []
        self.sent_frames = 0

    def put(self, dst: ReliableStream, frames: list[bytes]) -> None:
        for f in frames:
            self.sent_frames += 1
            if self.rng.random() < self.loss:
                continue
            self.n += 1
            at = self.now + 0.02 + self.rng.random() * self.jitter
            heapq.heappush(self.wire, (at, self.n, dst, f))

    def send(self, msg_id: int, chunks: list[bytes]) -> None:
        self.a.enqueue(MSG, chunks, msg_id)
        self.put(self.b, self.a.frames_to_send(self.now))

    def _on(self, dst: ReliableStream, frame: bytes) -> None:
        other = self.a if dst is self.b else self.b
        if frame[0] == fw.FrameType.DATA:
            self.delivered += dst.on_data(fw.decode_data(frame), self.now) if dst is self.b else []
        else:
            ack = fw.decode_ack(frame)
            ids, resend = dst.on_ack(ack.next_seq, ack.sack, self.now)
            self.acked_ids += ids
            self.put(other, resend)
        self.pump()

    def pump(self) -> None:
        self.put(self.b, self.a.frames_to_send(self.now))
        ack = self.b.ack_due(self.now)
        if ack is not None:
            self.put(self.a, [ack])

    def step(self) -> bool:
        cands = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
        if self.wire:
            cands.append(self.wire[0][0])
        if not cands:
            return False
        self.now = max(self.now, min(cands))
        while self.wire and self.wire[0][0] <= self.now:
            _, _, dst, f = heapq.heappop(self.wire)
            self._on(dst, f)
        resend, failed = self.a.on_timeout(self.now)
        self.failed_ids += failed
        self.put(self.b, resend)
        self.pump()
        return True

    def run(self, until: float) -> None:
        while self.now < until and self.step():
            pass


def messages(frames: list[fw.DataFrame]) -> list[bytes]:
    """Reassemble delivered frames (in order) into message bodies by FIRST/LAST flags."""
    out, cur = [], None
    for f in frames:
        if f.first:
            assert cur is None, "a message started inside another"
            cur = b""
        assert cur is not None, "a continuation without a first chunk"
        cur += f.chunk
        if f.last:
            out.append(cur)
            cur = None
    return out


# ------------------------------------------------------------------------------------ delivery
@pytest.mark.parametrize("seed,loss,jitter", [(1, 0.0, 0.0), (2, 0.1, 0.05), (3, 0.3, 0.2), (4, 0.05, 0.5)])
def test_in_order_delivery_under_loss_and_reorder(seed: int, loss: float, jitter: float) -> None:
    link = Link(seed, loss=loss, jitter=jitter)
    rng = random.Random(seed)
    sent = []
    for mid in range(1, 201):
        n = rng.choice([1, 1, 2, 3, 7])
        chunks = [bytes([mid % 256]) * rng.randint(0, 20) + f"{mid}.{i}".encode() for i in range(n)]
        sent.append(b"".join(chunks))
        link.send(mid, chunks)
        if mid % 20 == 0:
            link.run(link.now + 0.3)
    link.run(link.now + 25)
    assert messages(link.delivered) == sent
    assert [f.seq for f in link.delivered] == list(range(len(link.delivered)))
    assert link.acked_ids == list(range(1, 201))  # each reported once, in order
    assert link.failed_ids == []
    assert link.a.queued_frames() == 0
    if loss:
        assert link.a.stats.retransmits > 0
        assert link.sent_frames > len(link.delivered)


def test_delivered_ids_reported_once() -> None:
    s = ReliableStream(CFG)
    s.enqueue(MSG, [b"a"], 11)
    s.enqueue(MSG, [b"b1", b"b2"], 12)
    assert len(s.frames_to_send(T0)) == 3
    assert s.on_ack(2, 0, T0 + 0.1) == ([11], [])  # 12 is half acknowledged
    assert s.on_ack(2, 0, T0 + 0.1) == ([], [])
    assert s.on_ack(3, 0, T0 + 0.2) == ([12], [])
    assert s.on_ack(3, 0, T0 + 0.2) == ([], [])
    assert s.on_ack(1, 0, T0 + 0.3) == ([], [])  # a stale ack does nothing either


def test_ack_for_frames_never_sent_is_ignored() -> None:
    s = ReliableStream(CFG)
    s.enqueue(MSG, [b"a"], 1)
    s.frames_to_send(T0)
    assert s.on_ack(5, 0, T0) == ([], [])
    assert s.queued_frames() == 1


# ------------------------------------------------------------------------------------ window and queue
def test_window_limits_frames_in_flight() -> None:
    s = ReliableStream(CFG)
    for mid in range(CFG.reliable_window + 50):
        s.enqueue(MSG, [b"x"], mid)
    first = data_frames(s.frames_to_send(T0))
    assert [f.seq for f in first] == list(range(CFG.reliable_window))
    assert s.frames_to_send(T0) == []
    s.on_ack(10, 0, T0 + 0.1)
    more = data_frames(s.frames_to_send(T0 + 0.1))
    assert [f.seq for f in more] == list(range(CFG.reliable_window, CFG.reliable_window + 10))
    # selective acks do not open the window: only the cumulative point does
    s.on_ack(10, (1 << 64) - 1, T0 + 0.2)
    assert s.frames_to_send(T0 + 0.2) == []


def test_queue_full_at_the_limit() -> None:
    cfg = CFG.with_(reliable_send_queue=100)
    s = ReliableStream(cfg)
    s.enqueue(MSG, [b"x"] * 60, 1)
    assert s.has_room(40) and not s.has_room(41)
    with pytest.raises(QueueFull) as e:
        s.enqueue(MSG, [b"y"] * 41, 2)
    assert isinstance(e.value, UsageError) and "wait" in str(e.value)
    assert s.queued_frames() == 60  # the refused message left nothing behind
    s.enqueue(MSG, [b"y"] * 40, 3)
    with pytest.raises(QueueFull):
        s.enqueue(MSG, [b"z"], 4)
    # frames leaving for the wire make room again (the limit is on frames waiting behind the window)
    assert len(s.frames_to_send(T0)) == 100
    s.enqueue(MSG, [b"z"], 4)


def test_control_messages_may_queue_the_reserve_beyond_the_limit_and_no_further() -> None:
    s = ReliableStream(CFG.with_(reliable_send_queue=100, control_send_reserve=20))
    s.enqueue(MSG, [b"x"] * 100, 1)
    assert not s.has_room(1) and s.has_room(20, fw.MessageKind.CONTROL) and not s.has_room(21, fw.MessageKind.CONTROL)
    with pytest.raises(QueueFull):
        s.enqueue(MSG, [b"y"], 2)
    s.enqueue(fw.MessageKind.CONTROL, [b"c"] * 15, 3)
    with pytest.raises(QueueFull):
        s.enqueue(fw.MessageKind.CONTROL, [b"c"] * 6, 4)
    s.enqueue(fw.MessageKind.CONTROL, [b"c"] * 5, 5)
    assert s.queued_frames() == 120


# ------------------------------------------------------------------------------------ retransmission timer
def test_rto_backoff_doubles_to_the_max_with_exact_deadlines() -> None:
    s = ReliableStream(CFG)
    s.enqueue(MSG, [b"lost"], 1)
    assert len(s.frames_to_send(T0)) == 1
    assert s.next_deadline() == T0 + CFG.reliable_initial_rto
    assert s.on_timeout(T0 + 0.4) == ([], [])  # not yet
    expected = [T0 + 0.5, T0 + 1.5, T0 + 3.5, T0 + 7.5, T0 + 12.5, T0 + 17.5, T0 + 22.5, T0 + 27.5]
    rtos = []
    for at, nxt in zip(expected, expected[1:]):
        assert s.next_deadline() == at
        resend, failed = s.on_timeout(at)
        assert len(resend) == 1 and failed == []
        assert fw.decode_data(resend[0]).chunk == b"lost"
        rtos.append(s.rto)
        assert s.next_deadline() == nxt
    assert rtos == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]  # doubling, clamped at reliable_max_rto
    assert s.stats.retransmits == 7


def test_rto_min_clamp() -> None:
    s = ReliableStream(CFG)
    s.enqueue(MSG, [b"a", b"b"], 1)
    s.frames_to_send(T0)
    s.on_ack(1, 0, T0 + 0.001)  # a 1 ms RTT sample
    assert s.srtt == pytest.approx(0.001)
    assert s.rto == CFG.reliable_min_rto
    assert s.next_deadline() == T0 + 0.001 + CFG.reliable_min_rto


def test_rto_max_clamp() -> None:
    s = ReliableStream(CFG)
    s.enqueue(MSG, [b"a", b"b"], 1)
    s.frames_to_send(T0)
    s.on_ack(1, 0, T0 + 4.0)  # a 4 s sample: srtt + 4 * rttvar = 12 s
    assert s.rto == CFG.reliable_max_rto
    assert s.next_deadline() == T0 + 4.0 + CFG.reliable_max_rto


def test_karn_retransmitted_frames_give_no_rtt_sample() -> None:
    s = ReliableStream(CFG)
    s.enqueue(MSG, [b"a"], 1)
    s.frames_to_send(T0)
    s.on_timeout(T0 + 0.5)
    s.on_ack(1, 0, T0 + 0.501)
    assert s.srtt is None


def test_fast_retransmit_of_a_hole_revealed_by_sack() -> None:
    s = ReliableStream(CFG)
    s.enqueue(MSG, [b"0"], 1)
    s.frames_to_send(T0)
    s.on_ack(1, 0, T0 + 0.1)  # srtt = 0.1
    s.enqueue(MSG, [b"1", b"2", b"3"], 2)
    s.frames_to_send(T0 + 0.1)
    delivered, resend = s.on_ack(1, 0b10, T0 + 0.15)  # seq 3 arrived, 1 and 2 have not (yet)
    assert (delivered, resend) == ([], [])  # too early to call them lost
    delivered, resend = s.on_ack(1, 0b10, T0 + 0.3)
    assert delivered == [] and [f.seq for f in data_frames(resend)] == [1, 2]
    assert s.on_ack(1, 0b10, T0 + 0.31) == ([], [])  # just resent: not again at once
    assert s.stats.retransmits == 2


# ------------------------------------------------------------------------------------ give-up and reset
def test_give_up_fails_messages_and_receiver_skips_via_reset() -> None:
    link = Link(7)
    link.send(1, [b"doomed-1", b"doomed-2"])
    link.send(2, [b"doomed-3"])
    link.wire.clear()  # everything sent so far is lost ...
    link.loss = 1.0  # ... and so is everything until the sender gives up
    link.run(T0 + CFG.reliable_give_up + 5)
    assert link.failed_ids == [1, 2]
    assert link.a.stats.give_ups == 1
    assert link.a.next_deadline() is None  # nothing left to retransmit
    assert link.delivered == []
    link.loss = 0.0
    link.send(3, [b"fresh"])
    link.run(link.now + 5)
    assert [(f.seq, f.reset, f.chunk) for f in link.delivered] == [(3, True, b"fresh")]
    assert link.acked_ids == [3]
    assert link.b.receive_next == 4
    # only the first frame after a give-up carries RESET
    link.send(4, [b"next"])
    link.run(link.now + 5)
    assert [(f.seq, f.reset) for f in link.delivered[1:]] == [(4, False)]


def test_give_up_happens_exactly_reliable_give_up_after_first_send() -> None:
    s = ReliableStream(CFG.with_(reliable_give_up=2.0))
    s.enqueue(MSG, [b"a"], 1)
    s.enqueue(MSG, [b"b"], 2)
    s.frames_to_send(T0)
    assert s.on_timeout(T0 + 0.5)[1] == []
    assert s.on_timeout(T0 + 1.5)[1] == []
    assert s.next_deadline() == T0 + 3.5
    assert s.on_timeout(T0 + 3.5) == ([], [1, 2])
    assert s.queued_frames() == 0


def test_reset_flag_drops_held_out_of_order_frames_below_it() -> None:
    r = ReliableStream(CFG)
    assert r.on_data(fw.DataFrame(2, True, True, MSG, b"held"), T0) == []
    assert r.on_data(fw.DataFrame(5, True, True, MSG, b"after", reset=True), T0) == [fw.DataFrame(5, True, True, MSG, b"after", True)]
    assert r.receive_next == 6
    assert r.on_data(fw.DataFrame(2, True, True, MSG, b"held"), T0) == []  # now below the window: a duplicate


def test_reset_returns_failed_ids_and_starts_over() -> None:
    s = ReliableStream(CFG.with_(reliable_window=2))
    s.enqueue(MSG, [b"a"], 1)
    s.enqueue(MSG, [b"b1", b"b2"], 2)
    s.enqueue(MSG, [b"c"], 3)
    s.frames_to_send(T0)  # 1 and the first half of 2 in flight, the rest queued
    s.on_ack(1, 0, T0 + 0.1)  # 1 delivered
    s.on_data(fw.DataFrame(0, True, True, MSG, b"in"), T0)
    assert s.receive_next == 1
    assert s.reset() == [2, 3]
    assert s.queued_frames() == 0 and s.next_deadline() is None
    assert s.receive_next == 0
    assert s.rto == CFG.reliable_initial_rto and s.srtt is None
    s.enqueue(MSG, [b"again"], 4)
    assert [f.seq for f in data_frames(s.frames_to_send(T0 + 1))] == [0]
    assert s.reset() == [4]
    assert s.reset() == []


# ------------------------------------------------------------------------------------ receiver
def test_out_of_window_frames_counted_and_dropped() -> None:
    r = ReliableStream(CFG)
    w = CFG.reliable_window
    assert r.on_data(fw.DataFrame(w, True, True, MSG, b"far"), T0) == []
    assert r.on_data(fw.DataFrame(1 << 40, True, True, MSG, b"farther"), T0) == []
    assert r.stats.out_of_window == 2
    assert r.on_data(fw.DataFrame(w - 1, True, True, MSG, b"edge"), T0) == []  # inside: buffered
    assert r.stats.out_of_window == 2 and r.stats.frames_received == 1
    ack = fw.decode_ack(r.ack_due(T0))
    assert ack.next_seq == 0 and ack.sack == 0  # seq w-1 is beyond the 64-bit sack
    got = []
    for seq in range(w - 1):
        got += r.on_data(fw.DataFrame(seq, True, True, MSG, b"%d" % seq), T0)
    assert [f.seq for f in got] == list(range(w))
    assert r.receive_next == w


def test_duplicate_gets_an_immediate_ack() -> None:
    r = ReliableStream(CFG)
    f0 = fw.DataFrame(0, True, True, MSG, b"x")
    assert r.on_data(f0, T0) == [f0]
    assert r.ack_due(T0) is None  # an in-order frame's ack is delayed ...
    assert r.next_deadline() == T0 + CFG.reliable_ack_delay
    assert fw.decode_ack(r.ack_due(T0 + CFG.reliable_ack_delay)) == fw.AckFrame(1, 0)
    assert r.ack_due(T0 + 1) is None
    assert r.on_data(f0, T0 + 2) == []  # ... but a duplicate means our ack was lost: answer at once
    assert r.stats.duplicates == 1
    assert fw.decode_ack(r.ack_due(T0 + 2)) == fw.AckFrame(1, 0)


def test_hole_is_reported_at_once_with_sack_bits() -> None:
    r = ReliableStream(CFG)
    assert r.on_data(fw.DataFrame(2, True, True, MSG, b"c"), T0) == []
    assert r.on_data(fw.DataFrame(4, True, True, MSG, b"e"), T0) == []
    assert fw.decode_ack(r.ack_due(T0)) == fw.AckFrame(0, 0b1010)  # seqs 2 and 4 = next + 1 + {1, 3}
    assert [f.seq for f in r.on_data(fw.DataFrame(0, True, True, MSG, b"a"), T0)] == [0]
    assert [f.seq for f in r.on_data(fw.DataFrame(1, True, True, MSG, b"b"), T0)] == [1, 2]
    assert r.receive_next == 3


def test_every_sixteenth_frame_is_acked_at_once() -> None:
    r = ReliableStream(CFG)
    for seq in range(15):
        r.on_data(fw.DataFrame(seq, True, True, MSG, b""), T0)
    assert r.ack_due(T0) is None
    r.on_data(fw.DataFrame(15, True, True, MSG, b""), T0)
    assert fw.decode_ack(r.ack_due(T0)).next_seq == 16
