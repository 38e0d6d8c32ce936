"""Mesh DNS in the daemon: a responder on each device's mesh IPs (UDP and TCP port 53), registered with
systemd-resolved per link; the answers themselves are ``vnet/dnsanswer.py`` (sans-I/O).

* **On or off.** ``[dns] enabled = "auto"`` (the default) runs it whenever TUN is on; ``true`` too (and says why
  not when TUN is off); ``false`` never. Every ``REFRESH`` seconds the listeners follow the devices and their
  addresses (joined, left, readdressed). Sockets are bound with ``IP_FREEBIND`` (a fresh IPv6 address may still
  be tentative). A bind that fails (not root and no CAP_NET_BIND_SERVICE, port 53 of that address taken) is
  shown in status and ``omertactl dns`` with its cause; the rest keeps running, and the bind is retried.
* **Names** are rebuilt at most every ``REFRESH`` seconds from the members' mesh IPs (``VirtualNetworks.members``)
  and the names peers are shown as (``names.py``: signed records' names, local ``[names]``, ``#id`` suffixes).
* **Bad input** never raises: malformed queries get FORMERR (counted ``dns.formerr``) or are dropped
  (``dns.drop.short``, ``dns.drop.response``, ``dns.drop.oversized``); more than 100 queries a second from one
  source (burst 200) or 1,000 from everyone are dropped (``dns.drop.rate_limited``); at most ``TCP_MAX`` TCP
  clients at once (``dns.drop.tcp_busy``), each idle at most ``TCP_IDLE`` seconds.
* **systemd-resolved** (``Resolved``, best effort, over the system bus): per device ``SetLinkDNS`` (its mesh IPs),
  ``SetLinkDomains`` (``~mesh`` to route every ``.mesh`` name here, ``NETWORK.mesh`` as a search domain, so
  ``ping bravo`` works), ``SetLinkDefaultRoute(false)`` (other names never come here), ``RevertLink`` on leave
  and stop. /etc/resolv.conf is never touched. Absent (no bus, no resolved, or the daemon in another network
  namespace than resolved), it is logged once and ``omertactl dns`` prints what to configure by hand.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from ..io.freebind import bound
from ..vnet.dnsanswer import Dropped, Member, NameTable, RateLimit, answer
from . import refresher
from . import schema as s
from .config import DnsConfig

if TYPE_CHECKING:
    from .api import DaemonAPI
    from .vnet import VirtualNetworks

log = logging.getLogger("omerta_mesh.dns")
PORT = 53
REFRESH = 1.0  # seconds between looks at the devices and rebuilds of the name table
TCP_MAX = 16
TCP_IDLE = 10.0


@dataclass
class Listener:
    network: str  # network id text
    device: str
    addr: str
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: "MeshDns") -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        out = self.owner.handle(data, addr[0], tcp=False)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        self.owner.counters.inc("dns.udp_errors")


class MeshDns:
    def __init__(self, api: "DaemonAPI", vnet: "VirtualNetworks", config: DnsConfig) -> None:
        self.api, self.vnet, self.config = api, vnet, config
        self.counters = vnet.node.core.counters
        self.limit = RateLimit()
        self.reason: str | None = None  # why DNS is off altogether (None: on)
        self.listeners: dict[tuple[str, str], Listener] = {}  # (device, address) -> listener
        self.errors: dict[tuple[str, str], str] = {}  # (device, address) -> why it has no listener
        self.resolved = Resolved()
        self._table: NameTable = NameTable()
        self._domains: dict[str, str] = {}
        self._table_at = -1e9
        self._registered: dict[str, tuple[str, ...]] = {}  # device -> the addresses resolved was given
        self._tcp_open = 0
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.config.enabled is False:
            self.reason = 'DNS is off: [dns] enabled = false in the configuration; set it to "auto" to answer NAME.NETWORK.mesh'
        elif not self.vnet.enabled:
            self.reason = f"DNS is off: it answers on the mesh devices, and {self.vnet.reason}"
        if self.reason is not None:
            if self.config.enabled is True:
                log.warning("%s", self.reason)
            return
        await self.refresh()
        self._task = refresher.start(REFRESH, self.refresh, log, "mesh DNS")

    async def close(self) -> None:
        await refresher.stop(self._task)
        for key in list(self.listeners):
            self._close(key)
        for dev in list(self._registered):
            await self.resolved.revert(dev)
        self._registered.clear()
        await self.resolved.close()

    async def refresh(self) -> None:
        """Listeners for every device address (new ones opened, gone ones closed); resolved told of changes."""
        want = self.vnet.device_addresses()
        for key in [k for k in self.listeners if k not in want]:
            self._close(key)
        self.errors = {k: v for k, v in self.errors.items() if k in want}
        for key, net in want.items():
            if key not in self.listeners:
                await self._open(key, net)
        self.table()
        serving: dict[str, tuple[str, ...]] = {}
        for dev, addr in sorted(self.listeners):
            serving[dev] = (*serving.get(dev, ()), addr)
        for dev in [d for d in self._registered if d not in serving]:
            await self.resolved.revert(dev)
            del self._registered[dev]
        for dev, addrs in serving.items():
            if self._registered.get(dev) != addrs:
                net = self.listeners[(dev, addrs[0])].network
                await self.resolved.register(dev, addrs, self._domains.get(net, ""))
                self._registered[dev] = addrs

    async def _open(self, key: tuple[str, str], network: str) -> None:
        dev, addr = key
        loop = asyncio.get_running_loop()
        try:
            udp_sock, tcp_sock = bound(addr, socket.SOCK_DGRAM, PORT), bound(addr, socket.SOCK_STREAM, PORT)
        except OSError as e:
            why = _bind_error(addr, e)
            if self.errors.get(key) != why:
                log.warning("%s", why)
            self.errors[key] = why
            return
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp_sock)
        server = await asyncio.start_server(self._tcp, sock=tcp_sock, limit=2 + 65535)
        self.listeners[key] = Listener(network, dev, addr, transport, server)
        self.errors.pop(key, None)
        log.info("mesh DNS answers on %s port %d (%s)", addr, PORT, dev)

    def _close(self, key: tuple[str, str]) -> None:
        li = self.listeners.pop(key)
        li.udp.close()
        li.tcp.close()

    # ------------------------------------------------------------------ answering
    def table(self) -> NameTable:
        now = time.monotonic()
        if now - self._table_at >= REFRESH:
            members, prefixes = self.vnet.members()
            me, names = self.vnet.node.core.node_id, self.api.directory()
            self._table = NameTable.build(
                [Member(str(node), self.api.name if node == me else names.name_of(node), str(net.id), net.name, v4, v6)
                 for net, node, v4, v6 in members], prefixes)
            self._domains = {n: d.to_text(omit_final_dot=True) for n, d in self._table.domains.items()}
            self._table_at = now
        return self._table

    def handle(self, data: bytes, source: str, tcp: bool) -> bytes | None:
        """One query from ``source``: the response's bytes, or None (dropped and counted)."""
        c = self.counters
        c.inc("dns.queries")
        if not self.limit.allow(source, time.monotonic()):
            c.inc("dns.drop.rate_limited")
            return None
        out = answer(data, self.table(), tcp)
        if isinstance(out, Dropped):
            c.inc(f"dns.drop.{out.reason}")
            log.debug("dns drop reason=%s source=%s size=%d", out.reason, source, len(data))
            return None
        c.inc(f"dns.{out.outcome}")
        return out.wire

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tcp_open >= TCP_MAX:
            self.counters.inc("dns.drop.tcp_busy")
            writer.close()
            return
        self._tcp_open += 1
        source = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            while True:
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TCP_IDLE), "big")
                out = self.handle(await asyncio.wait_for(reader.readexactly(size), TCP_IDLE), source, tcp=True)
                if out is None:
                    break
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            self._tcp_open -= 1
            writer.close()

    # ------------------------------------------------------------------ read model
    def feature(self) -> s.FeatureInfo:
        enabled = self.config.enabled is not False
        if self.reason is not None:
            return s.FeatureInfo(enabled, False, self.reason)
        parts = [f"{li.addr} on {li.device}" for li in self.listeners.values()] + list(self.errors.values())
        detail = ("; ".join(parts) or "on: no devices yet") + f"; systemd-resolved: {self.resolved.state()}"
        return s.FeatureInfo(enabled, bool(self.listeners), detail)

    def info(self) -> s.DnsResult:
        self.table()
        servers: dict[str, s.DnsServer] = {}
        for n in list(self.vnet.nets.values()):
            if n.tun is None:
                continue
            net = str(n.network.id)
            addrs = [li.addr for li in self.listeners.values() if li.device == n.device]
            errs = [e for (dev, _), e in self.errors.items() if dev == n.device]
            servers[n.device] = s.DnsServer(net, n.network.name, n.device, self._domains.get(net, ""), addrs,
                                            "; ".join(errs) or None)
        configure: list[str] = []  # (nothing to do by hand once resolved has every device)
        if not (self.resolved.state() == "registered" and set(self._registered) >= {d for d, _ in self.listeners}):
            for sv in servers.values():
                if sv.addresses:
                    configure += [f"resolvectl dns {sv.device} {' '.join(sv.addresses)}",
                                  f"resolvectl domain {sv.device} '~mesh' {sv.domain}"]
            configure += [f"server=/mesh/{sv.addresses[0]}  # dnsmasq" for sv in servers.values() if sv.addresses][:1]
        return s.DnsResult(self.feature(), self.resolved.state(), list(servers.values()), configure)


