"""The virtual network in the daemon: one TUN device per network, mesh IPs, the per-packet data plane.

For every network the node is in, ``VirtualNetworks``:

* claims our mesh IPs (``vnet/routes.py`` ``own_claim``: a configured static address, else the one we held
  last, persisted in ``addresses.json``, else the derived one) and hands the claim to the core, which signs it
  into our peer record;
* settles the address assignment from every record the node holds (``AddressPlan.assign``: the same on every
  node) and rebuilds the routing table when a record changed (checked every ``REFRESH`` seconds); when the
  assignment moves our own address (another member won it), the device's address and our claim follow;
* with TUN on, opens ``om-NAME`` (``io/tun.py``, without virtio-net headers: one packet per read) and
  configures it (``io/tundev.py``: our addresses, the ULA /48 route, MTU, marker); the driver's loop reads it
  with ``add_reader``, draining until EAGAIN (at most ``READ_BATCH`` packets per wake-up), and routes each
  packet: to its owner with ``Mesh.send_ip`` (one packet, one frame, one datagram), an ICMP unreachable from
  the gateway back into the device, or a counted drop. Packets the core received come back through the
  driver's ``ip_sink``; each must carry the sender's assigned address as its source (anti-spoofing,
  ``drop.ip_spoofed``) before it is written to the device.
* TCP SYNs and SYN-ACKs crossing the device either way get their MSS lowered to what the path to the peer
  carries (the smaller of the device MTU and the path MTU measured by ``core/peers/pmtu.py``), so a host
  behind a member (MTU 1500) or a narrow or relayed path never leads to segments the tunnel must drop
  (``_clamp``, ``ip.mss_clamped``); other packets pay for one look at the protocol and TCP flags bytes.

TUN off: ``[vnet] enabled = false``, or no CAP_NET_ADMIN / no ``/dev/net/tun`` with ``"auto"`` (or ``true``).
Then the daemon keeps running without devices; ``reason`` says why and how to fix it (shown in status,
logged once). Addresses are still claimed and shown, so that members with TUN can route to us once we have it.

Devices go away with their file descriptor (never persistent): on leave and on stop we close the fd and delete
the link; after a crash, ``tundev.remove_stale`` at start deletes links whose marker names a dead process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from ..core.errors import DropReason, WireError
from ..core.express import Lane
from ..core.ids import NetworkId, NodeId
from ..core.ipframes import Written
from ..core.ipseg import NEEDS_CSUM, VNET, VNET_LEN, SegmentRun, l4_header_end
from ..core.network import Network
from ..core.views import ip_mtu
from ..core.wire.records import AddrClaim
from ..io import tundev
from ..io.tun import MAX_FRAME, Tun, TunError, open_tun, tun_unavailable
from ..node import MeshNode
from ..vnet.addressing import AddressPlan
from ..vnet.packet import PROTO_TCP, clamp_mss, is_tcp_pure_ack, is_tcp_syn, mss_for, too_big
from ..vnet.routes import Drop, Forward, Reply, Routes, assignment_from_records, own_claim
from ..vnet.segments import rebuild_run
from . import refresher
from .config import VnetConfig

log = logging.getLogger("omerta_mesh.vnet")
REFRESH = 0.5  # seconds between checks of the records (assignment) and of the networks joined or left
READ_BATCH = 64  # frames (up to 64 KB each) read from one device per wake-up before the loop serves others
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class NetVnet:
    """One network's virtual network state."""

    network: Network
    plan: AddressPlan
    device: str
    routes: Routes
    key: tuple = ()  # fingerprint of the records the routes were built from
    tun: Tun | None = None
    # the express lanes (core/express.py) by a member's packed mesh IP, cleared whenever the routes change
    lanes: dict[bytes, Lane] = field(default_factory=dict)
    v4: ipaddress.IPv4Address | None = None  # our assigned addresses
    v6: ipaddress.IPv6Address | None = None
    error: str | None = None  # why this network has no device, or no IPv6 on it (while TUN is on in general)


