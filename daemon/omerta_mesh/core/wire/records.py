"""Signed peer records: what a node says about itself, spread by gossip, trusted only with its signature.

Layout (version 1)::

    | version (u8) = 1 | node id (32) | sequence (u64 LE) | expires (u32 LE, wall-clock seconds) |
    | flags (u8): bit 0 relay-capable, bit 1 left (a departure) | mapping (u8) | filtering (u8) | port delta (i16 LE) |
    | name length (u8) | name (UTF-8, <= 32) |
    | endpoint count (u8, <= 8) | endpoints: family (u8: 4 or 6) | address (4 or 16) | port (u16 BE) | ...
    | relay count (u8, <= 2) | relay node ids (32 each): relays this node keeps sessions with |
    [ only with flag bit 2 (mesh addresses): | address flags (u8): bit 0 IPv4 present, bit 1 IPv6 present,
      bit 2 IPv4 static, bit 3 IPv6 static | IPv4 (4, zero when absent) | IPv6 (16, zero when absent) | ]
    [ for each of flag bits 3-7 that is set, in bit order: | length (u16 LE) | section (length bytes) | ]
    | signature (64) |

    section of flag bit 3 (SSH host keys): | count (u8) | per key: | length (u16 LE) | key blob (SSH wire form) | |
    section of flag bit 4 (exit offered): | exit flags (u8): bit 0 IPv4 egress, bit 1 IPv6 egress; others 0 | |
    section of flag bit 5 (subnet routes): | count (u8, 1-16) | per prefix: | bit 7 IPv6, bits 0-6 length |
        the prefix's first ceil(length / 8) bytes (host bits zero) | |
    section of flag bit 6 (credential, owned networks): | credential (1-595: core/wire/certs.py) |
    section of flag bit 7 (features): | feature bits (1-8 bytes, little-endian; unknown bits ignored) |

Extending the record: a new optional section takes the next free flag bit (3 to 7) and is written length first,
after the sections above. A node that does not know the bit skips the section (it is signed like the rest, and
gossip passes the record on byte for byte), so newer records stay readable by older members; only a change to
the sections above needs a new record version.

The Ed25519 signature (by the node id's key) covers the bytes above it *prefixed by the 10-byte network id*,
so a record cannot be replayed into another network. A record is accepted only if the signature verifies
under the node id it names: no member can speak for another member, so nobody can redirect another
node's traffic. A higher sequence number replaces a lower one; an expired record is dropped.

A *departure* (flag ``left``) is the record a node signs when it leaves the network: no endpoints, a higher
sequence number than any record it signed before. Members drop the node at once, and while they hold the
departure, older (stale) records of that node are refused.

The optional *address claim* (flag bit 2) is the node's mesh IPs in this network (``vnet/addressing.py``):
what it used last or derives, marked static when its admin configured it. Every member settles the claims
of all records with the same rule, so a claim is a wish, not a lease. Records without the flag (older
nodes, departures) parse as before with no claim.

``mapping`` and ``filtering`` carry the node's NAT verdict (``core.nat.classify``: 0 unknown, 1 none
(public), 2 endpoint-independent, 3 address-dependent, 4 address-and-port-dependent).

The optional *SSH host keys* (flag bit 3, the first extension section) are the node's sshd host public keys,
whole, as SSH wire blobs (what ``ssh_host_*_key.pub`` holds in base64). Signed with the rest, a key is
vouched for by the node's mesh identity, so ``ssh`` can check it strictly with no first-use prompt
(``ssh.known_hosts``). Whole keys rather than fingerprints: a member learns them by gossip with the record,
with no request to the node and nothing to check twice. The section shares MAX_EXTENSIONS (256 bytes) with
later extensions: an Ed25519 key is 51 bytes and an ECDSA P-256 key 104, so both fit; keys are taken
smallest first and one that does not fit is left out (an RSA key, 279+ bytes, never fits: an sshd with only
RSA keys publishes none). Unknown key blobs are opaque here; the daemon reads their type.

The optional *exit offer* (flag bit 4) says the node forwards Internet traffic of members (an exit node,
docs/vnet.md): one byte of families it forwards. Members route their default traffic to it only when it is
signed here; without the section a node is no exit, and packets it sends from foreign sources stay spoofed.

The optional *subnet routes* (flag bit 5) are prefixes the node can reach and forwards to for members (at most
MAX_ROUTES, in the room host keys and the exit offer leave in MAX_EXTENSIONS: ``fit_routes``). A member routes
to one only after its admin accepted it (docs/vnet.md, "Subnet routes"); a default route here is carried but
never accepted. A damaged section (bad count, length, host bits set, trailing bytes) makes the record invalid.

The optional *credential* (flag bit 6) is the node's member credential in an owned network (docs/membership.md,
2.2 and 2.4), signed into the record with the rest. It has its own budget (MAX_CREDENTIAL) beside MAX_EXTENSIONS,
so it never crowds out host keys or routes: a record with it may be MAX_RECORD + 2 + MAX_CREDENTIAL bytes long
(older nodes refuse such records by their length bound, which happens only in owned networks, where they hold no
certificate and are refused anyway). A section that does not parse as a credential (its layout and bounds:
``decode_credential``) makes the record invalid; whether the credential admits the node is the record store's
question (``discovery/store.py``), asked in owned networks only. Records without the bit parse as before.

The optional *features* (flag bit 7, the last one: so it is a bitmap that later features extend, not a section
each) say what the node's data plane accepts beyond what every version does. Bit 0 (``FEATURE_AES``): transport
datagrams sealed with AES-256-GCM (``wire/packet.py``), which a sender uses towards such a node only. Without the
section a node has none of them, as every earlier version. It counts in MAX_EXTENSIONS (3 bytes).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field, replace

from ..errors import DropReason, WireError
from ..ids import NetworkId, NodeId
from ..keys import Identity, verify_signature
from .certs import MAX_CREDENTIAL, decode_credential
from .endpoints import decode_endpoints, encode_endpoints

RECORD_VERSION = 1
MAX_NAME = 32
MAX_ENDPOINTS = 8
MAX_RELAYS = 2
SIG_LEN = 64
FLAG_RELAY = 0x01
FLAG_LEFT = 0x02
FLAG_ADDRS = 0x04
ADDR_V4, ADDR_V6, ADDR_V4_STATIC, ADDR_V6_STATIC = 0x01, 0x02, 0x04, 0x08
_ADDRS = struct.Struct("<B4s16s")
_HEAD = struct.Struct("<B32sQIBBBhB")
MIN_RECORD = _HEAD.size + 2 + SIG_LEN
FLAGS_EXTENSION = 0xF8  # bits 3-7: optional length-prefixed sections (skipped when not known)
FLAG_HOST_KEYS = 0x08  # bit 3: the SSH host keys section
FLAG_EXIT = 0x10  # bit 4: the exit offer section
EXIT_V4, EXIT_V6 = 0x01, 0x02
FLAG_ROUTES = 0x20  # bit 5: the subnet routes section
MAX_ROUTES = 16
FLAG_CREDENTIAL = 0x40  # bit 6: the credential section (owned networks), outside MAX_EXTENSIONS
FLAG_FEATURES = 0x80  # bit 7: the features bitmap
FEATURE_AES = 0x01  # transport datagrams sealed with AES-256-GCM are accepted (wire/packet.py)
MAX_EXTENSIONS = 256  # bytes of such sections a record may carry
MAX_HOST_KEYS = 4
MAX_RECORD = _HEAD.size + MAX_NAME + 1 + MAX_ENDPOINTS * 19 + 1 + MAX_RELAYS * 32 + _ADDRS.size + MAX_EXTENSIONS + SIG_LEN
MAX_RECORD_CREDENTIAL = MAX_RECORD + 2 + MAX_CREDENTIAL  # a record with the credential section
_VERIFIED: dict[bytes, "PeerRecord"] = {}  # memo of verified records (pure: same bytes, same answer)
_VERIFIED_MAX = 65536

Address = tuple[str, int]
Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AddrClaim:
    """The mesh IPs a node claims in one network (packed bytes; None when it claims none of that family)."""

    v4: bytes | None = None  # 4 bytes
    v6: bytes | None = None  # 16 bytes
    v4_static: bool = False
    v6_static: bool = False

    def encode(self) -> bytes:
        flags = ((ADDR_V4 if self.v4 else 0) | (ADDR_V6 if self.v6 else 0)
                 | (ADDR_V4_STATIC if self.v4 and self.v4_static else 0) | (ADDR_V6_STATIC if self.v6 and self.v6_static else 0))
        return _ADDRS.pack(flags, self.v4 or bytes(4), self.v6 or bytes(16))

    @classmethod
    def decode(cls, data: bytes, pos: int) -> "AddrClaim":
        flags, v4, v6 = _ADDRS.unpack_from(data, pos)
        if flags & ~0x0F or (flags & ADDR_V4_STATIC and not flags & ADDR_V4) or (flags & ADDR_V6_STATIC and not flags & ADDR_V6):
            raise ValueError("address flags")
        return cls(v4 if flags & ADDR_V4 else None, v6 if flags & ADDR_V6 else None,
                   bool(flags & ADDR_V4_STATIC), bool(flags & ADDR_V6_STATIC))


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
    addrs: AddrClaim | None = None  # claimed mesh IPs in this network (optional)
    host_keys: tuple[bytes, ...] = ()  # SSH host public key blobs (optional; fit_host_keys chose them)
    exit: int = 0  # the exit offer: EXIT_V4 | EXIT_V6 (0: no exit)
    routes: tuple[Prefix, ...] = ()  # advertised subnet routes (optional; fit_routes chose them)
    credential: bytes | None = None  # the node's credential in an owned network (optional)
    features: int = 0  # FEATURE_* bits (optional section)

    def expired(self, wall: float) -> bool:
        return wall >= self.expires


def fit_host_keys(blobs: "tuple[bytes, ...] | list[bytes]") -> tuple[bytes, ...]:
    """The host keys a record can carry: smallest first, while the section fits in MAX_EXTENSIONS."""
    out: list[bytes] = []
    size = 2 + 1
    for b in sorted(set(blobs), key=lambda b: (len(b), b)):
        if len(out) < MAX_HOST_KEYS and 0 < len(b) and size + 2 + len(b) <= MAX_EXTENSIONS:
            out.append(b)
            size += 2 + len(b)
    return tuple(out)


def _host_keys_section(keys: tuple[bytes, ...]) -> bytes:
    sec = bytes([len(keys)]) + b"".join(len(k).to_bytes(2, "little") + k for k in keys)
    return len(sec).to_bytes(2, "little") + sec


def _prefix_bytes(p: Prefix) -> bytes:
    return bytes([(0x80 if p.version == 6 else 0) | p.prefixlen]) + p.network_address.packed[: (p.prefixlen + 7) // 8]


def fit_routes(routes: "tuple[Prefix, ...] | list[Prefix]", room: int) -> tuple[Prefix, ...]:
    """The prefixes a record can carry: in order, without repeats, at most MAX_ROUTES, while the section (its
    length and count included) fits in ``room`` bytes."""
    out: list[Prefix] = []
    size = 2 + 1
    for p in dict.fromkeys(routes):
        n = len(_prefix_bytes(p))
        if len(out) < MAX_ROUTES and size + n <= room:
            out.append(p)
            size += n
    return tuple(out)


def _routes_section(routes: tuple[Prefix, ...]) -> bytes:
    sec = bytes([len(routes)]) + b"".join(_prefix_bytes(p) for p in routes)
    return len(sec).to_bytes(2, "little") + sec


def _decode_routes(sec: bytes) -> tuple[Prefix, ...]:
    count, pos, out = sec[0], 1, []
    if count == 0 or count > MAX_ROUTES:
        raise ValueError("route count")
    for _ in range(count):
        v6, plen = sec[pos] & 0x80, sec[pos] & 0x7F
        size = 16 if v6 else 4
        n = (plen + 7) // 8
        if plen > size * 8 or pos + 1 + n > len(sec):
            raise ValueError("route prefix")
        raw = bytes(sec[pos + 1 : pos + 1 + n]) + bytes(size - n)
        addr = ipaddress.IPv6Address(raw) if v6 else ipaddress.IPv4Address(raw)
        out.append(ipaddress.ip_network(f"{addr}/{plen}"))  # strict: host bits set is ValueError
        pos += 1 + n
    if pos != len(sec):
        raise ValueError("routes section")
    return tuple(out)


def _credential_section(sec: bytes) -> bytes:
    try:  # (its length: within MAX_CREDENTIAL by decode_credential, within the record by the final length check)
        decode_credential(sec)
    except WireError as e:
        raise ValueError(f"credential: {e.detail}") from None
    return bytes(sec)


def _decode_host_keys(sec: bytes) -> tuple[bytes, ...]:
    count, pos, keys = sec[0], 1, []
    if count == 0 or count > MAX_HOST_KEYS:
        raise ValueError("host key count")
    for _ in range(count):
        n = int.from_bytes(sec[pos : pos + 2], "little")
        if n == 0 or pos + 2 + n > len(sec):
            raise ValueError("host key length")
        keys.append(bytes(sec[pos + 2 : pos + 2 + n]))
        pos += 2 + n
    if pos != len(sec):
        raise ValueError("host keys section")
    return tuple(keys)


def _body(rec: PeerRecord) -> bytes:
    """The signed part of ``rec``, whose fields ``sign_record`` already cut to what the wire carries."""
    name = rec.name.encode("utf-8")
    flags = ((FLAG_RELAY if rec.relay else 0) | (FLAG_LEFT if rec.left else 0) | (FLAG_ADDRS if rec.addrs else 0)
             | (FLAG_HOST_KEYS if rec.host_keys else 0) | (FLAG_EXIT if rec.exit else 0) | (FLAG_ROUTES if rec.routes else 0)
             | (FLAG_CREDENTIAL if rec.credential else 0) | (FLAG_FEATURES if rec.features else 0))
    out = bytearray(_HEAD.pack(RECORD_VERSION, rec.node.raw, rec.seq, rec.expires, flags, rec.mapping, rec.filtering, rec.port_delta,
                               len(name)))
    out += name
    out += encode_endpoints(rec.endpoints)
    out.append(len(rec.relays))
    for r in rec.relays:
        out += r
    if rec.addrs is not None:
        out += rec.addrs.encode()
    if rec.host_keys:
        out += _host_keys_section(rec.host_keys)
    if rec.exit:
        out += b"\x01\x00" + bytes([rec.exit])
    if rec.routes:
        out += _routes_section(rec.routes)
    if rec.credential:
        out += len(rec.credential).to_bytes(2, "little") + rec.credential
    if rec.features:
        out += b"\x01\x00" + bytes([rec.features])
    return bytes(out)


def sign_record(identity: Identity, network: NetworkId, rec: PeerRecord) -> PeerRecord:
    """The record with its wire form (body + signature) filled in; ``rec.node`` must be the identity's."""
    if rec.node != identity.node_id:
        raise ValueError("a node signs only its own record")
    rec = replace(rec, name=rec.name.encode("utf-8", "replace")[:MAX_NAME].decode("utf-8", "ignore"),  # whole characters
                  endpoints=rec.endpoints[:MAX_ENDPOINTS], relays=rec.relays[:MAX_RELAYS],
                  port_delta=max(-32768, min(32767, rec.port_delta)),
                  addrs=rec.addrs if rec.addrs is not None and (rec.addrs.v4 or rec.addrs.v6) else None,
                  host_keys=fit_host_keys(rec.host_keys), exit=rec.exit & (EXIT_V4 | EXIT_V6),
                  credential=rec.credential if rec.credential and len(rec.credential) <= MAX_CREDENTIAL else None,
                  features=rec.features & 0xFF)
    used = (len(_host_keys_section(rec.host_keys)) if rec.host_keys else 0) + (3 if rec.exit else 0) + (3 if rec.features else 0)
    rec = replace(rec, routes=fit_routes(rec.routes, MAX_EXTENSIONS - used))
    body = _body(rec)
    return replace(rec, raw=body + identity.sign(network.raw + body))


