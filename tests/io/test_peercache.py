"""The peer cache (io/peercache.py): only proven peers, bounded, and saved debounced, in a thread, never raising.

Issue 12, fault 1: every PeerConnected rewrote the whole file with two fsyncs on the event loop, and fresh
identities that only completed a handshake were persisted.
"""

from __future__ import annotations

import asyncio
import errno
import json
import threading
from pathlib import Path

from helpers import Pair, eventually, fresh_initiation
from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.ids import NodeId
from omerta_mesh.core.outbox import Outbox
from omerta_mesh.io.peercache import PeerCacheSaves, peer_cache_doc
from omerta_mesh.io.store import StateNotSaved, StateStore

FAKE_ADDR = ("203.0.113.9", 6000)


def test_the_cache_holds_proven_peers_only_connected_first_and_bounded() -> None:
    p = Pair("cache", config=CoreConfig())
    p.connect()
    p.advance(p.now + 3)
    fakes = []
    for i in range(5):
        p.now += 0.1
        nid, data = fresh_initiation(p.net, p.a.node_id, f"c-{i}", p.now)
        p.a.receive_datagram(data, FAKE_ADDR, None, p.now)
        fakes.append(str(nid))
    doc = peer_cache_doc(p.a.table)
    assert [e["node"] for e in doc["peers"]] == [str(p.b.node_id)]  # B sent transport frames; the fakes did not
    assert len(p.a.peers()) == 6
    for q in p.a.peers():  # as if each had sent a frame: all proven now
        p.a.table.prove(q)
    doc = peer_cache_doc(p.a.table, limit=3)
    assert [e["node"] for e in doc["peers"]] == fakes[:1:-1]  # bounded: the newest handshakes first
    newest = p.a.find_peer(NodeId.parse(fakes[-1]))
    p.a.sessions.close(newest, "test: gone", p.now, Outbox())
    doc = peer_cache_doc(p.a.table)
    assert [e["node"] for e in doc["peers"]] == [*fakes[-2::-1], str(p.b.node_id), fakes[-1]]  # connected ones first
    assert all(e["endpoints"] for e in doc["peers"])


class Recorder:
    """A StateStore whose peer-cache writes are recorded (thread, loop time) and may be made to fail."""

    def __init__(self, tmp: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.store = StateStore(tmp)
        self.loop = loop
        self.writes: list[tuple[str, float, dict]] = []
        self.fail: OSError | Exception | None = None
        real = self.store.save_peers

        def save_peers(doc: dict) -> None:
            self.writes.append((threading.current_thread().name, loop.time(), doc))
            if isinstance(self.fail, OSError):
                raise StateNotSaved(self.store.peers_path, self.fail)
            if self.fail is not None:
                raise self.fail
            real(doc)

        self.store.save_peers = save_peers  # type: ignore[method-assign]


async def test_saves_are_coalesced_spaced_written_in_a_thread_and_skipped_when_unchanged(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, asyncio.get_running_loop())
    counts: dict[str, int] = {}
    docs = [{"peers": [{"network": "n", "node": "a", "endpoints": [["127.0.0.1", 1]]}]}]
    saves = PeerCacheSaves(rec.store, lambda: docs[-1], lambda k: counts.__setitem__(k, counts.get(k, 0) + 1),
                           delay=0.05, interval=0.3)
    burst = asyncio.get_running_loop().time()  # the first write starts after this
    for _ in range(100):  # a burst of connections: one save
        saves.changed()
    await eventually(lambda: counts.get("peer_cache.saved") == 1, 10)
    assert len(rec.writes) == 1 and rec.writes[0][0] != threading.current_thread().name  # not on the loop's thread
    assert json.loads(rec.store.peers_path.read_text())["peers"] == docs[0]["peers"]
    saves.changed()  # nothing new: no write
    await eventually(lambda: counts.get("peer_cache.unchanged", 0) >= 1, 10)
    assert len(rec.writes) == 1
    docs.append({"peers": []})
    saves.changed()
    await eventually(lambda: counts.get("peer_cache.saved") == 2, 10)
    # at most once per interval: writes are spaced by when they start (on the loop); the thread may begin the first
    # one late on a busy machine, so measure the second from the earliest the first can have started
    assert rec.writes[1][1] - burst >= 0.3
    await saves.close()
    saves.changed()  # closed: nothing more is scheduled
    await asyncio.sleep(0.1)
    assert len(rec.writes) == 2


async def test_a_peer_that_proves_itself_after_the_save_is_saved_by_the_look_after_the_change(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, asyncio.get_running_loop())
    counts: dict[str, int] = {}
    docs: list[dict] = [{"peers": []}]
    saves = PeerCacheSaves(rec.store, lambda: docs[-1], lambda k: counts.__setitem__(k, counts.get(k, 0) + 1),
                           delay=0.2, interval=0.05)
    saves.changed()  # a PeerConnected: saved at once (the newcomer is not proven yet: not in it)
    await eventually(lambda: counts.get("peer_cache.saved") == 1, 10)
    docs.append({"peers": [{"network": "n", "node": "a", "endpoints": [["127.0.0.1", 1]]}]})  # proven: no event says so
    await eventually(lambda: counts.get("peer_cache.saved") == 2, 10)
    assert json.loads(rec.store.peers_path.read_text())["peers"] == docs[-1]["peers"]
    await saves.close()


async def test_a_failed_write_goes_to_the_stores_retries_and_nothing_raises_into_the_loop(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    rec = Recorder(tmp_path, loop)
    counts: dict[str, int] = {}
    docs = [{"peers": [{"network": "n", "node": "a", "endpoints": [["127.0.0.1", 1]]}]}]
    saves = PeerCacheSaves(rec.store, lambda: docs[-1], lambda k: counts.__setitem__(k, counts.get(k, 0) + 1),
                           delay=0.01, interval=0.01)
    rec.fail = OSError(errno.ENOSPC, "No space left on device")
    saves.changed()
    await eventually(lambda: "peer cache" in rec.store.background.pending, 10)  # the store retries it with back-off ...
    assert len(rec.writes) == 1 and rec.writes[0][0] != threading.current_thread().name  # (the thread's; none at once on the loop)
    rec.fail = None
    await eventually(lambda: not rec.store.background.pending, 10)  # ... until it is written
    assert json.loads(rec.store.peers_path.read_text())["peers"] == docs[0]["peers"]
    rec.fail = RuntimeError("a bug")
    docs.append({"peers": []})
    saves.changed()
    # logged and counted, not raised (a busy machine may see the next look fail too before this polls)
    await eventually(lambda: counts.get("peer_cache.failed", 0) >= 1, 10)
    await saves.close()
    assert not errors
