"""UDP ASSOCIATE (RFC 1928 section 7) for mesh destinations, carried by the virtual network.

Mesh streams carry bytes to TCP ports only, but where this node has a TUN for a network (``meshd/vnet.py``), UDP
to a member's mesh IP already crosses the mesh through the kernel. So the gateway relays datagrams there:

* ``UdpRelay.unavailable`` says why an association cannot be granted (no virtual network here: TUN off, or no
  network with a device yet); the gateway then keeps refusing with REP 0x07 (``socks.udp_refused``);
* ``UdpRelay.open`` binds the relay socket on the address the client's TCP connection came to (so a loopback
  gateway relays on loopback only) and two unconnected sockets, IPv4 and IPv6, that send to mesh IPs (the kernel
  routes them through the TUN, with our mesh IP as the source); its address goes into the reply;
* a datagram on the relay socket is taken only from the TCP client's address, and from the port the request named
  (if it named one; otherwise the first port heard is the client's from then on); its header is parsed by
  ``socks_wire.parse_udp``; DST may be a member's mesh IP or a name ``destination.resolve`` finds (a peer's name,
  ``NAME.NETWORK``), whose mesh IP is taken (IPv4 first) in a network that has a device; anything else is
  dropped and counted, as the TCP side refuses hosts outside the mesh;
* a datagram to the sending sockets from a member's mesh IP goes back to the client with the header naming that
  source; anything else reaching them is dropped and counted;
* the association ends when the TCP control connection closes, or after ``UdpLimits.idle`` seconds without a
  datagram either way (``socks.udp_idle``); bounds: ``per_client`` associations at once per client (its uid, or
  its login), ``rate`` datagrams a second each way (burst twice that), ``buffered`` bytes waiting in a socket.

Every drop is a counter ``socks.udp_<reason>`` (``Drop``, and the header faults ``udp_bad_header``,
``udp_fragment``); none is logged above debug. ``socks.udp_sent`` and ``socks.udp_received`` count what was
relayed each way, ``socks.udp_associations`` the associations granted, ``socks.udp_active`` those open now.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import socket
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable

from ..core.noise.cookie import TokenBucket
from . import destination
from .errors import ApiError
from .socks_wire import Fault, IPAddr, SocksError, parse_udp, udp_datagram

if TYPE_CHECKING:  # pragma: no cover
    from .api import DaemonAPI

log = logging.getLogger("omerta_mesh.meshd.socks")


@dataclass(frozen=True)
class UdpLimits:
    per_client: int = 8  # associations open at once per client (uid, or login)
    rate: float = 2000.0  # datagrams a second each way per association (burst twice that)
    idle: float = 120.0  # seconds without a datagram either way, then the association ends
    buffered: int = 1 << 20  # bytes a socket may hold unsent; datagrams beyond are dropped


class Drop(enum.Enum):
    """Why a datagram was dropped (the association stays); each value is a counter ``socks.<value>``."""

    STRANGER = "udp_stranger"  # not from the client's address and port
    NOT_MESH = "udp_not_mesh"  # DST is not a member's name or mesh IP (or is this node): no exit node
    NO_TUN = "udp_no_tun"  # DST's network has no device here
    BAD_PORT = "udp_bad_port"  # DST.PORT 0
    RATE = "udp_rate_limited"
    BUSY = "udp_busy"  # the socket's send buffer is full
    SEND_FAILED = "udp_send_failed"  # the kernel refused it (no route, ICMP unreachable came back)
    REPLY_NOT_MESH = "udp_reply_not_mesh"  # a datagram to the sending sockets not from a member's mesh IP
    NO_CLIENT = "udp_no_client"  # a reply before the client was heard from (its port unknown)


class Refused(Exception):
    """An association this client may not have now: ``fault`` is the counter, the message says why."""

    def __init__(self, fault: Fault, detail: str) -> None:
        super().__init__(detail)
        self.fault = fault


def _ip(addr: tuple) -> IPAddr:
    ip = ipaddress.ip_address(addr[0].split("%", 1)[0])
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def _queued(t: asyncio.DatagramTransport) -> int:
    """Bytes the transport holds unsent (asyncio's and uvloop's have it; the stubs do not)."""
    return t.get_write_buffer_size()  # type: ignore[attr-defined]


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple], None], on_error: Callable[[], None]) -> None:
        self.on_datagram = on_datagram
        self.on_error = on_error

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.on_error()


class UdpRelay:
    """The associations of one gateway, with their per-client counts; counts into the gateway's ``stats``."""

    def __init__(self, api: "DaemonAPI", stats: Counter[str], limits: UdpLimits = UdpLimits()) -> None:
        self.api = api
        self.stats = stats
        self.limits = limits
        self.open_by: Counter[Hashable] = Counter()
        self.active: set[Association] = set()

    def unavailable(self) -> str | None:
        """Why no association can be granted now (None: the virtual network is up for some network)."""
        vnet = self.api.vnet
        if vnet is None or not vnet.enabled:
            why = vnet.reason if vnet is not None else "the daemon runs without a virtual network"
            return f"UDP ASSOCIATE needs the virtual network (mesh streams carry TCP only): {why}"
        if not any(vnet.device_of(n.id) is not None for n in list(self.api.node.core.networks.values())):
            return "UDP ASSOCIATE needs the virtual network: no network has a device yet (join one first)"
        return None

    async def open(self, client: Hashable, control: asyncio.StreamWriter, port: int) -> "Association":
        """An association for the client of ``control`` (``port``: where it will send from, 0: not known yet)."""
        if self.open_by[client] >= self.limits.per_client:
            raise Refused(Fault.UDP_TOO_MANY, f"this client has {self.limits.per_client} UDP associations open already (the most)")
        here, peer = control.get_extra_info("sockname"), control.get_extra_info("peername")
        if not here or not peer:
            raise Refused(Fault.FAILED, "the control connection is gone")
        a = Association(self, client, peer[0], port)
        try:
            await a.bind(here[0])
        except OSError as e:
            a.close()
            raise Refused(Fault.FAILED, f"cannot open the relay's sockets: {e.strerror or e}") from None
        self.open_by[client] += 1
        self.active.add(a)
        self.stats["udp_associations"] += 1
        return a

    def count(self, why: Drop | str) -> None:
        self.stats[why if isinstance(why, str) else why.value] += 1

    def closed(self, a: "Association") -> None:
        if a in self.active:
            self.active.discard(a)
            self.open_by[a.client] -= 1
            if self.open_by[a.client] <= 0:
                del self.open_by[a.client]

    def target(self, host: str) -> IPAddr | Drop:
        """The mesh IPs (IPv4 first) ``host`` stands for in networks with a device here, or why none."""
        api, vnet = self.api, self.api.vnet
        assert vnet is not None
        try:
            ips: list[IPAddr] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                node, network = destination.resolve(api, host)
            except ApiError:
                return Drop.NOT_MESH
            found = vnet.addresses_of(node, network)
            ips = [ipaddress.ip_address(a[f]) for f in ("ipv4", "ipv6") for a in found if a[f]]
        why = Drop.NOT_MESH
        for ip in ips:
            hit = vnet.owner_of(ip)
            if hit is None or hit[0] == api.node.node_id:
                continue
            if vnet.device_of(hit[1]) is None:
                why = Drop.NO_TUN
                continue
            return ip
        return why


