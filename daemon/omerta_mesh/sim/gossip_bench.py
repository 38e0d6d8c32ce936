"""Gossip convergence on the simulator: N nodes joined through a chain of invites, counted in rounds.

Used by ``bench/gossip_convergence.py`` and by the 1,000-node test. Each node joins through an earlier
member (so the bootstrap graph is a random tree), then rounds run until every node holds every record.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import DEFAULT_CONFIG, CoreConfig
from .harness import SimMesh
from .network import LinkSpec


@dataclass
class ConvergenceResult:
    nodes: int
    converged: bool
    rounds: int
    max_bytes_per_node_round: int
    mean_bytes_per_node_round: float
    sim_seconds: float
    join_seconds: float = 0.0


def converge(n: int, seed: int = 1, max_rounds: int = 60, config: CoreConfig = DEFAULT_CONFIG) -> ConvergenceResult:
    sm = SimMesh(seed=seed, config=config, strict_audit=False)
    link = LinkSpec(latency=0.01, jitter=0.005)
    nodes = [sm.add_node("n0", link=link, relay=True)]
    net = nodes[0].mesh.create_network("bench", sm.now)
    for i in range(1, n):
        node = sm.add_node(f"n{i}", link=link)
        inviter = nodes[(i * 7919 + 13) % len(nodes)]
        sm.join(node, inviter, net)
        nodes.append(node)
    interval = config.gossip_interval
    # everyone joins in the same second; count gossip rounds from when every node has its first session
    joined = lambda: all(any(p.connected for p in x.mesh.table) for x in nodes)  # noqa: E731
    join_deadline = sm.now + 60
    while not joined() and sm.now < join_deadline:
        sm.internet.run_for(0.5)
    join_seconds = sm.now - (join_deadline - 60)
    start = sm.now
    rounds = 0
    max_bytes, total, samples = 0, 0, 0

    def gossip_bytes(node) -> int:
        c = node.mesh.counters
        return c["control.bytes.gossip"]

    before = [gossip_bytes(x) for x in nodes]
    while rounds < max_rounds:
        sm.internet.run_for(interval)
        rounds += 1
        after = [gossip_bytes(x) for x in nodes]
        deltas = [b - a for a, b in zip(before, after)]
        before = after
        max_bytes = max(max_bytes, max(deltas))
        total += sum(deltas)
        samples += len(deltas)
        if all(len(x.mesh.records(net.id)) == n for x in nodes):
            return ConvergenceResult(n, True, rounds, max_bytes, total / samples, sm.now - start, join_seconds)
    return ConvergenceResult(n, False, rounds, max_bytes, total / max(1, samples), sm.now - start, join_seconds)
