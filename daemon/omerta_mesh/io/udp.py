"""UDP endpoints for the driver: IPv4 and IPv6 sockets read with a draining ``add_reader`` callback.

A draining reader (``recvmsg_into`` until EAGAIN) costs about a third of ``DatagramProtocol`` per datagram
on the default loop (measured for the brief), and keeps the per-packet path in one place.

Batches (the virtual network's super-segments go out as ~45 datagrams of one size to one address):
``send_batch`` hands such a run to the kernel in one ``sendmsg`` with ``UDP_SEGMENT`` (UDP GSO), and sockets
read with ``UDP_GRO`` get such runs back in one read, split here by the segment size the kernel reports.
Where the kernel refuses either, datagrams go one by one (``gso`` says whether sends are batched).

One wake-up of the reader is bounded in count and in time: it yields to the loop after ``DRAIN_BATCH``
datagrams or ``DRAIN_SLICE`` seconds (measured with ``time.monotonic``), whichever comes first, so datagrams
that are costly to process (handshake initiations: two Diffie-Hellman each) cannot hold the loop, and RPC
and timers wait at most one slice plus one datagram. The socket stays readable: the loop calls again.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

Address = tuple[str, int]
BUFFER_BYTES = 4 << 20
MAX_DATAGRAM = 65535
DRAIN_BATCH = 256  # datagrams read per wake-up before yielding to the loop ...
DRAIN_SLICE = 0.005  # ... or seconds spent, whichever comes first
SOL_UDP, UDP_SEGMENT, UDP_GRO = 17, 103, 104
GSO_MAX_SEGMENTS = 64  # per sendmsg (the kernel's UDP_MAX_SEGMENTS on older kernels)
GSO_MAX_BYTES = 60000  # per sendmsg: within one 64 KB GSO packet with headers
_SEG = struct.Struct("=H")  # UDP_SEGMENT: the segment size we send
_GRO = struct.Struct("=i")  # UDP_GRO: the segment size of a run we read
_GRO_CMSG = socket.CMSG_SPACE(4)


class BindError(OSError):
    """A UDP port could not be bound; the message says which and what to do."""


def _norm(addr: tuple) -> Address:
    host = addr[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return (host.split("%", 1)[0], addr[1])


def _tune(sock: socket.socket) -> None:
    for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # SO_RCVBUFFORCE / SO_SNDBUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, BUFFER_BYTES)
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, BUFFER_BYTES)
            except OSError:
                pass


def _mark(sock: socket.socket, mark: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)


@dataclass
class UdpStats:
    received: int = 0
    sent: int = 0
    send_errors: int = 0
    send_would_block: int = 0
    slices_used: int = 0  # wake-ups that ended because DRAIN_SLICE ran out
    last_error: str = ""
    errors_by_kind: dict[str, int] = field(default_factory=dict)


class UdpEndpoints:
    """Owns the node's UDP sockets. ``on_datagram(data, src, local)`` is called for each datagram read,
    then ``on_batch()`` once per drained batch (the driver flushes there)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_datagram: Callable[[bytes, Address, Address], None], on_batch: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.on_datagram = on_datagram
        self.on_batch = on_batch
        self.socks: list[tuple[socket.socket, Address]] = []
        self.probe_sockets: list[Address] = []  # second sockets for NAT tests: never advertised
        # chosen at bind time, so a send does one dict lookup: the socket bound to each local address, and
        # per family (is IPv6) the first main socket, for datagrams whose local socket is not given
        self._by_local: dict[Address, socket.socket] = {}
        self._default: dict[bool, socket.socket] = {}
        self.stats = UdpStats()
        self._buf = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buf)
        self._norms: dict[tuple, Address] = {}  # source addresses as read -> normalised (``_norm``)
        # a GRO run at once (datagrams, src, local); None: one ``on_datagram`` call per datagram
        self.on_run: Callable[[list[bytes], Address, Address], None] | None = None
        self.gso = True  # until the kernel refuses UDP_SEGMENT
        self.mark = 0  # SO_MARK on every socket (set_mark): exit nodes' policy routing lets marked datagrams by

    def bind(self, host: str, port: int, probe: bool = False) -> Address:
        """Bind a UDP socket. ``probe``: a second socket the core uses only for NAT filtering tests (an
        ephemeral port; not one of ``addresses``)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            _tune(sock)
            sock.bind((host, port))
            if not probe:
                try:
                    sock.setsockopt(SOL_UDP, UDP_GRO, 1)
                except OSError:
                    pass  # no GRO here: one datagram per read, as before
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                raise BindError(e.errno, f"UDP port {port} on {host} is already in use: another omerta-meshd or program holds it; "
                                "choose another port with --port") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise BindError(e.errno, f"cannot bind UDP {host}:{port}: no such local address; check the listen address") from None
            if e.errno == errno.EAFNOSUPPORT:
                raise BindError(e.errno, f"cannot bind UDP {host}:{port}: address family not supported (IPv6 disabled?)") from None
            raise BindError(e.errno, f"cannot bind UDP {host}:{port}: {e.strerror}") from None
        local = _norm(sock.getsockname())
        if self.mark:
            _mark(sock, self.mark)
        self.socks.append((sock, local))
        self._by_local[local] = sock
        if probe:
            self.probe_sockets.append(local)
        else:
            self._default.setdefault(":" in local[0], sock)
        self.loop.add_reader(sock.fileno(), self._drain, sock, local)
        return local

    def set_mark(self, mark: int) -> str | None:
        """SO_MARK ``mark`` on every socket, now and bound later; None, or why not (it needs CAP_NET_ADMIN)."""
        self.mark = mark
        try:
            for sock, _ in self.socks:
                _mark(sock, mark)
        except OSError as e:
            return f"cannot mark the UDP sockets (SO_MARK): {e.strerror}; run omerta-meshd with CAP_NET_ADMIN"
        return None

    @property
    def addresses(self) -> list[Address]:
        return [a for _, a in self.socks if a not in self.probe_sockets]

    def _drain(self, sock: socket.socket, local: Address) -> None:
        buf, view, norms = self._buf, self._view, self._norms
        on = self.on_datagram
        n = 0
        until = time.monotonic() + DRAIN_SLICE
        while n < DRAIN_BATCH:
            try:
                size, anc, _flags, addr = sock.recvmsg_into([buf], _GRO_CMSG)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # ICMP errors surface here (ECONNREFUSED); nothing to read
                self._error(e)
                break
            src = norms.get(addr)
            if src is None:  # (the normalised form, remembered: string work per datagram costs, cold)
                if len(norms) >= 1024:
                    norms.clear()
                src = norms[addr] = _norm(addr)
            seg = _GRO.unpack_from(anc[0][2])[0] if anc and anc[0][1] == UDP_GRO and len(anc[0][2]) >= 4 else 0
            if 0 < seg < size:  # a GRO run: datagrams of ``seg`` bytes (the last may be shorter)
                run = bytes(view[:size])
                datagrams = [run[off : off + seg] for off in range(0, size, seg)]
                n += len(datagrams)
                if self.on_run is not None:
                    self.on_run(datagrams, src, local)
                else:
                    for d in datagrams:
                        on(d, src, local)
            else:
                n += 1
                on(bytes(view[:size]), src, local)  # (one copy: a bytearray slice would be a second)
            if time.monotonic() >= until:
                self.stats.slices_used += 1
                break
        self.stats.received += n
        if n:
            self.on_batch()

    def _sock_for(self, dst: Address, local: Address | None) -> socket.socket | None:
        v6 = ":" in dst[0]
        if local is not None and (":" in local[0]) == v6:
            sock = self._by_local.get(local)
            if sock is not None:
                return sock
        return self._default.get(v6)

    def sendto(self, data: bytes, dst: Address, local: Address | None) -> bool:
        sock = self._sock_for(dst, local)
        if sock is None:
            self._error(OSError(errno.EAFNOSUPPORT, f"no socket for {dst[0]}"))
            return False
        try:
            sock.sendto(data, dst)
        except BlockingIOError:
            self.stats.send_would_block += 1
            return False
        except OSError as e:
            self._error(e)
            return False
        self.stats.sent += 1
        return True

    def send_batch(self, batch: list[bytes], dst: Address, local: Address | None) -> None:
        """Datagrams for one destination, all of one size but the last: one ``sendmsg`` with UDP GSO per
        ``GSO_MAX_SEGMENTS``; one by one where the kernel has no UDP GSO."""
        if not self.gso or len(batch) < 2:
            for d in batch:
                self.sendto(d, dst, local)
            return
        sock = self._sock_for(dst, local)
        if sock is None:
            self._error(OSError(errno.EAFNOSUPPORT, f"no socket for {dst[0]}"))
            return
        size = len(batch[0])
        step = max(1, min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // size))
        for i in range(0, len(batch), step):
            part = batch[i : i + step]
            try:
                sock.sendmsg([b"".join(part)], [(SOL_UDP, UDP_SEGMENT, _SEG.pack(size))], 0, dst)
            except BlockingIOError:
                self.stats.send_would_block += 1
                continue
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.ENOPROTOOPT, errno.EIO, errno.EOPNOTSUPP) and self.gso:
                    self.gso = False  # no UDP GSO here (or not to this destination): one by one from now on
                    for d in batch[i:]:
                        self.sendto(d, dst, local)
                    return
                self._error(e)
                continue
            self.stats.sent += len(part)

    def _error(self, e: OSError) -> None:
        self.stats.send_errors += 1
        self.stats.last_error = str(e)
        k = errno.errorcode.get(e.errno or 0, "other")
        self.stats.errors_by_kind[k] = self.stats.errors_by_kind.get(k, 0) + 1

    def close(self) -> None:
        for sock, _ in self.socks:
            try:
                self.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):  # pragma: no cover - already closed
                pass
            sock.close()
        self.socks.clear()
        self.probe_sockets.clear()
        self._by_local.clear()
        self._default.clear()
