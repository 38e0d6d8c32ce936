"""IP frames in the core (core/ipframes.py, Mesh.send_ip / ip_packets_to_write): one packet, one frame, one
datagram, sealed in the session; delivered only for networks a driver opened; bounded; never queued behind
the reliable stream."""

from __future__ import annotations

from helpers import Pair
from omerta_mesh.core.config import DEFAULT_CONFIG

IP_QUEUE_LIMIT = DEFAULT_CONFIG.max_ip_queue

PKT = bytes([0x45]) + bytes(99)


def test_a_packet_crosses_in_one_datagram_to_an_opened_network() -> None:
    p = Pair("ip-one")
    p.connect()
    p.a.ip.open(p.net.id)
    p.run()
    assert p.b.send_ip(p.net.id, p.a.node_id, PKT, p.now)
    out = p.b.datagrams_to_send()
    assert len(out) == 1 and PKT not in out[0][2]  # sealed: the plaintext is not on the wire
    p.a.receive_datagram(out[0][2], ("192.0.2.2", 5000), None, p.now)
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, PKT)]
    assert p.a.ip_packets_to_write() == []
    assert p.b.counters["ip.tx_packets"] == 1


def test_not_queued_behind_channel_traffic() -> None:
    p = Pair("ip-hol")
    p.connect()
    p.a.ip.open(p.net.id)
    for _ in range(200):  # a full send window of channel messages, unacknowledged
        p.b.send(p.a.node_id, "bulk", b"x" * 1000, p.now, p.net.id)
    p.b.datagrams_to_send()
    assert p.b.send_ip(p.net.id, p.a.node_id, PKT, p.now)
    [(_, _, dgram)] = p.b.datagrams_to_send()  # out at once, alone
    p.a.receive_datagram(dgram, ("192.0.2.2", 5000), None, p.now)
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, PKT)]


def test_a_network_without_a_device_drops_and_counts_and_keeps_nothing() -> None:
    p = Pair("ip-closed")
    p.connect()
    for _ in range(10):
        p.b.send_ip(p.net.id, p.a.node_id, PKT, p.now)
    p.run()
    assert p.a.counters["drop.ip_unrouted"] == 10 and p.a.ip_packets_to_write() == []
    p.a.ip.open(p.net.id)
    p.a.ip.close(p.net.id)
    p.b.send_ip(p.net.id, p.a.node_id, PKT, p.now)
    p.run()
    assert p.a.counters["drop.ip_unrouted"] == 11


def test_received_packets_are_bounded_until_drained() -> None:
    p = Pair("ip-bound")
    p.connect()
    p.a.ip.open(p.net.id)
    for _ in range(IP_QUEUE_LIMIT + 50):
        p.b.send_ip(p.net.id, p.a.node_id, PKT, p.now)
    p.run()
    assert len(p.a.ip_packets_to_write()) == IP_QUEUE_LIMIT
    assert p.a.counters["drop.ip_queue_full"] == 50


def test_oversized_empty_and_sessionless_packets_do_not_go() -> None:
    p = Pair("ip-edge")
    p.connect()
    assert not p.b.send_ip(p.net.id, p.a.node_id, bytes(p.b.ip.mtu + 1), p.now)
    assert not p.b.send_ip(p.net.id, p.a.node_id, b"", p.now)
    assert p.b.counters["ip.tx_oversized"] == 2
    assert p.b.send_ip(p.net.id, p.a.node_id, bytes(p.b.ip.mtu), p.now)  # the largest fits one datagram
    [(_, _, d)] = p.b.datagrams_to_send()
    assert len(d) <= p.b.cfg.max_datagram - 72  # room for the relay header
    p.b.close(p.now)
    peer = p.a.find_peer(p.b.node_id, p.net.id)
    p.run()
    assert peer.current is None
    assert not p.a.send_ip(p.net.id, p.b.node_id, PKT, p.now)  # no session: lost, and a handshake starts
    assert peer.pending is not None and p.a.counters["ip.tx_no_session"] == 1
