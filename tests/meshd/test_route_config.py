"""The config allowlist of subnet routes (``[routes] accept`` in meshd.toml, docs/vnet.md "Subnet routes"): two real
daemons on loopback (TUN off: nothing is routed, but acceptance is settled and shown as with TUN; the routes in
force on real kernels: tests/netns/test_subnets.py).

* an entry naming a peer not known yet is listed with why, and resolves once the peer joins;
* routes.list says where each acceptance comes from (config, command, both); unaccept refuses a config one;
* a default route and a prefix overlapping the mesh's own are refused as `routes accept` refuses them, with the
  reason in the list and their counters moved once;
* SIGHUP and `daemon.reload` apply a changed [routes] live; a malformed entry is refused naming the entry and the fix.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from clients.ctlharness import wait_until
from meshd.rpcclient import RpcError
from omerta_mesh.meshd.subnetroutes import REFRESH

PREFIX = "10.9.0.0/24"


def write(path: Path, *entries: tuple[str, str]) -> None:
    lines = ", ".join(f'{{ peer = "{peer}", prefix = "{prefix}" }}' for peer, prefix in entries)
    path.write_text(f'[node]\nname = "alpha"\n\n[routes]\naccept = [{lines}]\n')


def accepted(d) -> list[tuple]:
    return [(a["name"], a["node_id"], a["prefix"], a["state"].split(":")[0], a["source"]) for a in d.call("routes.list")["accepted"]]


def test_config_allowlist_resolves_refuses_and_reloads_live(daemon_factory, tmp_path: Path) -> None:
    conf_a, conf_b = tmp_path / "a.toml", tmp_path / "b.toml"
    write(conf_a, ("bravo", PREFIX))
    conf_b.write_text('[node]\nname = "bravo"\n')
    a = daemon_factory("a", extra=["--config", str(conf_a)]).start()
    b = daemon_factory("b", extra=["--config", str(conf_b)]).start()

    # before bravo is a member: listed, naming no node, with why
    wait_until(lambda: accepted(a) != [], 5, "A to settle its config")
    [(name, node, prefix, state, src)] = accepted(a)
    assert (name, node, prefix, state, src) == ("bravo", None, PREFIX, "peer not known", "config")

    net = a.call("network.create", name="home")
    b.call("network.join", invite=net["invite"], wait=10)
    b_id = b.call("status.get")["node_id"]
    wait_until(lambda: accepted(a) == [("bravo", b_id, PREFIX, "not advertised (accepted ahead", "config")], 10,
               "A to resolve bravo")
    [row] = a.call("peers.list")["peers"]
    assert row["node_id"] == b_id and row["routes_accepted"] == [PREFIX] and row["routes_active"] == []

    # a config acceptance is not the command's to remove; accepted by command too, it is both
    with pytest.raises(RpcError, match=r"\[routes\] accept") as e:
        a.call("routes.unaccept", peer="bravo", prefix=PREFIX)
    assert e.value.name == "REFUSED"
    a.call("routes.accept", peer="bravo", prefix=PREFIX)
    assert accepted(a)[0][4] == "config, command"
    a.call("routes.unaccept", peer="bravo", prefix=PREFIX)
    assert accepted(a)[0][4] == "config"

    # refused entries, applied live by SIGHUP: the reason listed, each counter moved once
    mesh = a.call("ip.get")["addresses"][0]["subnet4"]
    inside = mesh.rsplit(".", 2)[0] + ".9.0/24"  # a /24 inside the mesh's own /16
    write(conf_a, (b_id[:10], PREFIX), ("bravo", "0.0.0.0/0"), ("bravo", inside))
    a.signal(signal.SIGHUP)
    wait_until(lambda: len(accepted(a)) == 3, 5, "A to apply the reloaded [routes]")
    states = {x["prefix"]: x["state"] for x in a.call("routes.list")["accepted"]}
    assert states["0.0.0.0/0"].startswith("refused: 0.0.0.0/0 is a default route") and "exit node" in states["0.0.0.0/0"]
    assert states[inside] == f"refused: {inside} overlaps the mesh's own prefix {mesh}"
    assert states[PREFIX].startswith("not advertised")
    wait_until(lambda: a.call("status.get")["counters"].get("routes.refused_default") == 1, 5, "the default route counted")
    wait_until(lambda: a.call("status.get")["counters"].get("routes.refused_overlap") == 1, 5, "the overlap counted")
    time.sleep(3 * REFRESH)  # settled again and again: counted once per configuration
    counters = a.call("status.get")["counters"]
    assert (counters["routes.refused_default"], counters["routes.refused_overlap"]) == (1, 1)

    # daemon.reload: a malformed entry is refused naming it (the running [routes] stays); an empty list applies
    conf_a.write_text('[routes]\naccept = [{ peer = "bravo", prefix = "10.9.0.1/24" }]\n')
    with pytest.raises(RpcError, match=r"routes.accept #1: '10.9.0.1/24' has host bits set; did you mean 10.9.0.0/24\?") as e:
        a.call("daemon.reload")
    assert e.value.name == "CONFIG_INVALID" and len(accepted(a)) == 3
    write(conf_a)
    assert a.call("daemon.reload")["changed"] == ["routes.accept"]
    wait_until(lambda: accepted(a) == [], 5, "A to drop the config's acceptances")
    assert a.call("peers.list")["peers"][0]["routes_accepted"] == []
