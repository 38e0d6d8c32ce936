"""Regression: simultaneous initiation where the winner of the tie-break sends to a stale address.

After a restart on a new port, the peer with the larger node id kept initiating to the old address and
ignored the other side's initiations (tie-break), so neither handshake completed until the 90 s give-up.
The winner now also sends its pending initiation to where the loser's came from.
"""

from __future__ import annotations

from helpers import A_ADDR, B_ADDR, Pair
from omerta_mesh.core import events as ev


def test_tie_break_winner_with_stale_endpoint_still_connects() -> None:
    p = Pair("stale")
    big, small = (p.a, p.b) if p.a.node_id.raw > p.b.node_id.raw else (p.b, p.a)
    net = big.create_network("n", p.now)
    small.add_network(net, p.now)
    small_addr = p.addr[id(small)]
    big_addr = p.addr[id(big)]
    stale = ("192.0.2.99", 9)  # where the small node used to be
    assert stale not in (A_ADDR, B_ADDR)
    big.add_peer(net.id, small.node_id, [stale], p.now)
    small.add_peer(net.id, big.node_id, [big_addr], p.now)
    p.advance(p.now + 1.0)  # well inside the 5 s retransmit interval
    assert p.of(big, ev.PeerConnected) and p.of(small, ev.PeerConnected)
    assert big.counters["drop.handshake_tie_break"] >= 1
    assert big.find_peer(small.node_id).endpoint == small_addr