class Association:
    """One client's relay: its sockets, the client's address, the buckets and the idle clock."""

    def __init__(self, relay: UdpRelay, client: Hashable, client_host: str, port: int) -> None:
        self.relay = relay
        self.client = client
        self.client_host = client_host  # as the control connection's socket shows it (what the relay socket sends to)
        self.client_ip = _ip((client_host,))
        self.client_port = port or None  # None: the first datagram's port becomes the client's
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        lim = relay.limits
        self.out_bucket, self.in_bucket = TokenBucket(lim.rate, 2 * lim.rate), TokenBucket(lim.rate, 2 * lim.rate)
        self.front: asyncio.DatagramTransport | None = None  # the relay socket, facing the client
        self.back: dict[int, asyncio.DatagramTransport] = {}  # family -> the socket facing the mesh
        self.bound: tuple[IPAddr, int] | None = None

    async def bind(self, host: str) -> None:
        self.front, _ = await self.loop.create_datagram_endpoint(
            lambda: _Side(self._from_client, lambda: None), local_addr=(host, 0))
        self.bound = (_ip(self.front.get_extra_info("sockname")), self.front.get_extra_info("sockname")[1])
        for family, anywhere in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            try:
                self.back[family], _ = await self.loop.create_datagram_endpoint(
                    lambda: _Side(self._from_mesh, lambda: self.relay.count(Drop.SEND_FAILED)),
                    local_addr=(anywhere, 0), family=family)
            except OSError as e:  # (IPv6 off on this host: IPv4 still works)
                log.debug("UDP relay: no %s socket: %s", family.name, e)
        if not self.back:
            raise OSError("no socket to send to mesh IPs")

    async def run(self, reader: asyncio.StreamReader) -> None:
        """Until the control connection closes (what it sends is ignored) or the association is idle too long."""
        try:
            while True:
                left = self.last + self.relay.limits.idle - self.loop.time()
                if left <= 0:
                    self.relay.count("udp_idle")
                    return
                try:
                    if not await asyncio.wait_for(reader.read(4096), left):
                        return
                except asyncio.TimeoutError:
                    continue
        finally:
            self.close()

    def close(self) -> None:
        for t in (self.front, *self.back.values()):
            if t is not None:
                t.close()
        self.relay.closed(self)

    # ------------------------------------------------------------------ datagrams
    def _from_client(self, data: bytes, addr: tuple) -> None:
        relay = self.relay
        if _ip(addr) != self.client_ip or (self.client_port is not None and addr[1] != self.client_port):
            relay.count(Drop.STRANGER)
            return
        self.client_port = addr[1]
        now = self.loop.time()
        if not self.out_bucket.take(now):
            relay.count(Drop.RATE)
            return
        try:
            d = parse_udp(data)
        except SocksError as e:
            relay.count(e.fault.value)
            log.debug("UDP relay: datagram from %s dropped: %s", addr, e)
            return
        if d.port == 0:
            relay.count(Drop.BAD_PORT)
            return
        to = relay.target(d.host)
        if isinstance(to, Drop):
            relay.count(to)
            return
        back = self.back.get(socket.AF_INET if to.version == 4 else socket.AF_INET6)
        if back is None or _queued(back) > relay.limits.buffered:
            relay.count(Drop.BUSY)
            return
        back.sendto(d.data, (str(to), d.port))
        relay.stats["udp_sent"] += 1
        self.last = now

    def _from_mesh(self, data: bytes, addr: tuple) -> None:
        relay, vnet = self.relay, self.relay.api.vnet
        ip = _ip(addr)
        hit = vnet.owner_of(ip) if vnet is not None else None
        if hit is None or hit[0] == relay.api.node.node_id:
            relay.count(Drop.REPLY_NOT_MESH)
            return
        now = self.loop.time()
        if not self.in_bucket.take(now):
            relay.count(Drop.RATE)
            return
        if self.client_port is None or self.front is None:
            relay.count(Drop.NO_CLIENT)
            return
        if _queued(self.front) > relay.limits.buffered:
            relay.count(Drop.BUSY)
            return
        self.front.sendto(udp_datagram(ip, addr[1], data), (self.client_host, self.client_port))
        relay.stats["udp_received"] += 1
        self.last = now
