"""Signed peer records: what a node says about itself, spread by gossip, trusted only with its signature.

Layout (version 1)::

    | version (u8) = 1 | node id (32) | sequence (u64 LE) | expires (u32 LE, wall-clock seconds) |
    | flags (u8): bit 0 relay-capable, bit 1 left (a departure) | mapping (u8) | filtering (u8) | port delta (i16 LE) |
    | name length (u8) | name (UTF-8, <= 32) |
    | endpoint count (u8, <= 8) | endpoints: family (u8: 4 or 6) | address (4 or 16) | port (u16 BE) | ...
    | relay count (u8, <= 2) | relay node ids (32 each): relays this node keeps sessions with |
    | signature (64) |

The Ed25519 signature (by the node id's key) covers the bytes above it *prefixed by the 10-byte network id*,
so a record cannot be replayed into another network. A record is accepted only if the signature verifies
under the node id it names: no member can speak for another member, so nobody can redirect another
node's traffic. A higher sequence number replaces a lower one; an expired record is dropped.

A *departure* (flag ``left``) is the record a node signs when it leaves the network: no endpoints, a higher
sequence number than any record it signed before. Members drop the node at once, and while they hold the
departure, older (stale) records of that node are refused.

``mapping`` and ``filtering`` carry the node's NAT verdict (``core.nat.classify``: 0 unknown, 1 none
(public), 2 endpoint-independent, 3 address-dependent, 4 address-and-port-dependent).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import DropReason, WireError
from ..ids import NetworkId, NodeId
from ..keys import Identity, verify_signature
from .endpoints import decode_endpoints, encode_endpoints

RECORD_VERSION = 1
MAX_NAME = 32
MAX_ENDPOINTS = 8
MAX_RELAYS = 2
SIG_LEN = 64
FLAG_RELAY = 0x01
FLAG_LEFT = 0x02
_HEAD = struct.Struct("<B32sQIBBBhB")
MIN_RECORD = _HEAD.size + 2 + SIG_LEN
MAX_RECORD = _HEAD.size + MAX_NAME + 1 + MAX_ENDPOINTS * 19 + 1 + MAX_RELAYS * 32 + SIG_LEN
_VERIFIED: dict[bytes, "PeerRecord"] = {}  # memo of verified records (pure: same bytes, same answer)
_VERIFIED_MAX = 65536

Address = tuple[str, int]


@dataclass(frozen=True)
class PeerRecord:
    node: NodeId
    seq: int
    expires: int
    endpoints: tuple[Address, ...] = ()
    name: str = ""
    relay: bool = False
    mapping: int = 0
    filtering: int = 0
    port_delta: int = 0
    relays: tuple[bytes, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    left: bool = False  # a departure: the node left the network

    def expired(self, wall: float) -> bool:
        return wall >= self.expires


def _body(rec: PeerRecord) -> bytes:
    name = rec.name.encode("utf-8")[:MAX_NAME]
    flags = (FLAG_RELAY if rec.relay else 0) | (FLAG_LEFT if rec.left else 0)
    delta = max(-32768, min(32767, rec.port_delta))
    out = bytearray(_HEAD.pack(RECORD_VERSION, rec.node.raw, rec.seq, rec.expires, flags, rec.mapping, rec.filtering, delta, len(name)))
    out += name
    out += encode_endpoints(rec.endpoints[:MAX_ENDPOINTS])
    relays = rec.relays[:MAX_RELAYS]
    out.append(len(relays))
    for r in relays:
        out += r
    return bytes(out)


def sign_record(identity: Identity, network: NetworkId, rec: PeerRecord) -> PeerRecord:
    """The record with its wire form (body + signature) filled in; ``rec.node`` must be the identity's."""
    if rec.node != identity.node_id:
        raise ValueError("a node signs only its own record")
    body = _body(rec)
    raw = body + identity.sign(network.raw + body)
    return PeerRecord(rec.node, rec.seq, rec.expires, rec.endpoints[:MAX_ENDPOINTS], rec.name, rec.relay, rec.mapping, rec.filtering,
                      rec.port_delta, rec.relays[:MAX_RELAYS], raw, rec.left)


def decode_record(data: bytes, network: NetworkId) -> PeerRecord:
    """Parse and verify a record. Raises WireError (RECORD_INVALID) for anything malformed or unsigned."""
    if len(data) < MIN_RECORD or len(data) > MAX_RECORD:
        raise WireError(DropReason.RECORD_INVALID, f"record of {len(data)} bytes")
    memo_key = network.raw + data
    hit = _VERIFIED.get(memo_key)
    if hit is not None:
        return hit
    try:
        ver, node, seq, expires, flags, mapping, filtering, delta, nlen = _HEAD.unpack_from(data)
        if ver != RECORD_VERSION or nlen > MAX_NAME or flags & ~(FLAG_RELAY | FLAG_LEFT) or mapping > 4 or filtering > 4:
            raise ValueError("header")
        pos = _HEAD.size
        name = data[pos : pos + nlen].decode("utf-8")
        pos += nlen
        eps, pos = decode_endpoints(data, pos, MAX_ENDPOINTS)
        rcount = data[pos]
        pos += 1
        if rcount > MAX_RELAYS:
            raise ValueError("relays")
        relays = tuple(data[pos + 32 * i : pos + 32 * (i + 1)] for i in range(rcount))
        pos += 32 * rcount
        if pos + SIG_LEN != len(data):
            raise ValueError("length")
    except (ValueError, KeyError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise WireError(DropReason.RECORD_INVALID, f"malformed record: {e}") from None
    body, sig = data[:pos], data[pos:]
    if not verify_signature(node, network.raw + body, sig):
        raise WireError(DropReason.RECORD_INVALID, "signature does not verify under the record's node id")
    rec = PeerRecord(NodeId(node), seq, expires, tuple(eps), name, bool(flags & FLAG_RELAY), mapping, filtering, delta, relays,
                     bytes(data), bool(flags & FLAG_LEFT))
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[memo_key] = rec
    return rec
