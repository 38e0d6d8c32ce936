"""An owner claim (docs/membership.md, section 7): the creator of an open network, made by an earlier version, says
it owns it from now on. Members that adopt it get a member certificate from it during the transition and treat the
network as owned from ``enforce at`` (wall-clock seconds) on.

Layout (version 1), 131 bytes::

    | version (u8) = 1 | network id (10) | owner node id (32) | issued (u64 LE) | enforce at (u64 LE) |
    | signature (64): Ed25519 by the owner over "omownr01" || every byte before it |

It travels only inside sessions of the network (the ``net.owner`` control message, reliable, so encrypted under the
session's keys): ``| claim (131) | credential (the owner's certificate for the receiver; optional) |``. A member that
adopts one passes the claim (without a credential) on to its other connected members; both sides of a new session of
the network send the claim they adopted. The owner names itself: only the node whose key signs may claim.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import DropReason, WireError
from ..ids import NETWORK_ID_LEN, NetworkId, NodeId
from ..keys import SIGNATURE_LEN, Identity
from .certs import MAX_CREDENTIAL
from .signed import decode_signed, sign_as, verifies, wire_form

OWNER = "net.owner"  # the control message that carries one
CLAIM_VERSION = 1
CONTEXT = b"omownr01"
MAX_TRANSITION = 90 * 86400  # enforce at most this long after the claim
_BODY = struct.Struct(f"<B{NETWORK_ID_LEN}s32sQQ")
CLAIM_LEN = _BODY.size + SIGNATURE_LEN


@dataclass(frozen=True, slots=True)
class OwnerClaim:
    network: NetworkId
    issuer: NodeId  # the owner it names
    issued: int
    enforce_at: int
    signature: bytes = b""

    def body(self) -> bytes:
        if not 0 <= self.issued < 1 << 63:
            raise ValueError(f"issued {self.issued!r} is not 0 to 2^63 - 1")
        if not self.issued <= self.enforce_at <= self.issued + MAX_TRANSITION:
            raise ValueError(f"enforce at {self.enforce_at!r} is not from issued ({self.issued}) to {MAX_TRANSITION} s after it")
        return _BODY.pack(CLAIM_VERSION, self.network.raw, self.issuer.raw, self.issued, self.enforce_at)

    def encode(self) -> bytes:
        return wire_form(self, "owner claim", "sign_claim")

    def signature_ok(self) -> bool:
        return verifies(self, CONTEXT)


def sign_claim(owner: Identity, claim: OwnerClaim) -> OwnerClaim:
    return sign_as(owner, claim, CONTEXT, "owner claim")


def decode_claim(data: bytes) -> OwnerClaim:
    """Parse a claim. Raises WireError (OWNER_CLAIM_INVALID) for anything outside the layout; the signature is not
    verified here (``OwnerClaim.signature_ok``)."""
    return decode_signed(data, _BODY, CLAIM_VERSION, lambda f, sig: OwnerClaim(NetworkId(f[0]), NodeId(f[1]), f[2], f[3], sig),
                         DropReason.OWNER_CLAIM_INVALID, "owner claim")


def encode_message(claim: OwnerClaim, credential: bytes | None = None) -> bytes:
    """``net.owner``'s body: the claim, and the owner's certificate for the receiver when the owner sends it."""
    return claim.encode() + (credential or b"")


def decode_message(body: bytes) -> tuple[OwnerClaim, bytes | None]:
    """(the claim, the credential after it or None). WireError (OWNER_CLAIM_INVALID) for a wrong length or layout."""
    if not CLAIM_LEN <= len(body) <= CLAIM_LEN + MAX_CREDENTIAL:
        raise WireError(DropReason.OWNER_CLAIM_INVALID, f"net.owner of {len(body)} bytes")
    return decode_claim(body[:CLAIM_LEN]), bytes(body[CLAIM_LEN:]) or None
