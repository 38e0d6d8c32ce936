"""An upgrade from the previous version (issue 16's "Must show": state written by the previous version loads and the
network keeps working): three daemons of the previous release (its code taken from git, `git archive`) make an owned
network (dora owns it, emil joined with a one-time invite) and an open one (fred joined); they stop, and this
version starts on the same state directories. Every network is back with its id, name, owner and certificates; the
members reconnect in both; and what this version adds works on the old state: the owner rotates the owned network's
key (emil follows, fred joins with a new invite); and the open network becomes owned by its creator (docs/membership.md
7): dora claims it at its first start with this version, fred (dora invited it) follows and gets its certificate, and
after ``[node] owner_transition`` both hold it as owned by dora and still talk, under a rotated key."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clients.ctlharness import start_all, wait_until
from meshd.harness import ROOT, DaemonProc, wait_connected

PREVIOUS = "42c07cb8802081ba526d6faa3af3cfef2d1a52d8"  # the release before owned networks' key rotation
TRANSITION = 20  # [node] owner_transition for this version: seconds from the creator's claim to an owned network


def previous_code(dest: Path) -> Path:
    """The previous version's daemon package, from git; skip (saying why) where the history is not there."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the previous version's code comes from the repository's history")
    git = ["git", "-c", "safe.directory=*", "-C", str(ROOT)]  # (a clone another user owns: CI's run as nobody)
    found = subprocess.run([*git, "cat-file", "-e", PREVIOUS + "^{commit}"], capture_output=True, text=True)
    if found.returncode:
        pytest.skip(f"commit {PREVIOUS[:12]} (the previous version) is not in this checkout's history, so there is nothing "
                    f"to upgrade from (a shallow clone, or no repository): {found.stderr.strip()[:200]}")
    dest.mkdir()
    archive = subprocess.run([*git, "archive", PREVIOUS, "daemon"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "daemon"


def udp_port() -> int:
    """A UDP port free on loopback just now: a daemon keeps its port across the upgrade, as one on 51888 does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def networks(d: DaemonProc) -> dict[str, Any]:
    return {n["name"]: n for n in d.call("network.list")["networks"]}  # type: ignore[index]


def node_id(d: DaemonProc) -> str:
    return d.call("status.get")["node_id"]  # type: ignore[index]


def test_state_of_the_previous_version_loads_and_its_networks_keep_working(tmp_path: Path) -> None:
    old = {"PYTHONPATH": str(previous_code(tmp_path / "previous"))}
    dora, emil, fred = (DaemonProc(tmp_path, n, ["--port", str(udp_port())], env=old) for n in ("dora", "emil", "fred"))
    try:
        start_all([dora, emil, fred])
        assert dora.call("status.get")["api_revision"] == 18  # type: ignore[index]  (it is the previous version)
        lab = dora.call("network.create", name="lab", owned=True)
        assert emil.call("network.join", invite=lab["invite"], wait=10)["connected"]  # type: ignore[index]
        home = dora.call("network.create", name="home")
        assert fred.call("network.join", invite=home["invite"], wait=10)["connected"]  # type: ignore[index]
        ids = {d: node_id(d) for d in (dora, emil, fred)}
        wait_connected(dora, ids[emil])
        before = {d: networks(d) for d in (dora, emil, fred)}
        for d in (dora, emil, fred):
            d.stop()
        conf = tmp_path / "meshd.toml"
        conf.write_text(f"[node]\nowner_transition = {TRANSITION}\n")
        for d in (dora, emil, fred):  # this version, on the same state directories
            d.env_extra = {}
            d.extra = [*d.extra, "--config", str(conf)]
        start_all([dora, emil, fred])
        assert dora.call("status.get")["api_revision"] > 18  # type: ignore[index]
        for d in (dora, emil, fred):
            after = networks(d)
            assert {k: (v["network"], v["owner"]) for k, v in after.items()} == {
                k: (v["network"], v["owner"]) for k, v in before[d].items()}, d.log_text()[-3000:]
        assert networks(emil)["lab"]["owner"] == ids[dora] and networks(fred)["home"]["owner"] is None
        wait_connected(dora, ids[emil])  # the owned network: emil's certificate from before still admits it
        wait_connected(dora, ids[fred])  # the open one
        emil_peer = next(p for p in dora.call("peers.list")["peers"] if p["node_id"] == ids[emil])  # type: ignore[index]
        assert emil_peer["role"] == "member" and emil_peer["cert_expires"]
        # what this version adds, on the old state: the owner rotates the key, emil follows, fred joins by a new invite
        assert dora.call("network.rekey", network="lab")["epoch"] == 1  # type: ignore[index]
        wait_until(lambda: networks(emil)["lab"]["epoch"] == 1, 10, "emil takes the new key")
        invite = dora.call("network.invite", network="lab")["invite"]  # type: ignore[index]
        assert fred.call("network.join", invite=invite, wait=10)["connected"]  # type: ignore[index]
        assert networks(fred)["lab"]["epoch"] == 1 and networks(fred)["lab"]["network"] == lab["network"]  # type: ignore[index]
        # the open network becomes dora's: claimed at its start, followed by fred (invited by dora), then enforced
        claimed = networks(dora)["home"]
        assert claimed["claim_owner"] == ids[dora] or claimed["owner"] == ids[dora], claimed  # (owned once TRANSITION passed)
        assert "this node claims network home" in dora.log_text() and "created open on this node by an earlier version" in dora.log_text()
        wait_until(lambda: networks(fred)["home"]["claim_owner"] == ids[dora] or networks(fred)["home"]["owner"] == ids[dora],
                   10, "fred follows dora's claim")
        wait_until(lambda: all(networks(d)["home"]["owner"] == ids[dora] for d in (dora, fred)), TRANSITION + 20,
                   "home owned by dora on both")
        wait_until(lambda: networks(fred)["home"]["epoch"] == 1, 10, "fred takes the key dora rotated")

        def fred_in_home() -> dict[str, Any] | None:
            return next((p for p in dora.call("peers.list", network=home["network"])["peers"]  # type: ignore[index]
                         if p["node_id"] == ids[fred] and p["connected"] and p["role"] == "member"), None)
        wait_until(lambda: fred_in_home() is not None, 15, "fred connected with a member certificate in home")
        assert fred_in_home()["cert_expires"]  # type: ignore[index]
        assert f"({ids[dora][:12]}) from now on: members need its certificate" in fred.log_text(), fred.log_text()[-3000:]
    finally:
        for d in (dora, emil, fred):
            d.close()
