"""Issue 10 fault 4: port prediction from stale data.

A sequential symmetric NAT that has run a while (mappings kept 2 min, as Linux conntrack keeps a UDP stream;
the node talked to many destinations and kept trying to punch to symmetric-random peers) no longer allocates
where a count of our first sends says: the old predictor aimed far from the fresh mapping and a
port-restricted node that joined late stayed relayed. Now the predicting side takes a fresh mapping
observation (a BIND from its second socket to a directly connected peer, which reports the port it got)
immediately before each punch and predicts from it. Two sequential symmetric NATs now punch too (both
predict; lock step, see core/nat/punch.py)."""

from __future__ import annotations

from omerta_mesh.core import events as ev
from omerta_mesh.sim.harness import SimMesh
from omerta_mesh.sim.network import LinkSpec
from sim.test_connectivity import first_message, lab


def test_a_long_running_sequential_symmetric_node_punches_with_a_late_port_restricted_joiner(capsys) -> None:
    sm = SimMesh(seed=3)
    relay = sm.add_node("relay", relay=True)
    helper = sm.add_node("helper")
    nat_a = sm.add_nat("nat-a", "symmetric-sequential", timeout=120.0)
    a = sm.add_node("a", nat=nat_a, link=LinkSpec(latency=0.01))
    randoms = [sm.add_node(f"c{i}", nat=sm.add_nat(f"nat-c{i}", "symmetric-random")) for i in range(2)]
    dests = [sm.add_node(f"d{i}") for i in range(6)]
    net = relay.mesh.create_network("lab", sm.now)
    for n in (helper, a, *randoms, *dests):
        sm.join(n, relay, net)
    sm.run_for(8)
    others = dests + randoms
    end, i = sm.now + 600, 0  # 10 minutes of talking to many destinations (and failed punches)
    while sm.now < end:
        sm.send(a, others[i % len(others)], "chat", b"hi")
        i += 1
        sm.run_for(7)
    nat_b = sm.add_nat("nat-b", "port-restricted")
    b = sm.add_node("b", nat=nat_b, link=LinkSpec(latency=0.01))
    sm.join(b, relay, net)
    sm.run_for(8)
    assert a.mesh.nat_verdict().label == "symmetric-sequential"
    sm.send(b, a, "hello", b"x")
    t0 = sm.now
    while sm.now - t0 < 30 and "relay" in (sm.path_kind(a, b, net), sm.path_kind(b, a, net)) or sm.path_kind(a, b, net) == "none":
        sm.run_for(0.25)
    took = sm.now - t0
    actual = sorted(m.external_port for m in nat_a.mappings(sm.now) if any(r[0] == nat_b.ip for r in m.remotes))
    punch = getattr(a.mesh, "punch", None)  # (the old code had no punch machine to ask)
    predicted = punch.last_prediction if punch is not None else ()
    with capsys.disabled():
        print(f"\nlong-running sym-seq x late port-restricted: {sm.path_kind(a, b, net)}/{sm.path_kind(b, a, net)} after "
              f"{took:.2f} s; A's mapping towards B {actual}, predicted {predicted[:1]}..{predicted[-1:]} "
              f"(fresh observations {a.mesh.counters['punch.fresh_observations']})")
    assert sm.path_kind(a, b, net) == "punched" and sm.path_kind(b, a, net) in ("direct", "punched"), sm.failure(40)
    assert took <= 10.0
    assert a.mesh.counters["punch.fresh_observations"] >= 1
    assert actual and predicted and actual[0] in predicted


def test_two_sequential_symmetric_nats_punch_within_the_budget(capsys) -> None:
    rows = []
    for seed in (1, 2, 3):
        sm, relay, a, b, net = lab("symmetric-sequential", "symmetric-sequential", seed=seed)
        assert first_message(sm, a, b) is not None
        t0 = sm.now
        while sm.now - t0 < 20 and "relay" in (sm.path_kind(a, b, net), sm.path_kind(b, a, net)):
            sm.run_for(0.25)
        rows.append((seed, sm.path_kind(a, b, net), sm.path_kind(b, a, net), round(sm.now - t0, 2)))
        assert sm.path_kind(a, b, net) == "punched" and sm.path_kind(b, a, net) == "punched", f"seed {seed}: {rows[-1]}\n{sm.failure(40)}"
        done = [e for n in (a, b) for e in n.of(ev.PunchFinished) if e.ok]
        assert done and all(e.attempt == 1 for e in done)
    with capsys.disabled():
        print(f"\nsym-seq x sym-seq: {rows}")


def test_a_sequential_symmetric_node_punching_with_several_peers_at_once(capsys) -> None:
    """As in the lab matrix: one node behind a sequential NAT starts attempts with many peers at once. Its
    attempts run one at a time until each has made its mappings, and the ports of mappings already made
    towards a peer (its first handshake) are offered too: otherwise each burst took the ports predicted for
    the others and the port-restricted peers stayed relayed."""
    kinds = ["port-restricted", "symmetric-sequential", "symmetric-random", "port-restricted", "restricted", "symmetric-sequential"]
    rows = []
    for seed in (1, 2, 3):
        sm = SimMesh(seed=seed)
        relay = sm.add_node("relay", relay=True)
        helper = sm.add_node("helper")
        a = sm.add_node("a", nat=sm.add_nat("nat-a", "symmetric-sequential"), link=LinkSpec(latency=0.01))
        bs = [sm.add_node(f"b{i}", nat=sm.add_nat(f"nat-b{i}", k), link=LinkSpec(latency=0.01)) for i, k in enumerate(kinds)]
        net = relay.mesh.create_network("lab", sm.now)
        for n in (helper, a, *bs):
            sm.join(n, relay, net)
        sm.run_for(8)
        for b in bs:
            sm.send(a, b, "hello", b"x")
        sm.run_for(60)
        got = {(k, i): (sm.path_kind(a, b, net), sm.path_kind(b, a, net)) for i, (k, b) in enumerate(zip(kinds, bs))}
        rows.append((seed, [f"{k}:{'direct' if 'relay' not in v else 'relay'}" for (k, _), v in got.items()]))
        for (k, _), v in got.items():
            if k in ("port-restricted", "restricted"):
                assert "relay" not in v, f"seed {seed}: {k} peer {v}"
            if k == "symmetric-random":
                assert v == ("relay", "relay")
        assert any("relay" not in v for (k, _), v in got.items() if k == "symmetric-sequential"), f"seed {seed}: {got}"
    with capsys.disabled():
        print("\nsym-seq with six peers at once (60 s):\n  " + "\n  ".join(f"seed {s}: {r}" for s, r in rows))
