"""The credential flag of owned networks' handshakes (core/wire/handshake.py, packet.py): lengths it allows,
reserved bits still refused, open networks' exact sizes unchanged."""

from __future__ import annotations

import pytest

from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.wire import handshake as hw
from omerta_mesh.core.wire.certs import MAX_CREDENTIAL
from omerta_mesh.core.wire.packet import packet_type

KEY = bytes(32)


def init(extra: int, flags: int) -> bytes:
    return hw.encode_init(7, bytes(hw.NOISE_MSG1_LEN + extra), KEY, None, flags)[0]


@pytest.mark.parametrize("extra", [hw.CRED_MIN_EXTRA, 200, hw.CRED_MAX_EXTRA])
def test_flagged_initiations_carry_a_credential_of_any_allowed_length(extra: int) -> None:
    m = hw.decode_init(init(extra, hw.FLAG_CRED))
    assert m.flags == hw.FLAG_CRED and len(m.noise) == hw.NOISE_MSG1_LEN + extra
    assert m.mac1 == hw.mac(KEY, m.mac1_input)


def test_open_network_handshakes_keep_their_exact_size() -> None:
    assert len(init(0, 0)) == hw.INIT_LEN and hw.decode_init(init(0, 0)).flags == 0
    with pytest.raises(ValueError):
        init(3, 0)
    with pytest.raises(ValueError):
        init(0, hw.FLAG_CRED)
    with pytest.raises(ValueError):
        init(hw.CRED_MAX_EXTRA + 1, hw.FLAG_CRED)


def test_lengths_and_reserved_bits_are_refused() -> None:
    good = init(50, hw.FLAG_CRED)
    for bad, reason in ((bytes([1, 1, 0x03, 0]) + good[4:], DropReason.BAD_RESERVED),
                        (bytes([1, 1, 0x01, 0]) + bytes(hw.INIT_LEN - 4), DropReason.TRUNCATED),
                        (bytes([1, 1, 0x01, 0]) + bytes(hw.INIT_LEN + hw.CRED_MAX_EXTRA - 3), DropReason.OVERSIZED)):
        with pytest.raises(WireError) as e:
            hw.decode_init(bad)
        assert e.value.reason is reason
    assert packet_type(good).value == 1
    assert packet_type(bytes([4, 1, 0x01, 0]) + bytes(40)).value == 4  # transport: bit 0 is the cipher (AES-256-GCM)
    for flags in (0x02, 0x03, 0x80):
        with pytest.raises(WireError):
            packet_type(bytes([4, 1, flags, 0]) + bytes(40))  # ... and no other flag


def test_credential_section_must_match_its_length() -> None:
    assert hw.split_credential(hw.with_credential(b"p" * 8, b"c" * 5), 8) == (b"p" * 8, b"c" * 5)
    for bad in (b"p" * 8 + b"\x06\x00" + b"c" * 5, b"p" * 8 + b"\x00\x00", b"p" * 8):
        with pytest.raises(WireError) as e:
            hw.split_credential(bad, 8)
        assert e.value.reason is DropReason.CERT_MALFORMED
    assert hw.CRED_MAX_EXTRA == 2 + MAX_CREDENTIAL
