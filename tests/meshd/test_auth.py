"""Authorisation from SO_PEERCRED/SO_PEERGROUPS on the real socket: a client running as `nobody` is
served read methods and refused write methods; the same user with the daemon's group may write."""

from __future__ import annotations

import pytest

from meshd.asuser import TempGroup, run_as
from meshd.rpcclient import RpcClient

WRITES = [
    ("network.create", {"name": "intruder"}),
    ("network.join", {"invite": "omerta1-aaaa"}),
    ("daemon.shutdown", {}),
    ("daemon.reload", {}),
    ("channel.receive", {"channel": "secrets"}),
    ("network.invite", {"network": "whatever"}),
    ("network.remove", {"network": "whatever", "peer": "whoever"}),
    ("network.revoke_invite", {"network": "whatever", "token": "abcd"}),
]


@pytest.fixture
def group():
    g = TempGroup()
    yield g
    g.close()


@pytest.mark.root("a client as nobody, a temporary group")
def test_nobody_reads_but_cannot_write_and_group_members_can(daemon_factory, tmp_path, group) -> None:
    conf = tmp_path / "meshd.toml"
    conf.write_text(f'[api]\ngroup = "{group.name}"\n')
    d = daemon_factory("d", extra=["--config", str(conf)]).start()
    sock = str(d.socket)
    d.call("network.create", name="home")

    def as_reader() -> dict:
        out: dict = {}
        with RpcClient(sock) as c:
            out["status"] = c.call("status.get")["node_id"]
            out["networks"] = [n["name"] for n in c.call("network.list")["networks"]]
            out["peers"] = c.call("peers.list")
            out["errors"] = {m: c.call_raw(m, p).get("error") for m, p in WRITES}
        return out

    res = run_as("nobody", as_reader)
    assert res["status"] == d.call("status.get")["node_id"]
    assert res["networks"] == ["home"] and res["peers"] == {"peers": []}
    for method, e in res["errors"].items():
        assert e is not None and e["code"] == 1001 and e["data"]["name"] == "PERMISSION_DENIED", (method, e)
        assert "uid=65534" in e["message"] and "usermod" in e["data"]["fix"]
    assert [n["name"] for n in d.call("network.list")["networks"]] == ["home"]  # nothing changed
    assert d.alive()

    def as_member() -> str:
        with RpcClient(sock) as c:
            return c.call("network.create", name="by-member")["name"]

    assert run_as("nobody", as_member, groups=(group.gid,)) == "by-member"
    assert sorted(n["name"] for n in d.call("network.list")["networks"]) == ["by-member", "home"]
