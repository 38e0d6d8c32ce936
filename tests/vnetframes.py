"""TUN frames as a TUN with TSO hands them over, for tests of the super-segment data plane."""

from __future__ import annotations

import ipaddress
import struct

from omerta_mesh.core.ipseg import GSO_TCPV4, GSO_TCPV6, VNET
from omerta_mesh.vnet.packet import checksum
from omerta_mesh.vnet.segments import pseudo_seed

SRC4, DST4 = ipaddress.IPv4Address("100.64.0.1"), ipaddress.IPv4Address("100.64.0.2")
SRC6, DST6 = ipaddress.IPv6Address("fd00::1"), ipaddress.IPv6Address("fd00::2")
MSS = 1000


def tcp_superseg(payload: bytes, v6: bool = False, seq: int = 1000, ident: int = 77, flags: int = 0x18 | 0x80) -> bytes:
    """A TCP super-segment as a TUN with TSO hands it over: NEEDS_CSUM, the seed in the checksum field."""
    tcp = bytearray(struct.pack("!HHIIBBHHH", 40000, 5201, seq, 1, 8 << 4, flags, 512, 0, 0) + bytes(12))  # 32-byte header
    if v6:
        ip = bytearray(struct.pack("!IHBB", 6 << 28, len(tcp) + len(payload), 6, 64) + SRC6.packed + DST6.packed)
    else:
        ip = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp) + len(payload), ident, 0x4000, 64, 6, 0)
                       + SRC4.packed + DST4.packed)
        struct.pack_into("!H", ip, 10, checksum(ip))
    pkt = ip + tcp
    struct.pack_into("!H", pkt, len(ip) + 16, pseudo_seed(pkt, 6, len(tcp) + len(payload)))
    vh = VNET.pack(1, GSO_TCPV6 if v6 else GSO_TCPV4, len(pkt), MSS, len(ip), 16)
    return vh + bytes(pkt) + payload
