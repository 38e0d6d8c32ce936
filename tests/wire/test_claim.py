"""Owner claims on the wire (core/wire/claim.py): round trips, one fixed length, every flipped byte refused by the
decoder or the signature, fields outside their bounds refused when signing and when decoding, the ``net.owner`` body
(claim and optional credential) and its bounds, and the decoders only ever raise WireError (OWNER_CLAIM_INVALID)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason, UsageError, WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.certs import MAX_CREDENTIAL
from omerta_mesh.core.wire.claim import CLAIM_LEN, MAX_TRANSITION, OwnerClaim, decode_claim, decode_message, encode_message, sign_claim

OWNER = Identity.generate(SeededEntropy("claim-owner"))
OTHER = Identity.generate(SeededEntropy("claim-other"))
NET = NetworkId(b"N" * 10)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def claim(**kw: object) -> OwnerClaim:
    fields: dict[str, object] = {"network": NET, "issuer": OWNER.node_id, "issued": 1_800_000_000,
                                 "enforce_at": 1_800_000_000 + 14 * 86400}
    fields.update(kw)
    return OwnerClaim(**fields)  # type: ignore[arg-type]


@FUZZ
@given(st.integers(0, 2**63 - 1 - MAX_TRANSITION), st.integers(0, MAX_TRANSITION))
def test_round_trip(issued: int, transition: int) -> None:
    c = sign_claim(OWNER, claim(issued=issued, enforce_at=issued + transition))
    data = c.encode()
    assert len(data) == CLAIM_LEN and decode_claim(data) == c and c.signature_ok()


def test_every_flipped_byte_is_refused_by_the_decoder_or_the_signature() -> None:
    data = sign_claim(OWNER, claim()).encode()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        try:
            assert not decode_claim(bytes(bad)).signature_ok(), i
        except WireError as e:
            assert e.reason is DropReason.OWNER_CLAIM_INVALID


@pytest.mark.parametrize(("field", "value"), [("issued", -1), ("enforce_at", 1_800_000_000 - 1),
                                              ("enforce_at", 1_800_000_000 + MAX_TRANSITION + 1)])
def test_fields_outside_their_bounds_cannot_be_signed(field: str, value: object) -> None:
    with pytest.raises(UsageError, match="cannot sign"):
        sign_claim(OWNER, claim(**{field: value}))


def test_only_the_owner_it_names_signs_it_and_an_unsigned_one_has_no_wire_form() -> None:
    with pytest.raises(UsageError, match="names issuer"):
        sign_claim(OTHER, claim())
    with pytest.raises(UsageError, match="unsigned"):
        claim().encode()
    with pytest.raises(WireError, match="version 2"):
        decode_claim(b"\x02" + sign_claim(OWNER, claim()).encode()[1:])


def test_the_message_carries_a_claim_and_an_optional_credential_within_bounds() -> None:
    c = sign_claim(OWNER, claim())
    assert decode_message(encode_message(c)) == (c, None)
    assert decode_message(encode_message(c, b"cred")) == (c, b"cred")
    for body in (b"", c.encode()[:-1], c.encode() + b"x" * (MAX_CREDENTIAL + 1)):
        with pytest.raises(WireError) as e:
            decode_message(body)
        assert e.value.reason is DropReason.OWNER_CLAIM_INVALID


@FUZZ
@given(st.binary(max_size=CLAIM_LEN + 8))
def test_the_decoders_only_raise_wire_error(data: bytes) -> None:
    for decode in (decode_claim, decode_message):
        try:
            got = decode(data)
        except WireError as e:
            assert e.reason is DropReason.OWNER_CLAIM_INVALID
        else:
            c = got if isinstance(got, OwnerClaim) else got[0]
            assert not c.signature_ok()
