"""Gossip convergence in the simulator: rounds until every node holds every record, and gossip bytes sent
per node per round, for N = 100, 300, 1000 (or the sizes given as arguments)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from omerta_mesh.sim.gossip_bench import converge  # noqa: E402


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 300, 1000]
    print(f"{'nodes':>6} {'joined in':>9} {'converged':>9} {'rounds':>6} {'max B/node/round':>17} {'mean B/node/round':>18} {'wall s':>7}")
    for n in sizes:
        t = time.perf_counter()
        r = converge(n)
        print(f"{n:6d} {r.join_seconds:8.1f}s {str(r.converged):>9} {r.rounds:6d} {r.max_bytes_per_node_round:17d} "
              f"{r.mean_bytes_per_node_round:18.0f} {time.perf_counter() - t:7.1f}", flush=True)


if __name__ == "__main__":
    main()
