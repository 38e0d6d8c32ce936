"""The UDP reader's wake-up is bounded in time (issue 12, fault 1): real sockets on loopback.

Datagrams that are costly to process (a handshake initiation costs two Diffie-Hellman) must not hold the
loop for a whole batch of 256: the reader yields after ``DRAIN_SLICE`` (5 ms) and the loop calls it again.
"""

from __future__ import annotations

import asyncio
import socket
import time

from omerta_mesh.io import udp
from omerta_mesh.io.udp import UdpEndpoints

COST = 0.003  # seconds each datagram takes to "process" here: more than half a slice


async def test_a_wake_up_yields_after_the_time_slice_not_after_the_batch() -> None:
    assert 0.005 <= udp.DRAIN_SLICE <= 0.010  # the bound the issue asks for
    loop = asyncio.get_running_loop()
    per_batch: list[int] = [0]
    got: list[bytes] = []

    def on_datagram(data: bytes, _src: tuple[str, int], _local: tuple[str, int]) -> None:
        t = time.monotonic() + COST
        while time.monotonic() < t:  # busy, as a handshake is (a sleep would be the same for this test)
            pass
        got.append(data)
        per_batch[-1] += 1

    ep = UdpEndpoints(loop, on_datagram, lambda: per_batch.append(0))
    local = ep.bind("127.0.0.1", 0)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ticks = 0

    async def ticker() -> None:  # another task on the loop: it must get turns while the datagrams wait
        nonlocal ticks
        while len(got) < 40:
            ticks += 1
            await asyncio.sleep(0)

    try:
        for i in range(40):
            other.sendto(b"%d" % i, local)
        await asyncio.wait_for(ticker(), 30)
        assert got == [b"%d" % i for i in range(40)]  # nothing lost: the loop called the reader again
        batches = [n for n in per_batch if n]
        # each datagram takes at least COST, so the slice has run out after the second at the latest
        assert max(batches) <= -(-udp.DRAIN_SLICE // COST), batches
        assert ep.stats.slices_used >= len(batches) - 1
        assert ticks >= len(batches) - 1  # the other task ran between the wake-ups
    finally:
        other.close()
        ep.close()
