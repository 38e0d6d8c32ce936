"""A socket bound to one of this host's mesh IPs, which may not be up yet (``IP_FREEBIND``: a fresh IPv6 address is
still tentative for a moment). Mesh DNS (``meshd/dns.py``, port 53) and the stream gate (``meshd/meshtcp.py``) listen
this way on each device address."""

from __future__ import annotations

import socket

IP_FREEBIND, IPV6_FREEBIND = 15, 78  # (linux/in.h, linux/in6.h; the socket module has neither name)


def bound(addr: str, kind: int, port: int, backlog: int = 16, device: str | None = None) -> socket.socket:
    """A non-blocking socket of ``kind`` bound to ``addr``:``port`` (listening, for TCP); ``device``: only what
    arrives on that device (SO_BINDTODEVICE). OSError, with the socket closed."""
    v6 = ":" in addr
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        if device is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.setblocking(False)
        if kind == socket.SOCK_STREAM:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
