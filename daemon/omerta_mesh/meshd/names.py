"""Peer names: what every face shows for a peer, and what a name, an id or an id prefix typed by a user means.

A peer's name is the one it gives itself (``[node] name``, carried in its signed record and spread by
gossip); a local ``[names]`` entry in meshd.toml overrides it. Names need not be unique across a mesh:

* two peers with one name are shown as ``NAME#<first 8 id characters>`` (both of them; a local name that
  collides with a gossiped one keeps the bare name, the gossiped one gets the suffix);
* the bare name of several peers is refused (``PEER_AMBIGUOUS``) with the candidates listed;
* a peer without a name is shown by its short id.

A query resolves, in order: a shown name (``bob``, ``bob#3fk2q7ab``), a local name, a bare name shared by
several peers (refused), a full node id or a unique prefix of ``MIN_PREFIX``+ characters (core.ids, the
one rule). ``Directory`` is a pure value built from a node snapshot; resolving never changes anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..core.errors import UsageError
from ..core.ids import MIN_PREFIX, NodeId, resolve_node
from .errors import ApiError, Code

SEP = "#"


def suffixed(name: str, node: NodeId) -> str:
    return f"{name}{SEP}{node.text()[:MIN_PREFIX]}"


@dataclass(frozen=True)
class Directory:
    shown: Mapping[NodeId, str]  # the name each known node is shown as
    bare: Mapping[str, tuple[NodeId, ...]]  # a name (local or gossiped) -> the nodes that carry it
    local: Mapping[str, NodeId]  # [names] from the configuration
    known: frozenset[NodeId]  # peers and members of this node's networks

    def name_of(self, node: NodeId) -> str:
        return self.shown.get(node) or node.short()

    def _candidates(self, nodes: Iterable[NodeId]) -> str:
        return ", ".join(f"{self.name_of(n)} ({n.short()})" for n in sorted(nodes))

    def resolve(self, query: str) -> NodeId:
        """The node ``query`` names; ``ApiError`` PEER_NOT_FOUND or PEER_AMBIGUOUS (listing candidates)."""
        q = query.strip()
        node = self._by_name(q)
        if node is None:
            try:
                node = resolve_node(q, self.known)
            except UsageError as e:
                several = len(q) >= MIN_PREFIX and sum(1 for n in self.known if n.text().startswith(q.lower())) > 1
                if several:
                    matches = [n for n in self.known if n.text().startswith(q.lower())]
                    raise ApiError(Code.PEER_AMBIGUOUS, f"{query!r} matches {len(matches)} peers: {self._candidates(matches)}",
                                   "type more characters of the node id, or use the name `omertactl peers` shows") from None
                raise ApiError(Code.PEER_NOT_FOUND, str(e)) from None
        if node not in self.known:
            raise ApiError(Code.PEER_NOT_FOUND, f"{query!r} ({node.short()}) is not a peer in any of this node's networks")
        return node

    def _by_name(self, q: str) -> NodeId | None:
        for node, shown in self.shown.items():
            if shown == q:
                return node
        if q in self.local:
            return self.local[q]
        name, sep, prefix = q.rpartition(SEP)
        if sep and name in self.bare and prefix:  # NAME#<any unique id prefix>
            hits = [n for n in self.bare[name] if n.text().startswith(prefix.lower())]
            if len(hits) == 1:
                return hits[0]
        nodes = self.bare.get(q, ())
        if len(nodes) > 1:
            raise ApiError(Code.PEER_AMBIGUOUS, f"{len(nodes)} peers are named {q!r}: {self._candidates(nodes)}",
                           f"use the name with its id suffix as `omertactl peers` shows it ({suffixed(q, sorted(nodes)[0])}), "
                           "a full node id, or give one of them a local name in [names] in meshd.toml")
        return nodes[0] if nodes else None


def build(gossiped: Iterable[tuple[NodeId, str]], local: Mapping[str, NodeId], known: Iterable[NodeId],
          own: NodeId | None = None) -> Directory:
    """``gossiped``: (node, the name in its record) pairs, first one per node wins; ``local``: [names]."""
    base: dict[NodeId, tuple[str, bool]] = {}  # node -> (name, from local config)
    for node, name in gossiped:
        if name and node != own and node not in base:
            base[node] = (name, False)
    for name, node in sorted(local.items()):
        if not base.get(node, ("", False))[1]:  # the first local name of a node wins over its gossiped one
            base[node] = (name, True)
    groups: dict[str, list[NodeId]] = defaultdict(list)
    for node, (name, _) in base.items():
        groups[name].append(node)
    shown: dict[NodeId, str] = {}
    for name, nodes in groups.items():
        if len(nodes) == 1:
            shown[nodes[0]] = name
            continue
        locals_ = [n for n in nodes if base[n][1]]
        for n in nodes:
            shown[n] = name if len(locals_) == 1 and n == locals_[0] else suffixed(name, n)
    return Directory(shown, {k: tuple(sorted(v)) for k, v in groups.items()}, dict(local), frozenset(known) - ({own} if own else set()))


class Remembered:
    """The names of nodes no longer known (removed, left): the last each was shown by, so that the events about
    their going still name them. Fed every directory built (``update``); at most ``limit``, the oldest forgotten."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self.shown: Mapping[NodeId, str] = {}
        self.gone: dict[NodeId, str] = {}

    def update(self, d: Directory) -> None:
        for node, name in self.shown.items():
            if node not in d.shown:
                self.gone.pop(node, None)
                self.gone[node] = name
        while len(self.gone) > self.limit:
            del self.gone[next(iter(self.gone))]
        self.shown = d.shown

    def name_of(self, d: Directory, node: NodeId) -> str:
        return d.shown.get(node) or self.gone.get(node) or node.short()
