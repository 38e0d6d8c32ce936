"""Per-network firewall rules in the daemon: ``[[rules]]`` compiled to nftables on the mesh devices.

``Firewall`` keeps ``table inet omerta``'s ``rules_*`` objects (``vnet/fwrules.py``: syntax, semantics, names)
in step with the configuration, the devices and the members' mesh IPs: every ``REFRESH`` seconds it works out
which devices are filtered and which addresses each peer rule's source has (a peer that cannot be resolved
matches nobody; a ``tag:NAME`` source matches the members of owned networks whose verified certificate carries
the tag, and nobody in an open network; ``rules.list`` says why a rule matches nobody) and, when that changed,
applies one ``nft -f -``
transaction. A changed rule set (SIGHUP, ``daemon.reload``; ``rules`` is live) is picked up the same way.

At start every ``rules_*`` object is deleted first (a ``kill -9`` leaves them); on stop they are deleted and the
table too when nothing else (the exit node's ``exit_*``) is left in it. With TUN off or without ``nft`` nothing is
applied and ``rules.list`` says why. Only the input hook is filtered: traffic the host forwards (the exit node's,
subnet routes') is left to the exit's chain and the host's own rules.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..io import nft
from ..vnet import fwrules
from ..vnet.fwrules import NetChain, Rule
from . import refresher, views
from .errors import ApiError

log = logging.getLogger("omerta_mesh.firewall")
REFRESH = 0.5


class Firewall:
    def __init__(self, api: Any, vnet: Any) -> None:
        self.api = api  # DaemonAPI: its config (reloaded live) and peer names
        self.vnet = vnet  # VirtualNetworks
        self.error: str | None = None  # why the rules are not in force (TUN off, no nft, nft refused)
        self.notes: dict[int, str] = {}  # rule index -> why it matches nobody (or not everywhere)
        self.sources: dict[int, list[fwrules.Address]] = {}
        self.chains: list[NetChain] = []
        self._applied: tuple | None = None  # the inputs of the last transaction
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    @property
    def counters(self) -> Any:
        return self.api.node.core.counters

    def rules(self) -> list[Rule]:
        return list(self.api.config.rules)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if not self.vnet.enabled or nft.available() is not None:
            self.error = self.vnet.reason or nft.available()
            if self.rules():
                log.warning("firewall rules are not applied: %s", self.error)
            return
        try:
            if await self._remove():
                log.info("removed a crashed run's firewall rules (table inet omerta)")
        except OSError as e:
            log.warning("cleaning stale firewall rules: %s", e)
        await self.sync()
        self._task = refresher.start(REFRESH, self.sync, log, "firewall")

    async def close(self) -> None:
        if self._task is None:
            return
        await refresher.stop(self._task)
        async with self._lock:
            try:
                await self._remove()
            except OSError as e:
                log.warning("removing the firewall rules: %s", e)

    async def _remove(self) -> bool:
        """Delete every rules_* object (and the table when it is left empty); True when there were any."""
        listing = await nft.list_table("inet", fwrules.TABLE)
        mine = fwrules.owned(listing)
        self._applied = None
        if not any(mine.values()):
            return False
        await nft.apply(fwrules.sync_script([], {}, mine))
        await nft.drop_table_if_empty("inet", fwrules.TABLE)
        return True

    # ------------------------------------------------------------------ compiling the inputs
    def _plan(self) -> tuple[list[NetChain], dict[int, list[fwrules.Address]], dict[int, str]]:
        rules = self.rules()
        members, _ = self.vnet.members()
        me = self.api.node.core.node_id
        chains: list[NetChain] = []
        notes: dict[int, str] = {}
        used: set[int] = set()
        for n in self.vnet.nets.values():
            device = self.vnet.device_of(n.network.id)
            mine = tuple(r for r in rules if r.applies_to(n.network.name, str(n.network.id)))
            if device is not None and mine:
                chains.append(NetChain(str(n.network.id)[:12], device, mine))
                used |= {r.index for r in mine}
        sources: dict[int, list[fwrules.Address]] = {}
        tagged: dict[tuple[str, str], tuple[str, ...]] | None = None  # (asked once, for the first tag rule)
        listed: list[tuple[str, str, fwrules.Address | None, fwrules.Address | None]] = []
        for r in rules:
            if r.index not in used:
                notes[r.index] = f"no device of ours is in network {r.network!r}" if r.network else "no device of ours yet"
                continue
            if not r.has_set:
                continue
            nets = {c.key for c in chains if r in c.rules}
            if r.is_tag:
                if tagged is None:
                    tagged = {(str(net), str(node)): t for (net, node), t in views.member_tags(self.api).items()}
                    listed = [(str(net.id), str(who), v4, v6) for net, who, v4, v6 in members if who != me]
                sources[r.index] = fwrules.tag_sources(r, listed, tagged, nets)
                if not sources[r.index]:
                    owned = any(n.network.owner is not None and str(n.network.id)[:12] in nets for n in self.vnet.nets.values())
                    notes[r.index] = (f"matches nobody: no member's verified certificate carries {r.source} (yet)" if owned else
                                      "matches nobody: tags come from member certificates, and the rule's networks are "
                                      "open (create an owned one: omertactl network create NAME)")
                continue
            try:
                node = self.api.resolve_peer(r.source)
            except ApiError as e:
                sources[r.index] = []
                notes[r.index] = f"matches nobody: {e.message}"
                continue
            sources[r.index] = sorted((a for net, who, v4, v6 in members if who == node and who != me
                                       and str(net.id)[:12] in nets for a in (v4, v6) if a is not None),
                                      key=lambda a: (a.version, int(a)))
            if not sources[r.index]:
                notes[r.index] = "matches nobody: the peer has no mesh IP in the rule's networks yet"
        return chains, sources, notes

    async def sync(self) -> None:
        """Apply the rules when the rule set, the devices or a source's addresses changed."""
        async with self._lock:
            chains, sources, notes = self._plan()
            self.notes = notes
            inputs = (tuple(chains), tuple(sorted((k, tuple(v)) for k, v in sources.items())))
            if inputs == self._applied:
                return
            try:
                listing = await nft.list_table("inet", fwrules.TABLE)
                await nft.apply(fwrules.sync_script(chains, sources, fwrules.owned(listing)))
                if not chains:
                    await nft.drop_table_if_empty("inet", fwrules.TABLE)
            except OSError as e:
                self.error = f"the rules could not be applied: {e}"
                self.counters.inc("rules.apply_failed")
                log.error("firewall: %s", self.error)
                self._applied = inputs  # (tried again when something changes)
                return
            if (self._applied is None or self._applied[0] != inputs[0]) and (chains or self._applied):
                log.info("firewall rules applied: %s", ", ".join(f"{c.device} ({len(c.rules)} rules, default deny)"
                                                                 for c in chains) or "none (no filtering)")
            self.error = None
            self.chains, self.sources, self._applied = chains, sources, inputs
            self.counters.inc("rules.applied")

    # ------------------------------------------------------------------ read model
    async def info(self) -> dict:
        """The rules.list result: every configured rule with its counter, the default drop per filtered device."""
        if self._task is not None:  # (started: TUN on and nft here)
            await self.sync()
        seen: dict[str, tuple[int, int]] = {}
        if self.chains and self.error is None:
            try:
                seen = fwrules.counters(await nft.list_table("inet", fwrules.TABLE))
            except OSError as e:
                self.error = f"could not read the counters: {e}"
        rules = []
        for r in self.rules():
            packets, nbytes = seen.get(r.counter, (0, 0))
            rules.append({**r.view(), "sources": [str(a) for a in self.sources.get(r.index, [])],
                          "packets": packets, "bytes": nbytes, "note": self.notes.get(r.index)})
        names = {str(n.network.id)[:12]: (str(n.network.id), n.network.name) for n in self.vnet.nets.values()}
        default = []
        for c in self.chains:
            packets, nbytes = seen.get(c.drops, (0, 0))
            net_id, name = names.get(c.key, (c.key, ""))
            default.append({"device": c.device, "network": net_id, "network_name": name, "rules": [r.index for r in c.rules],
                            "dropped_packets": packets, "dropped_bytes": nbytes})
        return {"active": bool(self.chains) and self.error is None, "rules": rules, "filtered": default, "error": self.error}
