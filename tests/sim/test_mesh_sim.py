"""Multi-node scenarios on the simulated Internet (virtual time, seeded, deterministic)."""

from __future__ import annotations

from omerta_mesh.core import events as ev
from omerta_mesh.sim.harness import SimMesh
from omerta_mesh.sim.network import LinkSpec

KINDS = ["full-cone", "restricted", "port-restricted"]


def build_50(seed: int, n: int = 50) -> tuple[SimMesh, object]:
    """``n`` nodes (50): every fifth public, the rest behind n/5 NATs of the three cone kinds (two to five per NAT)."""
    sm = SimMesh(seed=seed)
    nats = [sm.add_nat(f"nat{i}", KINDS[i % 3]) for i in range(n // 5)]
    for i in range(n):
        nat = None if i % 5 == 0 else nats[i % (n // 5)]
        sm.add_node(f"n{i}", nat=nat, link=LinkSpec(latency=0.005, jitter=0.002, loss=0.01))
    net = sm.create_network(sm.nodes["n0"])
    sm.introduce_all(net)
    return sm, net


def test_fifty_nodes_behind_nats_all_pairs_get_sessions() -> None:
    sm, net = build_50(seed=11)
    sm.run_for(15)
    assert sm.all_connected(net), f"missing pairs {sm.missing_pairs(net)[:10]}\n{sm.failure()}"
    # every node has a session with each of the 49 others, and each pair can exchange a message
    n0, n37 = sm.nodes["n0"], sm.nodes["n37"]
    sm.send(n37, n0, "hello", b"from behind a NAT")
    sm.run_for(1)
    got = [e.data for e in n0.of(ev.ChannelMessage)]
    assert got == [b"from behind a NAT"], sm.failure()
    for n in sm.nodes.values():
        assert n.mesh.counters["drop.internal_error"] == 0
        assert n.mesh.audit is not None and n.mesh.audit.violations == []


def test_same_seed_replays_a_byte_identical_trace() -> None:
    """Twenty nodes behind NATs (the fifty-node mesh's layout; replaying all fifty doubled the suite's longest
    simulation, 30 s more, for no path the smaller mesh does not take: NATs of every cone kind, punching, relays)."""
    def run() -> SimMesh:
        sm, net = build_50(seed=11, n=20)
        sm.run_for(15)
        assert sm.all_connected(net), sm.failure()
        sm.send(sm.nodes["n17"], sm.nodes["n0"], "hello", b"from behind a NAT")
        sm.run_for(1)
        return sm
    assert run().trace_digest() == run().trace_digest()


def test_different_seed_gives_a_different_trace() -> None:
    sm = SimMesh(seed=1)
    a, _ = sm.add_node("a", link=LinkSpec(loss=0.2, jitter=0.003)), sm.add_node("b", link=LinkSpec(loss=0.2, jitter=0.003))
    net = sm.create_network(a)
    sm.introduce_all(net)
    sm.run_for(20)
    sm2 = SimMesh(seed=2)
    a2, _ = sm2.add_node("a", link=LinkSpec(loss=0.2, jitter=0.003)), sm2.add_node("b", link=LinkSpec(loss=0.2, jitter=0.003))
    net2 = sm2.create_network(a2)
    sm2.introduce_all(net2)
    sm2.run_for(20)
    assert sm.trace_digest() != sm2.trace_digest()


def test_messages_survive_lossy_reordering_links() -> None:
    sm = SimMesh(seed=5)
    nat = sm.add_nat("nat", "port-restricted")
    a = sm.add_node("a", link=LinkSpec(latency=0.02, jitter=0.01, loss=0.05, reorder=0.1))
    b = sm.add_node("b", nat=nat, link=LinkSpec(latency=0.03, jitter=0.01, loss=0.05, reorder=0.1))
    net = sm.create_network(a)
    sm.introduce_all(net)
    sm.run_for(10)
    assert sm.connected(a, b, net), sm.failure()
    payloads = [b"msg-%d" % i + bytes(i % 3000) for i in range(300)]
    for p in payloads:
        sm.send(a, b, "bulk", p)
    sm.run_for(60)
    got = [e.data for e in b.of(ev.ChannelMessage)]
    assert got == payloads, sm.failure()
    assert not a.of(ev.MessageFailed)


def test_symmetric_nat_pair_cannot_connect_without_traversal() -> None:
    """Without NAT traversal (the connectivity work) two symmetric NATs stay apart: the model is faithful."""
    sm = SimMesh(seed=3)
    n1, n2 = sm.add_nat("s1", "symmetric-random"), sm.add_nat("s2", "symmetric-random")
    a, b = sm.add_node("a", nat=n1), sm.add_node("b", nat=n2)
    net = sm.create_network(a)
    sm.introduce_all(net)
    sm.run_for(30)
    assert not sm.connected(a, b, net)
    assert sm.internet.stats.dropped["no_mapping"] + sm.internet.stats.dropped["nat_filtered"] > 0
