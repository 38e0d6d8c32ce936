"""A network key rotation (docs/membership.md, section 6): the owner's signed word that an owned network's key is
now ``key``, from epoch ``epoch`` on.

Layout (version 1), 155 bytes::

    | version (u8) = 1 | network id (10) | epoch (u32 LE) | new key (32) | grace (u32 LE, seconds) |
    | issued (u64 LE, wall-clock seconds) | issuer node id (32): the owner |
    | signature (64): Ed25519 by the owner over "omrkey01" || every byte before it |

It travels only inside sessions of the network (the ``net.rekey`` control message, reliable, so encrypted under
the session's keys), and sits in each member's networks.json (0600) as the network key does. Each member that
takes a newer one passes it on to its other connected members, and both sides of a new session of the network
send the one they hold, so a member that was away learns the key at its first session (under the previous key,
which stays accepted for ``grace`` seconds). Only the owner signs rotations; the epoch only grows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import DropReason
from ..ids import NETWORK_ID_LEN, NetworkId, NodeId
from ..keys import SIGNATURE_LEN, Identity
from .signed import decode_signed, sign_as, verifies, wire_form

REKEY = "net.rekey"  # the control message that carries one
REKEY_VERSION = 1
CONTEXT = b"omrkey01"
KEY_LEN = 32
MAX_GRACE = 30 * 86400  # a previous key is never accepted for longer than a certificate may live
_BODY = struct.Struct(f"<B{NETWORK_ID_LEN}sI{KEY_LEN}sIQ32s")
REKEY_LEN = _BODY.size + SIGNATURE_LEN


@dataclass(frozen=True, slots=True)
class Rekey:
    network: NetworkId
    epoch: int
    key: bytes
    grace: int
    issued: int
    issuer: NodeId
    signature: bytes = b""

    def body(self) -> bytes:
        if len(self.key) != KEY_LEN:
            raise ValueError(f"a network key is {KEY_LEN} bytes, not {len(self.key)}")
        if not 1 <= self.epoch < 1 << 32:
            raise ValueError(f"epoch {self.epoch!r} is not 1 to 2^32 - 1 (epoch 0 is the network's first key)")
        if not 0 <= self.grace <= MAX_GRACE:
            raise ValueError(f"grace {self.grace!r} s is not 0 to {MAX_GRACE} s")
        if not 0 <= self.issued < 1 << 64:
            raise ValueError(f"issued {self.issued!r} is not an unsigned 64-bit integer")
        return _BODY.pack(REKEY_VERSION, self.network.raw, self.epoch, self.key, self.grace, self.issued, self.issuer.raw)

    def encode(self) -> bytes:
        return wire_form(self, "key rotation", "sign_rekey")

    def signature_ok(self) -> bool:
        return verifies(self, CONTEXT)


def sign_rekey(owner: Identity, rekey: Rekey) -> Rekey:
    return sign_as(owner, rekey, CONTEXT, "key rotation")


def decode_rekey(data: bytes) -> Rekey:
    """Parse a rotation. Raises WireError (REKEY_INVALID) for anything outside the layout; the signature is not
    verified here (``Rekey.signature_ok``)."""
    return decode_signed(data, _BODY, REKEY_VERSION, lambda f, sig: Rekey(NetworkId(f[0]), f[1], f[2], f[3], f[4], NodeId(f[5]), sig),
                         DropReason.REKEY_INVALID, "key rotation")
