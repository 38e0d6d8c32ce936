"""The stream gate's handshake (core/wire/gate.py): round trips, and parsers that only raise WireError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omerta_mesh.core.errors import WireError
from omerta_mesh.core.wire import gate

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(st.integers(1, 65535))
def test_request_round_trip(port: int) -> None:
    raw = gate.encode_request(port)
    assert len(raw) == gate.REQUEST_LEN and gate.decode_request(raw) == port


@given(st.one_of(st.none(), st.text(max_size=300)))
def test_answer_round_trip_keeps_a_printable_reason(reason: str | None) -> None:
    raw = gate.encode_answer(reason)
    ok, n = gate.decode_answer_head(raw[: gate.ANSWER_LEN])
    assert ok == (reason is None) and n == len(raw) - gate.ANSWER_LEN
    if reason is not None:
        text = gate.decode_reason_text(raw[gate.ANSWER_LEN:])
        assert text and text.isprintable() and len(text.encode()) <= 4 * 200


def test_port_zero_and_foreign_bytes_are_refused() -> None:
    for raw in (gate.encode_request(22)[:3] + b"\x02\x00\x16", b"SSH-2.", gate.encode_request(22)[:5],
                gate.MAGIC + b"\x01\x00\x00"):
        with pytest.raises(WireError):
            gate.decode_request(raw)
    with pytest.raises(WireError):  # connected, yet a reason follows: not our gate's answer
        gate.decode_answer_head(gate.MAGIC + bytes((gate.VERSION, gate.OK, 3)))
    with pytest.raises(WireError):
        gate.decode_answer_head(b"SSH-2.")


@pytest.mark.parametrize("parse", [gate.decode_request, gate.decode_answer_head], ids=lambda f: f.__name__)
@FUZZ
@given(data=st.one_of(st.binary(max_size=12), st.builds(lambda b: gate.MAGIC + b, st.binary(max_size=6))))
def test_parsers_only_raise_wire_error(parse, data: bytes) -> None:
    try:
        parse(data)
    except WireError as e:
        assert e.reason is not None
