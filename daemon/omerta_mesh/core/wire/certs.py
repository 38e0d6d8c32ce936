"""Member certificates and credentials: who may be in an owned network (docs/membership.md, section 2).

Certificate (version 1), 167 to 295 bytes::

    | version (u8) = 1 | role (u8): 1 member, 2 admin, 3 owner | flags (u8) = 0 |
    | network id (10) | subject node id (32) | issuer node id (32) |
    | serial (u64 LE) | not before (u64 LE) | not after (u64 LE) |      (wall-clock seconds)
    | name length (u8, <= 32) | name (UTF-8, no control characters) |
    | tag count (u8, <= 8) | per tag: | length (u8, 1-32) | tag (printable ASCII, no space) | |
    | signature (64): Ed25519 by the issuer over "omcert01" || every byte before it |

Tags take at most 96 bytes with their length bytes, are unique and keep their order. ``not after`` is later
than ``not before`` by at most MAX_LIFETIME (400 days), so a revocation can be forgotten once every certificate
it stops has expired. The context string keeps a certificate from verifying as any other thing a node key
signs (records, tokens, revocations); the network id inside keeps it from being replayed into another network.

Credential (what a node presents in its handshake and record), at most 595 bytes::

    | count (u8): 1 or 2 | per certificate: | length (u16 LE) | certificate | |

The node's own certificate first; second, when an admin issued the first, that admin's certificate (issued by
the owner). The encoding is canonical: a certificate decodes only from the bytes it encodes to. Decoding checks
layout and bounds only; whose signature it needs and when it is valid is ``core/member/check.py``'s question.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Sequence

from ..errors import DropReason, UsageError, WireError
from ..ids import NETWORK_ID_LEN, NetworkId, NodeId
from ..keys import SIGNATURE_LEN, Identity
from .frames import label_bytes
from .signed import sign_as, verifies, wire_form

CERT_VERSION = 1
CONTEXT = b"omcert01"
MAX_NAME = 32
MAX_TAGS = 8
MAX_TAG = 32
MAX_TAG_BYTES = 96  # all tags with their length bytes
MAX_LIFETIME = 400 * 86400
_HEAD = struct.Struct(f"<BBB{NETWORK_ID_LEN}s32s32sQQQ")
MIN_CERT = _HEAD.size + 2 + SIGNATURE_LEN  # 167
MAX_CERT = MIN_CERT + MAX_NAME + MAX_TAG_BYTES  # 295
MAX_CHAIN = 2
MAX_CREDENTIAL = 1 + MAX_CHAIN * (2 + MAX_CERT)  # 595


class Role(enum.IntEnum):
    MEMBER = 1
    ADMIN = 2
    OWNER = 3


@dataclass(frozen=True, slots=True)
class Certificate:
    role: Role
    network: NetworkId
    subject: NodeId
    issuer: NodeId
    serial: int
    not_before: int
    not_after: int
    name: str = ""
    tags: tuple[str, ...] = ()
    signature: bytes = b""

    def body(self) -> bytes:
        """The signed bytes (everything but the signature). Raises ValueError for fields the layout cannot hold."""
        problem = _field_problem(self)
        if problem:
            raise ValueError(problem)
        return _HEAD.pack(CERT_VERSION, self.role, 0, self.network.raw, self.subject.raw, self.issuer.raw,
                          self.serial, self.not_before, self.not_after) + encode_name_tags(self.name, self.tags)

    def encode(self) -> bytes:
        return wire_form(self, "certificate", "sign_certificate")

    def signature_ok(self) -> bool:
        """Whether the signature verifies under the issuer's key (Ed25519, the ``cryptography`` library)."""
        return verifies(self, CONTEXT)


def _tag_problem(tag: object) -> str | None:
    if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG or not all(0x21 <= ord(c) <= 0x7E for c in tag):
        return f"tag {tag!r} is not 1-{MAX_TAG} printable ASCII characters without spaces"
    return None


def _field_problem(c: Certificate) -> str | None:
    """What about ``c``'s fields the layout refuses, or None."""
    if not isinstance(c.role, Role):
        return f"role {c.role!r} is not a Role"
    for what, v in (("serial", c.serial), ("not before", c.not_before), ("not after", c.not_after)):
        if not isinstance(v, int) or not 0 <= v < 1 << 64:
            return f"{what} {v!r} is not an unsigned 64-bit integer"
    if not c.not_before < c.not_after <= c.not_before + MAX_LIFETIME:
        return f"validity {c.not_before}..{c.not_after} is empty or longer than {MAX_LIFETIME // 86400} days"
    return name_tags_problem(c.name, c.tags, "certificate name")


