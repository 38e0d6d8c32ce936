"""Invite strings: how a network key, the inviter's node id and its endpoints travel between people.

Text form: ``omerta1-`` followed by lowercase unpadded base32 of::

    | version (u8) = 1 | network key (32) | inviter node id (32) |
    | name length (u8) | network name (UTF-8, <= 64) |
    | endpoint count (u8, <= 16) | endpoints: family (u8: 4 or 6) | address (4 or 16) | port (u16 BE) | ...
    | checksum (4) = BLAKE2s-32 of everything before it |

The checksum catches typos and truncation, so a mangled invite is refused with a clear message instead of
joining a network that does not exist. Anyone holding an invite can join: treat it as a secret.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ..errors import InviteError
from ..ids import NodeId, b32decode, b32encode
from .endpoints import decode_endpoints, encode_endpoints
from .frames import label_bytes

PREFIX = "omerta1-"
INVITE_VERSION = 1
MAX_ENDPOINTS = 16
MAX_NAME = 64
_B32_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz234567=")


@dataclass(frozen=True)
class Invite:
    network_key: bytes
    inviter: NodeId
    name: str
    endpoints: tuple[tuple[str, int], ...]


def check_network_name(name: str) -> bytes:
    """The UTF-8 form of a valid network name, or ValueError saying what is wrong. A network name may be
    empty; it is at most ``MAX_NAME`` bytes (what an invite carries), well-formed, without control characters."""
    if not isinstance(name, str):
        raise ValueError("a network name is a string")
    return label_bytes(name, "network name", MAX_NAME)


def repair_network_name(name: str) -> str:
    """``name`` made valid (for state written before the rule was checked): lone surrogates and control
    characters become U+FFFD, and it is cut to ``MAX_NAME`` bytes on a character boundary."""
    fixed = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF or ord(c) < 0x20 or ord(c) == 0x7F else c for c in name)
    return fixed.encode("utf-8")[:MAX_NAME].decode("utf-8", "ignore")


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2s(data, digest_size=4, person=b"ominvite").digest()


def encode_invite(invite: Invite) -> str:
    # cut an over-long name on a character boundary (a cut inside a character would not decode)
    name = invite.name.encode("utf-8")[:MAX_NAME].decode("utf-8", "ignore").encode("utf-8")
    out = bytearray((INVITE_VERSION,))
    out += invite.network_key + invite.inviter.raw + bytes((len(name),)) + name
    out += encode_endpoints(invite.endpoints[:MAX_ENDPOINTS])
    out += _checksum(bytes(out))
    return PREFIX + b32encode(bytes(out))


def decode_invite(text: str) -> Invite:
    t = "".join(text.split()).lower()
    if not t.startswith(PREFIX):
        if t.startswith("omerta") and "-" in t:
            raise InviteError(f"invite version {t.split('-', 1)[0]!r} is not supported; upgrade omerta-mesh")
        raise InviteError("not an omerta invite: it should start with 'omerta1-'")
    text32 = t[len(PREFIX) :]
    if not set(text32) <= _B32_CHARS:
        raise InviteError("invite contains characters that are not base32: it was mistyped; copy it again")
    try:
        raw = b32decode(text32)
    except ValueError:  # only base32 characters, but a length no encoding has
        raise InviteError("invite has an impossible length: it was truncated or mistyped; copy the whole string again") from None
    if len(raw) < 1 + 32 + 32 + 1 + 1 + 4:
        raise InviteError("invite is too short: it was truncated; copy the whole string")
    body, check = raw[:-4], raw[-4:]
    if _checksum(body) != check:
        raise InviteError("invite checksum does not match: it was mistyped or truncated; copy it again")
    if body[0] != INVITE_VERSION:
        raise InviteError(f"invite version {body[0]} is not supported; upgrade omerta-mesh")
    try:
        key = body[1:33]
        inviter = NodeId(body[33:65])
        nlen = body[65]
        pos = 66 + nlen
        name = body[66:pos].decode("utf-8")
        eps, pos = decode_endpoints(body, pos, MAX_ENDPOINTS)
        if pos != len(body) or len(key) != 32:
            raise ValueError("length")
    except (IndexError, KeyError, ValueError, struct.error, UnicodeDecodeError):
        raise InviteError("invite is malformed although its checksum matches; ask for a new invite") from None
    return Invite(key, inviter, name, tuple(eps))
