"""In-session frames: the plaintext inside a transport datagram. One frame per datagram.

Every frame starts with a one-byte type::

    KEEPALIVE (0x00)  | 0x00 |                                      (no body; holds NAT mappings open)
    IP        (0x01)  | 0x01 | IPv4/IPv6 packet ...                 (TUN mode)
    DATA      (0x02)  | 0x02 | seq (u64 LE) | flags (u8) | chunk ...  (reliable, in order, acknowledged)
    ACK       (0x03)  | 0x03 | next expected seq (u64 LE) | selective-ack bitmap (u64 LE) |
    PING      (0x04)  | 0x04 | probe id (u32 LE) | padding ...      (path probe; answered by PONG)
    PONG      (0x05)  | 0x05 | probe id (u32 LE) | observed source: family (u8) | address | port (u16 BE) |
    CLOSE     (0x06)  | 0x06 | reason (u8) |                        (the sender is leaving; drop the session)
    RELAY     (0x07)  | 0x07 | version (u8) = 1 | hops (u8) | destination node id (32) | datagram ...
                                                                    (to a relay: forward this datagram)
    RELAYED   (0x08)  | 0x08 | version (u8) = 1 | hops (u8) | source node id (32) | datagram ...
                                                                    (from a relay: a datagram forwarded to you)
    NATPROBE  (0x09)  | 0x09 | op (u8) | nonce (u32 LE) | endpoints (see endpoints.py) |  (NAT tests)
    IPSEG     (0x0A)  | 0x0A | seg id (u32 LE) | index (u8) | count (u8) | virtio-net header (10) |
                      L3+L4 header | piece ...     (one piece of a TUN super-segment; see core/ipseg.py)
    REFUSE    (0x0B)  | 0x0B | seq (u64 LE) | code (u8) | reason (UTF-8, at most 200 bytes) ...
                                                                    (the message starting at seq is not taken)
    CONTROL   (0x10)  | 0x10 | control type (u8) | body ...         (gossip, NAT traversal; see control.py)

DATA flags: bit 0 FIRST (this chunk starts a message), bit 1 LAST (this chunk ends it), bit 2 RESET (the
sender gave up on earlier frames: the receiver discards what it holds and continues from this seq, which
is only ever larger than before); bits 4-5 are the
message kind (0 channel message, 1 request, 2 response, 3 control: see control.py; never shown to
applications). A message is split into chunks that travel as
consecutive DATA frames; since DATA is delivered in order, reassembly is concatenation. The FIRST chunk
begins with the message header::

    | total length (u32 LE) | correlation id (u32 LE) | status (u8) | channel length (u8) | channel (UTF-8) |

Selective-ack bitmap: bit i set means seq ``next + 1 + i`` arrived.

REFUSE answers a DATA frame that begins a channel message the receiver will not take (code 1: nobody
receives that channel there; 2: its inbox stayed full; 3: another reason, in the text). It acknowledges every
seq below ``seq`` like an ACK with ``next = seq``, and nothing from ``seq`` on: the sender fails that message
with the reason, and sends what followed it again under new sequence numbers, the first with RESET. The
receiver repeats the REFUSE for every copy of ``seq`` until that RESET arrives, and never delivers the
refused message. A receiver may also hold a message back (an ACK with ``next = seq``, no REFUSE) while the
channel's inbox is full: the sender's retransmissions ask again.

PING and PONG are path probes: they are sent on a chosen path (a direct address or a relay) and do not move
the peer's endpoint by themselves; the PONG tells the pinger the source address its PING arrived from, which
is how a node learns its NAT mappings. A relayed datagram is the complete end-to-end transport or handshake
datagram between the two peers, so the relay learns only the two node ids and the size.

RELAY and RELAYED carry a version (1; other versions are dropped as BAD_FRAME) and a hop limit. A client
sends RELAY with hops = 1 (``RELAY_HOPS``); a relay forwards only a RELAY with hops >= 1 that reached it on a
direct path, only to a peer it reaches on a direct path, and sends the RELAYED frame with hops - 1 (0). A
RELAYED frame is never relayed again, and a RELAY with hops 0 is refused (``relay_loop``).

NATPROBE frames measure our NAT's filtering; they never move a peer's endpoint or socket. op 1 BIND is sent
from our second (probe) socket: the peer answers op 2 BOUND with the source address it saw (no endpoints in
BIND, exactly one in BOUND). op 3 TEST is an unsolicited probe a peer sends to our probe socket's mapping
when we ask it to (``nat.test``, control.py); whether it arrives tells how our NAT filters.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from ..errors import DropReason, WireError
from .endpoints import decode_endpoints, encode_endpoints


class FrameType(enum.IntEnum):
    KEEPALIVE = 0x00
    IP = 0x01
    DATA = 0x02
    ACK = 0x03
    PING = 0x04
    PONG = 0x05
    CLOSE = 0x06
    RELAY = 0x07
    RELAYED = 0x08
    NATPROBE = 0x09
    IPSEG = 0x0A  # a fragment of a virtual-network super-segment (core/ipseg.py)
    REFUSE = 0x0B  # the receiver does not take the message starting at seq (an ACK of what came before)
    CONTROL = 0x10


class MessageKind(enum.IntEnum):
    MESSAGE = 0
    REQUEST = 1
    RESPONSE = 2
    CONTROL = 3


class RefuseCode(enum.IntEnum):
    NO_RECEIVER = 1  # nobody receives this channel at the receiver
    INBOX_FULL = 2  # the channel's inbox stayed full (nobody read it)
    OTHER = 3  # the reason says why


FLAG_FIRST = 0x01
FLAG_LAST = 0x02
FLAG_RESET = 0x04
_KIND_SHIFT = 4

_DATA = struct.Struct("<BQB")
_ACK = struct.Struct("<BQQ")
_REFUSE = struct.Struct("<BQB")
MAX_REASON = 200  # bytes of a peer's reason text (REFUSE here, stream.reset in streams.py)
_PROBE = struct.Struct("<BI")
_MSGHDR = struct.Struct("<IIBB")
DATA_HEADER_LEN = _DATA.size  # 10
MAX_CHANNEL = 64

KEEPALIVE_FRAME = bytes((FrameType.KEEPALIVE,))


@dataclass(frozen=True, slots=True)
class DataFrame:
    seq: int
    first: bool
    last: bool
    kind: MessageKind
    chunk: bytes
    reset: bool = False


@dataclass(frozen=True, slots=True)
class AckFrame:
    next_seq: int
    sack: int


@dataclass(frozen=True, slots=True)
class RefuseFrame:
    seq: int
    code: RefuseCode
    reason: str


@dataclass(frozen=True, slots=True)
class ProbeFrame:
    pong: bool
    probe_id: int
    observed: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class MessageHeader:
    kind: MessageKind
    total_len: int
    corr_id: int
    status: int
    channel: str

    def encode(self) -> bytes:
        ch = self.channel.encode()
        return _MSGHDR.pack(self.total_len, self.corr_id, self.status, len(ch)) + ch


def label_bytes(text: str, what: str, max_bytes: int) -> bytes:
    """The UTF-8 form of a label (a channel or network name), or ValueError saying what is wrong: the one
    rule for names carried on the wire: well-formed Unicode (no lone surrogates), at most ``max_bytes`` of
    UTF-8, no control characters (C0 or DEL)."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not well-formed Unicode (a lone surrogate U+{ord(text[e.start]):04X} "
                         f"at character {e.start})") from None
    if len(raw) > max_bytes:
        raise ValueError(f"{what} longer than {max_bytes} bytes of UTF-8")
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise ValueError(f"{what} contains control characters")
    return raw


