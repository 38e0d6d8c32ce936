"""AES-256-GCM transport datagrams (wire/packet.py byte 2, session/session.py): used towards a node whose signed
record accepts them, ChaCha20-Poly1305 towards one whose record does not (every earlier version), opened either
way, the flag authenticated."""

from __future__ import annotations

import ipaddress

from helpers import A_ADDR, B_ADDR, Pair
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.session.session import Session, aes_key
from omerta_mesh.core.wire.packet import TRANSPORT_AES, decode_transport
from omerta_mesh.core.wire.records import FEATURE_AES, MAX_EXTENSIONS, PeerRecord, decode_record, sign_record

PKT = bytes([0x45]) + bytes(99)
NET = NetworkId(bytes(range(10)))


def _datagram(p: Pair, sender, receiver) -> bytes:
    assert sender.send_ip(p.net.id, receiver.node_id, PKT, p.now)
    [(_, _, d)] = sender.datagrams_to_send()
    return d


def test_both_new_nodes_seal_with_aes_once_they_hold_each_others_records() -> None:
    p = Pair("aes-both")
    p.connect()
    p.a.ip.open(p.net.id)
    p.b.ip.open(p.net.id)
    p.run()
    for m, other, src in ((p.b, p.a, B_ADDR), (p.a, p.b, A_ADDR)):
        assert m.record_of(p.net.id, other.node_id).features & FEATURE_AES
        d = _datagram(p, m, other)  # (the Pair's strict encryption audit checked it on the way out)
        assert d[2] == TRANSPORT_AES and decode_transport(d).counter >= 0
        other.receive_datagram(d, src, None, p.now)
        assert other.ip_packets_to_write() == [(p.net.id, m.node_id, PKT)]
        flipped = bytearray(_datagram(p, m, other))
        flipped[2] = 0  # the same datagram claiming ChaCha20-Poly1305: it does not open
        other.receive_datagram(bytes(flipped), src, None, p.now)
        assert other.counters.dropped(DropReason.DECRYPT_FAILED) == 1 and other.ip_packets_to_write() == []


def test_a_node_whose_record_lacks_the_feature_gets_chacha_and_its_chacha_is_opened() -> None:
    p = Pair("aes-old")
    p.b.gossip.features = 0  # B as an earlier version: its record has no features section
    p.connect()
    p.a.ip.open(p.net.id)
    p.b.ip.open(p.net.id)
    p.run()
    assert p.a.record_of(p.net.id, p.b.node_id).features == 0
    to_b = _datagram(p, p.a, p.b)
    assert to_b[2] == 0  # B would drop a non-zero byte 2
    p.b.receive_datagram(to_b, A_ADDR, None, p.now)
    assert p.b.ip_packets_to_write() == [(p.net.id, p.a.node_id, PKT)]
    to_a = _datagram(p, p.b, p.a)  # B does know A accepts AES (A's record): it may use it
    assert to_a[2] == TRANSPORT_AES
    p.a.receive_datagram(to_a, B_ADDR, None, p.now)
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, PKT)]


def test_a_record_that_gains_the_feature_turns_aes_on_for_the_live_session() -> None:
    p = Pair("aes-later")
    p.b.gossip.features = 0
    p.connect()
    p.run()
    assert _datagram(p, p.a, p.b)[2] == 0
    p.b.gossip.features = FEATURE_AES  # B upgraded its data plane: its next record says so
    p.b.claim_addresses(p.net.id, None, p.now)  # (anything that re-signs and pushes B's record)
    p.advance(p.now + 60)
    assert p.a.table.get(p.net.id, p.b.node_id).features & FEATURE_AES
    assert _datagram(p, p.a, p.b)[2] == TRANSPORT_AES


def test_session_ciphers_keys_and_flag() -> None:
    k1, k2 = bytes(range(32)), bytes(range(32, 64))
    a = Session(local_index=1, remote_index=2, send_key=k1, recv_key=k2, initiator=True, created_at=0.0)
    b = Session(local_index=2, remote_index=1, send_key=k2, recv_key=k1, initiator=False, created_at=0.0)
    chacha = a.encrypt(b"frame", 0.0)
    a.use_aes(True)
    aes = a.encrypt(b"frame", 0.0)
    assert chacha[2] == 0 and aes[2] == TRANSPORT_AES and chacha[3:8] == aes[3:8]
    assert b.decrypt(chacha, 0, 0.0) == b"frame" and b.decrypt(aes, 1, 0.0) == b"frame"
    assert a.verifies_outgoing(chacha) and a.verifies_outgoing(aes)
    assert aes_key(k1) != k1 and len(aes_key(k1)) == 32  # never the Noise key itself
    a.use_aes(False)
    assert a.encrypt(b"frame", 0.0)[2] == 0


def test_the_features_section_round_trips_and_counts_in_the_extension_budget() -> None:
    ident = Identity.generate(SeededEntropy("aes-record"))
    plain = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 2_000_000_000))
    withf = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 2_000_000_000, features=FEATURE_AES))
    assert decode_record(plain.raw, NET).features == 0
    assert decode_record(withf.raw, NET).features == FEATURE_AES and len(withf.raw) == len(plain.raw) + 3
    big = tuple(ipaddress.ip_network(f"10.{i}.0.0/16") for i in range(16))
    full = sign_record(ident, NET, PeerRecord(ident.node_id, 1, 2_000_000_000, routes=big, features=FEATURE_AES,
                                              host_keys=(b"k" * 200,)))
    got = decode_record(full.raw, NET)
    assert got.features == FEATURE_AES and 0 < len(got.routes) < len(big)  # routes cut to what leaves it room
    assert len(full.raw) - len(plain.raw) <= MAX_EXTENSIONS
