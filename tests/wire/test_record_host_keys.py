"""SSH host keys in signed peer records (flag bit 3): round-trip, budget, old records, malformed sections, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.records import FLAG_HOST_KEYS, MAX_EXTENSIONS, AddrClaim, PeerRecord, decode_record, fit_host_keys, sign_record

NET = NetworkId(b"K" * 10)
ALICE = Identity.generate(SeededEntropy("alice-hostkeys"))
ED = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))  # 51 bytes, as ssh-keygen writes it
ECDSA = b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04" + bytes(64)  # 104
RSA = b"\x00\x00\x00\x07ssh-rsa" + bytes(390)


def _rec(keys: tuple[bytes, ...], addrs: AddrClaim | None = None) -> PeerRecord:
    return sign_record(ALICE, NET, PeerRecord(ALICE.node_id, 3, 9000, (("192.0.2.1", 7),), "a", addrs=addrs, host_keys=keys))


@pytest.mark.parametrize("addrs", [None, AddrClaim(bytes([100, 70, 1, 2]))])
def test_host_keys_round_trip(addrs: AddrClaim | None) -> None:
    r = _rec((ECDSA, ED), addrs)
    d = decode_record(r.raw, NET)
    assert d.host_keys == (ED, ECDSA)  # smallest first
    assert d.addrs == addrs and d == r
    assert d.raw[45] & FLAG_HOST_KEYS


def test_no_keys_is_the_old_layout() -> None:
    r = _rec(())
    assert not r.raw[45] & FLAG_HOST_KEYS
    assert decode_record(r.raw, NET).host_keys == ()


def test_keys_that_do_not_fit_are_left_out() -> None:
    assert fit_host_keys([RSA, ECDSA, ED]) == (ED, ECDSA)
    assert fit_host_keys([RSA]) == ()
    r = _rec((RSA, ED, ECDSA))
    assert decode_record(r.raw, NET).host_keys == (ED, ECDSA)
    many = [ED[:-1] + bytes([i]) for i in range(10)]
    assert sum(2 + len(k) for k in fit_host_keys(many)) + 3 <= MAX_EXTENSIONS


def test_a_key_changed_after_signing_is_refused() -> None:
    raw = bytearray(_rec((ED,)).raw)
    i = raw.index(ED) + 20
    raw[i] ^= 1
    with pytest.raises(WireError):
        decode_record(bytes(raw), NET)


def _signed(body: bytes) -> bytes:
    return body + ALICE.sign(NET.raw + body)


@pytest.mark.parametrize("section", [b"\x00", b"\x01\x00\x00", b"\x01\x05\x00abc", b"\x01\x03\x00abcX", b"\x05" + b"\x01\x00a" * 5])
def test_a_malformed_host_keys_section_is_refused_even_when_signed(section: bytes) -> None:
    body = bytearray(_rec(()).raw[:-64])
    body[45] |= FLAG_HOST_KEYS
    body += len(section).to_bytes(2, "little") + section
    with pytest.raises(WireError):
        decode_record(_signed(bytes(body)), NET)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(_rec((ED, ECDSA)).raw) - 1), st.integers(1, 255))
def test_any_flipped_byte_is_refused(i: int, x: int) -> None:
    raw = bytearray(_rec((ED, ECDSA)).raw)
    raw[i] ^= x
    with pytest.raises(WireError):
        decode_record(bytes(raw), NET)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), st.lists(st.binary(min_size=1, max_size=120), max_size=6), st.integers(-(1 << 20), 1 << 20))
def test_a_signed_record_reads_back_as_itself(name: str, keys: list[bytes], delta: int) -> None:
    """What ``sign_record`` returns is what every member decodes: fields cut to what the wire carries, a name on
    a character boundary (a 32-byte cut inside a character made the record unreadable to everyone)."""
    r = sign_record(ALICE, NET, PeerRecord(ALICE.node_id, 3, 9000, (), name, port_delta=delta, host_keys=tuple(keys)))
    assert decode_record(r.raw, NET) == r and len(r.name.encode()) <= 32
    assert sign_record(ALICE, NET, PeerRecord(ALICE.node_id, 1, 9000, (), "a" * 31 + "\u00e9")).name == "a" * 31
