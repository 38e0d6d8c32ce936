"""A handshake flood of fresh identities leaves nothing behind in MeshNode (issue 12, fault 1, soak finding).

The soak run (bench/soak.py) found the daemon growing by 3 MB a minute under a light flood of 50 fresh
identities a second: MeshNode kept an asyncio.Event for every node that had ever connected. Here a real
MeshNode on loopback takes 600 valid initiations from fresh identities (tests/helpers.py builds them
with the core's own handshake code); what MeshNode itself allocated and still holds must not grow with them.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import time
import tracemalloc
from pathlib import Path

from helpers import fresh_initiation
from omerta_mesh.core.entropy import SystemEntropy
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire.invite import decode_invite
from omerta_mesh.node import MeshNode

NODE_PY = str(Path(sys.modules[MeshNode.__module__].__file__ or ""))
BATCH, GAP = 15, 0.1


async def flood(target: MeshNode, inv: str, n: int) -> None:
    """``n`` initiations from fresh identities, BATCH at a time, one batch at most every GAP seconds and only
    once the node has completed the batch before: whatever the machine's load, the node never sees more than
    11 batches (165) in a sliding second, under its cookie threshold (200), so each completes. (An open-loop
    400 a second went over it whenever the sender was fast, or the node took a backlog at once: cookies.)"""
    invite, ent = decode_invite(inv), SystemEntropy()
    done = target.core.counters["handshake.completed"]
    net = Network(invite.network_key, invite.name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        for i in range(0, n, BATCH):
            sent_at = time.monotonic()
            batch = min(BATCH, n - i)
            for _ in range(batch):
                s.sendto(fresh_initiation(net, target.node_id, ent, time.time())[1], ("127.0.0.1", target.port))
            done += batch
            deadline = time.monotonic() + 30
            while target.core.counters["handshake.completed"] < done:
                assert time.monotonic() < deadline, target.core.counters.snapshot()
                await asyncio.sleep(0.01)
            await asyncio.sleep(max(0.0, sent_at + GAP - time.monotonic()))


def held_by_node_py(snap: tracemalloc.Snapshot) -> int:
    return sum(st.size for st in snap.filter_traces([tracemalloc.Filter(True, NODE_PY)]).statistics("filename"))


async def test_fresh_identities_leave_nothing_in_the_node() -> None:
    async with MeshNode(host="127.0.0.1") as a:
        inv = a.invite(a.create_network("flood").id)
        await flood(a, inv, 100)  # warm up: first-use allocations
        gc.collect()
        tracemalloc.start()
        try:
            before = held_by_node_py(tracemalloc.take_snapshot())
            await flood(a, inv, 600)
            gc.collect()
            after = held_by_node_py(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
        assert a.core.counters["handshake.completed"] == 700  # the flood did go through the handshake, all of it
        assert after - before < 30_000, (before, after)  # was 90 KB: an Event per fresh identity
