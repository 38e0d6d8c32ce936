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


async def flood(target: MeshNode, inv: str, n: int) -> None:
    """``n`` initiations from fresh identities at about 400 a second (under the daemon's handshake budget, so
    each completes), then wait until the node has completed them all (a busy machine takes longer)."""
    invite, ent = decode_invite(inv), SystemEntropy()
    want = target.core.counters["handshake.completed"] + n
    net = Network(invite.network_key, invite.name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        for i in range(n):
            s.sendto(fresh_initiation(net, target.node_id, ent, time.time())[1], ("127.0.0.1", target.port))
            if i % 20 == 0:
                await asyncio.sleep(0.05)  # under the cookie threshold: every one completes
    deadline = time.monotonic() + 30
    while target.core.counters["handshake.completed"] < want and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


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
        completed = a.core.counters["handshake.completed"]
        assert completed >= 600, completed  # the flood did go through the handshake
        assert after - before < 30_000, (before, after)  # was 90 KB: an Event per fresh identity
