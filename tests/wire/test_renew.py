"""Renewal control messages (core/wire/renew.py, docs/membership.md 2.5): any bytes give a value or WireError, and
what parses encodes back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.wire import renew as rw
from omerta_mesh.core.wire.certs import encode_credential
from omerta_mesh.core.wire.enrol import EnrolStatus
from wire.test_certs import certificates


@given(st.binary(max_size=700))
def test_any_body_is_a_credential_or_a_wire_error(body: bytes) -> None:
    try:
        assert rw.decode_credential_body(body) == body
    except WireError as e:
        assert e.reason is DropReason.CERT_MALFORMED


@given(st.binary(max_size=3))
def test_any_refusal_is_a_status_or_a_wire_error(body: bytes) -> None:
    try:
        status = rw.decode_refusal(body)
    except WireError as e:
        assert e.reason is DropReason.CERT_MALFORMED
    else:
        assert rw.encode_refusal(status) == body


def test_only_refusals_are_sent_or_taken() -> None:
    assert [rw.decode_refusal(bytes((s,))) for s in (1, 3, 6, 7)] == list(rw.REFUSALS)
    for s in (0, 2, 4, 5, 8):
        with pytest.raises(WireError):
            rw.decode_refusal(bytes((s,)))
    with pytest.raises(ValueError):
        rw.encode_refusal(EnrolStatus.ISSUED)


@given(chain=st.lists(certificates(), min_size=1, max_size=2))
def test_a_real_credential_body_is_taken_as_it_is(chain) -> None:  # type: ignore[no-untyped-def]
    """(The fuzz above almost never draws a valid credential: this is the side it cannot see.)"""
    body = encode_credential(chain)
    assert rw.decode_credential_body(body) == body
    with pytest.raises(WireError):
        rw.decode_credential_body(body[:-1])
    with pytest.raises(WireError):
        rw.decode_credential_body(b"")
