"""The credential check: may this node be in this owned network now? (docs/membership.md, 2.3). Pure.

``check_credential`` takes the credential bytes a node presented (in its handshake or its record), the node
that authenticated (the Noise static key's owner, the record's signer), the network's id and owner key, the
network's revocations and the wall clock as an argument (the core passes ``now + wall_offset``; tests and the
simulator move it). It answers ``Accepted`` or ``Refused`` with the first failed check's ``DropReason``, in
this order:

 1. CERT_MISSING          no credential
 2. CERT_MALFORMED        outside the layout or its bounds (lifetime over 400 days included)
 3. CERT_WRONG_NETWORK    a certificate of another network
 4. CERT_WRONG_SUBJECT    the first certificate is not the presenting node's
 5. CERT_ISSUER_NOT_ADMIN owner: not self-signed by the owner; admin: not issued by the owner; member: issued
                          neither by the owner nor by the admin whose certificate (issued by the owner) follows
 6. CERT_BAD_SIGNATURE    a signature does not verify under its issuer
 7. CERT_NOT_YET_VALID    a certificate's ``not before`` is ahead of the clock (by more than ``skew``)
 8. CERT_EXPIRED          the node's certificate is past its ``not after`` (by ``skew`` or more)
 9. CERT_ISSUER_EXPIRED   the admin certificate is
10. CERT_ISSUER_REVOKED   the admin is revoked, with ``void_issued`` or since before this certificate was issued,
                          or the owner revoked the admin certificate's serial
11. CERT_REVOKED          the node or this certificate's serial is revoked

Signatures are checked once per distinct credential (a bounded memo, as verified records are); the clock and
the revocations are asked at every check, so a memo never outlives an expiry or a removal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DropReason, WireError
from ..ids import NetworkId, NodeId
from ..wire.certs import Certificate, Role, decode_credential
from .revocations import RevocationList

_SIGNED: dict[bytes, bool] = {}  # credential bytes -> every signature verifies (pure: same bytes, same answer)
_SIGNED_MAX = 8192


@dataclass(frozen=True, slots=True)
class Accepted:
    cert: Certificate  # the node's own certificate
    issuer_cert: Certificate | None  # the admin certificate that vouches for it, when an admin issued it

    @property
    def role(self) -> Role:
        return self.cert.role


@dataclass(frozen=True, slots=True)
class Refused:
    reason: DropReason
    detail: str


Verdict = Accepted | Refused


def check_credential(data: bytes | None, *, network: NetworkId, owner: NodeId, subject: NodeId, wall: float,
                     revocations: RevocationList, skew: float = 0.0) -> Verdict:
    if not data:
        return Refused(DropReason.CERT_MISSING, "no certificate: this network admits only members with one")
    try:
        chain = decode_credential(data)
    except WireError as e:
        return Refused(DropReason.CERT_MALFORMED, e.detail)
    refusal = _structure(chain, network, owner, subject)
    if refusal is not None:
        return refusal
    key = bytes(data)
    signed = _SIGNED.get(key)
    if signed is None:
        signed = all(c.signature_ok() for c in chain)
        if len(_SIGNED) >= _SIGNED_MAX:
            _SIGNED.clear()
        _SIGNED[key] = signed
    if not signed:
        return Refused(DropReason.CERT_BAD_SIGNATURE, "a signature does not verify under the key of its issuer")
    return _in_force(chain, wall, revocations, skew)


def _structure(chain: tuple[Certificate, ...], network: NetworkId, owner: NodeId, subject: NodeId) -> Refused | None:
    """Checks 3 to 5: what the certificates say, before any signature is verified."""
    for c in chain:
        if c.network != network:
            return Refused(DropReason.CERT_WRONG_NETWORK, f"certificate of network {c.network}, not {network}")
    leaf = chain[0]
    if leaf.subject != subject:
        return Refused(DropReason.CERT_WRONG_SUBJECT, f"certificate of {leaf.subject.short()} presented by {subject.short()}")
    admin = chain[1] if len(chain) > 1 else None
    if leaf.role is Role.OWNER:
        ok = admin is None and leaf.subject == leaf.issuer == owner
    elif leaf.role is Role.ADMIN:
        ok = admin is None and leaf.issuer == owner
    elif admin is None:
        ok = leaf.issuer == owner
    else:
        ok = admin.role is Role.ADMIN and admin.issuer == owner and admin.subject == leaf.issuer != owner
    if not ok:
        return Refused(DropReason.CERT_ISSUER_NOT_ADMIN,
                       f"{leaf.role.name.lower()} certificate signed by {leaf.issuer.short()}, who is not "
                       f"{'the owner' if leaf.role is not Role.MEMBER else 'the owner or an admin with a certificate from the owner'}")
    return None


def _in_force(chain: tuple[Certificate, ...], wall: float, revocations: RevocationList, skew: float) -> Verdict:
    """Checks 7 to 11: the clock and the revocations, asked every time."""
    leaf = chain[0]
    admin = chain[1] if len(chain) > 1 else None
    for c in chain:
        if wall < c.not_before - skew:
            return Refused(DropReason.CERT_NOT_YET_VALID, f"{_whose(c, leaf)} is valid from {c.not_before}, the clock says {int(wall)}")
    if wall >= leaf.not_after + skew:
        return Refused(DropReason.CERT_EXPIRED, f"certificate expired at {leaf.not_after}, the clock says {int(wall)}")
    if admin is not None:
        if wall >= admin.not_after + skew:
            return Refused(DropReason.CERT_ISSUER_EXPIRED, f"the issuing admin's certificate expired at {admin.not_after}")
        for r in revocations.node(admin.subject, wall):
            if r.void_issued or leaf.not_before >= r.issued:
                return Refused(DropReason.CERT_ISSUER_REVOKED, f"admin {admin.subject.short()} was revoked at {r.issued}")
        if revocations.serial_revoked(admin.serial, wall, owner_only=True):
            return Refused(DropReason.CERT_ISSUER_REVOKED, f"the owner revoked admin certificate {admin.serial:016x}")
    if revocations.node(leaf.subject, wall):
        return Refused(DropReason.CERT_REVOKED, f"node {leaf.subject.short()} was removed from the network")
    if revocations.serial_revoked(leaf.serial, wall, owner_only=leaf.role is not Role.MEMBER):  # admins revoke members only
        return Refused(DropReason.CERT_REVOKED, f"certificate {leaf.serial:016x} was revoked")
    return Accepted(leaf, admin)


def _whose(c: Certificate, leaf: Certificate) -> str:
    return "the certificate" if c is leaf else "the issuing admin's certificate"
