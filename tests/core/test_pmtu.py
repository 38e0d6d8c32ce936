"""The path-MTU search (core/peers/pmtu.py): largest size first, a lost padded probe on an answering path means
"too large" (next size at once), on a silent path it means nothing (the same size later), and a found MTU is
checked again after RECHECK."""

from __future__ import annotations

from helpers import Pair
from omerta_mesh.core.peers.pmtu import RECHECK, RELAY_OVERHEAD, RELAY_SIZES, SIZES, WAIT, PathMtu, padding


def test_sizes_are_tried_largest_first_until_one_is_answered() -> None:
    m = PathMtu()
    now = 10.0
    for size in SIZES[:3]:  # the path carries 1340: 1472, 1420 and 1380 are lost while ordinary probes answer
        assert m.due(now) == size
        m.sent(100 + size, size, now)
        assert m.due(now) is None  # one at a time
        now += WAIT
        m.expire(now, last_pong=now - 0.5)
    assert m.due(now) == 1340
    m.sent(7, 1340, now)
    assert not m.answered(8, now) and m.answered(7, now + 0.01)
    assert m.mtu == 1340 and m.due(now + 1) is None and m.due(now + 0.01 + RECHECK) == SIZES[0]


def test_a_silent_path_says_nothing_about_the_size() -> None:
    m = PathMtu()
    m.sent(1, SIZES[0], 0.0)
    m.expire(WAIT, last_pong=None)  # nothing came back at all: the path is down, not narrow
    assert m.mtu is None and m.trying == 0 and m.due(WAIT) is None and m.due(2 * WAIT) == SIZES[0]


def test_when_even_the_smallest_is_lost_the_smallest_stands() -> None:
    m = PathMtu()
    now = 0.0
    for size in SIZES:
        m.sent(size, size, now)
        now += WAIT
        m.expire(now, last_pong=now)
    assert m.mtu == SIZES[-1]


def test_padding_makes_the_datagram_the_probed_size() -> None:
    assert padding(1472, 32) == 1472 - 32 - 5 and padding(10, 32) == 0


def test_a_relay_path_tries_each_size_twice_and_probes_what_fits_inside_the_relay_frames() -> None:
    m = PathMtu(relay=True)
    assert RELAY_SIZES == tuple(s - RELAY_OVERHEAD for s in SIZES) and RELAY_OVERHEAD == 35 + 32
    now = 0.0
    m.sent(1, m.due(now), now)
    now += WAIT
    m.expire(now, last_pong=now)  # lost once while the path answers: a quota drop, or too large? once more
    assert m.due(now) == RELAY_SIZES[0] and m.mtu is None
    m.sent(2, RELAY_SIZES[0], now)
    now += WAIT
    m.expire(now, last_pong=now)  # twice: too large
    assert m.due(now) == RELAY_SIZES[1]
    m.sent(3, RELAY_SIZES[1], now)
    assert m.answered(3, now + 0.1) and m.mtu == RELAY_SIZES[1]
    # a loss, then an answer: the count starts again at the next search
    m = PathMtu(relay=True)
    m.sent(4, RELAY_SIZES[0], 0.0)
    m.expire(WAIT, last_pong=WAIT)
    m.sent(5, RELAY_SIZES[0], WAIT)
    assert m.answered(5, WAIT + 0.1) and m.mtu == RELAY_SIZES[0] and m.lost == 0


def test_a_peer_without_a_session_does_not_wake_for_its_path_mtu() -> None:
    """The search runs with the heartbeat, in a session: a peer that closed its session keeps its measured path,
    and once RECHECK passes its due re-check must not arm the timer (it fired at once, again and again)."""
    p = Pair("pmtu-closed")
    p.connect()
    p.advance(p.now + 30)
    peer = p.a.peers()[0]
    path = peer.paths[peer.endpoint]
    assert path.pmtu is not None and path.pmtu.mtu == SIZES[0]
    p.b.close(p.now)
    p.run()
    assert peer.sendable_session(p.now) is None and peer.paths[peer.endpoint].pmtu is not None
    end, now, fired = p.now + RECHECK + 60, p.now, 0
    while (d := p.a.next_deadline()) is not None and d <= end and fired < 5000:
        now = max(now, d)
        p.a.handle_timer(now)
        p.a.datagrams_to_send()
        fired += 1
    assert now > path.pmtu.next_at and fired < 5000, (now, fired)
