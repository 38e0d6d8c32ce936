"""The outer datagram: what every omerta-mesh UDP payload starts with.

Every datagram begins with a 4-byte header::

     0        1         2        3
    +--------+---------+--------+--------+
    |  type  | version |  0x00  |  0x00  |
    +--------+---------+--------+--------+

``type`` selects the layout of the rest (``handshake.py`` for types 1-3, the transport layout below for 4,
``relay.py`` for 5). ``version`` is ``VERSION``; a datagram of another version is dropped, which leaves room
for a successor protocol. The two reserved bytes must be zero, except bits 0 and 1 of byte 2 in a handshake
(types 1 and 2) of an owned network, which say a credential or an enrolment follows (``handshake.py``), and bit 0
of byte 2 in transport data (``TRANSPORT_AES``).

Transport data (type 4), 32 bytes of overhead in all::

     0                   4                   8                                  16
    +--------+---------+--+------------------+----------------------------------+
    | 4      | version | f 0| receiver index  |  counter (u64, little-endian)    |
    +--------+---------+--+------------------+----------------------------------+
    | ciphertext of the frame (AEAD, AD = these 16 header bytes) ...               |
    +--------------------------------------------------------------------+--------+
    |                                                      Poly1305 tag (16 bytes) |
    +------------------------------------------------------------------------------+

The receiver index names the receiving side's session (chosen by the receiver during the handshake); the
counter is the AEAD nonce (4 zero bytes || counter LE) and the replay-window sequence number. The AEAD is
ChaCha20-Poly1305 under the session's key (as Noise's transport messages) when ``f`` (byte 2) is 0, and
AES-256-GCM when it is ``TRANSPORT_AES`` (1), under a key derived from the session's key for AES alone
(``session/session.py``): about twice as fast per fragment on CPUs with AES instructions. A sender uses AES only
towards a node whose signed record lists ``FEATURE_AES`` (``records.py``), so earlier versions, which drop a
non-zero byte 2, never get one; both ciphers share the session's counter and replay window. The flag is
authenticated (it is in the AD): flipped, the datagram fails to open.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import DropReason, WireError

VERSION = 1
HEADER_LEN = 4
TAG_LEN = 16
TRANSPORT_HEADER_LEN = 16
TRANSPORT_OVERHEAD = TRANSPORT_HEADER_LEN + TAG_LEN  # 32 bytes


class PacketType(enum.IntEnum):
    HANDSHAKE_INIT = 1
    HANDSHAKE_RESP = 2
    COOKIE_REPLY = 3
    TRANSPORT = 4
    RELAY = 5


_TYPES = frozenset(int(t) for t in PacketType)
TRANSPORT_HEADER = struct.Struct("<BBxxIQ")


def header(ptype: PacketType) -> bytes:
    return bytes((ptype, VERSION, 0, 0))


TRANSPORT_AES = 0x01  # transport data: byte 2 says AES-256-GCM
_FLAGS_ALLOWED = {1: 0x03, 2: 0x03, 4: TRANSPORT_AES}  # handshakes of owned networks: byte 2 bit 0 CRED, bit 1 ENROL
# (handshake.py); transport data: the cipher


def packet_type(data: bytes) -> PacketType:
    """The type of a datagram, after checking the common header. Raises WireError."""
    if len(data) < HEADER_LEN:
        raise WireError(DropReason.TRUNCATED, "shorter than the header")
    t = data[0]
    if t not in _TYPES:
        raise WireError(DropReason.UNKNOWN_TYPE, f"type {t}")
    if data[1] != VERSION:
        raise WireError(DropReason.UNKNOWN_TYPE, f"version {data[1]}")
    if data[3] or data[2] & ~_FLAGS_ALLOWED.get(t, 0):
        raise WireError(DropReason.BAD_RESERVED)
    return PacketType(t)


@dataclass(frozen=True, slots=True)
class TransportHeader:
    receiver: int
    counter: int


def encode_transport_header(receiver: int, counter: int) -> bytes:
    return TRANSPORT_HEADER.pack(PacketType.TRANSPORT, VERSION, receiver, counter)


def decode_transport(data: bytes) -> TransportHeader:
    """Parse a transport datagram's header (the ciphertext follows at TRANSPORT_HEADER_LEN)."""
    if len(data) < TRANSPORT_OVERHEAD:
        raise WireError(DropReason.TRUNCATED, "transport shorter than header and tag")
    t, v, receiver, counter = TRANSPORT_HEADER.unpack_from(data)
    if t != PacketType.TRANSPORT:
        raise WireError(DropReason.UNKNOWN_TYPE, f"type {t} is not transport")
    if v != VERSION or data[2] & ~TRANSPORT_AES or data[3]:
        raise WireError(DropReason.BAD_RESERVED)
    return TransportHeader(receiver, counter)
