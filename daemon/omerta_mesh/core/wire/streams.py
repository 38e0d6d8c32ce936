"""Stream messages: byte streams between two daemons (``core/streams.py``), one family of reliable control messages.

Each travels as a reliable DATA message of kind CONTROL whose channel field names it (``stream.open`` ...):
ordered, acknowledged and retransmitted by the peer's ``ReliableStream`` like gossip, never offered to the
host's ``Receivers`` (so never held or refused by channel admission), never shown to applications.
All integers little-endian; ``id`` is the stream id (u32), even when opened by the node with the smaller node
id, odd otherwise, so both sides can open streams at once without colliding::

    stream.open    | id (u32) | port (u16) | window (u32) |     open to the peer's local 127.0.0.1:port
    stream.accept  | id (u32) | window (u32) |                  connected; the opener may send ``window`` bytes
    stream.data    | id (u32) | bytes ... |                     at most the credit the receiver granted
    stream.credit  | id (u32) | bytes (u32) |                   the receiver consumed this much: send as much more
    stream.close   | id (u32) |                                 no more data from the sender (half-close)
    stream.reset   | id (u32) | reason (UTF-8, <= 200 bytes) |  the stream is gone, both ways (or was refused)
"""

from __future__ import annotations

import struct

from ..errors import DropReason, WireError
from .frames import MAX_REASON, decode_reason, encode_reason

OPEN, ACCEPT, DATA, CREDIT, CLOSE, RESET = "stream.open", "stream.accept", "stream.data", "stream.credit", "stream.close", "stream.reset"
NAMES = (OPEN, ACCEPT, DATA, CREDIT, CLOSE, RESET)
_ID = struct.Struct("<I")
_OPEN = struct.Struct("<IHI")
_PAIR = struct.Struct("<II")


def encode_open(sid: int, port: int, window: int) -> bytes:
    return _OPEN.pack(sid, port, window)


def decode_open(body: bytes) -> tuple[int, int, int]:
    if len(body) != _OPEN.size:
        raise WireError(DropReason.TRUNCATED, "stream.open")
    return _OPEN.unpack(body)


def encode_pair(sid: int, n: int) -> bytes:
    """``stream.accept`` (id, window) and ``stream.credit`` (id, bytes)."""
    return _PAIR.pack(sid, n)


def decode_pair(body: bytes) -> tuple[int, int]:
    if len(body) != _PAIR.size:
        raise WireError(DropReason.TRUNCATED, "stream message")
    return _PAIR.unpack(body)


def encode_id(sid: int, rest: bytes | memoryview = b"") -> bytes:
    """``stream.data``, ``stream.close`` and ``stream.reset``: the id, then bytes or the reason."""
    return _ID.pack(sid) + rest


def decode_id(body: bytes) -> tuple[int, bytes]:
    if len(body) < _ID.size:
        raise WireError(DropReason.TRUNCATED, "stream message")
    return _ID.unpack_from(body)[0], body[_ID.size:]


def encode_reset(sid: int, reason: str) -> bytes:
    return encode_id(sid, encode_reason(reason))


def decode_reset(rest: bytes) -> str:
    """The reason of a ``stream.reset`` (what follows the id), as REFUSE's: printable, at most MAX_REASON bytes."""
    return decode_reason(rest[:MAX_REASON])
