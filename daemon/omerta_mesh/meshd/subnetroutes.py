"""Subnet routes in the daemon: advertising prefixes this node forwards to, accepting members' advertisements.

``SubnetRoutes`` owns both sides and the kernel state they need (docs/vnet.md, "Subnet routes"; the rules are
``vnet/subnets.py``'s):

* **Advertising** (``advertise(prefix)`` / ``withdraw(prefix)``): our signed records carry the prefixes
  (records.py flag bit 5, IPv4 and IPv6); while any of a family is advertised that family's forwarding is on
  (``io/forwarding.py``, shared with the exit offer; IPv6's keeps the uplinks' router advertisements) and our
  routes let members' own packets for those prefixes through to the kernel.
  No masquerade: the subnet's hosts see members' mesh IPs, so they (or their gateway) need a route to the mesh
  prefix via this node; docs/vnet.md says how, and why (members stay distinguishable to the subnet).
* **Accepting** (``accept(peer, prefix)`` / ``unaccept``): nothing is routed to a member's prefix until our admin
  accepts that pair. Refused with the reason and counted: a default route (``routes.refused_default``: that is an
  exit node's job), a prefix overlapping a mesh prefix or a local route (``routes.refused_overlap``). An accepted
  pair is in force while the member's record advertises the prefix (``vnet/subnets.settle``); then our routes
  send the prefix's packets to it and take the prefix's sources only from it, and a kernel route sends the prefix
  into the device of its network (``io/subnetroute.py``), removed on unaccept, withdrawal, leave and stop.

Both lists are kept across restarts in ``routes.json`` in the state directory (written atomically). Accepted pairs
may also come from meshd.toml (``[routes] accept``, ``meshd/routeconfig.py``): settled with the others, never
saved, refused by ``unaccept``. The kernel routes are re-derived every ``REFRESH`` seconds from the records; a
crashed run's went with its device.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ..core.ids import NodeId
from ..core.wire.records import MAX_ROUTES, Prefix
from ..io import forwarding, subnetroute
from ..io.store import StateNotSaved, atomic_write
from ..vnet.subnets import PrefixError, Settled, parse_prefix, refusal, settle
from . import refresher
from .errors import ApiError, Code
from .routeconfig import RouteAllowlist, source

log = logging.getLogger("omerta_mesh.routes")
REFRESH = 0.5
STATE_FILE = "routes.json"


class SubnetRoutes:
    def __init__(self, node: Any, vnet: Any, allow: RouteAllowlist | None = None) -> None:
        self.node = node  # MeshNode
        self.vnet = vnet  # VirtualNetworks
        self.advertised: list[Prefix] = []
        self.accepted: set[tuple[NodeId, Prefix]] = set()  # by command (routes.json)
        self.allow = allow  # [routes] accept in meshd.toml (meshd/routeconfig.py)
        self.configured: set[tuple[NodeId, Prefix]] = set()  # its pairs, as of the last settling
        self.settled = Settled({}, {})
        self.installed: dict[Prefix, str] = {}  # kernel routes we hold: prefix -> device
        self.errors: dict[Prefix, str] = {}  # why a prefix in force has no kernel route
        self._local: list[tuple[Prefix, str]] = []
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        vnet.route_sources.append(self.route_options)

    @property
    def counters(self) -> Any:
        return self.node.core.counters

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._load()
        if self.advertised:
            self._sign()
        if self.vnet.enabled:
            self._forwarding()
            async with self._lock:
                await self._sync()
            self._task = refresher.start(REFRESH, self._refresh, log, "subnet routes")
        elif self.allow is not None:  # TUN off: nothing is routed, but routes.list shows the config's pairs settled
            self._task = refresher.start(REFRESH, self._refresh, log, "subnet routes")

    async def close(self) -> None:
        await refresher.stop(self._task)
        async with self._lock:
            for p, dev in list(self.installed.items()):
                await self._uninstall(p, dev)
            if self.vnet.enabled:
                for version in (4, 6):
                    forwarding.hold("subnets", version, False)

    async def _refresh(self) -> None:
        async with self._lock:
            await self._sync()

    # ------------------------------------------------------------------ routes (asked by VirtualNetworks)
    def route_options(self, network: Any) -> dict:
        return {"subnets": {p: n for p, (net, n) in self.settled.winners.items() if net == network},
                "advertising": tuple(self.advertised)}

    def _refuse(self, p: Prefix) -> tuple[str, str] | None:
        return refusal(p, self.vnet.prefixes(), self._local)

    async def _read_local(self) -> None:
        """This host's own routes, but ours (an accepted prefix overlapping one is refused)."""
        if self.vnet.enabled:
            self._local = await subnetroute.alocal_routes(n.device for n in self.vnet.nets.values())

    async def _sync(self) -> None:
        """Settle the accepted pairs against the records; rebuild routes and kernel routes when that changed."""
        mesh = self.node.core
        me = mesh.node_id
        self.configured = self.allow.pairs() if self.allow is not None else set()
        accepted = self.accepted | self.configured
        if accepted:  # (nothing accepted, nothing to check against the local routes: no netlink dump)
            await self._read_local()
        adverts = [(n.network.id, r.node, r.routes) for n in self.vnet.nets.values()
                   for r in mesh.records(n.network.id) if r.routes and not r.left and r.node != me]
        settled = settle(accepted, adverts, self._refuse)
        if self.allow is not None:
            self.allow.count_refusals(self.configured, self._refuse, self.counters)
        changed = settled.winners != self.settled.winners
        self.settled = settled
        if changed:
            self.vnet.rebuild_routes()
        if not self.vnet.enabled:
            return
        want = {p: dev for p, (net, _n) in settled.winners.items() if (dev := self.vnet.device_of(net)) is not None}
        for p, dev in list(self.installed.items()):
            if want.get(p) != dev:
                await self._uninstall(p, dev)
        for p, dev in want.items():
            if p not in self.installed:
                try:
                    await subnetroute.ainstall(p, dev)
                    self.installed[p] = dev
                    self.errors.pop(p, None)
                    self.counters.inc("routes.installed")
                    log.info("subnet route %s via %s", p, dev)
                except OSError as e:
                    if self.errors.get(p) != str(e):
                        log.warning("subnet route %s via %s: %s", p, dev, e)
                    self.errors[p] = str(e)

    async def _uninstall(self, p: Prefix, dev: str) -> None:
        self.installed.pop(p, None)
        try:
            await subnetroute.aremove(p, dev)
            log.info("subnet route %s via %s removed", p, dev)
        except OSError as e:
            log.warning("removing subnet route %s via %s: %s", p, dev, e)

    # ------------------------------------------------------------------ advertising
    def _prefix(self, text: str) -> Prefix:
        try:
            return parse_prefix(text)
        except PrefixError as e:
            raise ApiError(Code.INVALID_PARAMS, str(e)) from None

    def _refused(self, p: Prefix, local: bool) -> None:
        why = refusal(p, self.vnet.prefixes(), self._local if local else ())
        if why is not None:
            self.counters.inc(why[0])
            raise ApiError(Code.REFUSED, f"refused: {why[1]}")

    async def advertise(self, text: str) -> None:
        p = self._prefix(text)
        if not self.vnet.enabled:
            raise ApiError(Code.REFUSED, f"cannot advertise subnet routes: {self.vnet.reason}", "turn TUN on ([vnet] enabled)")
        self._refused(p, local=False)  # (the advertiser reaches the prefix by a local route: that one is the point)
        async with self._lock:
            if p in self.advertised:
                return
            if len(self.advertised) >= MAX_ROUTES:
                raise ApiError(Code.REFUSED, f"already advertising {MAX_ROUTES} prefixes, as many as a record carries",
                               "withdraw one, or advertise a shorter prefix that covers several")
            self.advertised.append(p)
            if (e := self._forwarding().get(p.version)) is not None:
                self.advertised.remove(p)
                fix = "run omerta-meshd as root or with CAP_NET_ADMIN" if isinstance(e, PermissionError) else None
                raise ApiError(Code.REFUSED, f"cannot advertise {p}: IPv{p.version} forwarding cannot be turned on: {e}",
                               fix)
            self._sign()
            self._save()
            self.vnet.rebuild_routes()

    async def withdraw(self, text: str) -> None:
        p = self._prefix(text)
        async with self._lock:
            if p not in self.advertised:  # (nothing to do: as exit offer --off)
                return
            self.advertised.remove(p)
            self._sign()
            self._save()
            self.vnet.rebuild_routes()
            if self.vnet.enabled:
                self._forwarding()

    def _forwarding(self) -> dict[int, OSError]:
        """Forwarding held per family while we advertise a prefix of it (``io/forwarding.py``: IPv6 keeps the
        uplinks' router advertisements); why not, per family where it could not be turned on."""
        failed = {}
        for version in (4, 6):
            try:
                forwarding.hold("subnets", version, any(p.version == version for p in self.advertised))
            except OSError as e:
                log.warning("IPv%d forwarding for subnet routes: %s", version, e)
                failed[version] = e
        return failed

    def _sign(self) -> None:
        """Our records with the advertised prefixes, re-signed and pushed in every network."""
        self.node.core.gossip.routes = tuple(self.advertised)
        self.vnet.publish()

    # ------------------------------------------------------------------ accepting
    async def accept(self, node: NodeId, text: str) -> None:
        p = self._prefix(text)
        async with self._lock:
            if (node, p) in self.accepted:
                return
            await self._read_local()
            self._refused(p, local=True)
            self.accepted.add((node, p))
            self._save()
            await self._sync()
        log.info("accepted subnet route %s from %s", p, node.short())

    async def unaccept(self, node: NodeId, text: str) -> None:
        p = self._prefix(text)
        async with self._lock:
            if (node, p) not in self.accepted and (node, p) in self.configured:
                raise ApiError(Code.REFUSED, f"{p} from {node.short()} is accepted by the configuration ([routes] accept)",
                               "remove it from [routes] accept in meshd.toml, then `omertactl reload`")
            if (node, p) not in self.accepted:
                raise ApiError(Code.INVALID_PARAMS, f"{p} from {node.short()} is not accepted", "see omertactl routes list")
            self.accepted.discard((node, p))
            self._save()
            await self._sync()

    def listing(self, name_of: Any) -> dict:
        me = self.node.core.node_id
        offered = [{"node_id": str(r.node), "name": name_of(r.node), "network": str(n.network.id),
                    "prefixes": [str(p) for p in r.routes]}
                   for n in self.vnet.nets.values() for r in self.node.core.records(n.network.id)
                   if r.routes and not r.left and r.node != me]
        accepted = []
        for node, p in sorted(self.accepted | self.configured, key=lambda a: (a[1].version, str(a[1]), a[0].raw)):
            state = self.settled.states.get((node, p), "not settled yet")
            if state == "active" and p in self.errors:
                state = f"no kernel route: {self.errors[p]}"
            accepted.append({"node_id": str(node), "name": name_of(node), "prefix": str(p), "state": state,
                             "installed": p in self.installed and self.settled.winners.get(p, (None, None))[1] == node,
                             "source": source((node, p) in self.accepted, (node, p) in self.configured)})
        accepted += self.allow.unresolved_rows() if self.allow is not None else []
        return {"advertised": [str(p) for p in self.advertised], "accepted": accepted, "offered": offered,
                "error": self.vnet.reason}

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        store = self.node.store
        if store is None or not (path := store.dir / STATE_FILE).exists():
            return
        try:
            doc = json.loads(path.read_text())
            adv = [parse_prefix(t) for t in doc.get("advertise", [])][:MAX_ROUTES]
            acc = {(NodeId.parse(a["peer"]), parse_prefix(a["prefix"])) for a in doc.get("accept", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("%s is damaged (%s): starting with no subnet routes; fix or remove it", path, e)
            return
        self.advertised, self.accepted = adv, acc

    def _save(self) -> None:
        store = self.node.store
        if store is None:
            return
        doc = {"version": 1, "advertise": [str(p) for p in self.advertised],
               "accept": [{"peer": str(n), "prefix": str(p)} for n, p in sorted(self.accepted, key=lambda a: (str(a[1]), a[0].raw))]}
        try:
            atomic_write(store.dir / STATE_FILE, json.dumps(doc, indent=1).encode())
        except StateNotSaved as e:
            raise ApiError(Code.REFUSED, f"the change is in force but not saved: {e}") from None
