"""NAT filtering and hairpinning, measured with the second socket and two peers (core/nat/probing.py)."""

from __future__ import annotations

import pytest

from omerta_mesh.core.nat.classify import Filtering
from omerta_mesh.core.wire import control as cw
from omerta_mesh.core.wire import frames as fw
from omerta_mesh.sim.harness import SimMesh, SimNode
from omerta_mesh.sim.network import LinkSpec
from omerta_mesh.sim.trace import TraceEvent

EXPECTED = {
    "full-cone": Filtering.EIF,
    "restricted": Filtering.ADF,
    "port-restricted": Filtering.APDF,
    "symmetric-sequential": Filtering.APDF,
    "symmetric-random": Filtering.APDF,
}


def behind(
    kind: str, *, observers: int = 2, hairpin: bool = False, seed: int = 1, link: LinkSpec | None = None, settle: float = 15,
) -> tuple[SimMesh, SimNode, list[SimNode]]:
    """X behind a ``kind`` NAT, joined to ``observers`` public members (each at its own address); ``link``
    for X's link and its NAT's uplink."""
    sm = SimMesh(seed=seed)
    pubs = [sm.add_node(f"p{i}") for i in range(observers)]
    x = sm.add_node("x", nat=sm.add_nat("nat", kind, link=link, hairpin=hairpin), link=link)
    net = sm.create_network(pubs[0], "lab", members=[pubs[0]])
    for n in pubs[1:] + [x]:
        sm.join(n, pubs[0], net)
    sm.run_for(settle)
    return sm, x, pubs


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_filtering_is_measured_for_each_nat_kind(kind: str) -> None:
    sm, x, _ = behind(kind)
    v = x.mesh.nat_verdict()
    assert v.filtering is EXPECTED[kind], v.evidence
    assert v.label == kind, v.evidence
    assert any("unsolicited probe" in e for e in v.evidence)
    assert any(e.startswith("second port:") for e in v.evidence), v.evidence
    assert x.mesh.counters["nat.rounds"] == 1
    assert sm.total_drops().get("drop.nat_unexpected", 0) == 0


@pytest.mark.parametrize("hairpin", [False, True])
def test_hairpinning_is_measured(hairpin: bool) -> None:
    _, x, _ = behind("port-restricted", hairpin=hairpin)
    v = x.mesh.nat_verdict()
    assert v.hairpin is hairpin, v.evidence
    assert v.to_dict()["hairpinning"] is hairpin


def test_symmetric_nat_hairpinning_is_not_claimed() -> None:
    _, x, _ = behind("symmetric-random", hairpin=True)
    assert x.mesh.nat_verdict().hairpin is None


def test_a_public_node_runs_no_tests() -> None:
    sm, x, pubs = behind("full-cone")
    v = pubs[0].mesh.nat_verdict()
    assert v.filtering is Filtering.NONE and v.label == "public"
    assert pubs[0].mesh.counters["nat.rounds"] == 0


def test_with_one_observer_only_a_conclusive_result_is_reported() -> None:
    # port filtering shows with one peer (its other port is filtered); full-cone needs a second address
    _, x, _ = behind("port-restricted", observers=1)
    assert x.mesh.nat_verdict().filtering is Filtering.APDF
    sm, y, _ = behind("full-cone", observers=1)
    assert y.mesh.nat_verdict().filtering is Filtering.UNKNOWN
    # without a second peer the test is retried, backing off (15 s, 30 s, 60 s ...), not every second
    sm.run_for(200)
    assert 3 <= y.mesh.counters["nat.rounds"] <= 5


def test_nat_probes_do_not_move_the_peer_endpoint() -> None:
    sm, x, pubs = behind("full-cone")
    second = [o.mapped for o in x.mesh.nat.observations if o.local == x.mesh.probe_local]
    assert second, "the second socket's mapping was observed"
    for p in pubs:
        entry = p.mesh.table.get(next(iter(p.mesh.networks.values())).id, x.mesh.node_id)
        assert entry.endpoint != second[0]
        assert second[0] not in entry.paths
        assert entry.local == p.mesh.local_endpoints[0]