def check_channel(name: str) -> bytes:
    """The UTF-8 form of a valid channel name, or ValueError saying what is wrong."""
    if not isinstance(name, str) or not name:
        raise ValueError("a channel name is a non-empty string")
    return label_bytes(name, "channel name", MAX_CHANNEL)


def encode_data(seq: int, first: bool, last: bool, kind: MessageKind, chunk: bytes, reset: bool = False) -> bytes:
    flags = (FLAG_FIRST if first else 0) | (FLAG_LAST if last else 0) | (FLAG_RESET if reset else 0)
    flags |= int(kind) << _KIND_SHIFT
    return _DATA.pack(FrameType.DATA, seq, flags) + chunk


def encode_ack(next_seq: int, sack: int) -> bytes:
    return _ACK.pack(FrameType.ACK, next_seq, sack)


def encode_reason(reason: str) -> bytes:
    """A reason text for the wire: UTF-8 of whole characters, at most MAX_REASON bytes."""
    return reason.encode("utf-8", "replace")[:MAX_REASON].decode("utf-8", "ignore").encode()


def decode_reason(raw: bytes) -> str:
    """A peer's reason text, made printable (it is shown to users: no control characters reach a terminal)."""
    return "".join(c if c.isprintable() else "\ufffd" for c in raw.decode("utf-8", "replace"))


