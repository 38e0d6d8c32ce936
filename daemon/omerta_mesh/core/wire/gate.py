"""The stream gate's handshake: a mesh stream carried by a kernel TCP connection between two mesh IPs.

When both ends have the virtual network up, the opening daemon connects a TCP socket from its mesh IP to the
peer's mesh IP, port ``GATE_PORT`` (``meshd/meshtcp.py``), and asks there for a local port, exactly as
``stream.open`` asks (``wire/streams.py``); the peer's daemon answers once, then the connection carries the
service's bytes both ways (the gate splices it with the peer's ``127.0.0.1:port``). Integers big-endian (this is
TCP, not the mesh's datagrams)::

    request  | "OMG" | version (u8) = 1 | port (u16) |                                  6 bytes, opener -> gate
    answer   | "OMG" | version (u8) = 1 | status (u8) | reason length (u8) | reason |   gate -> opener

``status`` 0: connected (no reason follows); 1: refused, with the reason (UTF-8, at most ``MAX_REASON`` bytes:
"port 22 not exposed on bravo"). Anything else is not our gate's (``WireError``): the opener falls back to
the mesh stream.
"""

from __future__ import annotations

import struct

from ..errors import DropReason, WireError
from .frames import MAX_REASON, decode_reason, encode_reason

GATE_PORT = 51888  # TCP, on every mesh IP (the daemon's default UDP port number; every member uses this one)
MAGIC = b"OMG"
VERSION = 1
OK, REFUSED = 0, 1
_REQUEST = struct.Struct(">3sBH")
_ANSWER = struct.Struct(">3sBBB")
REQUEST_LEN = _REQUEST.size  # 6
ANSWER_LEN = _ANSWER.size  # 6: the answer's head; the reason follows


def encode_request(port: int) -> bytes:
    return _REQUEST.pack(MAGIC, VERSION, port)


def decode_request(raw: bytes) -> int:
    """The port asked for."""
    if len(raw) != REQUEST_LEN:
        raise WireError(DropReason.TRUNCATED, "gate request")
    magic, version, port = _REQUEST.unpack(raw)
    port = int(port)
    if magic != MAGIC or version != VERSION:
        raise WireError(DropReason.UNKNOWN_TYPE, "gate request")
    if port == 0:
        raise WireError(DropReason.BAD_FRAME, "gate request for port 0")
    return port


def encode_answer(reason: str | None) -> bytes:
    """None: connected; else refused with ``reason``."""
    if reason is None:
        return _ANSWER.pack(MAGIC, VERSION, OK, 0)
    text = encode_reason(reason or "refused")
    return _ANSWER.pack(MAGIC, VERSION, REFUSED, len(text)) + text


def decode_answer_head(raw: bytes) -> tuple[bool, int]:
    """(connected, length of the reason that follows)."""
    if len(raw) != ANSWER_LEN:
        raise WireError(DropReason.TRUNCATED, "gate answer")
    magic, version, status, n = _ANSWER.unpack(raw)
    if magic != MAGIC or version != VERSION or status not in (OK, REFUSED) or n > MAX_REASON or (status == OK and n):
        raise WireError(DropReason.UNKNOWN_TYPE, "gate answer")
    return status == OK, n


def decode_reason_text(raw: bytes) -> str:
    return decode_reason(raw) or "refused"
