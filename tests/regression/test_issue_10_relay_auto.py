"""Regression (issue 10, fault 3): only members started with ``--relay`` relayed.

``relay = "auto"`` is the default: public members and members behind an endpoint-independent-filtering NAT
offer relaying (modest quota), announced in their signed records; others do not. Relayed pairs use the
relay with the lowest measured RTT. ``"on"``/``"off"`` (and the old true/false) keep their meanings, and
netcheck shows the mode, whether we relay, and why.
"""

from __future__ import annotations

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.relay.server import relay_mode
from omerta_mesh.core.views import node_view
from omerta_mesh.sim.harness import SimMesh
from omerta_mesh.sim.network import LinkSpec


def test_auto_relays_when_public_or_endpoint_independent_and_announces_it() -> None:
    assert DEFAULT_CONFIG.relay == "auto"
    assert [relay_mode(v) for v in (True, False, "on", "off", "auto")] == ["on", "off", "on", "off", "auto"]
    sm = SimMesh(seed=21)
    pub = sm.add_node("pub")
    helper = sm.add_node("helper")
    cone = sm.add_node("cone", nat=sm.add_nat("nat-cone", "full-cone"))
    pr = sm.add_node("pr", nat=sm.add_nat("nat-pr", "port-restricted"))
    net = pub.mesh.create_network("lab", sm.now)
    for n in (helper, cone, pr):
        sm.join(n, pub, net)
    sm.run_for(30)  # NAT classification (filtering tests) and gossip
    offers = {n.name: n.mesh.relay_server.offer for n in (pub, cone, pr)}
    assert offers["pub"].offering and "public" in offers["pub"].why
    assert offers["cone"].offering and "endpoint-independent" in offers["cone"].why, offers["cone"]
    assert not offers["pr"].offering and offers["pr"].why.startswith("auto:"), offers["pr"]
    assert offers["pub"].rate == DEFAULT_CONFIG.relay_auto_rate < DEFAULT_CONFIG.relay_rate
    recs = {r.name: r.relay for r in pr.mesh.records(net.id)}
    assert recs["pub"] and recs["cone"] and not recs["pr"]  # announced in the signed records
    v = node_view(pr.mesh, sm.now)
    assert (v.relay_mode, v.relaying) == ("auto", False) and v.relay_reason


def test_relayed_pair_uses_the_relay_with_the_lowest_rtt() -> None:
    sm = SimMesh(seed=22)
    far = sm.add_node("far", link=LinkSpec(latency=0.08))
    near = sm.add_node("near", link=LinkSpec(latency=0.005))
    a = sm.add_node("a", nat=sm.add_nat("nat-a", "symmetric-random"), link=LinkSpec(latency=0.01))
    b = sm.add_node("b", nat=sm.add_nat("nat-b", "symmetric-random"), link=LinkSpec(latency=0.01))
    net = far.mesh.create_network("lab", sm.now)
    for n in (near, a, b):
        sm.join(n, far, net)
    sm.run_for(20)
    t0 = sm.now
    while sm.now - t0 < 10:  # traffic: relay paths are measured
        sm.send(a, b, "s", b"x")
        sm.run_for(0.1)
    assert sm.path_kind(a, b, net) == "relay"
    assert a.mesh.relay_name(a.mesh.table.get(net.id, b.mesh.node_id)) == near.mesh.node_id.text()
