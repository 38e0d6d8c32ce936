"""Handshake datagrams (types 1-3): Noise_IKpsk2 messages wrapped WireGuard-style with mac1/mac2.

Handshake initiation (type 1), 188 bytes::

    | 1 | ver | 0 0 | sender index (u32 LE) |
    | Noise message 1 (148): ephemeral (32) | encrypted static (32+16) |
    |   encrypted payload: Ed25519 identity (32) | timestamp (12) | incarnation (8) | + tag (16) |
    | mac1 (16) | mac2 (16) |

Handshake response (type 2), 100 bytes::

    | 2 | ver | 0 0 | sender index (u32 LE) | receiver index (u32 LE) |
    | Noise message 2 (56): ephemeral (32) | encrypted payload: incarnation (8) | + tag (16) |
    | mac1 (16) | mac2 (16) |

Cookie reply (type 3), 52 bytes::

    | 3 | ver | 0 0 | receiver index (u32 LE) | nonce (12) | encrypted cookie (16+16) |

mac1 = BLAKE2s-128(key = BLAKE2s("mac1----" || network key || responder public), bytes before mac1).
Only members of the network know the network key, so a responder drops garbage and non-member traffic
after one keyed hash, before any Diffie-Hellman. mac2 = BLAKE2s-128(key = cookie, bytes before mac2), all
zero when the initiator holds no cookie. The Noise static key is the X25519 form of the node's Ed25519
identity, which cannot be inverted, so the initiator names its Ed25519 key (its node id) in the payload and
the responder checks that it maps to the static key Noise authenticated. The timestamp (TAI64N-like, from the wall clock) must grow from one
initiation to the next, so a replayed initiation is refused. The incarnation is a random number each
node draws when it starts; a changed incarnation tells the other side that the node restarted, so
per-peer stream state is reset. The cookie is BLAKE2s-128 of the sender's address under a secret
the responder changes every two minutes; it comes back in a cookie reply, encrypted with ChaCha20-Poly1305
under BLAKE2s("cookie--" || network key || responder public) with the triggering mac1 as associated data.

Owned networks (docs/membership.md, 2.4): header byte 2 is a flag byte, bit 0 ``CRED``: the Noise payload of
that message continues with ``| credential length (u16 LE) | credential (core/wire/certs.py) |``, so an
initiation or response grows by 2 + that length (at most 2 + 595). Open networks send 0 there, and the exact
sizes above. Bit 1 ``ENROL`` (3.3; never with ``CRED``): an enrolment, whose initiation is exactly
``ENROL_INIT_LEN`` (1,024) bytes, its payload continuing with the request and zeros (core/wire/enrol.py), and whose
response's payload continues with the answer (status, credential), at most ``ENROL_RESP_MAX`` bytes: an answer is
never larger than the question. Other bits are reserved (dropped as bad_reserved).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from ..errors import DropReason, WireError
from .certs import MAX_CREDENTIAL
from .enrol import MAX_ANSWER
from .packet import VERSION, PacketType

MAC_LEN = 16
TIMESTAMP_LEN = 12
INCARNATION_LEN = 8
INIT_PAYLOAD_LEN = 32 + TIMESTAMP_LEN + INCARNATION_LEN
RESP_PAYLOAD_LEN = INCARNATION_LEN
NOISE_MSG1_LEN = 32 + 48 + INIT_PAYLOAD_LEN + 16
NOISE_MSG2_LEN = 32 + RESP_PAYLOAD_LEN + 16
INIT_LEN = 8 + NOISE_MSG1_LEN + 2 * MAC_LEN  # 188
RESP_LEN = 12 + NOISE_MSG2_LEN + 2 * MAC_LEN  # 100
COOKIE_NONCE_LEN = 12
COOKIE_REPLY_LEN = 8 + COOKIE_NONCE_LEN + 32  # 52

_IDX = struct.Struct("<I")
FLAG_CRED = 0x01  # header byte 2: a credential follows the payload (owned networks)
FLAG_ENROL = 0x02  # header byte 2: an enrolment (docs/membership.md 3.3; core/wire/enrol.py)
CRED_MIN_EXTRA = 2 + 1
CRED_MAX_EXTRA = 2 + MAX_CREDENTIAL
ENROL_INIT_LEN = 1024
ENROL_REQUEST_LEN = ENROL_INIT_LEN - INIT_LEN  # the request section with its padding: 836 bytes
ENROL_RESP_MAX = RESP_LEN + MAX_ANSWER  # 696
_EXTRA = {0: (0, 0), FLAG_CRED: (CRED_MIN_EXTRA, CRED_MAX_EXTRA)}  # flags -> extra bytes (least, most)
_ENROL_EXTRA = {PacketType.HANDSHAKE_INIT: (ENROL_REQUEST_LEN, ENROL_REQUEST_LEN), PacketType.HANDSHAKE_RESP: (1, MAX_ANSWER)}


def _extra(t: PacketType, flags: int) -> tuple[int, int] | None:
    """The least and most bytes ``flags`` add to a handshake of type ``t``; None for flags that do not go together."""
    return _ENROL_EXTRA[t] if flags == FLAG_ENROL else _EXTRA.get(flags)


def with_credential(payload: bytes, credential: bytes) -> bytes:
    """``payload`` followed by the credential section."""
    return payload + len(credential).to_bytes(2, "little") + credential


def split_credential(payload: bytes, base: int) -> tuple[bytes, bytes]:
    """(payload[:base], the credential after it). Raises WireError (CERT_MALFORMED) when the section's length is wrong."""
    n = int.from_bytes(payload[base : base + 2], "little")
    if len(payload) != base + 2 + n or n == 0:
        raise WireError(DropReason.CERT_MALFORMED, "credential section length")
    return payload[:base], payload[base + 2 :]


