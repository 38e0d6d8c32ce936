"""Invite strings: round trip, and a clear refusal for every way a person can mangle one."""

from __future__ import annotations

import pytest

from omerta_mesh.core.errors import InviteError, UsageError
from omerta_mesh.core.ids import NodeId, b32decode, b32encode
from omerta_mesh.core.wire.invite import INVITE_VERSION, PREFIX, Invite, _checksum, decode_invite, encode_invite

B32 = "abcdefghijklmnopqrstuvwxyz234567"
INV = Invite(
    network_key=bytes(range(32)),
    inviter=NodeId(bytes(range(100, 132))),
    name="Famille Müller ☃",
    endpoints=(("192.0.2.1", 4000), ("2001:db8::1", 51820), ("10.0.0.7", 1)),
)
TEXT = encode_invite(INV)


def test_round_trip() -> None:
    assert TEXT.startswith(PREFIX)
    assert TEXT == TEXT.lower() and set(TEXT[len(PREFIX) :]) <= set(B32)
    assert decode_invite(TEXT) == INV


def test_round_trip_without_endpoints_or_name() -> None:
    inv = Invite(bytes(32), NodeId(bytes([7]) * 32), "", ())
    assert decode_invite(encode_invite(inv)) == inv


def test_invite_error_is_a_usage_error() -> None:
    """The daemon reports it to the user who pasted the invite; it is never a remote-input drop."""
    assert issubclass(InviteError, UsageError)


def test_every_single_mistyped_character_is_refused_as_mistyped() -> None:
    body_start = len(PREFIX)
    refused = harmless = 0
    for i in range(body_start, len(TEXT)):
        for c in B32 + "0189!_.":
            if c == TEXT[i]:
                continue
            typo = TEXT[:i] + c + TEXT[i + 1 :]
            try:
                got = decode_invite(typo)
            except InviteError as e:
                assert "mistyped" in str(e), (i, c, str(e))
                refused += 1
                continue
            # Unpadded base32: the last character carries a few unused bits. A typo confined to them
            # decodes to the very same bytes, so it cannot join a wrong network.
            assert i == len(TEXT) - 1, (i, c)
            assert got == INV
            assert b32decode(typo[body_start:]) == b32decode(TEXT[body_start:])
            harmless += 1
    unused_bits = (len(TEXT) - body_start) * 5 % 8
    assert harmless == (1 << unused_bits) - 1
    assert refused == (len(TEXT) - body_start) * (len(B32) + 7 - 1) - harmless


def test_two_swapped_characters_are_refused() -> None:
    i = len(PREFIX) + 20
    assert TEXT[i] != TEXT[i + 1]
    swapped = TEXT[:i] + TEXT[i + 1] + TEXT[i] + TEXT[i + 2 :]
    with pytest.raises(InviteError, match="mistyped"):
        decode_invite(swapped)


@pytest.mark.parametrize("keep", range(len(PREFIX), len(TEXT)))
def test_truncation_is_refused_as_truncated(keep: int) -> None:
    with pytest.raises(InviteError, match="truncated"):
        decode_invite(TEXT[:keep])


def test_truncated_prefix_is_not_an_invite() -> None:
    with pytest.raises(InviteError, match="should start with 'omerta1-'"):
        decode_invite(TEXT[:5])


@pytest.mark.parametrize("text", ["", "hello", "wg1-" + TEXT[len(PREFIX) :], "omerta1" + TEXT[len(PREFIX) :], "xomerta1-aaaa"])
def test_wrong_prefix(text: str) -> None:
    with pytest.raises(InviteError, match="should start with 'omerta1-'"):
        decode_invite(text)


def test_future_version_prefix_asks_for_an_upgrade() -> None:
    with pytest.raises(InviteError, match=r"version 'omerta4' is not supported; upgrade"):
        decode_invite("omerta4-" + TEXT[len(PREFIX) :])


def test_future_version_byte_asks_for_an_upgrade() -> None:
    raw = b32decode(TEXT[len(PREFIX) :])[:-4]
    body = bytes((INVITE_VERSION + 3,)) + raw[1:]
    with pytest.raises(InviteError, match="version 4 is not supported; upgrade"):
        decode_invite(PREFIX + b32encode(body + _checksum(body)))


def test_a_version_1_body_under_the_version_2_prefix_is_refused() -> None:
    with pytest.raises(InviteError, match="version 1 is not supported"):
        decode_invite("omerta2-" + TEXT[len(PREFIX) :])


def test_well_checksummed_but_malformed_body() -> None:
    raw = b32decode(TEXT[len(PREFIX) :])[:-4]
    body = raw + b"\x00"  # a trailing byte the layout does not account for
    with pytest.raises(InviteError, match="malformed although its checksum matches"):
        decode_invite(PREFIX + b32encode(body + _checksum(body)))


def test_unknown_address_family_is_malformed() -> None:
    inv = Invite(bytes(32), NodeId(bytes([1]) * 32), "n", (("192.0.2.1", 7),))
    raw = bytearray(b32decode(encode_invite(inv)[len(PREFIX) :])[:-4])
    fam_at = 1 + 32 + 32 + 1 + 1 + 1
    assert raw[fam_at] == 4
    raw[fam_at] = 5
    with pytest.raises(InviteError, match="malformed"):
        decode_invite(PREFIX + b32encode(bytes(raw) + _checksum(bytes(raw))))


def test_whitespace_and_newlines_inside_are_tolerated() -> None:
    wrapped = "\n".join(TEXT[i : i + 40] for i in range(0, len(TEXT), 40))
    assert "\n" in wrapped
    assert decode_invite(wrapped) == INV
    spaced = "  " + " ".join(TEXT[i : i + 7] for i in range(0, len(TEXT), 7)) + "\r\n\t"
    assert decode_invite(spaced) == INV
    assert decode_invite(TEXT[:20] + "\u00a0" + TEXT[20:]) == INV  # a no-break space from a chat client


def test_upper_case_is_tolerated() -> None:
    assert decode_invite(TEXT.upper()) == INV


def test_endpoints_and_name_are_bounded_on_encode() -> None:
    eps = tuple((f"192.0.2.{i}", 1000 + i) for i in range(20))
    got = decode_invite(encode_invite(Invite(bytes(32), NodeId(bytes([2]) * 32), "x" * 100, eps)))
    assert got.endpoints == eps[:16]
    assert got.name == "x" * 64
