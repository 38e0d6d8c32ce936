"""Invite tokens and their use marks: what lets a node without a certificate enrol (docs/membership.md, 3.1, 3.4).

Token (version 1), 139 to 267 bytes::

    | version (u8) = 1 | network id (10) | token id (16, random) | issuer node id (32) |
    | not after (u64 LE) | uses (u8, 1-255) | role (u8) = 1 member | cert lifetime (u32 LE seconds) |
    | name length (u8, <= 32) | name | tag count (u8, <= 8) | per tag: | length (u8) | tag | |
    | signature (64): Ed25519 by the issuer over "omtokn01" || every byte before it |

The issuer is the owner or an admin. The name and tags are what the certificate will say (an empty name: the
joiner's own choice), with the rules of certificates (``certs.py``); the lifetime is the certificate's, at most
``MAX_LIFETIME``. ``not after`` is at most ``MAX_TOKEN_LIFETIME`` (30 days) after the token was made: the issuer
checks that when signing, an admin redeeming it checks it against its own clock. A token is a bearer secret only
together with the network key: the invite (``invite.py``, version 2) carries both.

Use mark (version 1), 164 bytes::

    | version (u8) = 1 | network id (10) | token id (16) | admin node id (32) | uses so far (u8) |
    | enrolled node id (32) | token not after (u64 LE) |
    | signature (64): Ed25519 by the admin over "omtkuse1" || every byte before it |

An admin that redeems a token signs a mark saying how many uses of it it has accepted so far (its own count)
and whom it enrolled last; other admins count a token's uses as the sum over admins of each one's highest mark.
Marks are kept until the token's ``not after``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import DropReason, UsageError, WireError
from ..ids import NETWORK_ID_LEN, NetworkId, NodeId
from ..keys import SIGNATURE_LEN, Identity
from .certs import MAX_LIFETIME, Role, decode_name_tags, encode_name_tags, name_tags_problem
from .signed import sign_as, verifies, wire_form

TOKEN_VERSION = 1
MARK_VERSION = 1
TOKEN_CONTEXT = b"omtokn01"
MARK_CONTEXT = b"omtkuse1"
TOKEN_ID_LEN = 16
MAX_TOKEN_LIFETIME = 30 * 86400
DEFAULT_TOKEN_LIFETIME = 86400
MAX_USES = 255
_HEAD = struct.Struct(f"<B{NETWORK_ID_LEN}s{TOKEN_ID_LEN}s32sQBBI")
MIN_TOKEN = _HEAD.size + 2 + SIGNATURE_LEN  # 139
MAX_TOKEN = MIN_TOKEN + 32 + 96  # 267 (name and tags as in certificates)
_MARK = struct.Struct(f"<B{NETWORK_ID_LEN}s{TOKEN_ID_LEN}s32sB32sQ")
MARK_LEN = _MARK.size + SIGNATURE_LEN  # 164


@dataclass(frozen=True, slots=True)
class Token:
    network: NetworkId
    token_id: bytes
    issuer: NodeId
    not_after: int
    uses: int
    cert_lifetime: int
    name: str = ""
    tags: tuple[str, ...] = ()
    signature: bytes = b""
    role: Role = Role.MEMBER

    def body(self) -> bytes:
        """The signed bytes. Raises ValueError for fields the layout cannot hold."""
        problem = _token_problem(self)
        if problem:
            raise ValueError(problem)
        return _HEAD.pack(TOKEN_VERSION, self.network.raw, self.token_id, self.issuer.raw, self.not_after, self.uses,
                          self.role, self.cert_lifetime) + encode_name_tags(self.name, self.tags)

    def encode(self) -> bytes:
        return wire_form(self, "token", "sign_token")

    def signature_ok(self) -> bool:
        return verifies(self, TOKEN_CONTEXT)


def _token_problem(t: Token) -> str | None:
    if not isinstance(t.token_id, bytes) or len(t.token_id) != TOKEN_ID_LEN:
        return f"a token id is {TOKEN_ID_LEN} bytes"
    if not isinstance(t.not_after, int) or not 0 <= t.not_after < 1 << 64:
        return f"not after {t.not_after!r} is not an unsigned 64-bit integer"
    if not isinstance(t.uses, int) or not 1 <= t.uses <= MAX_USES:
        return f"uses {t.uses!r} is not between 1 and {MAX_USES}"
    if t.role is not Role.MEMBER:
        return "a token enrols members only"
    if not isinstance(t.cert_lifetime, int) or not 1 <= t.cert_lifetime <= MAX_LIFETIME:
        return f"certificate lifetime {t.cert_lifetime!r} is not between 1 s and {MAX_LIFETIME // 86400} days"
    return name_tags_problem(t.name, t.tags, "token name")


def sign_token(issuer: Identity, token: Token, wall: float) -> Token:
    """``token`` signed by ``issuer`` (who must be named its issuer). UsageError for fields the layout cannot hold
    and for a ``not after`` in the past or more than MAX_TOKEN_LIFETIME after ``wall``."""
    if not wall < token.not_after <= wall + MAX_TOKEN_LIFETIME:
        raise UsageError(f"an invite expires within {MAX_TOKEN_LIFETIME // 86400} days and not in the past")
    return sign_as(issuer, token, TOKEN_CONTEXT, "token")


def _malformed(detail: str) -> WireError:
    return WireError(DropReason.CERT_MALFORMED, detail)


def decode_token(data: bytes) -> Token:
    """Parse a token. Raises WireError (CERT_MALFORMED) outside the layout or its bounds; the signature is not
    verified here."""
    if not MIN_TOKEN <= len(data) <= MAX_TOKEN:
        raise _malformed(f"token of {len(data)} bytes (between {MIN_TOKEN} and {MAX_TOKEN})")
    data = bytes(data)
    ver, net, tid, issuer, not_after, uses, role, lifetime = _HEAD.unpack_from(data)
    if ver != TOKEN_VERSION or role != Role.MEMBER:
        raise _malformed(f"token version {ver} or role {role}")
    try:
        name, tags, pos = decode_name_tags(data, _HEAD.size, "token")
    except ValueError as e:
        raise _malformed(str(e)) from None
    if pos + SIGNATURE_LEN != len(data):
        raise _malformed("token length does not match its fields")
    token = Token(NetworkId(net), tid, NodeId(issuer), not_after, uses, lifetime, name, tags, data[pos:])
    if (problem := _token_problem(token)) is not None:
        raise _malformed(problem)
    return token


@dataclass(frozen=True, slots=True)
class UseMark:
    network: NetworkId
    token_id: bytes
    issuer: NodeId  # the admin that redeemed the token and signs the mark
    uses: int  # how many uses of the token this admin has accepted so far
    enrolled: NodeId  # the node it enrolled with the last of them
    token_not_after: int  # the mark is kept until then
    signature: bytes = b""

    def body(self) -> bytes:
        if len(self.token_id) != TOKEN_ID_LEN or not 1 <= self.uses <= MAX_USES or not 0 <= self.token_not_after < 1 << 64:
            raise ValueError("use mark fields out of range")
        return _MARK.pack(MARK_VERSION, self.network.raw, self.token_id, self.issuer.raw, self.uses, self.enrolled.raw,
                          self.token_not_after)

    def encode(self) -> bytes:
        return wire_form(self, "use mark", "sign_mark")

    def signature_ok(self) -> bool:
        return verifies(self, MARK_CONTEXT)


def sign_mark(admin: Identity, mark: UseMark) -> UseMark:
    return sign_as(admin, mark, MARK_CONTEXT, "use mark")


def decode_mark(data: bytes) -> UseMark:
    """Parse a use mark. Raises WireError (TOKEN_MARK_INVALID) for a wrong length, version or field."""
    if len(data) != MARK_LEN:
        raise WireError(DropReason.TOKEN_MARK_INVALID, f"use mark of {len(data)} bytes, not {MARK_LEN}")
    ver, net, tid, admin, uses, enrolled, not_after = _MARK.unpack_from(data)
    if ver != MARK_VERSION or not 1 <= uses:
        raise WireError(DropReason.TOKEN_MARK_INVALID, f"use mark version {ver} or uses {uses}")
    return UseMark(NetworkId(net), tid, NodeId(admin), uses, NodeId(enrolled), not_after, bytes(data[_MARK.size :]))
