"""Byte streams between two cores (core/streams.py) on a Pair: open/accept/refuse, credit flow control, half-close,
reset, frames for unknown streams, window overruns, the stream limits, and a peer's streams dropped with it."""

from __future__ import annotations

import pytest

from helpers import Pair
from omerta_mesh.core import events as ev
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.mesh import Mesh
from omerta_mesh.core.wire import streams as sw


def pair(seed: str, **kw) -> Pair:
    p = Pair(seed, **kw)
    p.connect()
    return p


def peer_of(m: Mesh, other: Mesh):
    return m.find_peer(other.node_id)


def opened(p: Pair, port: int = 22) -> tuple[int, int]:
    """A opens a stream to B's ``port`` and B accepts it: (A's stream id, B's)."""
    a_peer = peer_of(p.a, p.b)
    sid = p.a.act(p.now, lambda out: p.a.streams.open(a_peer, port, p.now, out, p.a.node_id.raw))
    p.run()
    req = p.of(p.b, ev.StreamRequested)[-1]
    assert (req.stream, req.port) == (sid, port)
    p.b.act(p.now, lambda out: p.b.streams.accept(peer_of(p.b, p.a), req.stream, out))
    p.run()
    assert p.of(p.a, ev.StreamAccepted)[-1].stream == sid
    return sid, req.stream


def data_at(p: Pair, m: Mesh, sid: int) -> bytes:
    return b"".join(e.data for e in p.of(m, ev.StreamData) if e.stream == sid)


def test_bytes_flow_both_ways_in_order_and_a_half_close_lets_the_other_side_finish() -> None:
    p = pair("streams-flow")
    sid, _ = opened(p)
    a_peer, b_peer = peer_of(p.a, p.b), peer_of(p.b, p.a)
    payload = bytes(range(256)) * 100
    assert p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, payload, out)) == len(payload)
    p.a.act(p.now, lambda out: p.a.streams.close(a_peer, sid, out))
    p.run()
    assert data_at(p, p.b, sid) == payload
    assert [e.stream for e in p.of(p.b, ev.StreamEnded)] == [sid]
    # B still sends after A's half-close, then closes: the stream is forgotten on both sides
    assert p.b.act(p.now, lambda out: p.b.streams.send(b_peer, sid, b"reply", out)) == 5
    p.b.act(p.now, lambda out: p.b.streams.close(b_peer, sid, out))
    p.run()
    assert data_at(p, p.a, sid) == b"reply" and [e.stream for e in p.of(p.a, ev.StreamEnded)] == [sid]
    assert len(p.a.streams) == 0 and len(p.b.streams) == 0


def test_a_sender_never_has_more_than_the_window_outstanding_and_consumption_grants_more() -> None:
    p = pair("streams-credit")
    window = p.a.cfg.stream_window
    sid, _ = opened(p)
    a_peer, b_peer = peer_of(p.a, p.b), peer_of(p.b, p.a)
    big = b"x" * (3 * window)
    took = p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, big, out))
    assert took == window  # the credit B granted at accept, no more
    assert p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, big, out)) == 0
    p.run()
    assert len(data_at(p, p.b, sid)) == window
    # B's host has not consumed anything: no credit comes back, however long we wait
    p.advance(p.now + 5)
    assert p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, big, out)) == 0
    # a quarter window consumed: that much credit returns
    p.b.act(p.now, lambda out: p.b.streams.consumed(b_peer, sid, window // 4, out))
    p.run()
    assert p.of(p.a, ev.StreamCredit)[-1].available == window // 4
    assert p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, big, out)) == window // 4


def test_a_stalled_stream_does_not_block_another_stream_or_messages() -> None:
    p = pair("streams-stall")
    stalled, _ = opened(p, 22)
    other, _ = opened(p, 80)
    a_peer, b_peer = peer_of(p.a, p.b), peer_of(p.b, p.a)
    p.a.act(p.now, lambda out: p.a.streams.send(a_peer, stalled, b"s" * p.a.cfg.stream_window, out))  # never consumed
    got = 0
    for _ in range(20):  # the other stream moves 20 windows while the first one sits full
        n = p.a.act(p.now, lambda out: p.a.streams.send(a_peer, other, b"o" * 65536, out))
        p.run()
        p.b.act(p.now, lambda out, n=n: p.b.streams.consumed(b_peer, other, n, out))
        p.run()
        got += n
    assert got >= 20 * p.a.cfg.stream_window // 2 and len(data_at(p, p.b, other)) == got
    mid = p.a.send(p.b.node_id, "chat", b"hello", p.now)
    p.advance(p.now + 1)  # (the acknowledgement is delayed a little)
    assert mid in {e.message_id for e in p.of(p.a, ev.MessageDelivered)}


