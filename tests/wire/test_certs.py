"""Certificates, credentials and revocations (core/wire/certs.py, revocations.py): canonical round trips, every
bound refused, any flipped byte refused, parsers that only raise WireError."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason, UsageError, WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.certs import (
    MAX_CERT,
    MAX_CREDENTIAL,
    MAX_LIFETIME,
    MIN_CERT,
    Certificate,
    Role,
    decode_certificate,
    decode_credential,
    encode_credential,
    sign_certificate,
)
from omerta_mesh.core.wire.revocations import MAX_REVOCATION, MIN_REVOCATION, Revocation, RevocationKind, decode_revocation, sign_revocation

NET = NetworkId(b"N" * 10)
OWNER = Identity.generate(SeededEntropy("certs-owner"))
ADMIN = Identity.generate(SeededEntropy("certs-admin"))
ALICE = Identity.generate(SeededEntropy("certs-alice"))
T0 = 1_800_000_000
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TAG = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=10)
NAME = st.text(max_size=12).filter(lambda s: len(s.encode("utf-8", "replace")) <= 32
                                   and all(ord(c) >= 0x20 and ord(c) != 0x7F and not 0xD800 <= ord(c) <= 0xDFFF for c in s))


def cert(role: Role = Role.MEMBER, subject: Identity = ALICE, issuer: Identity = OWNER, **kw) -> Certificate:
    fields = dict(serial=7, not_before=T0, not_after=T0 + 86400, name="alice", tags=("laptop",))
    fields.update(kw)
    return sign_certificate(issuer, Certificate(role, NET, subject.node_id, issuer.node_id, **fields))


@st.composite
def certificates(draw) -> Certificate:
    issuer = draw(st.sampled_from([OWNER, ADMIN, ALICE]))
    nb = draw(st.integers(0, (1 << 64) - 1 - MAX_LIFETIME))
    return cert(draw(st.sampled_from(list(Role))), draw(st.sampled_from([OWNER, ADMIN, ALICE])), issuer,
                serial=draw(st.integers(0, (1 << 64) - 1)), not_before=nb, not_after=nb + draw(st.integers(1, MAX_LIFETIME)),
                name=draw(NAME), tags=tuple(draw(st.lists(TAG, max_size=8, unique=True))))


@FUZZ
@given(c=certificates())
def test_certificate_round_trip_is_canonical(c: Certificate) -> None:
    raw = c.encode()
    assert MIN_CERT <= len(raw) <= MAX_CERT
    back = decode_certificate(raw)
    assert back == c and back.encode() == raw and back.signature_ok()


@FUZZ
@given(chain=st.lists(certificates(), min_size=1, max_size=2))
def test_credential_round_trip(chain: list[Certificate]) -> None:
    raw = encode_credential(chain)
    assert len(raw) <= MAX_CREDENTIAL
    assert decode_credential(raw) == tuple(chain)


@FUZZ
@given(c=certificates(), data=st.data())
def test_any_flipped_byte_fails_decoding_or_the_signature(c: Certificate, data) -> None:
    raw = bytearray(c.encode())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    try:
        back = decode_certificate(bytes(raw))
    except WireError as e:
        assert e.reason is DropReason.CERT_MALFORMED
        return
    assert not back.signature_ok()


@FUZZ
@given(data=st.binary(max_size=700))
def test_parsers_only_raise_wire_error(data: bytes) -> None:
    for parse in (decode_certificate, decode_credential, decode_revocation):
        try:
            parse(data)
        except WireError:
            pass


@FUZZ
@given(c=certificates(), cut=st.integers(0, MAX_CERT))
def test_truncated_or_extended_certificates_are_refused(c: Certificate, cut: int) -> None:
    raw = c.encode()
    for bad in (raw[:cut] if cut < len(raw) else raw + bytes(cut - len(raw) + 1),):
        with pytest.raises(WireError):
            decode_certificate(bad)


def _resigned(body: bytes) -> bytes:
    from omerta_mesh.core.wire.certs import CONTEXT
    return body + OWNER.sign(CONTEXT + body)


@pytest.mark.parametrize("mutate, what", [
    (lambda b: bytes([2]) + b[1:], "version"),
    (lambda b: b[:1] + bytes([0]) + b[2:], "role 0"),
    (lambda b: b[:1] + bytes([4]) + b[2:], "role 4"),
    (lambda b: b[:2] + bytes([1]) + b[3:], "flags"),
])
def test_header_fields_outside_the_layout_are_refused(mutate, what: str) -> None:
    body = cert().encode()[:-64]
    with pytest.raises(WireError) as e:
        decode_certificate(_resigned(mutate(body)))
    assert e.value.reason is DropReason.CERT_MALFORMED, what


def test_validity_beyond_the_longest_lifetime_or_empty_is_refused() -> None:
    head = struct.Struct("<BBB10s32s32sQQQ")
    for nb, na in ((T0, T0 + MAX_LIFETIME + 1), (T0, T0), (T0, T0 - 1)):
        body = head.pack(1, 1, 0, NET.raw, ALICE.public, OWNER.public, 1, nb, na) + b"\x00\x00"
        with pytest.raises(WireError, match="validity"):
            decode_certificate(_resigned(body))
        with pytest.raises(UsageError, match="validity"):
            cert(not_before=nb, not_after=na)


@pytest.mark.parametrize("kw, match", [
    (dict(name="x" * 33), "longer than 32"),
    (dict(name="a\nb"), "control"),
    (dict(tags=("a b",)), "printable"),
    (dict(tags=("",)), "printable"),
    (dict(tags=("x" * 33,)), "printable"),
    (dict(tags=("é",)), "printable"),
    (dict(tags=("a", "a")), "twice"),
    (dict(tags=tuple(str(i) for i in range(9))), "at most 8"),
    (dict(tags=tuple(f"{i}" * 20 for i in range(5))), "96 bytes"),
    (dict(serial=-1), "serial"),
    (dict(serial=1 << 64), "serial"),
])
def test_issuing_fields_the_layout_cannot_hold_says_which(kw, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        cert(**kw)


def test_hand_built_certificates_with_bad_tags_are_refused_on_decoding() -> None:
    good = cert(tags=("ab",)).encode()[:-64]
    for bad in (good.replace(b"\x02ab", b"\x02a "), good.replace(b"\x01\x02ab", b"\x02\x02ab\x02ab")):
        with pytest.raises(WireError):
            decode_certificate(_resigned(bad))


def test_a_certificate_is_signed_by_the_issuer_it_names_and_has_no_wire_form_unsigned() -> None:
    with pytest.raises(UsageError, match="is signing it"):
        sign_certificate(ADMIN, Certificate(Role.MEMBER, NET, ALICE.node_id, OWNER.node_id, 1, T0, T0 + 1))
    with pytest.raises(UsageError, match="unsigned"):
        Certificate(Role.MEMBER, NET, ALICE.node_id, OWNER.node_id, 1, T0, T0 + 1).encode()


def test_a_certificate_signed_by_someone_else_does_not_verify() -> None:
    c = cert()
    forged = replace(c, signature=ADMIN.sign(b"omcert01" + c.body()))
    assert c.signature_ok() and not decode_certificate(forged.encode()).signature_ok()


@pytest.mark.parametrize("count", [0, 3])
def test_credential_counts_other_than_one_or_two_are_refused(count: int) -> None:
    raw = cert().encode()
    data = bytes([count]) + (len(raw).to_bytes(2, "little") + raw) * count
    with pytest.raises(WireError, match="certificates|bytes"):
        decode_credential(data)
    with pytest.raises(UsageError):
        encode_credential([cert()] * count)


def test_credential_with_trailing_bytes_or_a_short_certificate_is_refused() -> None:
    raw = encode_credential([cert()])
    for bad in (raw + b"\x00", raw[:-1], b""):
        with pytest.raises(WireError):
            decode_credential(bad)


# --- revocations ---------------------------------------------------------------------------------------------------

def revocation(kind: RevocationKind = RevocationKind.NODE, target: bytes = ALICE.public, issuer: Identity = OWNER, **kw) -> Revocation:
    fields = dict(issued=T0, until=T0 + MAX_LIFETIME, void_issued=False)
    fields.update(kw)
    return sign_revocation(issuer, Revocation(kind, NET, target, issuer=issuer.node_id, **fields))


@FUZZ
@given(kind=st.sampled_from(list(RevocationKind)), data=st.data())
def test_revocation_round_trip_and_any_flip_is_refused(kind: RevocationKind, data) -> None:
    size = {RevocationKind.NODE: 32, RevocationKind.SERIAL: 8, RevocationKind.TOKEN: 16}[kind]
    void = kind is RevocationKind.NODE and data.draw(st.booleans())
    r = revocation(kind, data.draw(st.binary(min_size=size, max_size=size)), void_issued=void)
    raw = r.encode()
    assert MIN_REVOCATION <= len(raw) <= MAX_REVOCATION
    assert decode_revocation(raw) == r and r.signature_ok()
    flipped = bytearray(raw)
    flipped[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        assert not decode_revocation(bytes(flipped)).signature_ok()
    except WireError as e:
        assert e.reason is DropReason.REVOCATION_INVALID


@pytest.mark.parametrize("kw, match", [
    (dict(kind=RevocationKind.TOKEN, target=bytes(32)), "16 bytes"),
    (dict(kind=RevocationKind.SERIAL, target=bytes(8), void_issued=True), "only a node"),
    (dict(until=T0), "lasts"),
    (dict(until=T0 + MAX_LIFETIME + 1), "lasts"),
])
def test_revocations_outside_the_layout_are_refused_when_signed(kw, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        revocation(**kw)
