"""Channel messages into a daemon's inbox: messages/s, and what the receiving daemon's other work feels.

Two real daemons on loopback, A and B, in one network. B's client opens a channel and receives everything on it
(``channel.receive``, up to 1,000 per call); SENDERS clients of A send N messages of SIZE bytes to it without
waiting (``channel.send``), or with ``--library`` a member embedded in this process (``MeshNode``) sends them
as fast as the mesh takes them (what a member flooding an open channel can do), or ``--rate`` R a second, in
ticks of 10 ms (a trickle: a few messages per loop wake-up, so one spool write and fdatasync for each few).
While that runs, B pings A through the mesh every 50 ms (``ping``: the RTT shows how long B's event loop is held
up, e.g. by writing its inbox to disk). Figures: messages/s from the first
send to the last message received, B's ping p50/p99/max during the stream and before it (idle), and B's spool
writes (``inbox.spool_syncs``: one per channel per loop wake-up that took messages).

    python3 bench/channel_inbox.py [--messages 20000] [--size 64] [--senders 4] [--library [--rate R]] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon")]

from meshd.harness import DaemonProc, join  # noqa: E402
from omerta_mesh.core.ids import NodeId  # noqa: E402
from omerta_mesh.node import MeshNode  # noqa: E402


def pings(d: DaemonProc, peer: str, stop: threading.Event, out: list[float]) -> None:
    with d.client(timeout=30) as c:
        while not stop.is_set():
            r = c.call("ping", peer=peer, count=1, timeout=5)
            if r["rtt_avg_ms"] is not None:
                out.append(r["rtt_avg_ms"])
            time.sleep(0.05)


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def library_sender(invite: str, b_id: str, n: int, size: int, ready: threading.Event, go: threading.Event,
                   rate: float = 0.0) -> None:
    async def main() -> None:
        async with MeshNode(host="127.0.0.1", watch_addresses=False) as m:
            await m.join(invite)  # B's invite: a session with B when it returns
            ready.set()
            while not go.is_set():
                await asyncio.sleep(0.01)
            data = b"x" * size
            start = time.monotonic()
            for i in range(n):
                if rate and i % max(1, int(rate / 100)) == 0:  # 10 ms ticks
                    await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                await m.send(NodeId.parse(b_id), "bench", data)
            for _ in range(600):  # until everything is acknowledged
                if not any(p.stream.waiting or p.stream.in_flight for p in m.peer_views()):
                    break
                await asyncio.sleep(0.1)

    asyncio.run(main())


def run(n: int, size: int, senders: int, library: bool = False, rate: float = 0.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = DaemonProc(Path(tmp), "a", extra=["--log-level", "warning"]), DaemonProc(Path(tmp), "b", extra=["--log-level", "warning"])
        try:
            a.start()
            b.start()
            net, a_id, b_id = join(a, b, "bench")
            b.call("channel.receive", channel="bench", timeout=0)
            idle: list[float] = []
            stop = threading.Event()
            t = threading.Thread(target=pings, args=(b, a_id, stop, idle))
            t.start()
            time.sleep(2)
            stop.set()
            t.join()
            busy: list[float] = []
            stop = threading.Event()
            pinger = threading.Thread(target=pings, args=(b, a_id, stop, busy))
            got = [0]

            def send(k: int) -> None:
                data = "x" * size
                with a.client(timeout=60) as c:
                    for _ in range(n // senders):
                        c.call("channel.send", peer=b_id, channel="bench", data=data, timeout=60)

            ready, go = threading.Event(), threading.Event()
            if library:
                senders = 1
                invite = b.call("network.invite", network=net["network"])["invite"]
                lib = threading.Thread(target=library_sender, args=(invite, b_id, n, size, ready, go, rate), daemon=True)
                lib.start()
                if not ready.wait(30):
                    raise SystemExit("the embedded member did not connect to B")

            def receive() -> None:
                end = time.monotonic() + 300
                with b.client(timeout=60) as c:
                    while got[0] < n // senders * senders and time.monotonic() < end:
                        got[0] += len(c.call("channel.receive", channel="bench", max=1000, timeout=5)["messages"])

            rx = threading.Thread(target=receive)
            txs = [lib] if library else [threading.Thread(target=send, args=(k,)) for k in range(senders)]
            pinger.start()
            start = time.perf_counter()
            rx.start()
            go.set()
            for x in txs:
                if not library:
                    x.start()
            for x in txs:
                x.join()
            rx.join()
            elapsed = time.perf_counter() - start
            stop.set()
            pinger.join()
            counters = b.call("status.get")["counters"]
            return {"messages": got[0], "msgs_per_s": got[0] / elapsed,
                    "ping_idle_p50_ms": statistics.median(idle) if idle else float("nan"),
                    "ping_busy_p50_ms": statistics.median(busy) if busy else float("nan"),
                    "ping_busy_p99_ms": pct(busy, 0.99), "ping_busy_max_ms": max(busy, default=float("nan")),
                    "spool_syncs": counters.get("inbox.spool_syncs", 0)}
        finally:
            a.close()
            b.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--library", action="store_true", help="an embedded member sends (no RPC on the sending side)")
    p.add_argument("--rate", type=float, default=0.0, help="with --library: messages a second (0: as fast as it goes)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = run(a.messages, a.size, a.senders, a.library, a.rate)
    if a.json:
        print(json.dumps(r))
        return
    print(f"{'messages':>9} {'msgs/s':>8} {'ping idle p50':>14} {'busy p50':>9} {'p99':>7} {'max':>7} {'spool writes':>13}")
    print(f"{r['messages']:>9} {r['msgs_per_s']:>8.0f} {r['ping_idle_p50_ms']:>11.2f} ms {r['ping_busy_p50_ms']:>6.2f} ms "
          f"{r['ping_busy_p99_ms']:>7.2f} {r['ping_busy_max_ms']:>7.2f} {r['spool_syncs']:>13}")


if __name__ == "__main__":
    main()