def test_a_refusal_and_a_reset_carry_their_reason() -> None:
    p = pair("streams-reset")
    a_peer = peer_of(p.a, p.b)
    sid = p.a.act(p.now, lambda out: p.a.streams.open(a_peer, 22, p.now, out, p.a.node_id.raw))
    p.run()
    p.b.act(p.now, lambda out: p.b.streams.reset(peer_of(p.b, p.a), sid, "port 22 not exposed on bravo", out))
    p.run()
    assert [(e.stream, e.reason) for e in p.of(p.a, ev.StreamReset)] == [(sid, "port 22 not exposed on bravo")]
    assert len(p.a.streams) == 0 and len(p.b.streams) == 0
    with pytest.raises(UsageError):
        p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, b"x", out))


def test_frames_for_unknown_streams_and_window_overruns_are_reset_and_counted() -> None:
    p = pair("streams-bad")
    sid, _ = opened(p)
    a_peer = peer_of(p.a, p.b)
    # data for a stream B never had: counted, answered with a reset
    p.a._send_control(a_peer, sw.DATA, sw.encode_id(12345, b"junk"), p.now)
    p.run()
    assert p.b.counters["drop.stream_unknown"] == 1
    assert [(e.stream, e.reason) for e in p.of(p.a, ev.StreamReset)] == []  # (A has no stream 12345 either)
    # A forges data past the window B granted: B resets the stream and counts it; A's host hears the reset
    p.a._send_control(a_peer, sw.DATA, sw.encode_id(sid, b"y" * (p.a.cfg.stream_window + 1)), p.now)
    p.run()
    assert p.b.counters["drop.stream_overrun"] == 1
    assert [(e.stream, e.reason) for e in p.of(p.a, ev.StreamReset)] == [(sid, "window overrun")]
    assert [(e.stream, e.reason) for e in p.of(p.b, ev.StreamReset)] == [(sid, "window overrun")]
    assert len(p.a.streams) == 0 and len(p.b.streams) == 0
    # a malformed stream message is a counted drop, nothing more
    p.a._send_control(a_peer, sw.OPEN, b"\x01", p.now)
    p.run()
    assert p.b.counters["drop.truncated"] >= 1 and len(p.b.streams) == 0


def test_the_stream_limits_refuse_with_a_reason_and_count() -> None:
    p = pair("streams-limit")
    p.b.streams.cfg = p.b.cfg.with_(max_streams_per_peer=3)
    a_peer = peer_of(p.a, p.b)
    sids = [p.a.act(p.now, lambda out: p.a.streams.open(a_peer, 22, p.now, out, p.a.node_id.raw)) for _ in range(4)]
    assert len(set(sids)) == 4
    p.run()
    assert [e.stream for e in p.of(p.b, ev.StreamRequested)] == sids[:3]
    assert [(e.stream, e.reason) for e in p.of(p.a, ev.StreamReset)] == [(sids[3], "3 streams already open with this peer")]
    assert p.b.counters["drop.stream_limit"] == 1 and len(p.b.streams) == 3
    p.a.streams.cfg = p.a.cfg.with_(max_streams_per_peer=3)
    with pytest.raises(UsageError, match="already open"):
        p.a.act(p.now, lambda out: p.a.streams.open(a_peer, 22, p.now, out, p.a.node_id.raw))


def test_both_sides_open_at_once_without_colliding_ids_and_a_dropped_peer_resets_its_streams() -> None:
    p = pair("streams-ids")
    a_peer, b_peer = peer_of(p.a, p.b), peer_of(p.b, p.a)
    x = p.a.act(p.now, lambda out: p.a.streams.open(a_peer, 22, p.now, out, p.a.node_id.raw))
    y = p.b.act(p.now, lambda out: p.b.streams.open(b_peer, 22, p.now, out, p.b.node_id.raw))
    assert x % 2 != y % 2
    p.run()
    assert len(p.a.streams) == 2 and len(p.b.streams) == 2
    p.a.act(p.now, lambda out: p.a.streams.drop_peer(a_peer.key, "peer restarted", out))
    assert sorted(e.stream for e in p.of(p.a, ev.StreamReset)) == []  # (events come out at the next transfer)
    p.run()
    assert sorted(e.stream for e in p.of(p.a, ev.StreamReset)) == sorted([x, y]) and len(p.a.streams) == 0


