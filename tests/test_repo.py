"""Repository-level checks: generated docs, the demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Import boundaries and module size: tests/test_boundaries.py (run first by .ci/run).


def test_protocol_doc_is_generated_from_the_code() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "docs/gen_protocol.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_runs_and_reports_every_message() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "omerta_mesh.demo", "--json", "--messages", "2"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "daemon"), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["received"]) == {"alice", "bob", "carol"}
    for name, msgs in out["received"].items():
        assert len(msgs) == 4 and all(m.endswith(name) or f"->{name} #" in m for m in msgs)
    assert out["audit"]["violations"] == 0 and out["audit"]["checked"] > 10
    assert out["request_answer"] == "hello bob, this is carol"
