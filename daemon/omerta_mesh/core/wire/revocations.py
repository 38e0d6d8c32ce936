"""Revocations: an owner's or admin's signed word that a node, a certificate or an invite token is out
(docs/membership.md, section 5).

Layout (version 1), 134 to 158 bytes::

    | version (u8) = 1 | kind (u8): 1 node, 2 certificate serial, 3 token | flags (u8): bit 0 void_issued |
    | network id (10) | target length (u8): 32 node id, 8 serial (u64 LE), 16 token id | target |
    | issued (u64 LE) | until (u64 LE) |                                  (wall-clock seconds)
    | issuer node id (32) |
    | signature (64): Ed25519 by the issuer over "omrevok1" || every byte before it |

A ``member.revoked`` control message (reliable, over a session of the owned network) carries one or more::

    | length (u8) | revocation (length bytes) |    repeated; at most ``max_revocations`` (4,096) in one message

pushed to every connected member when a node first takes one (its own or a member's), and sent by both sides
when a session of the owned network first comes up (all that each holds).

``void_issued`` (node revocations only) also voids every certificate the revoked node issued as an admin (its
key was stolen); without it, certificates it issued before ``issued`` stay valid until they expire. ``until``
is later than ``issued`` by at most the longest certificate lifetime: by then nothing the revocation stops can
still be valid, so members forget it. Who may sign what is the revocation list's rule
(``core/member/revocations.py``), not the layout's.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import DropReason, WireError
from ..ids import NETWORK_ID_LEN, NetworkId, NodeId
from ..keys import SIGNATURE_LEN, Identity
from .certs import MAX_LIFETIME
from .signed import sign_as, verifies, wire_form

REVOCATION_VERSION = 1
CONTEXT = b"omrevok1"
VOID_ISSUED = 0x01
_HEAD = struct.Struct(f"<BBB{NETWORK_ID_LEN}sB")
_TAIL = struct.Struct("<QQ32s")


class RevocationKind(enum.IntEnum):
    NODE = 1
    SERIAL = 2
    TOKEN = 3


TARGET_LEN = {RevocationKind.NODE: 32, RevocationKind.SERIAL: 8, RevocationKind.TOKEN: 16}
MIN_REVOCATION = _HEAD.size + min(TARGET_LEN.values()) + _TAIL.size + SIGNATURE_LEN
MAX_REVOCATION = _HEAD.size + max(TARGET_LEN.values()) + _TAIL.size + SIGNATURE_LEN


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: RevocationKind
    network: NetworkId
    target: bytes  # a node id, a serial (8 bytes LE) or a token id
    issued: int
    until: int
    issuer: NodeId
    void_issued: bool = False
    signature: bytes = b""

    def body(self) -> bytes:
        problem = _field_problem(self)
        if problem:
            raise ValueError(problem)
        return (_HEAD.pack(REVOCATION_VERSION, self.kind, VOID_ISSUED if self.void_issued else 0, self.network.raw,
                           len(self.target)) + self.target + _TAIL.pack(self.issued, self.until, self.issuer.raw))

    def encode(self) -> bytes:
        return wire_form(self, "revocation", "sign_revocation")

    def signature_ok(self) -> bool:
        """Whether the signature verifies under the issuer's key (Ed25519, the ``cryptography`` library)."""
        return verifies(self, CONTEXT)


def serial_target(serial: int) -> bytes:
    return serial.to_bytes(8, "little")


def _field_problem(r: Revocation) -> str | None:
    if not isinstance(r.kind, RevocationKind):
        return f"kind {r.kind!r} is not a RevocationKind"
    if len(r.target) != TARGET_LEN[r.kind]:
        return f"a {r.kind.name.lower()} revocation names {TARGET_LEN[r.kind]} bytes, not {len(r.target)}"
    if r.void_issued and r.kind is not RevocationKind.NODE:
        return "only a node revocation can void what the node issued"
    for what, v in (("issued", r.issued), ("until", r.until)):
        if not isinstance(v, int) or not 0 <= v < 1 << 64:
            return f"{what} {v!r} is not an unsigned 64-bit integer"
    if not r.issued < r.until <= r.issued + MAX_LIFETIME:
        return f"a revocation lasts from 1 s to {MAX_LIFETIME // 86400} days, not {r.issued}..{r.until}"
    return None


def sign_revocation(issuer: Identity, rev: Revocation) -> Revocation:
    return sign_as(issuer, rev, CONTEXT, "revocation")


def decode_revocation(data: bytes) -> Revocation:
    """Parse a revocation. Raises WireError (REVOCATION_INVALID) for anything outside the layout. The signature
    is not verified here (``Revocation.signature_ok``)."""
    if not MIN_REVOCATION <= len(data) <= MAX_REVOCATION:
        raise WireError(DropReason.REVOCATION_INVALID, f"revocation of {len(data)} bytes")
    data = bytes(data)
    ver, kind, flags, net, tlen = _HEAD.unpack_from(data)
    if ver != REVOCATION_VERSION or kind not in RevocationKind._value2member_map_ or flags & ~VOID_ISSUED:
        raise WireError(DropReason.REVOCATION_INVALID, f"revocation version {ver}, kind {kind} or flags {flags:#x}")
    pos = _HEAD.size + tlen
    if pos + _TAIL.size + SIGNATURE_LEN != len(data):
        raise WireError(DropReason.REVOCATION_INVALID, "revocation length does not match its target")
    issued, until, issuer = _TAIL.unpack_from(data, pos)
    rev = Revocation(RevocationKind(kind), NetworkId(net), data[_HEAD.size : pos], issued, until, NodeId(issuer),
                     bool(flags & VOID_ISSUED), data[pos + _TAIL.size :])
    problem = _field_problem(rev)
    if problem:
        raise WireError(DropReason.REVOCATION_INVALID, problem)
    return rev


def encode_revocations(revs: list[bytes]) -> bytes:
    """The body of a ``member.revoked`` message: each encoded revocation after its length byte."""
    return b"".join(bytes([len(r)]) + r for r in revs)


def split_revocations(body: bytes, limit: int) -> list[bytes]:
    """The revocations in a ``member.revoked`` body, still encoded (``decode_revocation`` each). Raises WireError
    (REVOCATION_INVALID) for an empty body, a length outside the layout's bounds, or more than ``limit``."""
    body, at = bytes(body), 0
    out: list[bytes] = []
    while at < len(body):
        n = body[at]
        if not MIN_REVOCATION <= n <= MAX_REVOCATION or at + 1 + n > len(body) or len(out) >= limit:
            raise WireError(DropReason.REVOCATION_INVALID, f"member.revoked entry {len(out)} of {n} bytes")
        out.append(body[at + 1 : at + 1 + n])
        at += 1 + n
    if not out:
        raise WireError(DropReason.REVOCATION_INVALID, "empty member.revoked")
    return out
