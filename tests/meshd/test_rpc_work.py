"""Bounded, fair JSON-RPC work (meshd/rpc_work.py) and the reply bound of a client that does not read.

The scheduler alone (no sockets): what is admitted, what waits, who starts next and how many per loop turn.
Then the server in-process, with a real Unix socket: a connection whose replies pile up unread is closed,
past four times ``api.reply_buffer`` at once, or after ``api.slow_reader_timeout`` over it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from pathlib import Path
from types import SimpleNamespace

from meshd.test_rpc_inprocess import Env, recv, send
from omerta_mesh.meshd.rpc_work import PER_TURN, RESERVED, Work


def _work(per_user: int = 4, total: int = 6) -> Work:
    return Work(lambda: SimpleNamespace(max_inflight_per_user=per_user, max_inflight_total=total))


async def _admitted(w: Work, uid: int, n: int, may_write: bool = False) -> bool:
    """Whether ``n`` requests of ``uid`` are admitted within two loop turns (the waiter is cancelled if not)."""
    t = asyncio.get_running_loop().create_task(w.admit(uid, may_write, n))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    if t.done():
        return True
    t.cancel()
    await asyncio.gather(t, return_exceptions=True)
    return False


async def test_admission_is_bounded_per_user_and_in_total_with_room_for_writers() -> None:
    w = _work(per_user=4, total=6)
    assert await _admitted(w, 1000, 4)
    assert not await _admitted(w, 1000, 1)  # the user's bound
    assert await _admitted(w, 1001, 2)  # another user is not held back by it
    assert not await _admitted(w, 1002, 1)  # the total
    assert await _admitted(w, 0, RESERVED, may_write=True)  # root has room beyond the total
    assert w.total == 6 + RESERVED and w.inflight[1000] == 4
    waiting = asyncio.get_running_loop().create_task(w.admit(1000, False, 2))
    await asyncio.sleep(0)
    assert not waiting.done()
    w.release(0, RESERVED)
    w.release(1000, 4)  # both bounds free again: the waiting frame is taken in
    await asyncio.sleep(0)
    assert waiting.done() and w.inflight[1000] == 2 and w.total == 4
    assert not w._admits  # cancelled waiters left nothing behind


async def test_a_frame_bigger_than_a_bound_is_taken_alone() -> None:
    w = _work(per_user=4, total=6)
    assert await _admitted(w, 1000, 64)  # nothing in flight: a full batch goes in
    assert not await _admitted(w, 1000, 1)
    w.release(1000, 64)
    assert await _admitted(w, 1000, 1) and w.total == 1


async def test_at_most_per_turn_requests_start_per_loop_turn_uid_after_uid() -> None:
    w = _work()
    started: list[tuple[int, int]] = []  # (loop turn, uid)
    turn = 0

    async def request(uid: int) -> None:
        if uid == 0:
            started.append((turn, -1))  # root asks now
        await w.turn(uid)
        started.append((turn, uid))

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(request(65534)) for _ in range(5 * PER_TURN)]
    await asyncio.sleep(0)  # the flood is queued (the first PER_TURN start at once)
    tasks.append(loop.create_task(request(0)))  # then root asks
    while not all(t.done() for t in tasks):
        turn += 1
        await asyncio.sleep(0)
    per_turn: dict[int, int] = {}
    for t, uid in started:
        per_turn[t] = per_turn.get(t, 0) + (uid >= 0)
    assert max(per_turn.values()) <= PER_TURN, per_turn
    order = [uid for _, uid in started]
    # root starts behind the turns already given out when it asked (one loop turn's worth) and at most one
    # more of the flood's, not behind the flood's whole queue
    assert order.index(0) - order.index(-1) <= PER_TURN + 2, order
    assert w.backlog() == 0


async def test_a_connection_over_four_times_the_reply_buffer_is_closed_and_counted(tmp_path: Path) -> None:
    # both batches must be admitted at once, as root's are: as another user, max_inflight_per_user (64) would
    # hold the second back until the first is answered, and by then the unread reply stops the reading
    async with Env(tmp_path, reply_buffer=4096, slow_reader_timeout=60, max_inflight=128, max_inflight_per_user=128) as env:
        r, wr = await env.connect()
        while not env.server.connections:
            await asyncio.sleep(0.01)
        [conn] = env.server.connections
        conn.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel holds little
        body = json.dumps([{"jsonrpc": "2.0", "method": "status.get", "id": i} for i in range(64)]).encode()
        wr.write((struct.pack(">I", len(body)) + body) * 2)  # two batches run at once (~200 KB of replies each), never read
        await wr.drain()
        for _ in range(200):
            if env.server.stats["slow_readers_closed"]:
                break
            await asyncio.sleep(0.01)
        wr.close()
        assert env.server.stats["slow_readers_closed"] == 1 and not env.server.connections
        for _ in range(200):  # its requests are no longer in flight, once their cancelled tasks have ended
            if env.server.work.total == 0:
                break
            await asyncio.sleep(0.01)
        assert env.server.work.total == 0 and not env.server.work.inflight


async def test_a_connection_over_the_reply_buffer_for_the_timeout_is_closed_and_another_is_served(tmp_path: Path) -> None:
    async with Env(tmp_path, reply_buffer=4096, slow_reader_timeout=1) as env:
        r, wr = await env.connect()
        body = json.dumps([{"jsonrpc": "2.0", "method": "status.get", "id": i} for i in range(64)]).encode()
        for _ in range(8):  # replies of ~200 KB each: the kernel's buffer fills, then ours
            wr.write(struct.pack(">I", len(body)) + body)
        await wr.drain()
        other_r, other_w = await env.connect()
        await send(other_w, {"jsonrpc": "2.0", "method": "status.get", "id": 1})
        assert (await recv(other_r, 2.0))["result"]["name"] == "t"  # served meanwhile
        for _ in range(400):
            if env.server.stats["slow_readers_closed"]:
                break
            await asyncio.sleep(0.01)
        assert env.server.stats["slow_readers_closed"] == 1
        assert len(env.server.connections) == 1  # the reader's
        other_w.close()
        wr.close()
