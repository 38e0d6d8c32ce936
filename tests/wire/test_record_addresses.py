"""Address claims in signed peer records: optional, round-trip, old records still parse, fuzzed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.records import FLAG_ADDRS, AddrClaim, PeerRecord, decode_record, sign_record

NET = NetworkId(b"N" * 10)
ALICE = Identity.generate(SeededEntropy("alice-addr"))
V4 = ipaddress.IPv4Address("100.70.3.9").packed
V6 = ipaddress.IPv6Address("fd12:3456:789a::1234").packed


def _rec(addrs: AddrClaim | None) -> PeerRecord:
    return sign_record(ALICE, NET, PeerRecord(ALICE.node_id, 3, 9000, (("192.0.2.1", 7),), "a", addrs=addrs))


@pytest.mark.parametrize("claim", [AddrClaim(V4, V6), AddrClaim(V4, None, True), AddrClaim(None, V6, False, True),
                                   AddrClaim(V4, V6, True, True)])
def test_claims_round_trip(claim: AddrClaim) -> None:
    r = _rec(claim)
    d = decode_record(r.raw, NET)
    assert d.addrs == claim
    assert d == r


def test_a_record_without_a_claim_is_the_old_layout() -> None:
    # an old node's record (no flag, no section) parses, with no claim; an empty claim is not written
    old = _rec(None)
    assert not old.raw[45] & FLAG_ADDRS and _rec(AddrClaim(V4)).raw[45] & FLAG_ADDRS
    assert decode_record(old.raw, NET).addrs is None
    assert _rec(AddrClaim()).raw == old.raw
    assert len(_rec(AddrClaim(V4, V6)).raw) == len(old.raw) + 21


def test_bad_address_flags_are_refused() -> None:
    ident = ALICE
    good = _rec(AddrClaim(V4, V6))
    body = bytearray(good.raw[:-64])
    pos = len(body) - 21
    for flags in (0x00, 0x10, 0x04, 0x08 | 0x01):  # empty, unknown bit, static without the address
        body[pos] = flags
        raw = bytes(body) + ident.sign(NET.raw + bytes(body))
        with pytest.raises(WireError):
            decode_record(raw, NET)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=400))
def test_fuzz_never_raises_anything_else(data: bytes) -> None:
    try:
        decode_record(data, NET)
    except WireError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(_rec(AddrClaim(V4, V6)).raw) - 1), st.integers(1, 255))
def test_any_flipped_byte_is_refused(i: int, x: int) -> None:
    raw = bytearray(_rec(AddrClaim(V4, V6)).raw)
    raw[i] ^= x
    with pytest.raises(WireError):
        decode_record(bytes(raw), NET)


@pytest.mark.parametrize("claim", [None, AddrClaim(V4, V6)])
def test_a_later_extension_section_is_skipped_so_newer_records_stay_readable(claim: AddrClaim | None) -> None:
    """A record from a newer node with a section we do not know (flag bits 3-7, length first) parses, and its
    raw bytes (what gossip passes on) are kept whole; the old parser refused any unknown flag bit."""
    base = _rec(claim)
    body = bytearray(base.raw[:-64])
    body[45] |= 0x80  # a section of a later extension (bits 3-6: host keys, exit offer, subnet routes, credential)
    body += (5).to_bytes(2, "little") + b"hello"
    raw = bytes(body) + ALICE.sign(NET.raw + bytes(body))
    d = decode_record(raw, NET)
    assert (d.node, d.seq, d.name, d.endpoints, d.addrs) == (base.node, base.seq, base.name, base.endpoints, claim)
    assert d.raw == raw
    # a section running past the signature, or too many extension bytes, is malformed
    for bad in (body[:-7] + (300).to_bytes(2, "little") + b"hello", body[:-7] + (300).to_bytes(2, "little") + bytes(300)):
        with pytest.raises(WireError):
            decode_record(bytes(bad) + ALICE.sign(NET.raw + bytes(bad)), NET)
