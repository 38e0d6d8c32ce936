"""Exit nodes in the daemon: offering Internet egress to members, and sending our default traffic to one.

``ExitNodes`` owns the exit state of this node and the kernel state it needs (docs/vnet.md, "Exit nodes"):

* **Offering** (``offer(True)``): our signed records carry the exit offer (records.py flag bit 4: IPv4, and IPv6
  when IPv6 forwarding could be turned on); forwarding is turned on (``io/forwarding.py``: put back as it was when
  the offer ends; IPv6's keeps the uplinks' router advertisements); ``table inet omerta`` gets the exit's chains
  and the sets of current members' mesh IPs, both families (``vnet/exitrules.py``: NAT66 of the ULA as well),
  updated as members come and go
  (checked every ``REFRESH`` seconds); our routes accept members' packets for outside the network
  (``Routes.offering``). Ending the offer, or stopping, deletes the exit's chains and sets (and the table when
  nothing else is in it) and signs records without the offer.
* **Using** (``use(peer)``): only a member whose signed record offers an exit (else refused and counted,
  ``exit.refused_not_offered``). Our routes send destinations outside the network to it (IPv6 ones only when it
  offers IPv6; otherwise they get ICMPv6 unreachable, never the local uplink) and accept its answers from any
  outside source; policy routing (``io/exitroute.py``) sends default IPv4 and IPv6 traffic into the device of its
  network, while the daemon's UDP sockets carry ``FWMARK`` and keep using the main table. Without
  ``allow_lan`` the LAN's prefixes go through the exit too (kept current every ``REFRESH`` seconds: a new Wi-Fi is
  a new LAN); with it they stay local. When the exit stops
  offering or leaves, the rules stay (no leak to the local uplink) and such packets get ICMP unreachable until it
  offers again or ``use(None)`` restores the routing.
* **Stale state**: at start the exit's nftables objects and our rules are deleted (a ``kill -9`` leaves them).

Both are runtime choices (not kept across restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..core.ids import NetworkId, NodeId
from ..core.wire.records import EXIT_V4, EXIT_V6
from ..io import exitroute, forwarding, nft
from ..io.tundev import DEFAULT_PREFIX as DEVICE_PREFIX
from ..vnet import exitrules
from . import refresher
from .errors import ApiError, Code

log = logging.getLogger("omerta_mesh.exit")
REFRESH = 0.5


class ExitNodes:
    def __init__(self, node: Any, vnet: Any) -> None:
        self.node = node  # MeshNode
        self.vnet = vnet  # VirtualNetworks
        self.offering = False
        self.families = 0  # what we offer: EXIT_V4 | EXIT_V6 (IPv6 when its forwarding could be turned on)
        self.using: tuple[NetworkId, NodeId] | None = None
        self.allow_lan = False  # with an exit in use: the LAN stays local (else its prefixes go by the exit too)
        self.lan: list = []  # the LAN prefixes routed through the exit now (none with allow_lan)
        self.error: str | None = None  # why the last change to kernel state failed
        self._members: frozenset | None = None  # the member set last written to nftables
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        vnet.route_sources.append(self.route_options)

    @property
    def counters(self) -> Any:
        return self.node.core.counters

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if not self.vnet.enabled:
            return
        if (why := self.node.driver.udp.set_mark(exitroute.FWMARK)) is not None:
            log.warning("%s: exit use would route our own datagrams into the tunnel", why)
            self.error = why
        await self._clean("removed a crashed run's exit state")
        self._task = refresher.start(REFRESH, self._refresh, log, "exit")

    async def close(self) -> None:
        await refresher.stop(self._task)
        if not self.vnet.enabled:
            return
        async with self._lock:
            self.using = None
            if self.offering:
                self._set_forwarding(False)
            self.offering = False
            self.lan = []
            await self._clean("removed the exit state")

    async def _clean(self, what: str) -> None:
        try:
            route = await exitroute.aclear()
            table = await self._drop_rules()
        except OSError as e:
            log.warning("cleaning exit state: %s", e)
            return
        if route or table:
            log.info("%s (%s)", what, ", ".join(x for x, y in (("policy routing", route), ("table inet omerta", table)) if y))

    async def _drop_rules(self) -> bool:
        """Delete the exit's nftables objects, and the table when it is left empty; True when it existed."""
        if nft.available() is not None or await nft.list_table("inet", exitrules.TABLE) is None:
            return False
        await nft.apply(exitrules.remove_script())
        await nft.drop_table_if_empty("inet", exitrules.TABLE)
        self._members = None
        return True

    async def _refresh(self) -> None:
        async with self._lock:
            if self.offering:
                await self._sync_members()
            if self.using is not None and not self.allow_lan:
                await self._sync_lan()

    async def _sync_lan(self) -> None:
        """The LAN rules follow the uplinks' routes (roaming to another LAN changes them)."""
        lan = await asyncio.to_thread(self._lan_now)
        if lan != self.lan:
            await asyncio.to_thread(exitroute.set_lan, lan)
            self.lan = lan
            self.counters.inc("exit.lan_updates")

    @staticmethod
    def _lan_now() -> list:
        return exitrules.lan_prefixes(exitroute.main_routes(), lambda dev: dev.startswith(DEVICE_PREFIX))

    # ------------------------------------------------------------------ routes (asked by VirtualNetworks)
    def route_options(self, network: NetworkId) -> dict:
        opts: dict = {"offering": self.offering}
        if self.using is not None and self.using[0] == network:
            node = self.using[1]
            if self.offers(network, node):
                opts.update(exit=node, exit_v6=self.offers(network, node, EXIT_V6))
            else:
                opts.update(exit_lost=True)
        return opts

    def offers(self, network: NetworkId, node: NodeId, family: int = EXIT_V4) -> bool:
        rec = self.node.core.record_of(network, node)
        return rec is not None and bool(rec.exit & family)

    def offered(self) -> list[tuple[NetworkId, NodeId]]:
        """Members that offer an exit now, per network."""
        me = self.node.core.node_id
        return [(n.network.id, r.node) for n in self.vnet.nets.values() for r in self.node.core.records(n.network.id)
                if r.node != me and r.exit & EXIT_V4]

    # ------------------------------------------------------------------ offering
    async def offer(self, on: bool) -> None:
        if on and not self.vnet.enabled:
            raise ApiError(Code.REFUSED, f"cannot be an exit node: {self.vnet.reason}", "turn TUN on ([vnet] enabled)")
        if on and nft.available() is not None:
            raise ApiError(Code.REFUSED, f"cannot be an exit node: {nft.available()}")
        async with self._lock:
            if on == self.offering:
                return
            try:
                if on:
                    self.families = self._set_forwarding(True)
                    self.offering = True
                    await self._sync_members()
                else:
                    self.offering = False
                    await self._drop_rules()
                    self._set_forwarding(False)
            except OSError as e:
                self.offering = False
                if on:  # (forwarding is put back, not left on for an offer that failed)
                    with contextlib.suppress(OSError):
                        self._set_forwarding(False)
                raise ApiError(Code.REFUSED, f"could not set up the exit: {e}", "run omerta-meshd with CAP_NET_ADMIN") from None
            self._sign()
            self.vnet.rebuild_routes()

    def _set_forwarding(self, on: bool) -> int:
        """Forwarding held (or let go) for the offer (shared with subnet routes: put back when neither needs it);
        the families it is on for: IPv4 or nothing (OSError), IPv6 too when it could be turned on."""
        forwarding.hold("exit", 4, on)
        try:
            forwarding.hold("exit", 6, on)
        except OSError as e:
            log.warning("offering IPv4 egress only: IPv6 forwarding cannot be turned on: %s", e)
            return EXIT_V4
        return EXIT_V4 | EXIT_V6 if on else 0

    def _sign(self) -> None:
        """Our records with (or without) the offer, re-signed and pushed in every network."""
        self.node.core.gossip.exit = self.families if self.offering else 0
        self.vnet.publish()

    async def _sync_members(self) -> None:
        """Write the current members' mesh IPs into the exit's set when they changed."""
        me = self.node.core.node_id
        members = frozenset(a for n in self.vnet.nets.values() for got in (n.routes.assignment.v4, n.routes.assignment.v6)
                            for node, a in got.items() if node != me)
        if members == self._members:
            return
        await nft.apply(exitrules.offer_script(members))
        self._members = members
        self.counters.inc("exit.member_updates")

    # ------------------------------------------------------------------ using
    async def use(self, target: tuple[NetworkId, NodeId] | None, allow_lan: bool = False) -> None:
        if target is not None:
            if not self.vnet.enabled:
                raise ApiError(Code.REFUSED, f"cannot use an exit node: {self.vnet.reason}", "turn TUN on ([vnet] enabled)")
            network, node = target
            if not self.offers(network, node):
                self.counters.inc("exit.refused_not_offered")
                raise ApiError(Code.REFUSED, f"{node.short()} does not offer an exit node (its signed record says so)",
                               "ask its admin to run `omertactl exit offer` there, then try again")
            device = self.vnet.device_of(network)
            if device is None:
                raise ApiError(Code.REFUSED, "the exit's network has no device here", "see `omertactl status` (vnet)")
        async with self._lock:
            self.using, self.allow_lan, self.lan = target, allow_lan and target is not None, []
            self.vnet.rebuild_routes()
            if not self.vnet.enabled:  # (nothing was routed: no kernel state to restore)
                return
            try:
                if target is None:
                    await exitroute.aclear()
                else:
                    lan = [] if allow_lan else await asyncio.to_thread(self._lan_now)
                    await exitroute.ause(device, lan)
                    self.lan = lan
            except OSError as e:
                self.using, self.allow_lan = None, False
                self.vnet.rebuild_routes()
                await exitroute.aclear()
                raise ApiError(Code.REFUSED, f"could not route through the exit: {e}", "run omerta-meshd with CAP_NET_ADMIN") from None
        log.info("exit node: %s", "off; routing restored" if target is None else f"default traffic through {target[1].short()}"
                 + (", the LAN stays local" if allow_lan else f", the LAN too ({', '.join(map(str, self.lan)) or 'none found'})"))

    def family_names(self) -> list[str]:
        """What we offer: ["ipv4", "ipv6"], ["ipv4"] or [] (no offer)."""
        return [name for bit, name in ((EXIT_V4, "ipv4"), (EXIT_V6, "ipv6")) if self.offering and self.families & bit]

    def state(self) -> str:
        """'' when not using one, 'active', or why its traffic is refused now."""
        if self.using is None:
            return ""
        return "active" if self.offers(*self.using) else "lost: it no longer offers an exit (or left); traffic is refused"

