"""Control messages: gossip, NAT traversal and relay signalling between peers.

They travel in two ways:

* **reliable** control messages are DATA messages of kind CONTROL (see ``frames.py``), the channel field
  naming the message ("gossip.sync", ...), so they are fragmented, acknowledged and ordered like channel
  messages but never delivered to applications;
* **datagram** control frames (frame type CONTROL, 0x10) for what must not wait for retransmission.

Gossip sync (``gossip.sync``, reliable)::

    | lo prefix (8) | hi prefix (8) | wrapped (u8) | entry count (u16 LE) | entries: id prefix (8) | seq (u64 LE) |
    | record count (u16 LE) | records: length (u16 LE) | signed record ... |

  The sender summarises the slice [lo, hi] of its id-sorted records (hi = ff..ff when ``wrapped``) and
  pushes records it learnt recently. The receiver answers with ``gossip.records`` holding what the sender
  lacks in that slice (within its byte budget) and ``gossip.want`` for what it lacks itself.

Gossip records (``gossip.records``, reliable)::  | record count (u16 LE) | records: length (u16 LE) | record |
Gossip want (``gossip.want``, reliable)::         | count (u16 LE) | id prefixes (8 each) |

Call-me-maybe (``punch.candidates``, reliable, end-to-end between the two peers, possibly via a relay)::

    | flags (u8): bit 0 reply wanted | mapping (u8) | port delta (i16 LE) | count (u8) | endpoints (as in records) |

  "Here is where I might be reached; probe these now, and I probe yours." Endpoints may include predicted
  ports for an address-and-port-dependent NAT with sequential allocation.

NAT test request (``nat.test``, reliable)::  | nonce (u32 LE) | kind (u8): 1 from second port, 2 from you | endpoint |

  Ask a peer to send an unsolicited probe (a NATPROBE TEST frame, frames.py) to ``endpoint`` (our probe
  socket's mapping as another peer saw it); whether it arrives tells our NAT's filtering behaviour.

NAT test answer (``nat.ack``, reliable)::  | nonce (u32 LE) | status (u8): 0 sent, 1 cannot, 2 refused |

  Sent after the probe: "cannot" when the peer has no second socket, "refused" over its rate limit. Only a
  test answered "sent" whose probe then does not arrive counts as filtered.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import DropReason, WireError
from .endpoints import decode_endpoints, encode_endpoints

Address = tuple[str, int]
PREFIX = 8
_ENTRY = struct.Struct("<8sQ")
_U16 = struct.Struct("<H")


def _records(blobs: list[bytes]) -> bytes:
    out = bytearray(_U16.pack(len(blobs)))
    for b in blobs:
        out += _U16.pack(len(b)) + b
    return bytes(out)


def _read_records(data: bytes, pos: int) -> tuple[list[bytes], int]:
    (n,) = _U16.unpack_from(data, pos)
    pos += 2
    out = []
    for _ in range(n):
        (ln,) = _U16.unpack_from(data, pos)
        pos += 2
        if pos + ln > len(data):
            raise ValueError("record overruns the message")
        out.append(data[pos : pos + ln])
        pos += ln
    return out, pos


@dataclass(frozen=True, slots=True)
class GossipSync:
    lo: bytes
    hi: bytes
    wrapped: bool
    entries: list[tuple[bytes, int]]
    records: list[bytes]


def encode_sync(m: GossipSync) -> bytes:
    out = bytearray(m.lo.ljust(PREFIX, b"\0")[:PREFIX] + m.hi.ljust(PREFIX, b"\0")[:PREFIX] + bytes((1 if m.wrapped else 0,)))
    out += _U16.pack(len(m.entries))
    for p, seq in m.entries:
        out += _ENTRY.pack(p, seq)
    out += _records(m.records)
    return bytes(out)


def decode_sync(data: bytes) -> GossipSync:
    try:
        lo, hi, wrapped = data[:8], data[8:16], data[16]
        if len(lo) != 8 or len(hi) != 8 or wrapped > 1:
            raise ValueError("header")
        (n,) = _U16.unpack_from(data, 17)
        pos = 19
        entries = []
        for _ in range(n):
            entries.append(_ENTRY.unpack_from(data, pos))
            pos += _ENTRY.size
        recs, pos = _read_records(data, pos)
        if pos != len(data):
            raise ValueError("trailing bytes")
    except (ValueError, IndexError, struct.error) as e:
        raise WireError(DropReason.BAD_FRAME, f"gossip.sync: {e}") from None
    return GossipSync(lo, hi, bool(wrapped), entries, recs)


def encode_record_list(blobs: list[bytes]) -> bytes:
    return _records(blobs)


def decode_record_list(data: bytes) -> list[bytes]:
    try:
        recs, pos = _read_records(data, 0)
        if pos != len(data):
            raise ValueError("trailing bytes")
    except (ValueError, IndexError, struct.error) as e:
        raise WireError(DropReason.BAD_FRAME, f"gossip.records: {e}") from None
    return recs


def encode_want(prefixes: list[bytes]) -> bytes:
    return _U16.pack(len(prefixes)) + b"".join(p[:PREFIX].ljust(PREFIX, b"\0") for p in prefixes)


def decode_want(data: bytes) -> list[bytes]:
    if len(data) < 2:
        raise WireError(DropReason.BAD_FRAME, "gossip.want truncated")
    (n,) = _U16.unpack_from(data)
    if len(data) != 2 + PREFIX * n:
        raise WireError(DropReason.BAD_FRAME, "gossip.want length")
    return [data[2 + i * PREFIX : 2 + (i + 1) * PREFIX] for i in range(n)]


@dataclass(frozen=True, slots=True)
class Candidates:
    reply: bool
    mapping: int
    port_delta: int
    endpoints: list[Address]


def encode_candidates(c: Candidates) -> bytes:
    return struct.pack("<BBh", 1 if c.reply else 0, c.mapping, c.port_delta) + encode_endpoints(c.endpoints[:255])


def decode_candidates(data: bytes) -> Candidates:
    try:
        flags, mapping, delta = struct.unpack_from("<BBh", data)
        eps, pos = decode_endpoints(data, 4)
        if pos != len(data) or flags > 1 or mapping > 4:
            raise ValueError("layout")
    except (ValueError, KeyError, IndexError, struct.error) as e:
        raise WireError(DropReason.BAD_FRAME, f"punch.candidates: {e}") from None
    return Candidates(bool(flags), mapping, delta, eps)


@dataclass(frozen=True, slots=True)
class NatTest:
    nonce: int
    kind: int  # 1: from your second port, 2: from your main port
    endpoint: Address


def encode_nat_test(t: NatTest) -> bytes:
    return struct.pack("<IB", t.nonce, t.kind) + encode_endpoints([t.endpoint])


def decode_nat_test(data: bytes) -> NatTest:
    try:
        nonce, kind = struct.unpack_from("<IB", data)
        eps, pos = decode_endpoints(data, 5)
        if kind not in (1, 2) or len(eps) != 1 or pos != len(data):
            raise ValueError("layout")
    except (ValueError, KeyError, IndexError, struct.error) as e:
        raise WireError(DropReason.BAD_FRAME, f"nat.test: {e}") from None
    return NatTest(nonce, kind, eps[0])


class NatAck(enum.IntEnum):
    SENT = 0
    CANNOT = 1
    REFUSED = 2


_NAT_ACK = struct.Struct("<IB")


def encode_nat_ack(nonce: int, status: NatAck) -> bytes:
    return _NAT_ACK.pack(nonce, status)


def decode_nat_ack(data: bytes) -> tuple[int, NatAck]:
    if len(data) != _NAT_ACK.size or data[4] not in NatAck._value2member_map_:
        raise WireError(DropReason.BAD_FRAME, "nat.ack layout")
    nonce, status = _NAT_ACK.unpack(data)
    return nonce, NatAck(status)
