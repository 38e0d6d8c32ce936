"""Messages/s and MB/s through encrypt -> UDP loopback -> decrypt, for 64 B and 1200 B payloads.

Two measurements per size:
* datagram path: Session.encrypt, one sendto on loopback, recvfrom_into, Session.decrypt (no framing);
* channel path: MeshNode.send between two real nodes (framing, reliable delivery, acks, asyncio driver).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from omerta_mesh.core.session.session import Session  # noqa: E402
from omerta_mesh.node import MeshNode  # noqa: E402


def datagram_path(size: int, n: int) -> tuple[float, float]:
    k1, k2 = b"\x01" * 32, b"\x02" * 32
    tx = Session(local_index=1, remote_index=2, send_key=k1, recv_key=k2, initiator=True, created_at=0.0)
    rx = Session(local_index=2, remote_index=1, send_key=k2, recv_key=k1, initiator=False, created_at=0.0)
    a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    b.bind(("127.0.0.1", 0))
    dst = b.getsockname()
    b.setblocking(False)
    buf = bytearray(2048)
    payload = b"x" * size
    got = 0
    t = time.perf_counter()
    batch = 64
    for _i in range(0, n, batch):
        for _ in range(batch):
            a.sendto(tx.encrypt(payload, 0.0), dst)
        while True:
            try:
                m, _ = b.recvfrom_into(buf)
            except BlockingIOError:
                break
            data = bytes(buf[:m])
            counter = int.from_bytes(data[8:16], "little")
            if rx.decrypt(data, counter, 0.0) == payload:
                got += 1
    el = time.perf_counter() - t
    a.close(), b.close()
    return got / el, got * size / el / 1e6


async def channel_path(size: int, n: int) -> tuple[float, float]:
    async with MeshNode(host="127.0.0.1") as a, MeshNode(host="127.0.0.1") as b:
        net = a.create_network("bench")
        await b.join(a.invite(net.id))
        q = b.subscribe("bench")
        payload = b"y" * size
        t = time.perf_counter()
        for _ in range(n):
            await a.send(b.node_id, "bench", payload)
        for _ in range(n):
            await q.get()
        el = time.perf_counter() - t
    return n / el, n * size / el / 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    print(f"{'path':28} {'payload':>8} {'msgs/s':>10} {'MB/s':>8}")
    for size in (64, 1200):
        r, mb = datagram_path(size, n)
        print(f"{'encrypt+UDP+decrypt':28} {size:>7}B {r:10.0f} {mb:8.1f}")
        r, mb = asyncio.run(channel_path(size, n // 2))
        print(f"{'channel (reliable, driver)':28} {size:>7}B {r:10.0f} {mb:8.1f}")


if __name__ == "__main__":
    main()
