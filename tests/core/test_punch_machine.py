"""The hole-punching sub-machine (core/nat/punch.py): its written-down lifecycle and its pure helpers."""

from __future__ import annotations

import pytest

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.counters import Counters
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.nat.classify import NatObserver
from omerta_mesh.core.nat.punch import LEGAL, PeerPunch, Puncher, PunchState, lockstep_order, predicted_ports
from omerta_mesh.core.peers.table import PeerTable

S = PunchState


def machine() -> Puncher:
    ent = SeededEntropy("punch")
    return Puncher(DEFAULT_CONFIG, Counters(), ent, PeerTable(ent, 16), NatObserver())


@pytest.mark.parametrize("frm,to", [(a, b) for a in S for b in S])
def test_the_transition_table_is_what_transition_enforces(frm: PunchState, to: PunchState) -> None:
    pp = PeerPunch(state=frm)
    if to is frm or to in LEGAL[frm]:
        machine()._transition(pp, to)
        assert pp.state is to
    else:
        with pytest.raises(UsageError, match=f"from {frm.value} to {to.value}"):
            machine()._transition(pp, to)
        assert pp.state is frm


def test_an_illegal_move_raises_usage_error() -> None:
    # an offer only follows an attempt (from backing-off), and a failed attempt only ends a burst
    for frm, to in [(S.IDLE, S.OFFERED), (S.OBSERVING, S.BACKING_OFF), (S.OFFERED, S.BACKING_OFF)]:
        with pytest.raises(UsageError, match="cannot go from"):
            machine()._transition(PeerPunch(state=frm), to)


def test_every_state_can_fall_back_to_idle_and_idle_resets_the_deadlines() -> None:
    for st in S:
        if st is S.IDLE:
            continue
        pp = PeerPunch(state=st, attempt_at=1.0, give_up_at=2.0, observe_until_at=3.0, burst_at=[4.0], started=0.5, attempts=3)
        machine()._transition(pp, S.IDLE)
        assert (pp.attempt_at, pp.give_up_at, pp.observe_until_at, pp.burst_at, pp.started, pp.attempts) == (None, None, None, [], None, 0)


def test_predicted_ports_count_from_the_fresh_base_and_the_mappings_made_since() -> None:
    assert predicted_ports(30058, 1, 0, 3) == [30059, 30060, 30061]
    assert predicted_ports(30058, 1, 2, 2) == [30061, 30062]
    assert predicted_ports(30058, -2, 0, 2) == [30056, 30054]
    assert predicted_ports(65534, 1, 0, 3) == [65535]  # never outside the port range


def test_lockstep_order_permutes_predicted_ports_within_blocks_of_five_only_when_asked() -> None:
    eps = [("203.0.113.9", 20000 + k) for k in range(1, 11)] + [("10.1.0.10", 51888)]
    assert lockstep_order(eps, 1, False) == eps
    got = lockstep_order(eps, 1, True)
    assert [p for _, p in got[:10]] == [20001, 20003, 20005, 20002, 20004, 20006, 20008, 20010, 20007, 20009]
    assert got[10] == ("10.1.0.10", 51888) and sorted(got) == sorted(eps)  # the same targets, each once