def encode_refuse(seq: int, code: RefuseCode, reason: str) -> bytes:
    return _REFUSE.pack(FrameType.REFUSE, seq, code) + encode_reason(reason)


def decode_refuse(frame: bytes) -> RefuseFrame:
    """A REFUSE frame; an unknown code reads as OTHER, and the reason is made printable (it is shown to users)."""
    if len(frame) < _REFUSE.size or len(frame) > _REFUSE.size + MAX_REASON:
        raise WireError(DropReason.BAD_FRAME, "REFUSE of wrong length")
    _, seq, code = _REFUSE.unpack_from(frame)
    reason = decode_reason(frame[_REFUSE.size :]) or "refused"
    return RefuseFrame(seq, RefuseCode(code) if code in RefuseCode._value2member_map_ else RefuseCode.OTHER, reason)


def encode_probe(probe_id: int, pong: bool = False, pad: int = 0, observed: tuple[str, int] | None = None) -> bytes:
    head = _PROBE.pack(FrameType.PONG if pong else FrameType.PING, probe_id)
    if pong and observed is not None:  # (the caller passes None for a relay path: it has no address)
        ip = ipaddress.ip_address(observed[0])
        return head + bytes((ip.version,)) + ip.packed + struct.pack(">H", observed[1])
    return head if pong else head + bytes(pad)  # only a PING is padded (to probe the path MTU)


class NatOp(enum.IntEnum):
    BIND = 1
    BOUND = 2
    TEST = 3


_NATPROBE = struct.Struct("<BBI")


@dataclass(frozen=True, slots=True)
class NatProbeFrame:
    op: NatOp
    nonce: int
    observed: tuple[str, int] | None = None


def encode_natprobe(op: NatOp, nonce: int, observed: tuple[str, int] | None = None) -> bytes:
    return _NATPROBE.pack(FrameType.NATPROBE, op, nonce) + encode_endpoints([observed] if observed else [])


def decode_natprobe(frame: bytes) -> NatProbeFrame:
    try:
        _, op, nonce = _NATPROBE.unpack_from(frame)
        eps, pos = decode_endpoints(frame, _NATPROBE.size, limit=1)
        if pos != len(frame) or op not in NatOp._value2member_map_ or len(eps) != (1 if op == NatOp.BOUND else 0):
            raise ValueError("layout")
    except (ValueError, KeyError, IndexError, struct.error) as e:
        raise WireError(DropReason.BAD_FRAME, f"NATPROBE: {e}") from None
    return NatProbeFrame(NatOp(op), nonce, eps[0] if eps else None)


RELAY_VERSION = 1
RELAY_HOPS = 1  # hops a client allows: one relay, never a chain
RELAY_HEADER_LEN = 3 + 32


@dataclass(frozen=True, slots=True)
class RelayFrame:
    relayed: bool  # RELAYED (from a relay) rather than RELAY (to a relay)
    hops: int  # hops left
    node: bytes  # RELAY: the destination; RELAYED: the source
    datagram: bytes


def encode_relay(node_raw: bytes, datagram: bytes, relayed: bool = False, hops: int = RELAY_HOPS) -> bytes:
    return bytes((FrameType.RELAYED if relayed else FrameType.RELAY, RELAY_VERSION, hops)) + node_raw + datagram


