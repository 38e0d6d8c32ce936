"""The path-MTU search (core/peers/pmtu.py): largest size first, a lost padded probe on an answering path means
"too large" (next size at once), on a silent path it means nothing (the same size later), and a found MTU is
checked again after RECHECK."""

from __future__ import annotations

from omerta_mesh.core.peers.pmtu import RECHECK, SIZES, WAIT, PathMtu, padding


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
