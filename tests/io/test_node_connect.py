"""MeshNode.connect: a member known only by its gossiped record gets a session on demand (as `omertactl
ping` does for such a member, like `tailscale ping`)."""

from __future__ import annotations

import asyncio

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.node import MeshNode

CFG = DEFAULT_CONFIG.with_(neighbours=0)  # no gossip neighbour sessions: C knows B only by its record


def node() -> MeshNode:
    return MeshNode(host="127.0.0.1", strict_audit=True, config=CFG)


async def test_connect_opens_a_session_with_a_member_known_only_by_gossip() -> None:
    async with node() as a, node() as b, node() as c:
        net = a.create_network("home")
        await b.join(a.invite(net.id), timeout=5)
        await c.join(a.invite(net.id), timeout=5)
        for _ in range(100):  # C learns B's signed record through A
            if c.core.record_of(net.id, b.node_id) is not None:
                break
            await asyncio.sleep(0.05)
        assert c.core.record_of(net.id, b.node_id) is not None
        assert not c.is_connected(b.node_id)
        await c.connect(b.node_id, net.id, timeout=5)
        assert c.is_connected(b.node_id)
        assert await c.ping(b.node_id, timeout=5) > 0