def test_the_test_runs_again_when_the_public_address_changes() -> None:
    sm, x, _ = behind("full-cone")
    assert x.mesh.nat_verdict().filtering is Filtering.EIF
    x.host.set_address(behind=sm.add_nat("nat2", "port-restricted"))  # the laptop moves to another network
    sm.run_for(30)
    v = x.mesh.nat_verdict()
    assert x.mesh.counters["nat.rounds"] == 2
    assert v.filtering is Filtering.APDF and v.label == "port-restricted", v.evidence


def test_the_test_is_repeated_at_the_interval() -> None:
    sm, x, _ = behind("restricted")
    sm.run_for(x.mesh.cfg.nat_test_interval + 5)
    assert x.mesh.counters["nat.rounds"] == 2
    assert x.mesh.nat_verdict().filtering is Filtering.ADF


def _entry(a: SimNode, b: SimNode):
    net = next(iter(a.mesh.networks.values()))
    return a.mesh.table.get(net.id, b.mesh.node_id)


def test_a_test_aimed_at_a_third_party_is_refused_and_counted() -> None:
    sm, x, pubs = behind("full-cone")
    victim = ("198.51.100.77", 5000)
    p = pubs[0]
    for kind in (1, 2):
        p.mesh._send_control(_entry(p, x), "nat.test", cw.encode_nat_test(cw.NatTest(1234 + kind, kind, victim)), sm.now)
    sm.pump()
    sm.run_for(2)
    assert x.mesh.counters["drop.nat_unexpected"] == 2
    sent = [r for r in sm.internet.trace.select(event=TraceEvent.SEND) if r.dst == victim]
    assert sent == []


def test_unasked_answers_are_dropped_and_counted() -> None:
    sm, x, pubs = behind("full-cone")
    p = pubs[0]
    entry = _entry(p, x)
    before = x.mesh.counters["drop.nat_unexpected"]
    for frame in (fw.encode_natprobe(fw.NatOp.TEST, 77), fw.encode_natprobe(fw.NatOp.BOUND, 78, ("198.18.0.1", 1))):
        p.mesh._send_frame(entry, frame, sm.now)
    sm.pump()
    sm.run_for(1)
    assert x.mesh.counters["drop.nat_unexpected"] == before + 2
    assert x.mesh.nat_verdict().filtering is Filtering.EIF  # unchanged


def test_a_flood_of_test_requests_is_rate_limited() -> None:
    sm, x, pubs = behind("full-cone")
    p = pubs[0]
    target = _entry(p, x).endpoint  # where p reaches x: allowed, but only a few times
    for i in range(40):
        x.mesh._send_control(_entry(x, p), "nat.test", cw.encode_nat_test(cw.NatTest(5000 + i, 2, target)), sm.now)
    sm.pump()
    sm.run_for(3)
    assert p.mesh.counters["drop.rate_limited"] >= 30
    assert p.mesh.counters["nat.tests_sent"] <= 8


def test_loss_never_makes_a_wrong_verdict() -> None:
    """5% loss on the NAT'd host's link and on its NAT's uplink: a lost BIND or probe may leave filtering
    unknown for a while, but never reads as a filter that is not there (copies, a sticky P, and no Q our
    second socket ever sent to)."""
    wrong, unknown, total = [], 0, 0
    for seed in range(1, 7):
        for kind, want in EXPECTED.items():
            _, x, _ = behind(kind, seed=seed, link=LinkSpec(loss=0.05), settle=40)
            got = x.mesh.nat_verdict().filtering
            total += 1
            if got is Filtering.UNKNOWN:
                unknown += 1
            elif got is not want:
                wrong.append((seed, kind, got.name))
    assert wrong == []
    assert unknown <= total // 10, f"{unknown} of {total} still unmeasured after 40 s"
