"""Regression (issue 10, fault 5; seen in test_punch_lab under load, half of 12 runs): two sequential symmetric
NATs stayed relayed.

Two causes, both on the side whose NAT verdict was not ready:

* it punched before its NAT was classified (one peer had reported its address): it offered that one port, not
  predicted ones, so the lock step could not meet. An attempt (or a reply to the peer's candidates) now waits
  for the mapping verdict, up to ``NAT_WAIT`` seconds;
* its own punch burst (64 new mappings) fell between two observations of its address (ports 20000 and 20071):
  read in arrival order that is a step of 71, "random", and no later attempt predicted. Observations now carry
  how many mappings we had made before the observed one, and the step is the port difference per mapping.
"""

from __future__ import annotations

from omerta_mesh.core.events import PunchFinished
from omerta_mesh.core.nat.classify import Allocation, Mapping, Observation, classify
from omerta_mesh.sim.harness import SimMesh

LOCAL = ("10.1.0.10", 51888)


def test_our_own_burst_between_two_observations_does_not_read_as_random_allocation() -> None:
    obs = [Observation(LOCAL, ("203.0.113.10", 51888), ("203.0.113.12", 20000), "r", 1.0, 0),
           Observation(LOCAL, ("203.0.113.11", 51888), ("203.0.113.12", 20071), "s", 30.0, 71)]
    v = classify(obs, [], LOCAL)
    assert v.mapping is Mapping.APDM
    assert (v.allocation, v.port_delta) == (Allocation.SEQUENTIAL, 1), v.evidence
    # without the mapping order (a peer's report of an older daemon, say) arrival order still decides
    unordered = [Observation(o.local, o.dst, o.mapped, o.reporter, o.at) for o in obs]
    assert classify(unordered, [], LOCAL).allocation is Allocation.RANDOM
    # a random NAT stays random: the port differences are not a small step per mapping
    rnd = [Observation(LOCAL, ("203.0.113.1%d" % i, 51888), ("203.0.113.12", p), "x", float(i), k)
           for i, (p, k) in enumerate([(41234, 0), (20871, 1), (55012, 5), (33001, 6)])]
    assert classify(rnd, [], LOCAL).allocation is Allocation.RANDOM


def test_two_sequential_nats_punch_when_the_first_message_goes_before_either_is_classified() -> None:
    sm = SimMesh(seed=41)
    r = sm.add_node("r", relay=True)
    s = sm.add_node("s")
    a = sm.add_node("a", nat=sm.add_nat("nat-a", "symmetric-sequential"))
    b = sm.add_node("b", nat=sm.add_nat("nat-b", "symmetric-sequential"))
    net = r.mesh.create_network("lab", sm.now)
    for n in (s, a, b):
        sm.join(n, r, net)
    sm.run_for(1.0)  # sessions with the inviter: one report of each NAT's address, no verdict yet
    assert a.mesh.nat_verdict().mapping is Mapping.UNKNOWN or b.mesh.nat_verdict().mapping is Mapping.UNKNOWN
    t0 = sm.now
    while sm.now - t0 < 20 and not (sm.path_kind(a, b, net) == "punched" and sm.path_kind(b, a, net) == "punched"):
        sm.send(a, b, "m", b"x")
        sm.run_for(0.5)
    assert (sm.path_kind(a, b, net), sm.path_kind(b, a, net)) == ("punched", "punched"), (
        [e for n in (a, b) for e in n.of(PunchFinished)], a.mesh.nat_verdict(), b.mesh.nat_verdict())
    done = [e for n in (a, b) for e in n.of(PunchFinished) if e.peer in (a.mesh.node_id, b.mesh.node_id)]
    assert done and all(e.ok and e.attempt == 1 for e in done), done  # the first attempt, not the retry after 20 s
