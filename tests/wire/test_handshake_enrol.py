"""The enrolment flag of owned networks' handshakes (core/wire/handshake.py, packet.py; docs/membership.md 3.3): the
initiation has exactly ENROL_INIT_LEN bytes, the response at most ENROL_RESP_MAX (never more than the question),
ENROL with CRED is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.wire import enrol as ew
from omerta_mesh.core.wire import handshake as hw
from omerta_mesh.core.wire.packet import packet_type
from omerta_mesh.core.wire.tokens import decode_mark, decode_token

KEY = bytes(32)


def test_an_enrolment_initiation_has_exactly_its_fixed_length() -> None:
    dgram = hw.encode_init(7, bytes(hw.NOISE_MSG1_LEN + hw.ENROL_REQUEST_LEN), KEY, None, hw.FLAG_ENROL)[0]
    assert len(dgram) == hw.ENROL_INIT_LEN == 1024 and packet_type(dgram).value == 1
    assert hw.decode_init(dgram).flags == hw.FLAG_ENROL
    for n in (hw.ENROL_REQUEST_LEN - 1, hw.ENROL_REQUEST_LEN + 1):
        with pytest.raises(ValueError):
            hw.encode_init(7, bytes(hw.NOISE_MSG1_LEN + n), KEY, None, hw.FLAG_ENROL)
    for bad, reason in ((dgram[:-1], DropReason.TRUNCATED), (dgram + b"\0", DropReason.OVERSIZED),
                        (dgram[:2] + bytes([hw.FLAG_ENROL | hw.FLAG_CRED]) + dgram[3:], DropReason.BAD_RESERVED),
                        (dgram[:2] + b"\x04" + dgram[3:], DropReason.OVERSIZED)):
        with pytest.raises(WireError) as e:
            hw.decode_init(bad)
        assert e.value.reason is reason


def test_an_enrolment_answer_is_never_larger_than_the_question() -> None:
    assert hw.ENROL_RESP_MAX < hw.ENROL_INIT_LEN
    for extra in (1, hw.ENROL_RESP_MAX - hw.RESP_LEN):
        dgram = hw.encode_resp(1, 2, bytes(hw.NOISE_MSG2_LEN + extra), KEY, None, hw.FLAG_ENROL)[0]
        assert hw.decode_resp(dgram).flags == hw.FLAG_ENROL and len(dgram) <= hw.ENROL_RESP_MAX
    with pytest.raises(ValueError):
        hw.encode_resp(1, 2, bytes(hw.NOISE_MSG2_LEN + hw.ENROL_RESP_MAX - hw.RESP_LEN + 1), KEY, None, hw.FLAG_ENROL)
    with pytest.raises(WireError) as e:
        hw.decode_resp(bytes([2, 1, hw.FLAG_ENROL, 0]) + bytes(hw.ENROL_RESP_MAX - 3))
    assert e.value.reason is DropReason.OVERSIZED


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=900), st.binary(max_size=300).map(lambda b: b"\x01" + b)))
def test_enrolment_parsers_only_raise_wire_errors(data: bytes) -> None:
    """Whatever an authenticated joiner or admin puts in the request or answer: a WireError, or values that encode back."""
    try:
        token, name = ew.decode_request(data)
    except WireError as e:
        assert e.reason is DropReason.CERT_MALFORMED
    else:
        assert ew.encode_request(token, name, len(data)) == data
    try:
        status, credential = ew.decode_answer(data)
    except WireError as e:
        assert e.reason is DropReason.CERT_MALFORMED
    else:
        assert ew.encode_answer(status, credential) == data
    try:
        decode_mark(data)
    except WireError as e:
        assert e.reason is DropReason.TOKEN_MARK_INVALID
    try:
        decode_token(data)
    except WireError as e:
        assert e.reason is DropReason.CERT_MALFORMED
