"""Repository-level checks: import boundaries, generated docs, the demo."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PURE = [ROOT / "daemon/omerta_mesh/core", ROOT / "daemon/omerta_mesh/sim"]
FORBIDDEN = {"asyncio", "socket", "select", "time", "threading", "subprocess", "random"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_core_and_sim_do_no_io() -> None:
    bad = {}
    for d in PURE:
        for f in d.rglob("*.py"):
            hit = _imports(f) & FORBIDDEN
            if hit:
                bad[str(f.relative_to(ROOT))] = sorted(hit)
    assert bad == {}, f"sans-I/O modules import I/O, time or randomness: {bad}"


def test_clients_never_import_the_daemon_package() -> None:
    bad = [str(f) for f in (ROOT / "clients").rglob("*.py") if "omerta_mesh" in _imports(f)]
    assert bad == []


def test_modules_stay_small() -> None:
    big = {str(f.relative_to(ROOT)): n for f in (ROOT / "daemon").rglob("*.py") if (n := len(f.read_text().splitlines())) > 700}
    assert big == {}, f"split these modules: {big}"


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