def decode_relay(frame: bytes) -> RelayFrame:
    if len(frame) < RELAY_HEADER_LEN + 4 or frame[0] not in (FrameType.RELAY, FrameType.RELAYED):
        raise WireError(DropReason.BAD_FRAME, "relay frame too short")
    if frame[1] != RELAY_VERSION:
        raise WireError(DropReason.BAD_FRAME, f"relay frame version {frame[1]} (this node speaks {RELAY_VERSION})")
    return RelayFrame(frame[0] == FrameType.RELAYED, frame[2], frame[3:RELAY_HEADER_LEN], frame[RELAY_HEADER_LEN:])


def encode_close(reason: int = 0) -> bytes:
    return bytes((FrameType.CLOSE, reason))


def decode_data(frame: bytes) -> DataFrame:
    if len(frame) < DATA_HEADER_LEN:
        raise WireError(DropReason.BAD_FRAME, "DATA shorter than its header")
    _, seq, flags = _DATA.unpack_from(frame)
    kind_v = (flags >> _KIND_SHIFT) & 0x3
    if flags & ~(FLAG_FIRST | FLAG_LAST | FLAG_RESET | (0x3 << _KIND_SHIFT)):
        raise WireError(DropReason.BAD_FRAME, f"DATA flags {flags:#x}")
    first, last, reset = bool(flags & FLAG_FIRST), bool(flags & FLAG_LAST), bool(flags & FLAG_RESET)
    return DataFrame(seq, first, last, MessageKind(kind_v), frame[DATA_HEADER_LEN:], reset)


def decode_ack(frame: bytes) -> AckFrame:
    if len(frame) != _ACK.size:
        raise WireError(DropReason.BAD_FRAME, "ACK of wrong length")
    _, nxt, sack = _ACK.unpack(frame)
    return AckFrame(nxt, sack)


def decode_probe(frame: bytes) -> ProbeFrame:
    if len(frame) < _PROBE.size:
        raise WireError(DropReason.BAD_FRAME, "probe too short")
    t, pid = _PROBE.unpack_from(frame)
    observed = None
    if t == FrameType.PONG and len(frame) > _PROBE.size:
        fam = frame[_PROBE.size]
        alen = {4: 4, 6: 16}.get(fam)
        if alen is None or len(frame) != _PROBE.size + 1 + alen + 2:
            raise WireError(DropReason.BAD_FRAME, "PONG with a malformed observed address")
        ip = str(ipaddress.ip_address(frame[_PROBE.size + 1 : _PROBE.size + 1 + alen]))
        (port,) = struct.unpack_from(">H", frame, _PROBE.size + 1 + alen)
        observed = (ip, port)
    return ProbeFrame(t == FrameType.PONG, pid, observed)


def decode_message_header(kind: MessageKind, chunk: bytes, max_message: int) -> tuple[MessageHeader, bytes]:
    """Split the FIRST chunk of a message into its header and the first bytes of the body."""
    if len(chunk) < _MSGHDR.size:
        raise WireError(DropReason.BAD_FRAME, "message header truncated")
    total, corr, status, clen = _MSGHDR.unpack_from(chunk)
    end = _MSGHDR.size + clen
    if clen == 0 or clen > MAX_CHANNEL or len(chunk) < end:
        raise WireError(DropReason.BAD_FRAME, "bad channel length")
    try:
        channel = chunk[_MSGHDR.size : end].decode("utf-8")
        check_channel(channel)
    except (UnicodeDecodeError, ValueError) as e:
        raise WireError(DropReason.BAD_FRAME, f"bad channel name: {e}") from None
    if total > max_message:
        raise WireError(DropReason.OVERSIZED, f"message of {total} bytes")
    body = chunk[end:]
    if len(body) > total:
        raise WireError(DropReason.BAD_FRAME, "first chunk longer than the message")
    return MessageHeader(kind, total, corr, status, channel), body


def frame_type(frame: bytes) -> FrameType:
    if not frame:
        raise WireError(DropReason.BAD_FRAME, "empty frame")
    try:
        return FrameType(frame[0])
    except ValueError:
        raise WireError(DropReason.UNKNOWN_FRAME, f"frame type {frame[0]:#x}") from None
