"""Regression (issue 10, fault 1): two relay-capable members bounced a dead member's traffic between them.

Three public members A, B, C, all relay-capable, with sessions between every pair; C dies. A routed C
"via B" and B routed C "via A": each relayed what the other relayed, ~340 MB in two minutes. A relayed
frame is never relayed again, a relay forwards only over a direct path, the relay frame carries a hop
limit, and a peer is never routed through a relay that routes it through us.
"""

from __future__ import annotations

import pytest

from omerta_mesh.core.errors import WireError
from omerta_mesh.core.peers.paths import ViaRelay
from omerta_mesh.core.wire import frames as fw
from omerta_mesh.sim.harness import SimMesh


def relay_bytes(*nodes) -> int:
    return sum(n.mesh.counters["relay.bytes"] for n in nodes)


def test_dead_member_is_not_bounced_between_two_relays() -> None:
    sm = SimMesh(seed=10)
    a, b, c = (sm.add_node(n, relay=True) for n in ("a", "b", "c"))
    net = sm.create_network(a, "lab")
    sm.introduce_all(net)
    sm.run_for(10)  # records (each lists the others as its relays) spread by gossip
    assert sm.all_connected(net), sm.failure()
    for x in (a, b):
        for _ in range(20):
            sm.send(x, c, "stream", b"x" * 1000)
    sm.run_for(1)
    before = relay_bytes(a, b)
    c.host.down()  # kill -9: C says nothing
    t0 = sm.now
    while sm.now - t0 < 60:  # A and B keep sending to C
        sm.send(a, c, "stream", b"y" * 1000)
        sm.send(b, c, "stream", b"y" * 1000)
        sm.run_for(0.5)
    moved = relay_bytes(a, b) - before
    assert moved <= 8_000, f"A and B relayed {moved} bytes for a dead member"
    # C is shown disconnected on both, and neither routes it through the other
    for x, y in ((a, b), (b, a)):
        pc = x.mesh.table.get(net.id, c.mesh.node_id)
        assert pc is None or not pc.connected
        assert pc is None or pc.endpoint != ViaRelay(y.mesh.node_id.text()) or not pc.connected


def test_relay_refuses_spent_hops_relayed_arrivals_and_destinations_behind_a_relay() -> None:
    """A RELAY frame with its hop limit spent, one that came through a relay, or one for a destination the
    relay reaches only through a relay, is refused (a counted DropReason), never forwarded."""
    sm = SimMesh(seed=11)
    a, b, c = (sm.add_node(n, relay=True) for n in ("a", "b", "c"))
    net = sm.create_network(a, "lab")
    sm.introduce_all(net)
    sm.run_for(5)
    assert sm.all_connected(net), sm.failure()
    m = b.mesh
    a_at_b = m.table.get(net.id, a.mesh.node_id)
    c_at_b = m.table.get(net.id, c.mesh.node_id)
    to_c = c.mesh.node_id.raw
    forwarded = m.counters["relay.forwarded"]

    def refused(frame: bytes, src) -> str:
        with pytest.raises(WireError) as e:
            m._receive_frame(a_at_b, frame, src, b.address, sm.now)
        return e.value.reason.value

    assert refused(fw.encode_relay(to_c, bytes(64), hops=0), a.address) == "relay_loop"
    assert refused(fw.encode_relay(to_c, bytes(64)), ViaRelay(c.mesh.node_id.text())) == "relay_loop"
    # a RELAYED frame (already relayed once) that itself arrived through a relay is refused too
    assert refused(fw.encode_relay(to_c, bytes(64), relayed=True), ViaRelay(c.mesh.node_id.text())) == "relay_loop"
    via_a = ViaRelay(a.mesh.node_id.text())
    m.links.path(c_at_b, via_a, sm.now)
    c_at_b.endpoint = via_a  # B reaches C only through A: it must not hand A's datagram back to A
    assert refused(fw.encode_relay(to_c, bytes(64)), a.address) == "relay_no_direct_path"
    assert m.counters["relay.forwarded"] == forwarded
    # the hop limit travels in the frame and is checked: a version this node does not speak is dropped
    bad = bytearray(fw.encode_relay(to_c, bytes(64)))
    bad[1] = 9
    with pytest.raises(WireError):
        fw.decode_relay(bytes(bad))