def decode_record(data: bytes, network: NetworkId) -> PeerRecord:
    """Parse and verify a record. Raises WireError (RECORD_INVALID) for anything malformed or unsigned."""
    if len(data) < MIN_RECORD or len(data) > MAX_RECORD_CREDENTIAL:
        raise WireError(DropReason.RECORD_INVALID, f"record of {len(data)} bytes")
    memo_key = network.raw + data
    hit = _VERIFIED.get(memo_key)
    if hit is not None:
        return hit
    try:
        ver, node, seq, expires, flags, mapping, filtering, delta, nlen = _HEAD.unpack_from(data)
        if ver != RECORD_VERSION or nlen > MAX_NAME or mapping > 4 or filtering > 4:
            raise ValueError("header")
        if len(data) > MAX_RECORD and not flags & FLAG_CREDENTIAL:
            raise ValueError(f"{len(data)} bytes without a credential")
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
        addrs = None
        if flags & FLAG_ADDRS:
            addrs = AddrClaim.decode(data, pos)
            if addrs.v4 is None and addrs.v6 is None:
                raise ValueError("empty address claim")
            pos += _ADDRS.size
        ext = pos
        host_keys: tuple[bytes, ...] = ()
        exit_ = 0
        routes: tuple[Prefix, ...] = ()
        credential: bytes | None = None
        features = 0
        for bit in (0x08, 0x10, 0x20, 0x40, 0x80):  # known sections are read, those of later extensions skipped
            if flags & bit:
                n = int.from_bytes(data[pos : pos + 2], "little")
                if bit == FLAG_HOST_KEYS:
                    host_keys = _decode_host_keys(data[pos + 2 : pos + 2 + n])
                elif bit == FLAG_EXIT:
                    if n != 1 or not 0 < data[pos + 2] <= (EXIT_V4 | EXIT_V6):
                        raise ValueError("exit offer")
                    exit_ = data[pos + 2]
                elif bit == FLAG_ROUTES:
                    routes = _decode_routes(data[pos + 2 : pos + 2 + n])
                elif bit == FLAG_CREDENTIAL:
                    credential = _credential_section(data[pos + 2 : pos + 2 + n])
                    ext += 2 + n  # (its own budget)
                elif bit == FLAG_FEATURES:
                    if not 0 < n <= 8 or pos + 2 + n > len(data):
                        raise ValueError("features")
                    features = int.from_bytes(data[pos + 2 : pos + 2 + n], "little")
                pos += 2 + n
        if pos - ext > MAX_EXTENSIONS:
            raise ValueError("extensions")
        if pos + SIG_LEN != len(data):
            raise ValueError("length")
    except (ValueError, KeyError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise WireError(DropReason.RECORD_INVALID, f"malformed record: {e}") from None
    body, sig = data[:pos], data[pos:]
    if not verify_signature(node, network.raw + body, sig):
        raise WireError(DropReason.RECORD_INVALID, "signature does not verify under the record's node id")
    rec = PeerRecord(NodeId(node), seq, expires, tuple(eps), name, bool(flags & FLAG_RELAY), mapping, filtering, delta, relays,
                     bytes(data), bool(flags & FLAG_LEFT), addrs, host_keys, exit_, routes, credential, features)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[memo_key] = rec
    return rec
