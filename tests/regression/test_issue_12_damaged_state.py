"""Regression (issue 12, fault 8): damaged state files stopped omerta-meshd with a traceback.

A peer-cache entry with port 99999 (or a port that is not a number at all) stopped the daemon from
starting, and a ``networks.json`` whose ``"version"`` is not a number gave a TypeError traceback. The peer
cache is disposable: a damaged entry is skipped with a counted warning and the good entries are kept.
Any other damaged file is refused with the "damaged" message naming the file and what to do (exit status
1, as for every state error), never a traceback. Real daemon processes.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from meshd.harness import DaemonProc, join, refused, wait_connected
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.network import Network

STRANGER = Identity.from_seed(bytes(range(32))).node_id.text()  # a valid node id nobody runs


def test_damaged_peer_cache_entries_are_skipped_with_a_warning_and_the_good_one_kept(tmp_path: Path) -> None:
    a, b = DaemonProc(tmp_path, "a"), DaemonProc(tmp_path, "b")
    try:
        a.start()
        b.start()
        _, a_id, _ = join(a, b, "cache")
        b.stop()
        doc = json.loads((b.state / "peers.json").read_text())
        good = next(p for p in doc["peers"] if p["node"] == a_id)
        bad = [
            {"network": good["network"], "node": STRANGER, "endpoints": [["127.0.0.1", 99999]]},  # the report
            {"network": good["network"], "node": STRANGER, "endpoints": [["127.0.0.1", float("inf")]]},  # OverflowError
            {"network": good["network"], "node": STRANGER, "endpoints": [["127.0.0.1", 0]]},
            {"network": good["network"], "node": STRANGER, "endpoints": [["127.0.0.1", True]]},
            {"network": good["network"], "node": STRANGER, "endpoints": [["127.0.0.1", "4000"]]},
            {"network": good["network"], "node": STRANGER, "endpoints": [["not-an-ip", 4000]]},
            {"network": good["network"], "node": STRANGER, "endpoints": "127.0.0.1:4000"},
            {"network": good["network"], "node": 5, "endpoints": [["127.0.0.1", 4000]]},  # AttributeError
            {"network": None, "node": STRANGER, "endpoints": [["127.0.0.1", 4000]]},
            {"network": good["network"], "node": STRANGER},
            "not an entry",
        ]
        good["endpoints"] = [["127.0.0.1", 99999], *good["endpoints"]]  # a bad endpoint of a good entry: dropped
        doc["peers"] = [bad[0], good, *bad[1:]]
        (b.state / "peers.json").write_text(json.dumps(doc))

        b.start()  # starts at all: the cache is disposable
        log = b.log_text()
        assert "Traceback" not in log
        assert f"{b.state / 'peers.json'}: skipped {len(bad)} damaged entries of {len(bad) + 1}, and 1 damaged" in log, log
        assert "WARNING" in next(line for line in log.splitlines() if "damaged entries" in line)
        peers = b.call("peers.list")["peers"]
        assert [p["node_id"] for p in peers] == [a_id]  # the good entry kept, none of the bad ones
        wait_connected(b, a_id)  # and it reconnects through it without the invite
        b.stop()
        saved = json.loads((b.state / "peers.json").read_text())
        assert [p["node"] for p in saved["peers"]] == [a_id]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("name", ["peers.json", "addresses.json"])
def test_a_damaged_cache_file_costs_only_the_cache(tmp_path: Path, name: str) -> None:
    d = DaemonProc(tmp_path, "d")
    try:
        d.start()
        d.call("network.create", name="n")
        d.stop()
        (d.state / name).write_text(json.dumps({"version": "x", "peers": [], "networks": {}}))
        d.start()
        log = d.log_text()
        assert "Traceback" not in log
        assert f"{d.state / name} is damaged" in log, log
        assert len(d.call("network.list")["networks"]) == 1
    finally:
        d.close()


NETWORKS = [
    {"version": "x", "networks": []},  # the report
    {"version": None, "networks": []},
    {"version": True, "networks": []},
    {"version": 1, "networks": "abc"},
    {"version": 1, "networks": [5]},
    {"version": 1, "networks": [{"key": 5}]},
    {"version": 1, "networks": [{"key": "AAAA"}]},
    {"version": 1, "networks": [{"key": "A" * 43 + "=", "name": 5}]},
    [1, 2],
]


@pytest.mark.parametrize("doc", NETWORKS, ids=range(len(NETWORKS)))
def test_damaged_networks_json_is_refused_with_the_damaged_message(tmp_path: Path, doc: object) -> None:
    d = DaemonProc(tmp_path, "d")
    try:
        d.state.mkdir(parents=True)
        (d.state / "networks.json").write_text(json.dumps(doc))
        rc, log = refused(d)
        assert rc == 1, log
        assert "Traceback" not in log
        assert f"{d.state / 'networks.json'} is damaged" in log and "restore it from a backup" in log, log
        assert "cannot start" in log
    finally:
        d.close()


def test_a_damaged_members_file_is_set_aside_and_the_daemon_keeps_everything_else(tmp_path: Path) -> None:
    """Owned networks' members files (io/memberstate.py) follow the cache rule, not networks.json's: a damaged one
    never stops the daemon; it is kept aside, its network starts with nothing of it, and no other state is lost."""
    d = DaemonProc(tmp_path, "d")
    try:
        d.start()
        d.call("network.create", name="open")
        d.stop()
        doc = json.loads((d.state / "networks.json").read_text())
        owned = Network(bytes(range(32)), "owned", Identity.from_seed(bytes(32)).node_id)
        doc["networks"].append({"id": str(owned.id), "name": "owned", "key": base64.b64encode(owned.key).decode(),
                                "owner": owned.owner.text(), "origin": "joined"})
        (d.state / "networks.json").write_text(json.dumps(doc))
        members = d.state / "members"
        members.mkdir(mode=0o700)
        (members / f"{owned.id}.json").write_text('{"version": 1, "network": "truncated')
        d.start()
        log = d.log_text()
        assert "Traceback" not in log
        assert f"{members / f'{owned.id}.json'} is damaged" in log, log
        assert sorted(n["name"] for n in d.call("network.list")["networks"]) == ["open", "owned"]
        assert [p.name.split(".json.damaged-")[0] for p in members.iterdir()] == [str(owned.id)]  # kept aside
        assert json.loads((d.state / "networks.json").read_text()) == doc  # nothing else rewritten or lost
    finally:
        d.close()
