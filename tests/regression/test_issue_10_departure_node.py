"""Regression (issue 10, fault 8) through MeshNode on loopback: a member that leaves is dropped at once."""

from __future__ import annotations

import asyncio

from omerta_mesh.node import MeshNode


def node() -> MeshNode:
    return MeshNode(host="127.0.0.1", strict_audit=True)


async def test_leave_drops_the_member_from_the_other_nodes_list_at_once() -> None:
    async with node() as a, node() as b:
        net = a.create_network("home")
        await b.join(a.invite(net.id), timeout=5)
        await a.wait_connected(b.node_id, 5)
        assert [p.node for p in a.mesh.peers(net.id)] == [b.node_id]
        b.leave(net.id)
        for _ in range(100):  # at most 1 s; on loopback it takes one round trip
            if not a.mesh.peers(net.id) and {r.node for r in a.mesh.records(net.id)} == {a.node_id}:
                break
            await asyncio.sleep(0.01)
        assert a.mesh.peers(net.id) == []
        assert [r.node for r in a.mesh.records(net.id)] == [a.node_id]  # only our own record is left
