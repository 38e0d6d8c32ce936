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
    sm = SimMesh(seed=seed, config=config, strict_audit=False, trace=False)  # nothing here reads the packet trace
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
    t_join = sm.now
    while not all(any(p.connected for p in x.mesh.table) for x in nodes) and sm.now < t_join + 60:
        sm.internet.run_for(0.5)
    join_seconds = sm.now - t_join
    start = sm.now
    rounds, max_bytes, total, converged = 0, 0, 0, False
    before = [x.mesh.counters["control.bytes.gossip"] for x in nodes]
    while rounds < max_rounds and not converged:
        sm.internet.run_for(interval)
        rounds += 1
        after = [x.mesh.counters["control.bytes.gossip"] for x in nodes]
        deltas = [b - a for a, b in zip(before, after)]
        before = after
        max_bytes = max(max_bytes, max(deltas))
        total += sum(deltas)
        converged = all(len(x.mesh.records(net.id)) == n for x in nodes)
    return ConvergenceResult(n, converged, rounds, max_bytes, total / max(1, rounds * n), sm.now - start, join_seconds)