def test_a_stream_message_the_channel_gives_up_on_resets_the_stream_both_ways_never_a_hole() -> None:
    """The peer's channel drops A's large datagrams for 120 s (probes pass, so the peer stays up) and gives up on
    the stream data: both sides get a StreamReset saying why, B never receives bytes after the lost ones (the
    stream used to stay open with a hole: 1s then 3s, the 2s gone, and no reset on either side)."""
    p = pair("streams-lost")
    sid, b_sid = opened(p)
    a_peer = peer_of(p.a, p.b)
    p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, b"1" * 5000, out))
    p.run()
    p.drop = lambda m, d: m is p.a and len(d) > 400
    p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, b"2" * 5000, out))
    p.advance(p.now + 120)
    p.drop = lambda m, d: False
    assert [e.stream for e in p.of(p.a, ev.StreamReset)] == [sid]
    assert "lost" in p.of(p.a, ev.StreamReset)[0].reason and p.a.counters["streams.lost"] == 1
    with pytest.raises(UsageError):  # the stream is gone at A: nothing more goes after the hole
        p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, b"3" * 3000, out))
    p.advance(p.now + 5)
    assert data_at(p, p.b, b_sid) == b"1" * 5000
    assert [e.stream for e in p.of(p.b, ev.StreamReset)] == [b_sid]  # A's reset reached B once the path healed
    assert len(p.a.streams) == 0 and len(p.b.streams) == 0


def test_channel_messages_filling_the_send_queue_do_not_cost_a_stream_its_data() -> None:
    """An application that queues channel messages until QueueFull must not make the next stream message fail:
    a lost stream message resets every stream with the peer (found in review: streams and channel messages
    shared one queue bound). Control messages may go ``control_send_reserve`` frames beyond it."""
    from dataclasses import replace

    from omerta_mesh.core.config import DEFAULT_CONFIG

    cfg = replace(DEFAULT_CONFIG, reliable_send_queue=64, control_send_reserve=64)
    p = pair("streams-queue", config=cfg)
    sid, b_sid = opened(p)
    a_peer = peer_of(p.a, p.b)
    p.drop = lambda m, d: m is p.a  # nothing from A gets out for now: the queue only grows
    with pytest.raises(UsageError, match="send queue full"):
        for _ in range(1000):
            p.a.send(p.b.node_id, "bulk", b"x" * 1000, p.now)
    p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, b"s" * 5000, out))  # queued beyond, not lost
    assert p.a.counters["control.queue_full"] == 0 and not p.of(p.a, ev.StreamReset)
    p.drop = lambda m, d: False
    p.advance(p.now + 10)
    assert data_at(p, p.b, b_sid) == b"s" * 5000
    assert not p.of(p.a, ev.StreamReset) and not p.of(p.b, ev.StreamReset)


def test_a_stream_message_past_the_control_reserve_resets_the_streams_both_ways() -> None:
    """Beyond the reserve the stream message is lost (``control.queue_full``): the streams are reset on both
    sides with the reason, rather than left open with a hole."""
    from dataclasses import replace

    from omerta_mesh.core.config import DEFAULT_CONFIG

    cfg = replace(DEFAULT_CONFIG, reliable_send_queue=64, control_send_reserve=8)
    p = pair("streams-reserve", config=cfg)
    sid, b_sid = opened(p)
    a_peer = peer_of(p.a, p.b)
    p.drop = lambda m, d: m is p.a
    with pytest.raises(UsageError, match="send queue full"):
        for _ in range(1000):
            p.a.send(p.b.node_id, "bulk", b"x" * 1000, p.now)
    p.a.act(p.now, lambda out: p.a.streams.send(a_peer, sid, b"s" * 20000, out))  # more frames than the reserve
    assert p.a.counters["control.queue_full"] == 1 and p.a.counters["streams.lost"] == 1
    p.drop = lambda m, d: False
    p.advance(p.now + 10)
    assert [e.stream for e in p.of(p.a, ev.StreamReset)] == [sid] and "lost" in p.of(p.a, ev.StreamReset)[0].reason
    assert [e.stream for e in p.of(p.b, ev.StreamReset)] == [b_sid]
    assert data_at(p, p.b, b_sid) == b""  # nothing after a hole
    assert len(p.a.streams) == 0 and len(p.b.streams) == 0
