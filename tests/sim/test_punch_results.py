"""Hole punching ends in a result event, and failed attempts back off (core/links.py)."""

from __future__ import annotations

from omerta_mesh.core import events as ev
from sim.test_connectivity import first_message, lab


def test_a_punch_that_opens_a_direct_path_reports_it() -> None:
    sm, relay, a, b, net = lab("full-cone", "symmetric-sequential")
    assert first_message(sm, a, b) is not None
    sm.run_for(12)
    assert sm.path_kind(a, b, net) == "punched"
    done = [e for n in (a, b) for e in n.of(ev.PunchFinished) if e.ok]
    assert done, "no successful PunchFinished event"
    e = done[0]
    assert e.endpoint is not None and e.retry_in is None and e.attempt == 1
    assert 0 <= e.elapsed < 5.0
    assert not [e for n in (a, b) for e in n.of(ev.PunchFinished) if not e.ok]


def test_failed_punches_are_reported_and_back_off() -> None:
    sm, relay, a, b, net = lab("port-restricted", "symmetric-random")
    assert first_message(sm, a, b) is not None
    sm.run_for(400)
    assert sm.path_kind(a, b, net) == "relay"
    fails = [e for e in a.of(ev.PunchFinished) if e.peer == b.mesh.node_id]
    assert fails and not any(e.ok for e in fails)
    retries = [e.retry_in for e in fails]
    # 20 s, 40 s, 80 s, 160 s ... (capped): about five attempts in 400 s, not one every 20 s (twenty)
    assert retries[:4] == [20.0, 40.0, 80.0, 160.0], retries
    assert [e.attempt for e in fails] == list(range(1, len(fails) + 1))
    assert len(fails) <= 6
    assert all(e.elapsed <= 15.0 for e in fails)  # the schedule (5 s) plus a renewed exchange at most
