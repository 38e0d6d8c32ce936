"""The replay window: each counter accepted at most once, counters older than the window refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.session.replay import ReplayWindow

SIZE = 2048


def test_in_order() -> None:
    w = ReplayWindow(SIZE)
    assert w.highest == -1
    for c in range(5000):
        assert w.would_accept(c)
        assert w.check_and_update(c)
        assert w.highest == c
    for c in (0, 4999, 4000):
        assert not w.check_and_update(c)


def test_out_of_order_within_window() -> None:
    w = ReplayWindow(SIZE)
    assert w.check_and_update(100)
    for c in (99, 50, 0, 101, 98):
        assert w.check_and_update(c), c
    assert w.highest == 101
    for c in (99, 50, 0, 101, 98, 100):
        assert not w.would_accept(c)
        assert not w.check_and_update(c), c
    assert w.check_and_update(97)


def test_duplicate_refused() -> None:
    w = ReplayWindow(SIZE)
    assert w.check_and_update(0)
    assert not w.check_and_update(0)
    assert w.check_and_update(7)
    assert not w.check_and_update(7)
    assert w.check_and_update(3)
    assert not w.check_and_update(3)


def test_exact_boundary() -> None:
    w = ReplayWindow(SIZE)
    top = 10_000
    assert w.check_and_update(top)
    assert not w.would_accept(top - SIZE)  # just outside
    assert not w.check_and_update(top - SIZE)
    assert w.would_accept(top - SIZE + 1)  # the oldest slot inside
    assert w.check_and_update(top - SIZE + 1)
    assert not w.check_and_update(top - SIZE + 1)
    # advancing the top by one pushes the oldest remembered counter out: it must not become acceptable
    assert w.check_and_update(top + 1)
    assert not w.would_accept(top - SIZE + 1)
    assert w.check_and_update(top - SIZE + 2)


def test_seen_counters_stay_refused_as_the_window_slides_past_them() -> None:
    w = ReplayWindow(SIZE)
    for c in range(0, 3 * SIZE, 3):
        assert w.check_and_update(c)
    for c in range(0, 3 * SIZE, 3):
        assert not w.check_and_update(c)


@pytest.mark.parametrize("jump", [SIZE - 1, SIZE, SIZE + 1, 1 << 40, (1 << 64) - 2])
def test_big_jumps(jump: int) -> None:
    w = ReplayWindow(SIZE)
    assert w.check_and_update(0)
    assert w.check_and_update(1)
    assert w.check_and_update(jump + 1)
    assert w.highest == jump + 1
    # after a jump of at least a window, nothing below the new window is accepted, nor the old top
    assert w.check_and_update(1) is False
    back = jump + 1 - (SIZE - 1)
    assert w.would_accept(back) is (back > 1)
    assert not w.would_accept(jump + 1 - SIZE)


def test_gap_after_big_jump_is_empty() -> None:
    """A jump of more than the window must clear the bitmap, not shift stale bits into it."""
    w = ReplayWindow(SIZE)
    for c in range(SIZE):
        w.check_and_update(c)
    w.check_and_update(10 * SIZE)
    accepted = [c for c in range(9 * SIZE + 1, 10 * SIZE) if w.check_and_update(c)]
    assert len(accepted) == SIZE - 1


def test_too_small_window_is_refused() -> None:
    with pytest.raises(ValueError):
        ReplayWindow(63)
    assert ReplayWindow(64).size == 64


class SetModel:
    """The obvious reference: every counter seen, and the highest one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen: set[int] = set()
        self.top = -1

    def accept(self, c: int) -> bool:
        if c in self.seen or c <= self.top - self.size:
            return False
        self.seen.add(c)
        self.top = max(self.top, c)
        return True


# counters near a moving point, with occasional large jumps, so both in-window and out-of-window cases occur
_STEPS = st.lists(
    st.one_of(st.integers(-SIZE - 100, 40), st.integers(-3, 3), st.integers(0, 5 * SIZE),
              st.sampled_from([-SIZE, -SIZE + 1, SIZE, SIZE + 1])),
    min_size=1,
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(steps=_STEPS, size=st.sampled_from([64, 65, 128, SIZE]))
def test_matches_set_model(steps: list[int], size: int) -> None:
    w = ReplayWindow(size)
    model = SetModel(size)
    c = 0
    for d in steps:
        c = max(0, c + d)
        expect = model.accept(c)
        assert w.would_accept(c) is expect
        assert w.check_and_update(c) is expect, (c, model.top)
        assert w.highest == model.top
