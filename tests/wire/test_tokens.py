"""Invite tokens and use marks (core/wire/tokens.py; docs/membership.md 3.1, 3.4): canonical round trips, any
flipped byte refused (layout or signature), the bounds, and invite version 2 carrying a token (invite.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omerta_mesh.core.errors import DropReason, InviteError, UsageError, WireError
from omerta_mesh.core.ids import NetworkId, NodeId, b32decode, b32encode
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.invite import PREFIX, PREFIX_V2, PREFIX_V3, Invite, _checksum, decode_invite, encode_invite
from omerta_mesh.core.wire.tokens import (
    MARK_LEN,
    MAX_TOKEN,
    MAX_TOKEN_LIFETIME,
    MIN_TOKEN,
    Token,
    UseMark,
    decode_mark,
    decode_token,
    sign_mark,
    sign_token,
)

ADMIN = Identity.from_seed(bytes([3]) * 32)
OTHER = Identity.from_seed(bytes([4]) * 32)
NET = NetworkId(bytes(range(10)))
WALL = 1_800_000_000


def _token(**kw: object) -> Token:
    fields: dict[str, object] = dict(network=NET, token_id=bytes(range(16)), issuer=ADMIN.node_id, not_after=WALL + 3600,
                                     uses=1, cert_lifetime=30 * 86400, name="laptop", tags=("dev", "eu"))
    fields.update(kw)
    return sign_token(ADMIN, Token(**fields), WALL)  # type: ignore[arg-type]


def test_round_trip_and_bounds() -> None:
    t = _token()
    raw = t.encode()
    assert decode_token(raw) == t and decode_token(raw).signature_ok()
    assert MIN_TOKEN <= len(raw) <= MAX_TOKEN
    assert len(_token(name="", tags=()).encode()) == MIN_TOKEN == 139
    longest = _token(name="n" * 32, tags=tuple(f"{i}" * 11 for i in range(8)))
    assert len(longest.encode()) == MAX_TOKEN == 267


@given(name=st.text(max_size=10).filter(lambda n: all(ord(c) >= 0x20 and ord(c) != 0x7F and not 0xD800 <= ord(c) <= 0xDFFF for c in n)),
       uses=st.integers(1, 255), lifetime=st.integers(1, 400 * 86400),
       tags=st.lists(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8),
                     max_size=8, unique=True))
def test_canonical_round_trip(name: str, uses: int, lifetime: int, tags: list[str]) -> None:
    t = _token(name=name, uses=uses, cert_lifetime=lifetime, tags=tuple(tags))
    raw = t.encode()
    assert decode_token(raw) == t and decode_token(raw).encode() == raw


def test_any_flipped_byte_is_refused() -> None:
    raw = _token().encode()
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x40
        try:
            t = decode_token(bytes(bad))
        except WireError as e:
            assert e.reason is DropReason.CERT_MALFORMED
            continue
        assert not t.signature_ok(), i


@pytest.mark.parametrize("change", [dict(uses=0), dict(uses=256), dict(cert_lifetime=0), dict(token_id=b"short"),
                                    dict(tags=("a b",)), dict(tags=("x", "x")), dict(name="n" * 33)])
def test_fields_the_layout_cannot_hold_are_refused_when_signing(change: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        _token(**change)


def test_expiry_is_bounded_and_in_the_future() -> None:
    _token(not_after=WALL + MAX_TOKEN_LIFETIME)
    for na in (WALL, WALL - 1, WALL + MAX_TOKEN_LIFETIME + 1):
        with pytest.raises(UsageError, match="expires within 30 days"):
            _token(not_after=na)


def test_only_the_named_issuer_signs() -> None:
    with pytest.raises(UsageError, match="names issuer"):
        sign_token(OTHER, Token(NET, bytes(16), ADMIN.node_id, WALL + 10, 1, 60), WALL)
    forged = Token(NET, bytes(16), ADMIN.node_id, WALL + 10, 1, 60, signature=OTHER.sign(b"x"))
    assert not decode_token(forged.encode()).signature_ok()


def test_use_mark_round_trip_and_refusals() -> None:
    m = sign_mark(ADMIN, UseMark(NET, bytes(16), ADMIN.node_id, 2, OTHER.node_id, WALL + 5))
    raw = m.encode()
    assert len(raw) == MARK_LEN == 164 and decode_mark(raw) == m and m.signature_ok()
    for bad in (raw[:-1], raw + b"\0", b"\x02" + raw[1:]):
        with pytest.raises(WireError) as e:
            decode_mark(bad)
        assert e.value.reason is DropReason.TOKEN_MARK_INVALID
    flipped = bytearray(raw)
    flipped[40] ^= 1
    assert not decode_mark(bytes(flipped)).signature_ok()
    with pytest.raises(UsageError, match="unsigned"):
        UseMark(NET, bytes(16), ADMIN.node_id, 1, OTHER.node_id, WALL).encode()


def _v2(**kw: object) -> Invite:
    fields: dict[str, object] = dict(network_key=bytes(range(32)), inviter=ADMIN.node_id, name="home",
                                     endpoints=(("192.0.2.1", 4000),), owner=OTHER.node_id, network_id=NET, epoch=3,
                                     token=_token())
    fields.update(kw)
    return Invite(**fields)  # type: ignore[arg-type]


def test_invite_version_2_round_trip_and_version_1_still_read() -> None:
    inv = _v2()
    text = encode_invite(inv)
    assert text.startswith(PREFIX_V2) and inv.version == 2
    assert decode_invite(text) == inv and decode_invite(text).token.signature_ok()  # type: ignore[union-attr]
    v1 = Invite(bytes(32), ADMIN.node_id, "open", ())
    assert encode_invite(v1).startswith(PREFIX) and decode_invite(encode_invite(v1)) == v1 and v1.version == 1


def test_invite_version_2_refuses_a_token_of_another_network_and_mangling() -> None:
    with pytest.raises(InviteError, match="malformed although its checksum"):
        decode_invite(encode_invite(_v2(network_id=NetworkId(bytes(10)))))
    text = encode_invite(_v2())
    for keep in (len(PREFIX_V2) + 10, len(text) - 3):
        with pytest.raises(InviteError, match="truncated"):
            decode_invite(text[:keep])
    typo = text[:-20] + ("a" if text[-20] != "a" else "b") + text[-19:]
    with pytest.raises(InviteError, match="mistyped"):
        decode_invite(typo)


def test_invite_version_3_names_other_admins_and_is_made_only_when_there_are_some() -> None:
    admins = ((OTHER.node_id, (("192.0.2.9", 51888), ("2001:db8::9", 51888))), (NodeId(bytes([5]) * 32), ()))
    inv = _v2(admins=admins)
    text = encode_invite(inv)
    assert text.startswith(PREFIX_V3) and inv.version == 3 and decode_invite(text) == inv
    assert encode_invite(_v2(admins=())).startswith(PREFIX_V2)  # none: version 2, which earlier versions read
    many = tuple((NodeId(bytes([i]) * 32), (("192.0.2.1", i),) * 9) for i in range(1, 7))
    assert decode_invite(encode_invite(_v2(admins=many))).admins == tuple((n, eps[:4]) for n, eps in many[:3])  # bounded
    raw = b32decode(text[len(PREFIX_V3) :])[:-4]
    section = 1 + (32 + 1 + 7 + 19) + (32 + 1)  # the count, then each admin: node id and endpoints
    assert raw[-section] == 2
    for body in (raw + b"\0", raw[:-1], raw[:-section] + b"\0"):  # a trailing byte, truncated, no admins under version 3
        with pytest.raises(InviteError, match="malformed although its checksum"):
            decode_invite(PREFIX_V3 + b32encode(body + _checksum(body)))
    v2_body = b32decode(encode_invite(_v2()).split("-", 1)[1])[:-4]
    with pytest.raises(InviteError, match="malformed although its checksum"):  # a version 2 body under the new prefix
        body = bytes((3,)) + v2_body[1:]
        decode_invite(PREFIX_V3 + b32encode(body + _checksum(body)))


@given(body=st.binary(max_size=400))
def test_invite_version_2_parser_over_garbage_with_a_valid_checksum(body: bytes) -> None:
    from omerta_mesh.core.ids import b32encode
    from omerta_mesh.core.wire.invite import _checksum
    raw = b"\x02" + body
    text = PREFIX_V2 + b32encode(raw + _checksum(raw))
    try:
        inv = decode_invite(text)
    except InviteError:
        return
    assert encode_invite(inv) == text