def name_tags_problem(name: str, tags: tuple[str, ...], what: str) -> str | None:
    """What the layout refuses about a name and tags (certificates, invite tokens), or None."""
    try:
        label_bytes(name, what, MAX_NAME)
    except (ValueError, AttributeError) as e:
        return str(e)
    if len(tags) > MAX_TAGS:
        return f"{len(tags)} tags; at most {MAX_TAGS}"
    for t in tags:
        if (problem := _tag_problem(t)) is not None:
            return problem
    if len(set(tags)) != len(tags):
        return "a tag is given twice"
    if sum(1 + len(t) for t in tags) > MAX_TAG_BYTES:
        return f"tags take more than {MAX_TAG_BYTES} bytes"
    return None


def encode_name_tags(name: str, tags: tuple[str, ...]) -> bytes:
    """``| name length (u8) | name | tag count (u8) | per tag: length (u8) | tag |`` (fields already checked)."""
    raw = name.encode("utf-8")
    out = bytearray((len(raw),)) + raw + bytes((len(tags),))
    for t in tags:
        out += bytes((len(t),)) + t.encode("ascii")
    return bytes(out)


def decode_name_tags(data: bytes, pos: int, what: str) -> tuple[str, tuple[str, ...], int]:
    """The name and tags at ``pos`` and the position after them. Raises ValueError when ``data`` ends inside them
    or the name is not UTF-8; the caller checks the values with ``name_tags_problem``."""
    nlen = data[pos] if pos < len(data) else 0
    name_raw = data[pos + 1 : pos + 1 + nlen]
    pos += 1 + nlen
    if pos >= len(data):
        raise ValueError(f"{what} ends inside its name")
    tags: list[str] = []
    count = data[pos]
    pos += 1
    if count > MAX_TAGS:
        raise ValueError(f"{count} tags")
    for _ in range(count):
        if pos >= len(data):
            raise ValueError(f"{what} ends inside its tags")
        tlen = data[pos]
        tags.append(data[pos + 1 : pos + 1 + tlen].decode("latin-1"))
        if len(tags[-1]) != tlen:
            raise ValueError(f"{what} ends inside a tag")
        pos += 1 + tlen
    try:
        name = name_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} name is not UTF-8") from None
    return name, tuple(tags), pos


def sign_certificate(issuer: Identity, cert: Certificate) -> Certificate:
    """``cert`` signed by ``issuer``, whose node id it must name as issuer. Raises UsageError for fields the
    layout cannot hold (the message says which)."""
    return sign_as(issuer, cert, CONTEXT, "certificate")


def _malformed(detail: str) -> WireError:
    return WireError(DropReason.CERT_MALFORMED, detail)


def decode_certificate(data: bytes) -> Certificate:
    """Parse one certificate. Raises WireError (CERT_MALFORMED) for anything outside the layout or its bounds.
    The signature is not verified here."""
    if not MIN_CERT <= len(data) <= MAX_CERT:
        raise _malformed(f"certificate of {len(data)} bytes (between {MIN_CERT} and {MAX_CERT})")
    data = bytes(data)
    ver, role, flags, net, subject, issuer, serial, nb, na = _HEAD.unpack_from(data)
    if ver != CERT_VERSION:
        raise _malformed(f"certificate version {ver} (this build reads {CERT_VERSION})")
    if role not in Role._value2member_map_ or flags:
        raise _malformed(f"certificate role {role} or flags {flags:#x}")
    try:
        name, tags, pos = decode_name_tags(data, _HEAD.size, "certificate")
    except ValueError as e:
        raise _malformed(str(e)) from None
    if pos + SIGNATURE_LEN != len(data):
        raise _malformed("certificate length does not match its fields")
    cert = Certificate(Role(role), NetworkId(net), NodeId(subject), NodeId(issuer), serial, nb, na, name, tags, data[pos:])
    problem = _field_problem(cert)
    if problem:
        raise _malformed(problem)
    return cert


def encode_credential(certs: Sequence[Certificate]) -> bytes:
    """The credential for ``certs`` (a node's own certificate first, then its issuer's when an admin issued it)."""
    if not 1 <= len(certs) <= MAX_CHAIN:
        raise UsageError(f"a credential holds 1 or {MAX_CHAIN} certificates, not {len(certs)}")
    out = bytearray((len(certs),))
    for c in certs:
        raw = c.encode()
        out += len(raw).to_bytes(2, "little") + raw
    return bytes(out)


def decode_credential(data: bytes) -> tuple[Certificate, ...]:
    """Parse a credential. Raises WireError (CERT_MALFORMED) for a bad count, length or trailing bytes."""
    if not 1 <= len(data) <= MAX_CREDENTIAL:
        raise _malformed(f"credential of {len(data)} bytes (at most {MAX_CREDENTIAL})")
    count, pos, out = data[0], 1, []
    if not 1 <= count <= MAX_CHAIN:
        raise _malformed(f"credential of {count} certificates")
    for _ in range(count):
        n = int.from_bytes(data[pos : pos + 2], "little")
        if pos + 2 + n > len(data):
            raise _malformed("credential ends inside a certificate")
        out.append(decode_certificate(data[pos + 2 : pos + 2 + n]))
        pos += 2 + n
    if pos != len(data):
        raise _malformed("trailing bytes after the credential")
    return tuple(out)
