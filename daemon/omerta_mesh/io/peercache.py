"""The peer cache: what goes into it, and when it is written (off the event loop's hot path).

What: only *proven* peers (a transport frame from them decrypted, or added by us: an invite, a command, the
cache itself; ``core/peers/table.py``), never one that only completed a handshake (anyone holding the network
key can make one per fresh identity). At most ``PEER_CACHE_MAX`` entries: connected peers first, then by their
last handshake, newest first. A restart restores at most that many, so an old cache cannot flood the start.

When: ``PeerCacheSaves.changed()`` (on every PeerConnected) arms one timer: the save runs at once, or when
``SAVE_INTERVAL`` has passed since the last write (at most one write per interval: a burst of connections is
one save), and once more at least ``SAVE_DELAY`` after the last change (a peer that connected as responder
proves itself with its first frame, a round trip later: no event says so). The document is built on the loop
(a walk of the peer table, bounded by its limits), skipped when it is what was last written, and written in
a thread (``run_in_executor``: the two fsyncs of ``atomic_write`` never block the loop), one write at a time.
A write the disk refuses (``StateNotSaved``) goes to ``StateStore.background``, which counts it and tries
again with back-off; while such a retry waits, later saves only replace what it will write. Nothing here
ever raises into the loop.
Counters (the core's, shown by ``status.get``): ``peer_cache.saved``, ``peer_cache.unchanged`` (a save
skipped: nothing new), ``peer_cache.failed`` (any other failure, logged).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable

from ..core.errors import UsageError
from ..core.ids import NetworkId, NodeId
from ..core.mesh import Mesh
from ..core.peers.paths import Address, ViaRelay
from ..core.peers.peer import Peer
from .store import StateNotSaved, StateStore

PEER_CACHE_MAX = 512  # entries written, and restored at start
SAVE_DELAY = 0.5  # seconds after the last change: one more look (the newcomers have proved themselves)
SAVE_INTERVAL = 1.0  # seconds between two writes at least (a peer that connects is in the file within about this)
PEER_CACHE = "peer cache"  # its name for StateStore.background (retries after a failed write)
log = logging.getLogger("omerta_mesh.io.peercache")


def peer_cache_doc(peers: Iterable[Peer], limit: int = PEER_CACHE_MAX) -> dict[str, Any]:
    """The peer cache document: proven peers with an address, connected first, then newest handshake first."""
    kept = [p for p in peers if p.proven and (p.endpoints or (p.endpoint is not None and not isinstance(p.endpoint, ViaRelay)))]
    kept.sort(key=lambda p: (not p.connected, -(p.stats.last_handshake_at or float("-inf"))))
    out = []
    for p in kept[:limit]:
        cur = p.endpoint if p.endpoint is not None and not isinstance(p.endpoint, ViaRelay) else None  # a relay path is no address
        eps = ([cur] if cur else []) + [e for e in p.endpoints if e != cur]
        out.append({"network": str(p.network.id), "node": str(p.node), "endpoints": [list(e) for e in eps]})
    return {"peers": out}


class PeerCacheSaves:
    """Debounced, coalesced, threaded saves of the peer cache (see the module docstring)."""

    def __init__(self, store: StateStore, doc: Callable[[], dict[str, Any]], count: Callable[[str], None],
                 delay: float = SAVE_DELAY, interval: float = SAVE_INTERVAL) -> None:
        self.store = store
        self._doc = doc  # builds the document (on the loop: it reads the core)
        self._count = count
        self.delay, self.interval = delay, interval
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Future[None] | None = None
        self._again = False  # a save fell due while a write was in flight
        self._written: dict[str, Any] | None = None  # the document last written
        self._last = float("-inf")  # loop time of the last write started
        self._changed_at = float("-inf")  # loop time of the last change
        self._closed = False

    def changed(self) -> None:
        """Something the cache records may have changed: save it soon (one timer, however many changes)."""
        if self._closed:
            return
        self._changed_at = asyncio.get_running_loop().time()
        self._arm(self._changed_at)

    def _arm(self, at: float) -> None:
        if self._timer is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(max(at, self._last + self.interval), self._due)

    def _due(self) -> None:
        self._timer = None
        if self._writing is not None:
            self._again = True
            return
        self._save()
        now = asyncio.get_running_loop().time()
        if now < self._changed_at + self.delay:  # one more look once the newcomers have proved themselves
            self._arm(self._changed_at + self.delay)

    def _save(self) -> None:
        try:
            doc = self._doc()
        except Exception:  # a bug: never into the loop
            log.exception("peer cache: building it failed")
            self._count("peer_cache.failed")
            return
        if doc == self._written:
            self._count("peer_cache.unchanged")
            return
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if PEER_CACHE in self.store.background.pending:  # a failed write waits for its retry: it will write the current one
            return
        self._writing = fut = loop.run_in_executor(None, self.store.save_peers, doc)
        fut.add_done_callback(lambda f: self._done(f, doc))

    def _done(self, fut: asyncio.Future[None], doc: dict[str, Any]) -> None:
        self._writing = None
        exc = None if fut.cancelled() else fut.exception()
        if exc is None and not fut.cancelled():
            self._written = doc
            self._count("peer_cache.saved")
        elif isinstance(exc, StateNotSaved):  # counted by the store; retried with back-off (not at once, on the loop)
            if not self._closed:
                self.store.background.retry(PEER_CACHE, self.write_now, exc)
        else:
            log.error("peer cache not saved: %r", exc)
            self._count("peer_cache.failed")
        if self._again:
            self._again = False
            self._arm(asyncio.get_running_loop().time())

    def write_now(self) -> None:
        """Build and write the cache on the calling thread (the store's retries, ``MeshNode.save_peers`` and the
        last save at stop).
        Raises only StateNotSaved (the store's retries handle it); anything else is logged and counted."""
        try:
            doc = self._doc()
            self.store.save_peers(doc)
        except StateNotSaved:
            raise
        except Exception:
            log.exception("peer cache not saved")
            self._count("peer_cache.failed")
            return
        self._written = doc

    async def close(self) -> None:
        """No more scheduled saves; a write in flight is waited for (the caller then writes the last one)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            try:
                await asyncio.shield(self._writing)
            except Exception:  # (its callback logged it)
                pass


def restore_peers(store: StateStore, mesh: Mesh, max_endpoints: int, now: float) -> None:
    """The peer cache's entries (checked: damaged ones skipped), as peers to reconnect to; a removed node is not."""
    for p in store.load_peers()["peers"][:PEER_CACHE_MAX]:
        nid, node = NetworkId.parse(p["network"]), NodeId.parse(p["node"])
        eps: list[Address] = [(h, port) for h, port in p["endpoints"]][:max_endpoints]
        if nid.raw in mesh.networks and eps:
            try:
                mesh.add_peer(nid, node, eps, now)
            except UsageError as e:  # e.g. our own node id, a removed node: the entry only costs a reconnect
                log.warning("peer cache: %s in network %s not restored: %s", node.short(), nid, e)
