"""Enrolment messages: a joiner without a certificate redeems an invite token (docs/membership.md, 3.3).

They ride in the handshake (``handshake.py``, header flag ``ENROL``), after the usual Noise payloads and inside
Noise encryption. The initiation's payload continues with the request, and zeros up to the fixed length that
makes the whole datagram ``ENROL_INIT_LEN`` (1,024) bytes, so the answer is never larger than the question::

    | kind (u8) = 1 token | token length (u16 LE) | token (core/wire/tokens.py) |
    | requested name length (u8, <= 32) | name (UTF-8) | zeros to the fixed length |

The response's payload continues with the answer::

    | status (u8) | credential (core/wire/certs.py), when the status is 0 (issued) |

Status: 0 issued, 1 expired, 2 used up, 3 revoked, 4 another network, 5 not signed by an admin, 6 this node is no
longer an admin, 7 not a valid token. No session follows an enrolment on either side: the joiner stores the
credential and starts a normal handshake with it.
"""

from __future__ import annotations

import enum

from ..errors import DropReason, WireError
from .certs import MAX_CREDENTIAL, MAX_NAME
from .frames import label_bytes
from .tokens import MAX_TOKEN

KIND_TOKEN = 1
MAX_REQUEST = 1 + 2 + MAX_TOKEN + 1 + MAX_NAME
MAX_ANSWER = 1 + MAX_CREDENTIAL


class EnrolStatus(enum.IntEnum):
    ISSUED = 0
    EXPIRED = 1
    USED = 2
    REVOKED = 3
    WRONG_NETWORK = 4
    NOT_ADMIN_SIGNED = 5
    NOT_ADMIN = 6
    INVALID = 7

    @property
    def word(self) -> str:
        return _WORDS[self]

    @property
    def fix(self) -> str:
        return _FIXES[self]


_WORDS = {EnrolStatus.ISSUED: "issued", EnrolStatus.EXPIRED: "expired", EnrolStatus.USED: "used",
          EnrolStatus.REVOKED: "revoked", EnrolStatus.WRONG_NETWORK: "another network",
          EnrolStatus.NOT_ADMIN_SIGNED: "not signed by an admin", EnrolStatus.NOT_ADMIN: "not an admin",
          EnrolStatus.INVALID: "invalid"}
_FIXES = {EnrolStatus.ISSUED: "",
          EnrolStatus.EXPIRED: "this invite has expired: ask an admin for a new one",
          EnrolStatus.USED: "this invite was already used: ask an admin for a new one",
          EnrolStatus.REVOKED: "this invite or this node was revoked: ask an admin of the network",
          EnrolStatus.WRONG_NETWORK: "this invite is for another network: check that you pasted the right one",
          EnrolStatus.NOT_ADMIN_SIGNED: "this invite was not made by an admin of the network: ask an admin for one",
          EnrolStatus.NOT_ADMIN: "the inviter is no longer an admin: ask another admin for a new invite",
          EnrolStatus.INVALID: "this invite's token is not valid: ask an admin for a new invite"}


def _bad(detail: str) -> WireError:
    return WireError(DropReason.CERT_MALFORMED, detail)


def encode_request(token: bytes, name: str, size: int) -> bytes:
    """The request section, padded with zeros to ``size`` bytes (ValueError when it does not fit)."""
    raw_name = label_bytes(name, "requested name", MAX_NAME)
    out = bytes((KIND_TOKEN,)) + len(token).to_bytes(2, "little") + token + bytes((len(raw_name),)) + raw_name
    if len(token) > MAX_TOKEN or len(out) > size:
        raise ValueError("an enrolment request does not fit its datagram")
    return out + bytes(size - len(out))


def decode_request(data: bytes) -> tuple[bytes, str]:
    """(token bytes, requested name) of a request section. Raises WireError (CERT_MALFORMED) for a wrong kind,
    lengths that overrun, a name that is not valid, or padding that is not zeros. The token is not parsed here."""
    if len(data) < 4 or data[0] != KIND_TOKEN:
        raise _bad("enrolment request kind")
    tlen = int.from_bytes(data[1:3], "little")
    if tlen > MAX_TOKEN or 3 + tlen >= len(data):
        raise _bad("enrolment token length")
    token = bytes(data[3 : 3 + tlen])
    pos = 3 + tlen
    nlen = data[pos]
    raw_name = bytes(data[pos + 1 : pos + 1 + nlen])
    pos += 1 + nlen
    if len(raw_name) != nlen or any(data[pos:]):
        raise _bad("enrolment name length or padding")
    try:
        name = raw_name.decode("utf-8")
        label_bytes(name, "requested name", MAX_NAME)
    except ValueError:
        raise _bad("enrolment requested name") from None
    return token, name


def encode_answer(status: EnrolStatus, credential: bytes = b"") -> bytes:
    if (status is EnrolStatus.ISSUED) != bool(credential) or len(credential) > MAX_CREDENTIAL:
        raise ValueError("a credential goes with status issued, and only with it")
    return bytes((status,)) + credential


def decode_answer(data: bytes) -> tuple[EnrolStatus, bytes]:
    """(status, credential). Raises WireError (CERT_MALFORMED) for an unknown status or a credential that does not
    go with it; the credential itself is checked by the caller (core/member/check.py)."""
    if not 1 <= len(data) <= MAX_ANSWER or data[0] not in EnrolStatus._value2member_map_:
        raise _bad("enrolment answer status")
    status = EnrolStatus(data[0])
    if (status is EnrolStatus.ISSUED) != (len(data) > 1):
        raise _bad("enrolment answer credential")
    return status, bytes(data[1:])
