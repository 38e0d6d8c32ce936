"""What a Prometheus scrape costs the daemon: GET /metrics latency and size with N connected peers.

One real daemon on loopback with ``[metrics] listen = "127.0.0.1:0"``; N members embedded in this process
(``MeshNode``, one event loop) join its network, so the daemon has N peers with sessions. Then SCRAPES GETs of
/metrics one after another (as one Prometheus would, only back to back), and the same number of ``status.get``
calls for comparison (both read the same views). While the scrapes run, the daemon pings one member every 50 ms:
the ping RTT shows how long a scrape holds the daemon's loop. Figures: scrape p50/p99/max in ms, the body's bytes
and sample count, status.get p50, ping p50/max idle and during scrapes, the daemon's CPU seconds per scrape.

    python3 bench/metrics.py [--peers 50] [--scrapes 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon")]

from channel_inbox import pct, pings  # noqa: E402  (bench/ is this script's directory)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from meshd.harness import DaemonProc, wait_connected  # noqa: E402
from omerta_mesh.node import MeshNode  # noqa: E402


def members(invite: str, n: int, ready: threading.Event, stop: threading.Event, ids: list[str]) -> None:
    async def main() -> None:
        nodes = [MeshNode(host="127.0.0.1", watch_addresses=False) for _ in range(n)]
        for m in nodes:
            await m.start()
        await asyncio.gather(*(m.join(invite) for m in nodes))
        ids.extend(str(m.node_id) for m in nodes)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for m in nodes:
            await m.close()

    asyncio.run(main())


def while_pinging(d: DaemonProc, peer: str, work) -> list[float]:
    out: list[float] = []
    stop = threading.Event()
    t = threading.Thread(target=pings, args=(d, peer, stop, out))
    t.start()
    try:
        work()
    finally:
        stop.set()
        t.join()
    return out


def run(peers: int, scrapes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        d = DaemonProc(Path(tmp), "d", extra=["--log-level", "warning"])
        (d.dir / "meshd.toml").write_text('[metrics]\nlisten = "127.0.0.1:0"\n')
        d.extra += ["--config", str(d.dir / "meshd.toml")]
        ready, stop = threading.Event(), threading.Event()
        ids: list[str] = []
        try:
            d.start()
            invite = d.call("network.create", name="bench")["invite"]  # type: ignore[index]
            t = threading.Thread(target=members, args=(invite, peers, ready, stop, ids))
            t.start()
            assert ready.wait(120), "members did not join"
            for nid in ids:
                wait_connected(d, nid, 60)
            url = d.call("status.get")["metrics"]["detail"]  # type: ignore[index]
            idle = while_pinging(d, ids[0], lambda: time.sleep(2))
            times: list[float] = []
            body = [b""]

            def scrape_all() -> None:
                for _ in range(scrapes):
                    t0 = time.perf_counter()
                    body[0] = urllib.request.urlopen(url, timeout=30).read()
                    times.append((time.perf_counter() - t0) * 1000)

            cpu0 = d.cpu_s()
            busy = while_pinging(d, ids[0], scrape_all)
            cpu = d.cpu_s() - cpu0
            status_ms = []
            with d.client(timeout=30) as c:
                for _ in range(scrapes):
                    t0 = time.perf_counter()
                    c.call("status.get")
                    status_ms.append((time.perf_counter() - t0) * 1000)
            n_samples = sum(len(f.samples) for f in text_string_to_metric_families(body[0].decode()))
            return {
                "peers": peers, "scrapes": scrapes, "scrape_p50_ms": pct(times, 0.5), "scrape_p99_ms": pct(times, 0.99),
                "scrape_max_ms": max(times), "body_bytes": len(body[0]), "samples": n_samples,
                "status_get_p50_ms": pct(status_ms, 0.5), "daemon_cpu_ms_per_scrape": cpu * 1000 / scrapes,
                "ping_idle_p50_ms": pct(idle, 0.5), "ping_idle_max_ms": pct(idle, 1.0),
                "ping_scraping_p50_ms": pct(busy, 0.5), "ping_scraping_max_ms": pct(busy, 1.0),
            }
        finally:
            stop.set()
            d.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peers", type=int, default=50)
    p.add_argument("--scrapes", type=int, default=200)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = run(a.peers, a.scrapes)
    print(json.dumps(r) if a.json else "\n".join(f"{k:28} {round(v, 3)}" for k, v in r.items()))


if __name__ == "__main__":
    main()
