"""The NAT matrix's timing goal (root): every pair's first message within 5 s (BRIEF.md, "NAT matrix").

    sudo python3 bench/nat_matrix.py [--json]

The same lab and run as tests/netns/test_mesh_matrix.py's NAT matrix test (its ``run_matrix``: a relay, a second
public observer, and per NAT kind a sender A and a receiver B behind routers of their own, all 36 ordered pairs
in one network, one pair after another). For each pair: the seconds from A's daemon taking the first message to B
receiving it ("first"), and from B's answer to A receiving it ("reply"), each held to the 5 s target (PASS/MISS,
printed, not asserted; a message not delivered within the test's 10 s wait is a MISS), with the path each side
settled on. The test asserts delivery and paths; this prints the times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "clients"), str(ROOT / "daemon")]

from nat_design import design  # noqa: E402
from netns.lab import Lab, requirements_missing  # noqa: E402
from netns.test_mesh_matrix import run_matrix  # noqa: E402

TARGET_S = 5.0


def verdict(seconds: float | None) -> str:
    return "PASS" if seconds is not None and seconds <= TARGET_S else "MISS"


def run() -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-nat-matrix-") as tmpdir, Lab(workdir=tmpdir) as lab:
        m = run_matrix(lab, Path(tmpdir))
        total = time.monotonic() - m.t_start
    pairs = [{"a": ka, "b": kb, "design": design(ka, kb), "a_to_b": r["ab"], "b_to_a": r["ba"], "before": r["warm"],
              "first_s": r["first"], "reply_s": r["back"], "first": verdict(r["first"]), "reply": verdict(r["back"])}
             for (ka, kb), r in m.results.items()]
    return {"target_s": TARGET_S, "pairs": pairs, "setup_s": round(m.setup, 1), "late_s": round(m.late, 1),
            "total_s": round(total, 1), "cpus": os.cpu_count(), "loadavg_before": round(load0, 2)}


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def summary(pairs: list[dict], key: str) -> str:
    times = [p[f"{key}_s"] for p in pairs if p[f"{key}_s"] is not None]
    passed = sum(p[key] == "PASS" for p in pairs)
    spread = f"median {statistics.median(times):.3f} s, max {max(times):.3f} s" if times else "none delivered"
    return f"{key:5}: {passed}/{len(pairs)} PASS (<= {TARGET_S:g} s; {spread})"


def render(res: dict) -> str:
    lines = [f"NAT matrix on real kernels: {len(res['pairs'])} pairs, setup {res['setup_s']} s, total {res['total_s']} s "
             f"(waited {res['late_s']} s for late paths); {res['cpus']} CPUs, load average {res['loadavg_before']} before",
             "first: A's daemon took the message -> B had it; reply: B's answer -> A had it; target each way "
             f"<= {res['target_s']:g} s", "",
             f"{'A':21} {'B':21} {'design':7} {'A->B path':21} {'B->A path':21} {'before':8} "
             f"{'first':>7} {'':4} {'reply':>7} {'':4}"]
    for p in res["pairs"]:
        lines.append(f"{p['a']:21} {p['b']:21} {p['design']:7} {p['a_to_b'] or '-':21} {p['b_to_a'] or '-':21} "
                     f"{p['before']:8} {_s(p['first_s']):>7} {p['first']:4} {_s(p['reply_s']):>7} {p['reply']:4}")
    lines += ["", summary(res["pairs"], "first"), summary(res["pairs"], "reply")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, nftables)")
    if why := requirements_missing():
        ap.error(why)
    res = run()
    print(json.dumps(res) if a.json else render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
