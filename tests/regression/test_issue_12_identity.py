"""Regression (issue 12, fault 9): a lost identity file silently made a new node.

With the identity file deleted and the networks still in the state directory, omerta-meshd created a new
node id and rejoined its networks under it, logging nothing: the peers saw a stranger. Now it refuses to
start and says why and what to do, unless started with ``--new-identity``, which makes the new identity
and logs the change (old and new node id, when the old one is known). A fresh state directory (no
networks) still creates its identity silently. Real daemon processes.
"""

from __future__ import annotations

from pathlib import Path

from meshd.harness import DaemonProc, refused
from omerta_mesh.core.keys import decode_identity


def node_with_a_network(tmp_path: Path) -> tuple[DaemonProc, str, str]:
    d = DaemonProc(tmp_path, "d").start()
    net = d.call("network.create", name="home")["network"]
    node_id = d.call("status.get")["node_id"]
    assert d.stop() == 0
    return d, node_id, net


def test_missing_identity_with_networks_is_refused(tmp_path: Path) -> None:
    d, _, _ = node_with_a_network(tmp_path)
    try:
        (d.state / "identity").unlink()
        networks = (d.state / "networks.json").read_bytes()
        rc, log = refused(d)
        assert rc == 1, log
        assert "Traceback" not in log
        assert f"identity file {d.state / 'identity'} is missing but the state has networks" in log, log
        assert "would come back as a stranger" in log and "restore the file" in log and "--new-identity" in log
        assert not (d.state / "identity").exists()  # nothing was made behind the admin's back
        assert (d.state / "networks.json").read_bytes() == networks
    finally:
        d.close()


def test_new_identity_flag_makes_a_new_identity_and_logs_the_change(tmp_path: Path) -> None:
    d, old_id, net = node_with_a_network(tmp_path)
    try:
        (d.state / "identity").unlink()
        d.extra = ["--new-identity"]
        d.start()
        new_id = d.call("status.get")["node_id"]
        assert new_id != old_id
        assert [n["network"] for n in d.call("network.list")["networks"]] == [net]  # still in its networks
        assert decode_identity((d.state / "identity").read_bytes()).node_id.text() == new_id
        line = next(ln for ln in d.log_text().splitlines() if "new node identity" in ln)
        assert "WARNING" in line and new_id in line and "old node id unknown" in line, line
        d.stop()
        d.extra = []
        d.start()  # the new identity is the identity from now on
        assert d.call("status.get")["node_id"] == new_id
    finally:
        d.close()


def test_new_identity_replaces_a_damaged_identity_naming_old_and_new(tmp_path: Path) -> None:
    d, old_id, _ = node_with_a_network(tmp_path)
    try:
        ident = d.state / "identity"
        damaged = ident.read_text().replace("seed: ", "seed: AAAA")
        ident.write_text(damaged)
        rc, log = refused(d)  # damaged: refused, and the message offers the flag
        assert rc == 1 and f"identity file {ident} is damaged" in log and "--new-identity" in log, log
        d.extra = ["--new-identity"]
        d.start()
        new_id = d.call("status.get")["node_id"]
        line = next(ln for ln in d.log_text().splitlines() if "new node identity" in ln)
        assert "WARNING" in line and old_id in line and new_id in line and new_id != old_id, line
        kept = [p for p in d.state.iterdir() if p.name.startswith("identity.damaged-")]
        assert len(kept) == 1 and kept[0].read_text() == damaged  # the damaged file is kept aside, not lost
    finally:
        d.close()


def test_new_identity_flag_keeps_a_valid_identity(tmp_path: Path) -> None:
    d, old_id, _ = node_with_a_network(tmp_path)
    try:
        d.extra = ["--new-identity"]  # e.g. left in a unit file after a recovery: harmless
        d.start()
        assert d.call("status.get")["node_id"] == old_id
        assert "--new-identity ignored" in d.log_text()
    finally:
        d.close()


def test_fresh_state_directory_creates_its_identity_silently(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path, "d")
    try:
        d.start()
        assert (d.state / "identity").exists()
        assert "identity" not in d.log_text().lower()
    finally:
        d.close()
