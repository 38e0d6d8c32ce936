"""Invite strings: how a network key, the inviter's node id and its endpoints travel between people.

Text form: ``omerta1-`` followed by lowercase unpadded base32 of::

    | version (u8) = 1 | network key (32) | inviter node id (32) |
    | name length (u8) | network name (UTF-8, <= 64) |
    | endpoint count (u8, <= 16) | endpoints: family (u8: 4 or 6) | address (4 or 16) | port (u16 BE) | ...
    | checksum (4) = BLAKE2s-32 of everything before it |

Version 2 (owned networks, docs/membership.md 3.2): ``omerta2-`` followed by base32 of::

    | version (u8) = 2 | network key (32) | network id (10) | key epoch (u32 LE) | owner node id (32) |
    | inviter node id (32) | name length (u8) | network name | endpoints (as in version 1) |
    | token length (u16 LE) | invite token (core/wire/tokens.py) | checksum (4) |

The owner tells the joiner whom to trust before its first handshake; the token (signed by an admin, one-time or
N-use, with an expiry) is what an admin redeems for a member certificate (enrolment). Open networks keep making
version 1 invites; every version is read.

Version 3 (``omerta3-``) is version 2 with other admins the joiner may ask when the inviter does not answer
(docs/membership.md 3.3), after the token and before the checksum::

    | admin count (u8, 1-3) | per admin: node id (32) | endpoints (as in version 1, at most 4) |

An invite names them only when the inviter knows other admins (or an owner other than itself); otherwise it is a
version 2 invite, which earlier versions read.

The checksum catches typos and truncation, so a mangled invite is refused with a clear message instead of
joining a network that does not exist. Anyone holding an invite can join: treat it as a secret.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ..errors import InviteError, WireError
from ..ids import NETWORK_ID_LEN, NetworkId, NodeId, b32decode, b32encode
from .endpoints import decode_endpoints, encode_endpoints
from .frames import label_bytes
from .tokens import MAX_TOKEN, Token, decode_token

PREFIX = "omerta1-"
PREFIX_V2 = "omerta2-"
PREFIX_V3 = "omerta3-"
INVITE_VERSION = 1
INVITE_VERSION_2 = 2
INVITE_VERSION_3 = 3
MAX_ADMINS = 3  # other admins a version 3 invite names
MAX_ADMIN_ENDPOINTS = 4
_V2_HEAD = struct.Struct(f"<B32s{NETWORK_ID_LEN}sI32s32s")
MAX_ENDPOINTS = 16
MAX_NAME = 64
_B32_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz234567=")


@dataclass(frozen=True)
class Invite:
    network_key: bytes
    inviter: NodeId
    name: str
    endpoints: tuple[tuple[str, int], ...]
    # version 2 (owned networks): the owner, the network's id and key epoch, and the signed token to enrol with
    owner: NodeId | None = None
    network_id: NetworkId | None = None
    epoch: int = 0
    token: Token | None = None
    admins: tuple[tuple[NodeId, tuple[tuple[str, int], ...]], ...] = ()  # version 3: others to ask, with endpoints

    @property
    def version(self) -> int:
        return INVITE_VERSION if self.owner is None else INVITE_VERSION_3 if self.admins else INVITE_VERSION_2


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
    if invite.owner is None:
        out = bytearray((INVITE_VERSION,)) + invite.network_key + invite.inviter.raw
    else:
        if invite.network_id is None or invite.token is None:
            raise ValueError("a version 2 invite carries the network id and a token")
        out = bytearray(_V2_HEAD.pack(invite.version, invite.network_key, invite.network_id.raw, invite.epoch,
                                      invite.owner.raw, invite.inviter.raw))
    out += bytes((len(name),)) + name
    out += encode_endpoints(invite.endpoints[:MAX_ENDPOINTS])
    if invite.owner is not None:
        assert invite.token is not None
        raw = invite.token.encode()
        out += len(raw).to_bytes(2, "little") + raw
    if invite.admins and invite.owner is not None:
        out.append(len(invite.admins[:MAX_ADMINS]))
        for node, eps in invite.admins[:MAX_ADMINS]:
            out += node.raw + encode_endpoints(eps[:MAX_ADMIN_ENDPOINTS])
    out += _checksum(bytes(out))
    return {INVITE_VERSION: PREFIX, INVITE_VERSION_2: PREFIX_V2}.get(invite.version, PREFIX_V3) + b32encode(bytes(out))


def decode_invite(text: str) -> Invite:
    t = "".join(text.split()).lower()
    prefix = next((p for p in (PREFIX, PREFIX_V2, PREFIX_V3) if t.startswith(p)), None)
    if prefix is None:
        if t.startswith("omerta") and "-" in t:
            raise InviteError(f"invite version {t.split('-', 1)[0]!r} is not supported; upgrade omerta-mesh")
        raise InviteError("not an omerta invite: it should start with 'omerta1-'")
    version = {PREFIX: INVITE_VERSION, PREFIX_V2: INVITE_VERSION_2}.get(prefix, INVITE_VERSION_3)
    text32 = t[len(prefix) :]
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
    if body[0] != version:
        raise InviteError(f"invite version {body[0]} is not supported; upgrade omerta-mesh")
    try:
        return _fields_v1(body) if version == INVITE_VERSION else _fields_v2(body, version == INVITE_VERSION_3)
    except (IndexError, KeyError, ValueError, struct.error, UnicodeDecodeError, WireError):
        raise InviteError("invite is malformed although its checksum matches; ask for a new invite") from None


def _name_endpoints(body: bytes, pos: int) -> tuple[str, tuple[tuple[str, int], ...], int]:
    nlen = body[pos]
    name = body[pos + 1 : pos + 1 + nlen].decode("utf-8")
    if len(name.encode("utf-8")) != nlen:
        raise ValueError("name")
    eps, pos = decode_endpoints(body, pos + 1 + nlen, MAX_ENDPOINTS)
    return name, tuple(eps), pos


def _fields_v1(body: bytes) -> Invite:
    key = body[1:33]
    inviter = NodeId(body[33:65])
    name, eps, pos = _name_endpoints(body, 65)
    if pos != len(body) or len(key) != 32:
        raise ValueError("length")
    return Invite(key, inviter, name, eps)


def _fields_v2(body: bytes, with_admins: bool = False) -> Invite:
    _, key, nid, epoch, owner, inviter = _V2_HEAD.unpack_from(body)
    name, eps, pos = _name_endpoints(body, _V2_HEAD.size)
    tlen = int.from_bytes(body[pos : pos + 2], "little")
    end = pos + 2 + tlen
    if tlen > MAX_TOKEN or end > len(body) or end != len(body) and not with_admins:
        raise ValueError("length")
    token = decode_token(body[pos + 2 : end])
    if token.network.raw != nid:
        raise ValueError("the token is for another network")
    admins: list[tuple[NodeId, tuple[tuple[str, int], ...]]] = []
    if with_admins:
        count, pos = body[end], end + 1
        if not 1 <= count <= MAX_ADMINS:
            raise ValueError("admin count")
        for _ in range(count):
            node = NodeId(body[pos : pos + 32])
            aeps, pos = decode_endpoints(body, pos + 32, MAX_ADMIN_ENDPOINTS)
            admins.append((node, tuple(aeps)))
        if pos != len(body):
            raise ValueError("length")
    return Invite(key, NodeId(inviter), name, eps, NodeId(owner), NetworkId(nid), epoch, token, tuple(admins))
