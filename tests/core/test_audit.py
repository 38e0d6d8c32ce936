"""The encryption audit: nothing leaves the core unless it is a well-formed, encrypted omerta packet."""

from __future__ import annotations

import random

import pytest

from helpers import B_ADDR, Pair
from omerta_mesh.core import events as ev
from omerta_mesh.core.audit import AuditViolation
from omerta_mesh.core.session.session import Session
from omerta_mesh.core.wire import frames as fw
from omerta_mesh.core.wire import handshake as hw
from omerta_mesh.core.wire.packet import TRANSPORT_HEADER_LEN, PacketType, encode_transport_header


def connected(**kw) -> Pair:
    p = Pair("audit", **kw)
    p.connect()
    return p


def real_transport(p: Pair) -> bytes:
    """A genuine outgoing transport packet from A (taken off the wire, so it is not sent)."""
    p.a.send(p.b.node_id, "chat", b"secret words", p.now)
    [pkt] = [d for _, _, d in p.a.datagrams_to_send() if d[0] == PacketType.TRANSPORT]
    return pkt


def wrong_key_packet(p: Pair) -> bytes:
    """Encrypted, to the right receiver index with a plausible counter, but under a key A does not hold."""
    live = p.a.peers()[0].current
    forged = Session(local_index=1, remote_index=live.remote_index, send_key=bytes(range(32)), recv_key=bytes(32), initiator=True,
                     created_at=p.now)
    forged.send_counter = live.send_counter
    return forged.encrypt(fw.encode_data(0, True, True, fw.MessageKind.MESSAGE, b"x" * 40), p.now)


def plaintext_packet(p: Pair) -> bytes:
    """A transport header in front of an unencrypted frame: the classic "forgot to encrypt" bug."""
    live = p.a.peers()[0].current
    header = encode_transport_header(live.remote_index, live.send_counter)
    return header + fw.encode_data(0, True, True, fw.MessageKind.MESSAGE, b"secret words" * 3)


def zero_mac1_init(p: Pair) -> bytes:
    return bytes((PacketType.HANDSHAKE_INIT, 1, 0, 0)) + bytes(hw.INIT_LEN - 4)


BAD = {
    "raw plaintext": lambda p: b"GET / HTTP/1.1\r\nsecret words",
    "empty": lambda p: b"",
    "plaintext behind a transport header": plaintext_packet,
    "wrong key": wrong_key_packet,
    "truncated transport": lambda p: real_transport(p)[:TRANSPORT_HEADER_LEN + 8],
    "transport minus one byte": lambda p: real_transport(p)[:-1],
    "truncated handshake": lambda p: zero_mac1_init(p)[:100],
    "handshake without mac1": zero_mac1_init,
    "relay from a non-relay": lambda p: bytes((PacketType.RELAY, 1, 0, 0)) + bytes(60),
    "unknown version": lambda p: b"\x04\x02\x00\x00" + real_transport(p)[4:],
}


@pytest.mark.parametrize("make", BAD.values(), ids=BAD.keys())
def test_strict_audit_raises(make) -> None:
    p = connected()
    data = make(p)
    p.a.tx.raw(B_ADDR, None, data)
    with pytest.raises(AuditViolation, match="refusing to send"):
        p.a.datagrams_to_send()
    [v] = p.a.audit.violations
    assert v.dst == B_ADDR and v.size == len(data)


@pytest.mark.parametrize("make", BAD.values(), ids=BAD.keys())
def test_non_strict_audit_counts_and_drops_only_the_bad_one(make) -> None:
    p = connected(strict_audit=False, audit=True)
    good = real_transport(p)
    bad = make(p)
    for d in (good, bad, good):
        p.a.tx.raw(B_ADDR, None, d)
    out = p.a.datagrams_to_send()
    assert [d for _, _, d in out] == [good, good]
    assert p.a.counters["audit.violations"] == 1
    assert len(p.a.audit.violations) == 1


def test_the_genuine_packets_pass() -> None:
    """Control for the cases above: the same constructions, done right, are accepted."""
    p = connected()
    good = real_transport(p)
    p.a.tx.raw(B_ADDR, None, good)
    assert [d for _, _, d in p.a.datagrams_to_send()] == [good]
    assert p.a.audit.violations == []


def test_normal_traffic_yields_no_violations() -> None:
    p = connected()
    rng = random.Random(3)
    p.drop = lambda m, d: rng.random() < 0.03  # so that retransmissions are audited too
    for i in range(300):
        p.a.send(p.b.node_id, "chat", b"m%d" % i, p.now)
        p.b.send(p.a.node_id, "chat", b"n%d" % i, p.now)
        if i % 50 == 0:
            p.a.ping(p.b.node_id, p.now)
            p.b.request(p.a.node_id, "rpc", b"q", p.now, timeout=1.0)
        p.advance(p.now + 2)  # 600 s in all: rekeys, keepalives, acks, retransmits, timeouts
    p.b.send(p.a.node_id, "big", bytes(300_000), p.now)
    p.advance(p.now + 5)
    p.drop = lambda m, d: False
    b_peer = p.b.peers()[0]
    p.a.leave(p.net.id, p.now)  # the goodbye is sent under a session leave() then forgets
    p.advance(p.now + 30)
    assert len(p.of(p.b, ev.ChannelMessage)) == 300 and len(p.of(p.a, ev.ChannelMessage)) == 301
    assert p.of(p.a, ev.SessionRekeyed) and p.of(p.a, ev.PongReceived)
    assert [e.reason for e in p.of(p.b, ev.PeerDisconnected)] == ["left the network"]  # the signed departure (issue 10, fault 8)
    for m in (p.a, p.b):
        assert m.audit.violations == []
        assert m.counters["audit.violations"] == 0
        assert m.audit.checked > 600
    assert p.a.peers() == [] and p.b.peers() == [] and b_peer.stream.stats.retransmits > 0


def test_no_audit_unless_asked() -> None:
    p = connected(strict_audit=False)
    assert p.a.audit is None
    p.a.tx.raw(B_ADDR, None, b"plaintext")
    assert [d for _, _, d in p.a.datagrams_to_send()] == [b"plaintext"]
