"""bench/tunnel.py runs end to end for one tunnel: omerta at 0% loss, iperf3 for 1 s (root; about 10 s)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.root("network namespaces, nftables, TUN")


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_tunnel", ROOT / "bench" / "tunnel.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _why_skip(bench) -> str | None:  # (not root: the marker skips it)
    if missing := bench.tools_missing(["omerta"]):  # the bench's own list for the one tunnel run here
        return f"bench/tunnel.py needs {', '.join(missing)} (apt-get install {' '.join(missing)})"
    from netns.lab import requirements_missing

    return requirements_missing()


def test_omerta_row_at_zero_loss() -> None:
    bench = _load_bench()
    if why := _why_skip(bench):
        pytest.skip(why)
    res = bench.run(seconds=1, losses=[0], only=["omerta"])
    rows = [r for r in res["rows"] if r["tunnel"] == "omerta"]
    assert len(rows) == 1, res
    row = rows[0]
    assert row.get("error") is None, row
    assert row["tcp1_mbit"] > 0 and row["tcp4_mbit"] > 0, row
    assert row["rtt_ms"] is not None and row["cpu_s_per_gbit"] is not None and row["cpu_s_per_gbit"] > 0, row
    table = bench.render(res)
    assert any(line.split()[:2] == ["omerta", "0%"] for line in table.splitlines()), table
    assert "no omerta / nebula ratios" in table  # only one tunnel measured
