"""The config allowlist of subnet routes: ``[routes] accept`` in meshd.toml, applied as ``omertactl routes accept``.

``RouteAllowlist`` turns the configured (peer, prefix) pairs into (member, prefix) pairs for ``SubnetRoutes``,
which settles them with the pairs accepted by command (docs/vnet.md, "Subnet routes"):

* **peers** are named as everywhere (a name, node id or unique id prefix) and resolved at every refresh, so a
  member whose name is not known yet (no signed record seen) is accepted as soon as it is; until then
  ``routes.list`` shows the entry with why (``peer not known: ...``);
* **refusals** are the command's: a default route (``routes.refused_default``), a prefix overlapping a mesh prefix
  or a local route (``routes.refused_overlap``). A refused entry stays in the list with the reason; its counter
  moves once per configuration (at start, and at each reload that changes ``[routes]``), with one warning line;
* **live**: ``accept`` is read from the daemon's current configuration at every refresh, so SIGHUP or
  ``omertactl reload`` applies a change within ``subnetroutes.REFRESH`` seconds.

Pairs from the config are never written to ``routes.json`` (the file keeps what was accepted by command), and
``routes.unaccept`` refuses them, naming the file.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ..core.ids import NodeId
from ..core.wire.records import Prefix
from ..vnet.subnets import parse_prefix
from .errors import ApiError

log = logging.getLogger("omerta_mesh.routes")
Pair = tuple[NodeId, Prefix]


class RouteAllowlist:
    def __init__(self, entries: Callable[[], list[Any]], resolve: Callable[[str], NodeId]) -> None:
        self.entries = entries  # -> the config's [routes] accept (config.RouteAccept: peer, prefix)
        self.resolve = resolve  # a peer as the admin wrote it -> its node id (ApiError when not known)
        self.unresolved: dict[tuple[str, str], str] = {}  # (peer, prefix) -> why it names no member now
        self._entries: list[Any] | None = None  # the configuration the refusals were counted for
        self._counted: set[Pair] = set()

    def pairs(self) -> set[Pair]:
        """The configured pairs whose peer resolves to a member now."""
        out: set[Pair] = set()
        unresolved = {}
        for e in self.entries():
            try:
                out.add((self.resolve(e.peer), parse_prefix(e.prefix)))
            except ApiError as err:
                unresolved[(e.peer, e.prefix)] = f"peer not known: {err.message}"
        self.unresolved = unresolved
        return out

    def count_refusals(self, pairs: set[Pair], refuse: Callable[[Prefix], tuple[str, str] | None], counters: Any) -> None:
        """Count (and log) each configured pair refused as ``omertactl routes accept`` would refuse it, once per
        configuration."""
        entries = list(self.entries())
        if entries != self._entries:
            self._entries, self._counted = entries, set()
        for node, p in sorted(pairs - self._counted, key=lambda a: (str(a[1]), a[0].raw)):
            why = refuse(p)
            if why is not None:
                self._counted.add((node, p))
                counters.inc(why[0])
                log.warning("meshd.toml [routes] accept: %s from %s refused: %s; remove it from the file", p, node.short(), why[1])

    def unresolved_rows(self) -> list[dict]:
        """routes.list rows for entries that name no member now."""
        return [{"node_id": None, "name": peer, "prefix": prefix, "state": why, "installed": False, "source": "config"}
                for (peer, prefix), why in sorted(self.unresolved.items())]


def source(command: bool, config: bool) -> str:
    """Where an accepted pair comes from, as routes.list shows it."""
    return "config, command" if command and config else "config" if config else "command"
