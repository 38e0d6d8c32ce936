"""Renewal of a member's certificate (docs/membership.md, 2.5): three reliable control messages in an owned
network's session, so encrypted and bound to the peer the session authenticated.

``member.renew``, member to a connected admin (an admin to the owner), once two thirds of its certificate's
lifetime have passed, then again after each retry until one answers::

    | credential (core/wire/certs.py): the asker's current one, at most 595 bytes |

``member.cert``, the admin's answer: a certificate with the same role, name, tags and lifetime, a new serial,
``not before`` = the admin's clock, signed by the admin (its admin certificate after it)::

    | credential (core/wire/certs.py), at most 595 bytes |

``member.refused``, the admin's answer when the presented credential does not pass its check (expired, revoked)
or it may not renew it (not an admin; an admin certificate, which only the owner renews)::

    | status (u8): as enrolment's (core/wire/enrol.py): 1 expired, 3 revoked, 6 not an admin, 7 invalid |

A credential outside its bounds is refused as ``cert_malformed``; what it proves is ``core/member/check.py``'s
question, asked by the receiver.
"""

from __future__ import annotations

from ..errors import DropReason, WireError
from .certs import MAX_CREDENTIAL, decode_credential
from .enrol import EnrolStatus

NAMES = ("member.renew", "member.cert", "member.refused")
REFUSALS = (EnrolStatus.EXPIRED, EnrolStatus.REVOKED, EnrolStatus.NOT_ADMIN, EnrolStatus.INVALID)


def decode_credential_body(body: bytes) -> bytes:
    """The credential of a ``member.renew`` or ``member.cert`` body (its layout checked). Raises WireError."""
    if not 1 <= len(body) <= MAX_CREDENTIAL:
        raise WireError(DropReason.CERT_MALFORMED, f"renewal body of {len(body)} bytes")
    decode_credential(body)
    return bytes(body)


def encode_refusal(status: EnrolStatus) -> bytes:
    if status not in REFUSALS:
        raise ValueError(f"{status!r} is not a renewal refusal")
    return bytes((status,))


def decode_refusal(body: bytes) -> EnrolStatus:
    """The status of a ``member.refused`` body. Raises WireError (CERT_MALFORMED) for another length or status."""
    if len(body) != 1 or body[0] not in {int(s) for s in REFUSALS}:
        raise WireError(DropReason.CERT_MALFORMED, "renewal refusal")
    return EnrolStatus(body[0])
