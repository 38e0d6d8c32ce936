"""Members (core/membership.py): leaving a network says goodbye in order, and forgets the peers' timers.

A CLOSE is sealed in the peer's session before that session is cleared (sealed later, there is no session to
seal it in and the goodbye is silently lost); the signed departure goes out before the CLOSE.
"""

from __future__ import annotations

from helpers import A_ADDR, B_ADDR, Pair
from omerta_mesh.core import events as ev
from omerta_mesh.core.wire.packet import PacketType


def test_leave_sends_departure_then_a_close_the_peer_can_open() -> None:
    p = Pair("goodbye")
    p.connect()
    p.advance(p.now + 5)
    p.events[id(p.b)].clear()
    p.a.leave(p.net.id, p.now)
    out = [d for dst, _, d in p.a.datagrams_to_send() if dst == B_ADDR and d[0] == PacketType.TRANSPORT]
    assert len(out) >= 2, "the departure and the CLOSE"
    # deliver only the last packet: it must be the CLOSE, sealed in the session B still holds
    p.b.receive_datagram(out[-1], A_ADDR, None, p.now)
    while (e := p.b.next_event()) is not None:
        p.events[id(p.b)].append(e)
    assert [e.reason for e in p.of(p.b, ev.PeerDisconnected)] == ["peer closed the session"]
    assert p.b.counters["drop.internal_error"] == 0
    assert p.a.peers() == []


def test_departure_arrives_first() -> None:
    p = Pair("goodbye-order")
    p.connect()
    p.advance(p.now + 5)
    p.a.leave(p.net.id, p.now)
    p.run()
    assert [e.reason for e in p.of(p.b, ev.PeerDisconnected)] == ["left the network"]
    assert p.of(p.b, ev.PeerLeft)
