"""Logging to journald with structured fields through systemd-python, against a fake journald socket in
a private mount namespace (so the host's journal is never touched)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.mark.root("a private mount namespace over the journal socket")
def test_journald_receives_structured_fields() -> None:
    """A log call's upper-case extras, and a core event's line from the daemon's event log, as journal fields."""
    pytest.importorskip("systemd.journal", reason="systemd-python is not installed (pip install '.[systemd]')")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'daemon'}:{ROOT / 'clients'}")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, str(HERE / "journal_probe.py")],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["kind"] == "journald"
    fields = out["datagram"]
    assert "MESSAGE=peer bob is relayed" in fields
    assert "SYSLOG_IDENTIFIER=omerta-meshd" in fields
    assert "PEER=bob" in fields and "PATH=relay" in fields
    assert "PRIORITY=4" in fields  # warning
    event = out["event"]  # a core event through meshd/eventlog.py: PEER, NETWORK, PATH as journal fields
    assert "PEER=bob" in event and "NETWORK=home" in event and "PATH=relay" in event and "PRIORITY=6" in event, event
    assert "ENDPOINT=relay carol" in event and "REASON=direct path lost" in event, event
    assert "MESSAGE=relay change for bob (" in event, event
