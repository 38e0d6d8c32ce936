"""Regression (seen in the netns NAT matrix under load, CI stop 17): a first message to a member known only by
gossip waited 10 s and more.

The sender behind a port-restricted NAT opened the session on demand: its initiations went to the receiver's
advertised endpoints (dropped by the receiver's NAT, which had never sent to it) and through relays the receiver
names in its record, but only relays the sender already had a session with. When the two had no relay in
common the handshake could not arrive, and the message waited until the receiver happened to initiate
(its reply, say). Now the sender opens a session with the receiver's relay itself (as a Tailscale client
connects to a peer's home DERP), and a relay that connects gives every peer naming it a relay path, with the
pending initiation sent through it at once.
"""

from __future__ import annotations

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.events import ChannelMessage
from omerta_mesh.core.ids import NodeId
from omerta_mesh.sim.harness import SimMesh


def test_first_message_reaches_a_member_whose_relay_we_had_no_session_with() -> None:
    # one neighbour each: A stays with R1 (its inviter), B with R2, so they share no relay
    sm = SimMesh(seed=31, config=DEFAULT_CONFIG.with_(neighbours=1))
    r1 = sm.add_node("r1", relay=True)
    r2 = sm.add_node("r2", relay=True)
    a = sm.add_node("a", nat=sm.add_nat("nat-a", "port-restricted"))
    b = sm.add_node("b", nat=sm.add_nat("nat-b", "port-restricted"))
    net = r1.mesh.create_network("lab", sm.now)
    sm.join(r2, r1, net)
    sm.join(a, r1, net)
    sm.join(b, r2, net)
    sm.run_for(30)  # NAT classification, gossip: A learns B's record (its relay: R2)
    bid, r2id = b.mesh.node_id, r2.mesh.node_id
    assert a.mesh.record_of(net.id, bid) is not None, "gossip did not bring B's record to A"
    assert r2id.raw in a.mesh.record_of(net.id, bid).relays
    assert a.mesh.table.get(net.id, bid) is None, "A already has a peer for B: the test needs a gossip-only member"
    r2_at_a = a.mesh.table.get(net.id, r2id)
    assert r2_at_a is None or not r2_at_a.connected, "A already has a session with B's relay"

    b.drain()
    b.events.clear()
    t0 = sm.now
    sm.send(a, b, "m", b"first")
    got = None
    while sm.now - t0 < 5 and got is None:
        sm.run_for(0.05)
        got = next((e for e in b.of(ChannelMessage) if e.channel == "m"), None)
    assert got is not None and got.data == b"first", (
        f"the first message did not arrive within 5 s\n{sm.failure()}")
    assert isinstance(got.peer, NodeId) and got.peer == a.mesh.node_id
