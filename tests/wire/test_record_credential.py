"""The credential section of signed peer records (flag bit 6, docs/membership.md 2.4): round trips with its own budget
beside MAX_EXTENSIONS, records without it are the old bytes, a damaged section makes the record invalid, fuzzed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.certs import MAX_CREDENTIAL, Certificate, Role, encode_credential, sign_certificate
from omerta_mesh.core.wire.records import (
    FLAG_CREDENTIAL,
    MAX_EXTENSIONS,
    MAX_RECORD,
    MAX_RECORD_CREDENTIAL,
    AddrClaim,
    PeerRecord,
    decode_record,
    fit_routes,
    sign_record,
)

NET = NetworkId(b"N" * 10)
OWNER, ADMIN, ALICE = (Identity.generate(SeededEntropy(f"{who}-rc")) for who in ("owner", "admin", "alice"))
TAGS = tuple(f"t{i}" + "x" * 8 for i in range(8))  # 8 tags of 10 bytes: 88 of the 96 tag bytes


def _cert(subject: Identity, issuer: Identity, role: Role, name: str = "", tags: tuple[str, ...] = ()) -> Certificate:
    return sign_certificate(issuer, Certificate(role, NET, subject.node_id, issuer.node_id, 5, 1000, 2000, name, tags))


CRED = encode_credential([_cert(ALICE, OWNER, Role.MEMBER, "alice")])
BIG = encode_credential([_cert(ALICE, ADMIN, Role.MEMBER, "a" * 32, TAGS), _cert(ADMIN, OWNER, Role.ADMIN, "b" * 32, TAGS)])


def _rec(credential: bytes | None, **kw) -> PeerRecord:
    return sign_record(ALICE, NET, PeerRecord(ALICE.node_id, 3, 9000, (("192.0.2.1", 7),), "a", credential=credential, **kw))


def _full(credential: bytes | None) -> PeerRecord:
    """A record as large as it gets: every section full, the credential on top."""
    eps = tuple((f"2001:db8::{i}", 7) for i in range(8))
    routes = fit_routes([ipaddress.ip_network(f"fd{i:02x}:1:2:3::/64") for i in range(16)], MAX_EXTENSIONS)
    return sign_record(ALICE, NET, PeerRecord(ALICE.node_id, 3, 9000, eps, "n" * 32, True, relays=(b"r" * 32, b"s" * 32),
                                              addrs=AddrClaim(b"\x64" * 4, b"\xfd" * 16), routes=routes, credential=credential))


@pytest.mark.parametrize("cred", [CRED, BIG], ids=["owner-issued", "admin chain"])
def test_a_credential_round_trips(cred: bytes) -> None:
    r = _rec(cred)
    assert r.raw[45] & FLAG_CREDENTIAL
    d = decode_record(r.raw, NET)
    assert d.credential == cred and d == r


def test_without_a_credential_a_record_is_the_old_bytes() -> None:
    old = _rec(None)
    assert not old.raw[45] & FLAG_CREDENTIAL and decode_record(old.raw, NET).credential is None
    assert len(_rec(CRED).raw) == len(old.raw) + 2 + len(CRED)
    assert _rec(b"").raw == old.raw
    assert _rec(b"x" * (MAX_CREDENTIAL + 1)).credential is None  # what cannot be carried is not signed


def test_the_credential_has_its_own_budget_beside_the_extensions() -> None:
    """The largest credential beside full host keys/routes: the record is longer than MAX_RECORD and parses; without
    the credential nothing else lost room."""
    assert len(BIG) == MAX_CREDENTIAL - 2 * (32 - 32) - 2 * (96 - 88)
    plain, big = _full(None), _full(BIG)
    assert big.routes == plain.routes  # the credential took nothing from the extension sections
    assert len(big.raw) == len(plain.raw) + 2 + len(BIG) and len(plain.raw) <= MAX_RECORD < len(big.raw) <= MAX_RECORD_CREDENTIAL
    assert decode_record(big.raw, NET).credential == BIG


def _resigned(body: bytes | bytearray) -> bytes:
    return bytes(body) + ALICE.sign(NET.raw + bytes(body))


def test_a_damaged_credential_section_makes_the_record_invalid() -> None:
    body = bytearray(_rec(CRED).raw[:-64])
    start = len(body) - len(CRED) - 2
    cases = {
        "not a credential": body[:start] + (5).to_bytes(2, "little") + b"hello",
        "empty": body[:start] + (0).to_bytes(2, "little"),
        "count 3": body[:start + 2] + b"\x03" + body[start + 3:],
        "trailing byte inside": body[:start] + (len(CRED) + 1).to_bytes(2, "little") + CRED + b"\0",
        "runs past the signature": body[:start] + (len(CRED) + 70).to_bytes(2, "little") + CRED,
        "too long": body[:start] + (MAX_CREDENTIAL + 1).to_bytes(2, "little") + bytes(MAX_CREDENTIAL + 1),
    }
    for what, bad in cases.items():
        with pytest.raises(WireError) as e:
            decode_record(_resigned(bad), NET)
        assert e.value.reason is DropReason.RECORD_INVALID, what


def test_a_long_record_without_the_bit_is_refused_as_before() -> None:
    """The larger bound is only for records that carry a credential: another section cannot use the room."""
    body = bytearray(_full(None).raw[:-64])
    body[45] |= 0x80  # a later extension's section, as long as the credential's room
    body += (2 + MAX_CREDENTIAL - 2).to_bytes(2, "little") + bytes(MAX_CREDENTIAL)
    with pytest.raises(WireError):
        decode_record(_resigned(body), NET)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(_rec(CRED).raw) - 1), st.integers(1, 255))
def test_any_flipped_byte_is_refused(i: int, x: int) -> None:
    raw = bytearray(_rec(CRED).raw)
    raw[i] ^= x
    with pytest.raises(WireError):
        decode_record(bytes(raw), NET)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=700))
def test_any_section_bytes_signed_never_raise_anything_else(section: bytes) -> None:
    body = bytearray(_rec(None).raw[:-64])
    body[45] |= FLAG_CREDENTIAL
    body += len(section).to_bytes(2, "little") + section
    try:
        assert decode_record(_resigned(body), NET).credential == section
    except WireError as e:
        assert e.reason is DropReason.RECORD_INVALID