def mac1_key(network_key: bytes, responder_public: bytes) -> bytes:
    return hashlib.blake2s(b"mac1----" + network_key + responder_public).digest()


def cookie_key(network_key: bytes, responder_public: bytes) -> bytes:
    return hashlib.blake2s(b"cookie--" + network_key + responder_public).digest()


def mac(key: bytes, data: bytes) -> bytes:
    return hashlib.blake2s(data, key=key, digest_size=MAC_LEN).digest()


def mac_ok(key: bytes, data: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(mac(key, data), tag)


def encode_timestamp(wall_seconds: float) -> bytes:
    """TAI64N-like 12 bytes (big-endian seconds + nanoseconds) so that byte order equals time order."""
    secs = int(wall_seconds)
    nanos = int((wall_seconds - secs) * 1e9)
    return struct.pack(">QI", secs + (1 << 62), nanos)


@dataclass(frozen=True, slots=True)
class HandshakeInit:
    sender: int
    noise: bytes  # Noise message 1
    mac1: bytes
    mac2: bytes
    raw: bytes
    flags: int = 0

    @property
    def mac1_input(self) -> bytes:
        return self.raw[: len(self.raw) - 2 * MAC_LEN]

    @property
    def mac2_input(self) -> bytes:
        return self.raw[: len(self.raw) - MAC_LEN]


@dataclass(frozen=True, slots=True)
class HandshakeResp:
    sender: int
    receiver: int
    noise: bytes  # Noise message 2
    mac1: bytes
    mac2: bytes
    raw: bytes
    flags: int = 0

    @property
    def mac1_input(self) -> bytes:
        return self.raw[: len(self.raw) - 2 * MAC_LEN]

    @property
    def mac2_input(self) -> bytes:
        return self.raw[: len(self.raw) - MAC_LEN]


@dataclass(frozen=True, slots=True)
class CookieReply:
    receiver: int
    nonce: bytes
    encrypted_cookie: bytes


def _head(t: PacketType, flags: int = 0) -> bytes:
    return bytes((t, VERSION, flags, 0))


def _check_noise_len(what: str, t: PacketType, n: int, base: int, flags: int) -> None:
    extra = _extra(t, flags)
    if extra is None or not base + extra[0] <= n <= base + extra[1]:
        raise ValueError(f"{what} has the wrong length for flags {flags:#x}")


def _with_macs(body: bytes, mac1k: bytes, cookie: bytes | None) -> tuple[bytes, bytes]:
    m1 = mac(mac1k, body)
    m2 = mac(cookie, body + m1) if cookie else bytes(MAC_LEN)
    return body + m1 + m2, m1


def encode_init(sender: int, noise_msg1: bytes, mac1k: bytes, cookie: bytes | None, flags: int = 0) -> tuple[bytes, bytes]:
    """Returns (datagram, mac1); the initiator keeps mac1 to open a cookie reply."""
    _check_noise_len("Noise message 1", PacketType.HANDSHAKE_INIT, len(noise_msg1), NOISE_MSG1_LEN, flags)
    return _with_macs(_head(PacketType.HANDSHAKE_INIT, flags) + _IDX.pack(sender) + noise_msg1, mac1k, cookie)


def encode_resp(sender: int, receiver: int, noise_msg2: bytes, mac1k: bytes, cookie: bytes | None, flags: int = 0) -> tuple[bytes, bytes]:
    _check_noise_len("Noise message 2", PacketType.HANDSHAKE_RESP, len(noise_msg2), NOISE_MSG2_LEN, flags)
    body = _head(PacketType.HANDSHAKE_RESP, flags) + _IDX.pack(sender) + _IDX.pack(receiver) + noise_msg2
    return _with_macs(body, mac1k, cookie)


def encode_cookie_reply(receiver: int, nonce: bytes, encrypted_cookie: bytes) -> bytes:
    if len(nonce) != COOKIE_NONCE_LEN or len(encrypted_cookie) != 32:
        raise ValueError("bad cookie reply field lengths")
    return _head(PacketType.COOKIE_REPLY) + _IDX.pack(receiver) + nonce + encrypted_cookie


def _check(data: bytes, t: PacketType, length: int, flags_allowed: int = 0) -> int:
    """The header's flags, after checking the length they allow and the header; raises WireError."""
    flags = data[2] & flags_allowed if len(data) > 2 else 0
    extra = _extra(t, flags) if flags_allowed else (0, 0)
    if extra is None:  # CRED and ENROL together
        raise WireError(DropReason.BAD_RESERVED, t.name)
    lo, hi = length + extra[0], length + extra[1]
    if len(data) < lo:
        raise WireError(DropReason.TRUNCATED, f"{t.name} of {len(data)} bytes")
    if len(data) > hi:
        raise WireError(DropReason.OVERSIZED, f"{t.name} of {len(data)} bytes")
    if data[0] != t or data[1] != VERSION or data[2] & ~flags_allowed or data[3]:
        raise WireError(DropReason.BAD_RESERVED, t.name)
    return flags


def decode_init(data: bytes) -> HandshakeInit:
    flags = _check(data, PacketType.HANDSHAKE_INIT, INIT_LEN, FLAG_CRED | FLAG_ENROL)
    (sender,) = _IDX.unpack_from(data, 4)
    n_end = len(data) - 2 * MAC_LEN
    return HandshakeInit(sender, data[8:n_end], data[n_end : n_end + MAC_LEN], data[n_end + MAC_LEN :], data, flags)


def decode_resp(data: bytes) -> HandshakeResp:
    flags = _check(data, PacketType.HANDSHAKE_RESP, RESP_LEN, FLAG_CRED | FLAG_ENROL)
    sender, receiver = struct.unpack_from("<II", data, 4)
    n_end = len(data) - 2 * MAC_LEN
    return HandshakeResp(sender, receiver, data[12:n_end], data[n_end : n_end + MAC_LEN], data[n_end + MAC_LEN :], data, flags)


def decode_cookie_reply(data: bytes) -> CookieReply:
    _check(data, PacketType.COOKIE_REPLY, COOKIE_REPLY_LEN)
    (receiver,) = _IDX.unpack_from(data, 4)
    return CookieReply(receiver, data[8:20], data[20:52])