class VirtualNetworks:
    def __init__(self, node: MeshNode, config: VnetConfig) -> None:
        self.node = node
        self.config = config
        self.nets: dict[bytes, NetVnet] = {}
        self.reason: str | None = None  # why TUN is off (None: on)
        self.stale_removed: list[str] = []
        self._task: asyncio.Task | None = None
        self._closing = False
        self._lock = asyncio.Lock()  # one reconcile at a time (the refresher and API calls)
        # Routes options per network, merged from each source (meshd/exitnode.py: the exit we use, whether we offer;
        # meshd/subnetroutes.py: subnet routes in force, the prefixes we advertise)
        self.route_sources: list[Callable[[NetworkId], dict]] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def enabled(self) -> bool:
        return self.reason is None

    async def start(self) -> None:
        want = self.config.enabled
        if want is False:
            self.reason = ('TUN is off: [vnet] enabled = false in the configuration; set it to "auto" or true '
                           "to get a device per network")
        else:
            why = tun_unavailable()
            if why is not None:
                self.reason = f"TUN is off: {why}"
        if self.reason is not None:
            log.warning("%s; channels, the CLI and everything else keep working", self.reason)
        else:
            try:
                self.stale_removed = await tundev.aremove_stale()
            except OSError as e:
                log.warning("could not look for stale devices: %s", e)
            if self.stale_removed:
                log.info("removed stale devices of a crashed run: %s", ", ".join(self.stale_removed))
        assert self.node.driver is not None
        self.node.driver.ip_sink = self._write
        self.node.driver.ip_one = self._write_one
        await self.reconcile()
        self._task = refresher.start(REFRESH, self.reconcile, log, "virtual network")

    async def close(self) -> None:
        self._closing = True
        await refresher.stop(self._task)
        if self.node.driver is not None:
            self.node.driver.ip_sink = self.node.driver.ip_one = None
        async with self._lock:
            for raw in list(self.nets):
                await self._remove(raw)

    async def reconcile(self) -> None:
        """Networks joined or left since the last call; records changed (assignment)."""
        async with self._lock:
            if not self._closing:
                await self._reconcile()

    async def _reconcile(self) -> None:
        mesh = self.node.core
        for raw in [r for r in self.nets if r not in mesh.networks]:
            await self._remove(raw)
        for raw, net in list(mesh.networks.items()):
            if raw not in self.nets:
                await self._add(net)
        for n in list(self.nets.values()):
            await self._refresh(n)

    # ------------------------------------------------------------------ per network
    def _kept(self) -> dict[str, tuple[str | None, str | None]]:
        return self.node.store.load_addresses() if self.node.store is not None else {}

    async def _add(self, net: Network) -> None:
        mesh = self.node.core
        plan = AddressPlan.for_network(net.id)
        claim = own_claim(plan, mesh.node_id, self._kept().get(str(net.id), (None, None)),
                          self.config.static_for(net.name))
        self._claim(net.id, claim)
        device = self.config.device_for(net.name) or tundev.device_name(net.name or str(net.id)[:8])
        n = NetVnet(net, plan, device, Routes(plan, assignment_from_records(plan, mesh.records(net.id)), mesh.node_id,
                                              **self._route_options(net.id)))
        self.nets[net.id.raw] = n
        self._prefixes()
        n.v4, n.v6 = n.routes.addresses(mesh.node_id)
        self._persist()
        if self.enabled:
            await self._open(n)
        self.node._flush()

    async def _open(self, n: NetVnet) -> None:
        try:
            n.tun = open_tun(n.device, vnet_hdr=True)  # TSO/USO super-segments (core/ipseg.py)
            await self._configure(n)
        except (TunError, OSError) as e:
            n.error = str(e)
            log.error("network %s: no device %s: %s", n.network.name or n.network.id, n.device, e)
            if n.tun is not None:
                n.tun.close()
                n.tun = None
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(n.tun.fileno(), self._readable, n)
        self.node.core.ip.open(n.network.id)
        log.info("network %s: device %s up with %s and %s", n.network.name or n.network.id, n.device, n.v4, n.v6)

    async def _configure(self, n: NetVnet) -> None:
        """Addresses, route, MTU on the device; without IPv6 in this kernel or namespace, IPv4 alone (said in
        status)."""
        cfg = self._device_config(n)
        n.error = None
        try:
            await tundev.aconfigure(cfg)
        except tundev.TunDevError as e:
            if cfg.v6 is None:
                raise
            await tundev.aconfigure(replace(cfg, v6=None, routes=()))
            n.error = f"IPv4 only: {e}"
            log.warning("network %s: device %s without IPv6: %s", n.network.name or n.network.id, n.device, e)

    def _device_config(self, n: NetVnet) -> tundev.DeviceConfig:
        return tundev.DeviceConfig(
            n.device,
            v4=ipaddress.IPv4Interface(f"{n.v4}/{n.plan.v4.prefixlen}") if n.v4 else None,
            v6=ipaddress.IPv6Interface(f"{n.v6}/{n.plan.v6.prefixlen}") if n.v6 else None,
            mtu=self.config.mtu, routes=(n.plan.ula,),
        )

    async def _remove(self, raw: bytes) -> None:
        n = self.nets.pop(raw, None)
        if n is None:
            return
        self._prefixes()
        self.node.core.ip.close(n.network.id)
        if n.tun is not None:
            asyncio.get_running_loop().remove_reader(n.tun.fileno())
            n.tun.close()  # the kernel deletes the device with its last fd
            n.tun = None
            try:
                await tundev.aremove(n.device)  # in case anything else still held it
            except OSError as e:
                log.warning("removing device %s: %s", n.device, e)
            log.info("network %s: device %s removed", n.network.name or n.network.id, n.device)

    def _sync(self, n: NetVnet) -> bool:
        """Rebuild the routes if a record changed; True when our own addresses moved (the caller applies it)."""
        mesh = self.node.core
        recs = mesh.records(n.network.id)
        key = tuple(sorted((r.node.raw, r.seq) for r in recs))
        if key == n.key:
            return False
        n.key = key
        n.lanes.clear()
        n.routes = Routes(n.plan, assignment_from_records(n.plan, recs), mesh.node_id, **self._route_options(n.network.id))
        return n.routes.addresses(mesh.node_id) != (n.v4, n.v6)

    def _route_options(self, network: NetworkId) -> dict:
        out: dict = {}
        for source in self.route_sources:
            out.update(source(network))
        return out

    def publish(self) -> None:
        """Our records re-signed and pushed in every network: something else they carry (an exit offer, advertised
        subnet routes: set on the core's gossip) changed. Claims stay as they are; a record only changes if its
        content does."""
        mesh = self.node.core
        for raw, net in list(mesh.networks.items()):
            self._claim(net.id, mesh.address_claims.get(raw))
        self.node._flush()

    def rebuild_routes(self) -> None:
        """Rebuild every network's routes now (the exit choice or offer changed)."""
        for n in self.nets.values():
            n.key = ()
            self._sync(n)

    async def _refresh(self, n: NetVnet) -> None:
        mesh = self.node.core
        if not self._sync(n) and n.routes.addresses(mesh.node_id) == (n.v4, n.v6):
            # our record claims what we hold (a kept address lost at start, say, is not claimed on)
            want = own_claim(n.plan, mesh.node_id, (_s(n.v4), _s(n.v6)), self.config.static_for(n.network.name))
            if mesh.address_claims.get(n.network.id.raw, want) != want:
                self._claim(n.network.id, want)
                self.node._flush()
            return
        v4, v6 = n.routes.addresses(mesh.node_id)
        log.info("network %s: our mesh IPs move from %s, %s to %s, %s (the address assignment changed)",
                 n.network.name or n.network.id, n.v4, n.v6, v4, v6)
        n.v4, n.v6 = v4, v6
        self._persist()
        self._claim(n.network.id, own_claim(n.plan, mesh.node_id, (_s(v4), _s(v6)), self.config.static_for(n.network.name)))
        self.node._flush()
        if n.tun is not None:
            try:
                await self._configure(n)
            except OSError as e:
                log.error("network %s: updating device %s: %s", n.network.name, n.device, e)

    def _claim(self, network: NetworkId, claim: AddrClaim | None) -> None:
        mesh = self.node.core
        mesh.claim_addresses(network, claim, self.node.driver.now() if self.node.driver else 0.0)

    def prefixes(self) -> list[IPNet]:
        """Every network's mesh prefixes (IPv4 and the ULA /48)."""
        return [p for n in self.nets.values() for p in (n.plan.v4, n.plan.ula)]

    def _prefixes(self) -> None:
        """Our networks' prefixes are never endpoints: set before a device (and its addresses) comes up. (The lanes
        were made with the destinations allowed before: made again.)"""
        self.node.set_mesh_prefixes(self.prefixes())
        for n in self.nets.values():
            n.lanes.clear()

    def _persist(self) -> None:
        store = self.node.store
        if store is None:
            return
        ours = {str(n.network.id): (_s(n.v4), _s(n.v6)) for n in self.nets.values()}
        # a failed save is counted and tried again later (io.store.BackgroundSaves), never raised into the loop
        store.background.save("our mesh IPs", lambda: store.save_addresses({**self._kept(), **ours}))

    # ------------------------------------------------------------------ the data plane (super-segments)
    def _readable(self, n: NetVnet) -> None:
        """The device has packets (each with its virtio-net header: one packet, or a TCP/UDP super-segment of up to
        64 KB). One packet to a member's mesh IP goes by that member's express lane when it has one that fits (sealed
        and sent here, at once: core/express.py); everything else takes the general way (``_route``). Written flat:
        a ping every 50 ms finds this cold, and every call costs then."""
        tun = n.tun
        driver = self.node.driver
        if tun is None or driver is None or driver.closed:
            return
        lanes, fd, mtu, send = n.lanes, tun.fd, self.config.mtu + VNET_LEN, driver.udp.sendto
        now = time.monotonic()  # (the core's clock: Driver.now)
        rest: list[bytes] = []
        for _ in range(READ_BATCH):
            try:
                frame = os.read(fd, MAX_FRAME)
            except BlockingIOError:
                break
            except OSError as e:
                log.warning("reading %s: %s", n.device, e)
                break
            # no super-segment, and nothing read before it waits for the general way (it would be overtaken: TCP
            # takes reordering for loss and resends)
            if not rest and frame[1] == 0 and 30 < len(frame) <= mtu and lanes:
                v4 = frame[10] >> 4 == 4
                lane = lanes.get(frame[26:30] if v4 else frame[34:50])
                # TCP: an acknowledgement alone. A SYN has its MSS clamped (``_route``); a data segment sent apart from
                # the general way's batches doubled TCP's spurious retransmissions at 1% loss (DSACKs, bench/tunnel.py)
                if lane is not None and ((frame[19] if v4 else frame[16]) != PROTO_TCP or is_tcp_pure_ack(frame, VNET_LEN)) \
                        and (data := lane.seal(frame, now)) is not None:
                    send(data, lane.ep, lane.local)
                    continue
            rest.append(frame)
        if rest:
            self._route(n, rest, now)

    def _route(self, n: NetVnet, frames: list[bytes], now: float) -> None:
        """The general way for frames read from the device: to the owner of the destination (``Mesh.send_ip``), an
        ICMP unreachable from the gateway back into the device, or a counted drop. A single packet sent to a
        member's mesh IP makes that member's express lane, when it has none or its session or path changed."""
        tun, driver = n.tun, self.node.driver
        assert tun is not None and driver is not None
        mesh = self.node.core
        counters = mesh.counters
        routes = n.routes
        net = n.network.id
        synced = slow = False
        vnet = tun.vnet_hdr
        off = VNET_LEN if vnet else 0
        mtu = self.config.mtu
        for frame in frames:
            pkt = memoryview(frame)[VNET_LEN:] if vnet else frame
            d = routes.outbound(pkt)
            if type(d) is Reply and not synced:  # a member we have not routed yet? (its record may be new)
                synced = True
                self._sync(n)
                routes = n.routes
                d = routes.outbound(pkt)
            if type(d) is Forward:
                slow = True
                if vnet and frame[1] == 0 and len(pkt) > mtu:  # one packet larger than the device MTU (raised by hand?)
                    self._too_big(n, pkt, mtu)
                    continue
                lim = ip_mtu(mesh, net, d.node)  # the peer's path carries less (core/peers/pmtu.py)
                if lim is not None and vnet and _piece_size(frame) > lim:
                    self._too_big(n, pkt, lim)
                    continue
                if (not vnet or frame[1] == 0) and is_tcp_syn(frame, off):  # (a SYN is never a super-segment)
                    frame = self._clamp(frame, off, mtu if lim is None else min(mtu, lim))
                if mesh.send_ip(net, d.node, frame, now, vnet) and vnet and frame[1] == 0:
                    key = bytes(pkt[16:20] if pkt[0] >> 4 == 4 else pkt[24:40])
                    if ((old := n.lanes.get(key)) is None or not old.current()) and routes.is_member(key):
                        if (lane := driver.lane(net, d.node, now)) is None:
                            n.lanes.pop(key, None)
                        else:
                            n.lanes[key] = lane
            elif type(d) is Reply:
                try:
                    tun.write_packet(d.packet)
                    counters.inc("ip.icmp_unreachable")
                except OSError:
                    counters.inc("ip.tun_write_failed")
            else:
                assert isinstance(d, Drop)
                counters.drop(d.reason)
        if slow:
            driver.flush()

    def _too_big(self, n: NetVnet, pkt: bytes | memoryview, mtu: int) -> None:
        """ICMP "fragmentation needed" / "packet too big" from the gateway, so the sender's kernel lowers its
        path MTU (IPv4 without DF is cut by the kernel itself and never gets here)."""
        counters = self.node.core.counters
        reply = too_big(pkt, mtu, n.plan.gateway4, n.plan.gateway6)
        counters.inc("ip.tx_too_big")
        if reply is not None and n.tun is not None:
            try:
                n.tun.write_packet(reply)
            except OSError:
                counters.inc("ip.tun_write_failed")

    def _clamp(self, frame: bytes, off: int, mtu: int) -> bytes:
        """A TCP SYN or SYN-ACK (at ``frame[off:]``, after its virtio-net header when ``off``) with its MSS
        lowered to what ``mtu`` carries: the path to the peer (its measured MTU) or the device, whichever is
        smaller, so that neither end sends segments the tunnel would drop, whatever the MTU of the host that
        opened the connection (``ip.mss_clamped``). With NEEDS_CSUM the TCP checksum field holds only the
        pseudo-header seed, which the MSS is not part of: then it is left alone."""
        buf = bytearray(frame)
        partial = off > 0 and bool(buf[0] & NEEDS_CSUM)
        if not clamp_mss(memoryview(buf)[off:], mss_for(buf[off:off + 1], mtu), partial_csum=partial):
            return frame
        self.node.core.counters.inc("ip.mss_clamped")
        return bytes(buf)

    def _write(self, packets: Sequence[tuple[NetworkId, NodeId, Written]]) -> None:
        """What the core received: a packet (per-packet IP frames), a virtio-net frame (IPSEG: a whole
        super-segment or one packet), or a run of an incomplete super-segment, rebuilt here. A TCP SYN or
        SYN-ACK gets its MSS clamped to our path to the sender (``_clamp``) before the local stack sees it."""
        mesh = self.node.core
        counters = mesh.counters
        mtu = self.config.mtu
        for net, node, got in packets:
            n = self.nets.get(net.raw)
            if n is None or n.tun is None:
                counters.drop(DropReason.IP_UNROUTED)
                continue
            if isinstance(got, SegmentRun):
                try:
                    got = rebuild_run(got)
                except WireError as e:
                    counters.drop(e.reason)
                    continue
                counters.inc("ip.rx_runs")
            # an IPSEG frame starts with its virtio-net header; a per-packet IP frame is a bare packet
            framed = len(got) > VNET_LEN and got[VNET_LEN] >> 4 in (4, 6) and got[0] in (0, 1)
            pkt = memoryview(got)[VNET_LEN:] if framed else got
            bad = n.routes.inbound_ok(node, pkt)
            if bad is not None:
                counters.drop(bad)
                continue
            off = VNET_LEN if framed else 0
            if (not framed or got[1] == 0) and is_tcp_syn(got, off):
                lim = ip_mtu(mesh, net, node)
                got = self._clamp(bytes(got), off, mtu if lim is None else min(mtu, lim))
                pkt = memoryview(got)[off:]
            try:
                if framed and n.tun.vnet_hdr:
                    n.tun.write(got)
                else:
                    n.tun.write_packet(pkt)
                counters.inc("ip.rx_packets")
            except OSError:
                counters.inc("ip.tun_write_failed")

    def _write_one(self, net: NetworkId, node: NodeId, frame: bytes) -> None:
        """One virtio-net frame (a packet, no super-segment) the express lane opened, written at once in the plain
        case (``Routes.plain``: from the member's own mesh IP to ours) when it is no TCP SYN; anything else goes to
        ``_write``, which judges it (and clamps a SYN's MSS)."""
        n = self.nets.get(net.raw)
        if n is not None and n.tun is not None and n.tun.vnet_hdr and frame[0] < 2 and not frame[1] \
                and n.routes.plain(node, frame, VNET_LEN) \
                and ((frame[19] if frame[10] == 0x45 else frame[16]) != PROTO_TCP or not is_tcp_syn(frame, VNET_LEN)):
            try:
                os.write(n.tun.fd, frame)
                self.node.core.counters.inc("ip.rx_packets")
            except OSError:
                self.node.core.counters.inc("ip.tun_write_failed")
            return
        self._write(((net, node, frame),))

    # ------------------------------------------------------------------ read model
    def addresses(self, network: NetworkId, node: NodeId) -> tuple[str | None, str | None]:
        n = self.nets.get(network.raw)
        if n is None:
            return None, None
        self._sync(n)
        v4, v6 = (n.v4, n.v6) if node == self.node.core.node_id else n.routes.addresses(node)
        return _s(v4), _s(v6)

    def addresses_of(self, node: NodeId, network: NetworkId | None = None) -> list[dict]:
        """``node``'s mesh IPs in each of our networks it is a member of (ours: in every network)."""
        me = node == self.node.core.node_id
        out = []
        for n in self.nets.values():
            if network is not None and n.network.id != network:
                continue
            self._sync(n)  # answer with the records held now
            v4, v6 = (n.v4, n.v6) if me else n.routes.addresses(node)  # ours: what the device has
            if v4 is None and v6 is None and not me:
                continue
            out.append({"network": str(n.network.id), "network_name": n.network.name, "ipv4": _s(v4), "ipv6": _s(v6),
                        "device": n.device if me and n.tun is not None else None, "subnet4": str(n.plan.v4),
                        "subnet6": str(n.plan.ula)})
        return out

    def owner_of(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[NodeId, NetworkId] | None:
        """The member whose mesh IP ``addr`` is, and in which network (None: nobody's; ours counts)."""
        for n in self.nets.values():
            self._sync(n)
            node = n.routes.owner(addr)
            if node is not None:
                return node, n.network.id
        return None

    def members(self) -> tuple[list[tuple[Network, NodeId, IPAddr | None, IPAddr | None]], list[IPNet]]:
        """Every member of our networks with its mesh IPs (ours: the device's), and the networks' prefixes (DNS)."""
        out: list[tuple[Network, NodeId, IPAddr | None, IPAddr | None]] = []
        me = self.node.core.node_id
        for n in list(self.nets.values()):
            self._sync(n)
            a = n.routes.assignment
            out += [(n.network, node, *((n.v4, n.v6) if node == me else n.routes.addresses(node)))
                    for node in sorted({*a.v4, *a.v6, me})]
        return out, self.prefixes()

    def device_of(self, network: NetworkId) -> str | None:
        n = self.nets.get(network.raw)
        return n.device if n is not None and n.tun is not None else None

    def device_addresses(self) -> dict[tuple[str, str], str]:
        """Our mesh IPs on the devices that are up, as (device, address) -> network id (what the gate and DNS serve)."""
        return {(n.device, str(a)): str(n.network.id) for n in list(self.nets.values()) if n.tun is not None
                for a in (n.v4, n.v6) if a is not None}


def _piece_size(frame: bytes) -> int:
    """The largest IP packet one IPSEG fragment of this TUN frame carries (a super-segment's headers and one
    ``gso_size`` piece; the whole packet otherwise)."""
    flags, gso, _hl, size, start, _off = VNET.unpack_from(frame)
    if gso == 0 or not size:
        return len(frame) - VNET_LEN
    try:
        return l4_header_end(frame) - VNET_LEN + size
    except WireError:
        return len(frame) - VNET_LEN


def _s(a: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> str | None:
    return None if a is None else str(a)
