"""The path policy is a pure function: tested with a table of situations and the expected choice."""

from __future__ import annotations

import pytest

from omerta_mesh.core.peers.paths import Path, PathState, ViaRelay, choose, path_state

NOW = 100.0
D1, D2 = ("198.51.100.1", 1), ("198.51.100.2", 2)
R1, R2 = ViaRelay("relayone"), ViaRelay("relaytwo")


def path(addr, pong=None, rx=None, srtt=None, lost=0, created=0.0) -> Path:
    p = Path(addr, created)
    p.last_pong, p.last_rx, p.srtt, p.lost_since_pong = pong, rx, srtt, lost
    if pong is not None:
        p.outcomes.extend([True] * 4)
    return p


CASES = [
    # (paths, current, relay_up, expected choice, why)
    ([path(D1, pong=99, srtt=0.01)], None, {}, D1, "an answered direct path is used"),
    ([path(D1, pong=99, srtt=0.01), path(R1, pong=99, srtt=0.002)], R1, {R1: True}, D1, "direct beats a faster relay"),
    ([path(D1, pong=99, srtt=0.01, lost=1), path(R1, pong=99)], D1, {R1: True}, R1, "a direct path that lost a probe fails over"),
    ([path(D1, pong=99, srtt=0.01, lost=1), path(R1, pong=99)], D1, {R1: False}, D1, "no usable relay: stay"),
    ([path(D1, pong=99, srtt=0.010), path(D2, pong=99, srtt=0.011)], D2, {}, D2, "hysteresis: similar paths do not flap"),
    ([path(D1, pong=99, srtt=0.001), path(D2, pong=99, srtt=0.050)], D2, {}, D1, "a clearly better path wins"),
    ([path(D1, pong=90, srtt=0.001), path(D2, pong=99.5, rx=99.9, srtt=0.003)], D1, {}, D2,
     "roaming: the quiet path loses to the fresh one"),
    ([path(R1, pong=99, srtt=0.02), path(R2, pong=99, srtt=0.01)], None, {R1: True, R2: True}, R2, "the faster relay"),
    ([path(R1, pong=99, lost=2), path(R2, pong=99)], R1, {R1: True, R2: True}, R2, "a relay that stopped answering loses"),
    ([path(D1, rx=98)], None, {}, D1, "nothing answered yet: the last path heard from"),
    ([path(D1)], D1, {}, D1, "no evidence at all: keep what we have"),
]


@pytest.mark.parametrize("paths,current,relay_up,expected,why", CASES, ids=[c[-1] for c in CASES])
def test_choose(paths, current, relay_up, expected, why) -> None:
    table = {p.addr: p for p in paths}
    assert choose(table, current, NOW, relay_up).addr == expected, why


def test_path_states() -> None:
    assert path_state(path(D1), NOW) is PathState.UNKNOWN
    assert path_state(path(D1, lost=1), NOW) is PathState.DOWN
    assert path_state(path(D1, pong=50), NOW) is PathState.UP  # idle but never failed
    assert path_state(path(D1, pong=50, lost=1), NOW) is PathState.DOWN
    lossy = path(D1, pong=99)
    lossy.outcomes.extend([False] * 4)
    assert path_state(lossy, NOW) is PathState.DEGRADED


def test_probe_expiry_counts_losses_once() -> None:
    p = path(D1, pong=90)
    p.pending = {1: 95.0, 2: 99.5}
    p.expire_probes(NOW, 2.0)
    assert p.pending == {2: 99.5} and p.lost_since_pong == 1 and p.outcomes[-1] is False
    assert p.next_expiry(2.0) == 101.5
