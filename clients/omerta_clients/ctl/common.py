"""What every omertactl command shares: the context (socket, --json, one client) and peer resolution."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, TextIO

from rich.console import RenderableType

from .. import output
from ..errors import PeerAmbiguous, PeerNotFound
from ..rpc import Client, default_socket

Json = dict[str, Any]
MIN_PREFIX = 4  # a node id prefix shorter than this is never taken as one (names may be that short)


def match_peer(query: str, peers: list[Json]) -> str | None:
    """The node id ``query`` names among ``peers`` (a ``peers.list`` result's list), or None.

    In order: an exact peer name, a full node id, a unique prefix of at least MIN_PREFIX characters of a
    node id (case-insensitive). A prefix or name matching several different nodes raises
    ``PeerAmbiguous`` listing them. A peer in several networks is one node.
    """
    q = query.strip()
    nodes: dict[str, tuple[str, str]] = {}
    for p in peers:
        nid = str(p.get("node_id", ""))
        nodes.setdefault(nid, (str(p.get("name") or nid[:12]), str(p.get("short_id") or nid[:12])))
    named = sorted(n for n, (name, _) in nodes.items() if name == q)
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise PeerAmbiguous(q, [nodes[n] for n in named])
    ql = q.lower()
    if ql in nodes:
        return ql
    if len(ql) < MIN_PREFIX:
        return None
    matches = sorted(n for n in nodes if n.startswith(ql))
    if len(matches) > 1:
        raise PeerAmbiguous(q, [nodes[n] for n in matches])
    return matches[0] if matches else None


class Ctx:
    """One command's view of the world: where the daemon is, how to print, and a lazily opened client."""

    def __init__(self, args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.socket: str = args.socket
        self.json: bool = bool(args.json)
        self.timeout: float = args.timeout
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.console = output.console(self.out)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket, self.timeout)
        return self._client

    def call(self, method: str, params: Json | None = None, timeout: float | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self.client.call(method, clean, timeout=timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- output
    def emit(self, result: Any, render: Callable[[Any], RenderableType]) -> None:
        """``--json``: the API result unchanged; otherwise the rendering of it."""
        if self.json:
            output.print_json(result, self.out)
        else:
            self.console.print(render(result))

    def emit_text(self, result: Any, text: Callable[[Any], str]) -> None:
        """``--json``: the API result unchanged; otherwise ``text(result)`` as plain, unwrapped lines."""
        if self.json:
            output.print_json(result, self.out)
        else:
            self.say(text(result))

    def say(self, text: str) -> None:
        """A plain line on stdout that must not be wrapped (invites, ids)."""
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A remark for people on stderr (never mixed into --json output)."""
        self.err.write(text + "\n")
        self.err.flush()

    # ---- peers
    def peer_id(self, query: str, network: str | None = None) -> str:
        """Resolve a peer name or id prefix to a full node id. A full node id goes to the daemon as typed
        (it answers PEER_NOT_FOUND for a stranger); anything else must match a peer it lists."""
        if len(query.strip()) == 52:
            return query.strip().lower()
        peers = self.call("peers.list", {"network": network})["peers"]
        node = match_peer(query, peers)
        if node is None:
            raise PeerNotFound(f"unknown peer: no peer is named {query!r} or has a node id starting with it",
                               f"list peers with `omertactl peers`; use a peer name, a full node id or {MIN_PREFIX}+ characters of one")
        return node


def add_common(p: argparse.ArgumentParser, suppress: bool) -> None:
    """The global options; on subcommands they default to SUPPRESS so `omertactl peers --json` works too."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    add_socket(p, d(default_socket()))
    p.add_argument("--json", action="store_true", default=d(False), help="print the API result as JSON, unchanged")
    p.add_argument("--timeout", type=float, metavar="SECONDS", default=d(30.0), help="seconds to wait for the daemon (default 30)")


def add_socket(p: argparse.ArgumentParser, default: str) -> None:
    """--socket, shared by omertactl and omerta-top."""
    p.add_argument("--socket", metavar="PATH", default=default,
                   help="the daemon's socket (default $OMERTA_SOCKET or /run/omerta/meshd.sock)")
