"""Key rotations on the wire (core/wire/rekey.py): round trips, one fixed length, every flipped byte refused by the
decoder or the signature, fields outside their bounds refused both when signing and when decoding, and the decoder
only ever raises WireError (REKEY_INVALID)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason, UsageError, WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.rekey import MAX_GRACE, REKEY_LEN, Rekey, decode_rekey, sign_rekey

OWNER = Identity.generate(SeededEntropy("rekey-owner"))
OTHER = Identity.generate(SeededEntropy("rekey-other"))
NET = NetworkId(b"N" * 10)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rekey(**kw: object) -> Rekey:
    fields: dict[str, object] = {"network": NET, "epoch": 1, "key": b"K" * 32, "grace": 86400, "issued": 1_800_000_000,
                                 "issuer": OWNER.node_id}
    fields.update(kw)
    return Rekey(**fields)  # type: ignore[arg-type]


@FUZZ
@given(st.integers(1, 2**32 - 1), st.binary(min_size=32, max_size=32), st.integers(0, MAX_GRACE), st.integers(0, 2**64 - 1))
def test_round_trip(epoch: int, key: bytes, grace: int, issued: int) -> None:
    rk = sign_rekey(OWNER, rekey(epoch=epoch, key=key, grace=grace, issued=issued))
    data = rk.encode()
    assert len(data) == REKEY_LEN and decode_rekey(data) == rk and rk.signature_ok()


def test_every_flipped_byte_is_refused_by_the_decoder_or_the_signature() -> None:
    data = sign_rekey(OWNER, rekey()).encode()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        try:
            assert not decode_rekey(bytes(bad)).signature_ok(), i
        except WireError as e:
            assert e.reason is DropReason.REKEY_INVALID


@pytest.mark.parametrize(("field", "value"), [("epoch", 0), ("epoch", 2**32), ("grace", MAX_GRACE + 1), ("grace", -1),
                                              ("key", b"short"), ("issued", -1)])
def test_fields_outside_their_bounds_cannot_be_signed(field: str, value: object) -> None:
    with pytest.raises(UsageError, match="cannot sign"):
        sign_rekey(OWNER, rekey(**{field: value}))


def test_only_the_issuer_it_names_signs_it_and_an_unsigned_one_has_no_wire_form() -> None:
    with pytest.raises(UsageError, match="names issuer"):
        sign_rekey(OTHER, rekey())
    with pytest.raises(UsageError, match="unsigned"):
        rekey().encode()


def test_epoch_zero_and_a_wrong_version_are_refused_on_the_wire() -> None:
    good = sign_rekey(OWNER, rekey()).encode()
    zero = good[:11] + bytes(4) + good[15:]
    with pytest.raises(WireError, match="epoch 0"):
        decode_rekey(zero)
    with pytest.raises(WireError, match="version 2"):
        decode_rekey(b"\x02" + good[1:])


@FUZZ
@given(st.binary(max_size=REKEY_LEN + 8))
def test_the_decoder_only_raises_wire_error(data: bytes) -> None:
    try:
        rk = decode_rekey(data)
    except WireError as e:
        assert e.reason is DropReason.REKEY_INVALID
    else:
        assert len(data) == REKEY_LEN and not rk.signature_ok()
