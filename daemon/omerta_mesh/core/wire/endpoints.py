"""The endpoint list codec shared by invites, peer records and control messages::

    | count (u8) | endpoints: family (u8: 4 or 6) | address (4 or 16) | port (u16 BE) | ...
"""

from __future__ import annotations

import ipaddress
import struct

Address = tuple[str, int]
_PORT = struct.Struct(">H")
_ALEN = {4: 4, 6: 16}


def encode_endpoints(eps: list[Address] | tuple[Address, ...]) -> bytes:
    out = bytearray((len(eps),))
    for host, port in eps:
        ip = ipaddress.ip_address(host)
        out.append(ip.version)
        out += ip.packed + _PORT.pack(port)
    return bytes(out)


def decode_endpoints(data: bytes, pos: int, limit: int = 255) -> tuple[list[Address], int]:
    """Endpoints starting at ``pos``; returns them and the position after. Raises ValueError, KeyError,
    IndexError or struct.error on malformed input (callers turn these into their own wire error)."""
    count = data[pos]
    pos += 1
    if count > limit:
        raise ValueError("too many endpoints")
    eps = []
    for _ in range(count):
        alen = _ALEN[data[pos]]
        raw = data[pos + 1 : pos + 1 + alen]
        if len(raw) != alen:
            raise ValueError("endpoint truncated")
        eps.append((str(ipaddress.ip_address(raw)), _PORT.unpack_from(data, pos + 1 + alen)[0]))
        pos += 1 + alen + 2
    return eps, pos
