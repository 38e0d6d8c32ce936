"""The embedded node as a receiver (``io.subscribers.Subscribers``), on real UDP on loopback.

A channel nobody receives refuses messages and the sender's ``send(wait=True)`` fails with the reason; a full
``subscribe`` queue holds messages back at the sender instead of dropping them, and lets them in as it drains.
"""

from __future__ import annotations

import asyncio

import pytest

from omerta_mesh import node as node_mod
from omerta_mesh.node import DeliveryFailed, MeshNode


def node(name: str) -> MeshNode:
    return MeshNode(host="127.0.0.1", strict_audit=True, name=name, watch_addresses=False)


async def test_a_channel_nobody_receives_fails_the_send_with_the_reason() -> None:
    async with node("alpha") as a, node("bravo") as b:
        net = a.create_network("home")
        await b.join(a.invite(net.id), timeout=5)
        await a.wait_connected(b.node_id, 5)
        with pytest.raises(DeliveryFailed, match="no receiver on channel 'nobody' at bravo"):
            await asyncio.wait_for(a.send(b.node_id, "nobody", b"anyone?", wait=True), 10)
        assert b.core.counters["rx.refused.no_receiver"] == 1
        q = b.subscribe("nobody")
        await asyncio.wait_for(a.send(b.node_id, "nobody", b"now", wait=True), 10)
        assert (await asyncio.wait_for(q.get(), 5)).data == b"now" and q.empty()  # never the refused one


async def test_a_full_queue_holds_messages_back_and_drops_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_mod, "QUEUE_LIMIT", 2)  # subscribe(): 20 unread at most
    async with node("alpha") as a, node("bravo") as b:
        net = a.create_network("home")
        await b.join(a.invite(net.id), timeout=5)
        await a.wait_connected(b.node_id, 5)
        q = b.subscribe("c")
        for i in range(50):
            await a.send(b.node_id, "c", b"%d" % i)
        for _ in range(200):
            if b.core.counters["rx.held"]:
                break
            await asyncio.sleep(0.01)
        assert q.qsize() == 20 and b.core.counters["rx.held"] >= 1
        got = [(await asyncio.wait_for(q.get(), 5)).data for _ in range(50)]  # room again: the rest comes in
        assert got == [b"%d" % i for i in range(50)]
        assert not b.core.counters["rx.refused.inbox_full"]
