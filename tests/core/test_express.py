"""The express lane (core/express.py): one IP packet sealed or opened in the current session with the least work,
delivering exactly what the general path would, and leaving to the general path everything it may not take."""

from __future__ import annotations

import pytest

from helpers import A_ADDR, B_ADDR, Pair
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.ipseg import VNET
from omerta_mesh.core.peers.paths import ViaRelay
from omerta_mesh.core.peers.pmtu import PathMtu
from omerta_mesh.core.wire import frames as fw

PING = VNET.pack(0, 0, 0, 0, 0, 0) + bytes([0x45]) + bytes(83)  # a TUN frame: plain virtio-net header, an 84-byte packet


def _seal(p: Pair, frame: bytes = PING, node=None) -> tuple[bytes, object, object] | None:
    """B seals ``frame`` for A (or ``node``) by its lane, as the device reader does: (datagram, path, socket)."""
    lane = p.b.express.lane(p.net.id, node or p.a.node_id, p.now)
    data = lane.seal(frame, p.now) if lane is not None else None
    return None if data is None else (data, lane.ep, lane.local)


def _pair(seed: str) -> Pair:
    """A and B connected, A's network opened to a device, B active towards A (a first packet went the general way)."""
    p = Pair(seed)
    p.connect()
    p.a.ip.open(p.net.id)
    p.run()
    assert p.b.send_ip(p.net.id, p.a.node_id, PING, p.now, True)
    p.run()
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, PING)]
    return p


def test_a_packet_sealed_and_opened_by_the_lane_is_what_the_general_path_delivers() -> None:
    p = _pair("x-same")
    peer = p.b.table.get(p.net.id, p.a.node_id)
    sent_before, counter_before = peer.stats.packets_out, peer.current.send_counter
    got = _seal(p)
    assert got is not None
    data, dst, local = got
    assert dst == A_ADDR and local == peer.local and PING[10:] not in data  # sealed, to A's current path
    assert peer.stats.packets_out == sent_before + 1 and peer.current.send_counter == counter_before + 1
    assert p.b.datagrams_to_send() == []  # nothing queued beside it: the driver sends it itself

    opened = p.a.express.open(data, B_ADDR, None, p.now)
    assert opened == (p.net.id, p.b.node_id, PING)
    assert p.a.ip_packets_to_write() == []  # handed over, not queued
    assert p.a.counters["ip.tx_express"] == 0 and p.a.counters["ip.rx_express"] == 1
    assert p.b.counters["ip.tx_express"] == 1

    # the same datagram again: a replay, dropped and counted; taken (True), so the general path never sees it
    assert p.a.express.open(data, B_ADDR, None, p.now) is True
    assert p.a.counters.dropped(DropReason.REPLAYED) == 1
    forged = bytearray(_seal(p)[0])
    forged[-1] ^= 1
    assert p.a.express.open(bytes(forged), B_ADDR, None, p.now) is True
    assert p.a.counters.dropped(DropReason.DECRYPT_FAILED) == 1


def test_a_malformed_frame_it_opens_is_a_counted_drop_as_on_the_general_path_not_an_exception() -> None:
    p = _pair("x-malformed")
    bad = p.b.table.get(p.net.id, p.a.node_id).current.encrypt(b"\x02", p.now)  # DATA, shorter than its header
    assert p.a.express.open(bad, B_ADDR, None, p.now) is True  # (seen on a daemon: it raised out of the UDP reader)
    assert p.a.counters["drop.bad_frame"] == 1 and p.a.counters["drop.internal_error"] == 0


def test_what_the_general_path_delivers_from_a_lane_datagram_is_the_same() -> None:
    p = _pair("x-general")
    data, _, _ = _seal(p)
    p.a.receive_datagram(data, B_ADDR, None, p.now)  # (a receiver without the lane: wire compatible)
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, PING)]


@pytest.mark.parametrize("why", ["idle", "no session", "relay path", "too large", "path MTU", "unknown member"])
def test_the_lane_declines_what_needs_the_general_path(why: str) -> None:
    p = _pair("x-decline-" + why)
    peer = p.b.table.get(p.net.id, p.a.node_id)
    frame, node = PING, p.a.node_id
    if why == "idle":  # no traffic for a while: send_ip marks the peer active and re-arms its heartbeat
        peer.last_active = p.now - 5
    elif why == "no session":
        peer.current = None
    elif why == "relay path":
        peer.endpoint = ViaRelay("r" * 64)
    elif why == "too large":
        frame = PING[:10] + bytes([0x45]) + bytes(p.b.ip.mtu)
    elif why == "path MTU":
        peer.paths[peer.endpoint].pmtu = PathMtu(mtu=600)  # measured: this path carries 600-byte datagrams
        frame = PING[:10] + bytes([0x45]) + bytes(599)
    else:
        node = p.b.node_id  # ourselves: no peer
    assert _seal(p, frame, node) is None
    assert p.b.counters["ip.tx_express"] == 0


@pytest.mark.parametrize("why", ["another path", "another socket", "not opened", "queue not empty", "not a packet"])
def test_datagrams_the_lane_may_not_deliver(why: str) -> None:
    p = _pair("x-open-" + why)
    src, local = B_ADDR, None
    if why == "not a packet":  # a keepalive in the session: opened, then the general path's handling
        peer = p.b.table.get(p.net.id, p.a.node_id)
        data = peer.current.encrypt(fw.KEEPALIVE_FRAME, p.now)
    else:
        data, _, _ = _seal(p)
    if why == "another path":
        src = ("192.0.2.99", 7000)
    elif why == "another socket":
        local = ("192.0.2.1", 4000)
    elif why == "not opened":
        p.a.ip.close(p.net.id)
    elif why == "queue not empty":  # a packet waits for the driver: this one must not overtake it
        p.b.send_ip(p.net.id, p.a.node_id, PING[:-1] + b"\x01", p.now, True)
        p.run()
    got = p.a.express.open(data, src, local, p.now)
    if why in ("another path", "another socket"):
        assert got is False  # not taken, not opened: the general path takes it whole
        p.a.receive_datagram(data, src, local, p.now)
    else:
        assert got is True  # opened, handled the general way
    assert p.a.counters["ip.rx_express"] == 0
    if why == "queue not empty":
        assert [x[2] for x in p.a.ip_packets_to_write()] == [PING[:-1] + b"\x01", PING]  # in order
    elif why == "not opened":
        assert p.a.counters.dropped(DropReason.IP_UNROUTED) == 1
    elif why != "not a packet":
        assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, PING)]