def _bind_error(addr: str, e: OSError) -> str:
    if e.errno == errno.EACCES:
        return (f"mesh DNS cannot listen on {addr} port {PORT}: binding port 53 needs root or CAP_NET_BIND_SERVICE "
                "(run the daemon as root, as its systemd unit does)")
    if e.errno == errno.EADDRINUSE:
        return (f"mesh DNS cannot listen on {addr} port {PORT}: the port is taken (another DNS server listening on "
                "all addresses? bind it to its own addresses, e.g. dnsmasq's bind-interfaces)")
    return f"mesh DNS cannot listen on {addr} port {PORT}: {e.strerror or e}"


class Resolved:
    """systemd-resolved's per-link DNS settings over the system bus; every failure is logged once and kept in
    ``reason`` (``omertactl dns`` then prints what to configure by hand)."""

    NAME, PATH, IFACE = "org.freedesktop.resolve1", "/org/freedesktop/resolve1", "org.freedesktop.resolve1.Manager"

    def __init__(self) -> None:
        self.bus: MessageBus | None = None
        self.reason: str | None = None
        self.done: set[str] = set()  # devices registered

    def state(self) -> str:
        return "registered" if self.done and self.reason is None else (self.reason or "nothing registered yet")

    async def register(self, device: str, addrs: tuple[str, ...], domain: str) -> None:
        try:
            index = socket.if_nametoindex(device)
        except OSError:
            return
        servers = [[socket.AF_INET6 if ":" in a else socket.AF_INET, ipaddress.ip_address(a).packed] for a in addrs]
        calls: list[tuple[str, str, list[Any]]] = [("SetLinkDNS", "ia(iay)", [index, servers]),
                 ("SetLinkDomains", "ia(sb)", [index, [["mesh", True], *([[domain, False]] if domain else [])]]),
                 ("SetLinkDefaultRoute", "ib", [index, False])]
        for member, sig, body in calls:
            if not await self._call(member, sig, body, optional=member == "SetLinkDefaultRoute"):
                return
        self.done.add(device)
        self.reason = None
        log.info("systemd-resolved: .mesh names go to %s on %s (search domain %s)", ", ".join(addrs), device, domain)

    async def revert(self, device: str) -> None:
        if device in self.done:
            self.done.discard(device)
            try:
                await self._call("RevertLink", "i", [socket.if_nametoindex(device)], optional=True)
            except OSError:
                pass  # the device is gone, and resolved forgot it with it

    async def close(self) -> None:
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    async def _call(self, member: str, sig: str, body: list[Any], optional: bool = False) -> bool:
        why = _other_netns()
        if why is None and self.bus is None:
            try:
                self.bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            except Exception as e:  # no bus socket, refused, auth: all mean "no resolved to tell"
                why = f"no system bus ({e})"
        if why is None and self.bus is not None:
            reply = await self.bus.call(Message(destination=self.NAME, path=self.PATH, interface=self.IFACE,
                                                member=member, signature=sig, body=body))
            if reply is not None and reply.message_type != MessageType.ERROR:
                return True
            if optional:
                return True
            why = f"{member} failed: {reply.error_name if reply else 'no reply'} {reply.body if reply else ''}".strip()
        why = f"not registered ({why}); configure it by hand: `omertactl dns` prints how"
        if self.reason != why:
            log.warning("systemd-resolved: %s", why)
        self.reason = why
        return False


def _other_netns() -> str | None:
    """Why resolved cannot use our links (we run in another network namespace than PID 1), or None."""
    try:
        if os.readlink("/proc/self/ns/net") != os.readlink("/proc/1/ns/net"):
            return "the daemon runs in another network namespace than systemd-resolved, which would not see its devices"
    except OSError:
        pass
    return None
