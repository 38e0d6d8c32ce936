"""Signed peer records: only the subject's signature counts; newer sequence numbers win; bad gossip is
refused and counted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import Pair
from omerta_mesh.core.discovery.store import PeerRecordStore
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire import control as cw
from omerta_mesh.core.wire import frames as fw
from omerta_mesh.core.wire.endpoints import decode_endpoints, encode_endpoints
from omerta_mesh.core.wire.records import PeerRecord, decode_record, sign_record

NET = NetworkId(b"N" * 10)
OTHER_NET = NetworkId(b"O" * 10)
ALICE = Identity.generate(SeededEntropy("alice"))
MALLORY = Identity.generate(SeededEntropy("mallory"))


def rec(ident: Identity, seq: int, eps=(("198.51.100.7", 4000),), **kw) -> PeerRecord:
    return sign_record(ident, NET, PeerRecord(ident.node_id, seq, 10_000, tuple(eps), **kw))


def test_round_trip_with_every_field() -> None:
    rec = PeerRecord(ALICE.node_id, 7, 5000, (("198.51.100.7", 1), ("2001:db8::1", 2)), "alice", True, 2, 4, -3, (MALLORY.public,))
    r = sign_record(ALICE, NET, rec)
    d = decode_record(r.raw, NET)
    assert (d.node, d.seq, d.expires, d.endpoints, d.name, d.relay, d.mapping, d.filtering, d.port_delta, d.relays) == (
        ALICE.node_id, 7, 5000, (("198.51.100.7", 1), ("2001:db8::1", 2)), "alice", True, 2, 4, -3, (MALLORY.public,))


def test_a_record_signed_by_someone_else_is_refused() -> None:
    # Mallory builds a record naming Alice (to redirect Alice's traffic) and signs it herself
    forged = bytearray(rec(MALLORY, 99).raw)
    forged[1:33] = ALICE.public
    with pytest.raises(WireError) as e:
        decode_record(bytes(forged), NET)
    assert e.value.reason is DropReason.RECORD_INVALID


def test_unsigned_or_tampered_records_and_other_networks_are_refused() -> None:
    good = rec(ALICE, 1).raw
    for bad in (good[:-64] + bytes(64), good[:-1] + bytes([good[-1] ^ 1]), good[:20] + bytes([good[20] ^ 0x80]) + good[21:]):
        with pytest.raises(WireError):
            decode_record(bad, NET)
    with pytest.raises(WireError):
        decode_record(good, OTHER_NET)  # the signature covers the network id: no replay into another network


def test_only_a_higher_sequence_number_replaces_the_current_record() -> None:
    store = PeerRecordStore(10)
    assert store.offer(rec(ALICE, 5), 0).accepted
    older = store.offer(rec(ALICE, 4, eps=(("203.0.113.66", 1),)), 0)
    same = store.offer(rec(ALICE, 5, eps=(("203.0.113.66", 1),)), 0)
    assert not older.accepted and older.reason is DropReason.RECORD_STALE
    assert not same.accepted and same.reason is DropReason.RECORD_STALE
    assert store.get(ALICE.node_id).endpoints == (("198.51.100.7", 4000),)
    assert store.offer(rec(ALICE, 6, eps=(("203.0.113.66", 1),)), 0).accepted
    assert store.get(ALICE.node_id).endpoints == (("203.0.113.66", 1),)


def test_expired_records_are_refused_and_age_out_and_the_store_is_bounded() -> None:
    store = PeerRecordStore(2)
    assert not store.offer(rec(ALICE, 1), 20_000).accepted  # expires at 10,000
    assert store.offer(rec(ALICE, 1), 0).accepted and store.offer(rec(MALLORY, 1), 0).accepted
    third = Identity.generate(SeededEntropy("third"))
    full = store.offer(rec(third, 1), 0)
    assert not full.accepted and full.reason is DropReason.GOSSIP_LIMIT
    assert [r.node for r in store.expire(10_000)] and len(store) == 0


def test_forged_and_oversized_gossip_is_refused_and_counted_on_a_live_pair() -> None:
    p = Pair("gossip-bad")
    p.connect()
    peer_b_at_a = p.a.find_peer(p.b.node_id)
    net = p.net.id
    forged = []
    for victim in (p.b.identity, MALLORY):  # A claims to speak for B, and for a third member
        raw = bytearray(sign_record(p.a.identity, net, PeerRecord(p.a.node_id, 10**15, 2**31, (("203.0.113.66", 1),))).raw)
        raw[1:33] = victim.public
        forged.append(bytes(raw))
    body = cw.encode_record_list(forged)
    p.a._send_control(peer_b_at_a, "gossip.records", body, p.now)
    flood = cw.encode_sync(cw.GossipSync(b"\0" * 8, b"\xff" * 8, True, [(bytes(8), 1)] * 5000, []))
    p.a._send_control(peer_b_at_a, "gossip.sync", flood, p.now)
    p.advance(p.now + 1)
    assert p.b.counters["drop.record_invalid"] >= 2
    assert p.b.counters["drop.gossip_limit"] >= 1
    assert p.b.record_of(net, p.b.node_id).endpoints != (("203.0.113.66", 1),)
    # B never stores its own record from others anyway; a forgery naming anyone else would be kept if the
    # signature check let it through
    assert p.b.record_of(net, MALLORY.node_id) is None
    assert p.b.counters["drop.internal_error"] == 0


def test_relay_requests_without_relaying_or_to_unknown_members_are_refused() -> None:
    p = Pair("relay-bad")
    p.connect()
    stranger = Identity.generate(SeededEntropy("stranger"))
    peer_b = p.a.find_peer(p.b.node_id)
    p.a._send_frame(peer_b, fw.encode_relay(stranger.public, b"\x04\x01\x00\x00" + bytes(40)), p.now)
    p.advance(p.now + 0.5)
    assert p.b.counters["drop.relay_unknown"] == 1  # b does not relay (and does not know the stranger)
    assert p.b.counters["relay.forwarded"] == 0


FUZZ = settings(max_examples=300, deadline=None)


@FUZZ
@given(st.binary(max_size=600))
def test_record_and_control_parsers_only_raise_wire_errors(data: bytes) -> None:
    for parse in (lambda d: decode_record(d, NET), cw.decode_sync, cw.decode_record_list, cw.decode_want, cw.decode_candidates,
                  cw.decode_nat_test, cw.decode_nat_ack, fw.decode_relay):
        try:
            parse(data)
        except WireError:
            pass


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["198.51.100.1", "2001:db8::5", "10.0.0.1"]), st.integers(0, 65535)), max_size=8))
def test_endpoint_lists_round_trip(eps) -> None:
    raw = encode_endpoints(eps)
    assert decode_endpoints(raw, 0) == (eps, len(raw))
