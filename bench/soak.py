"""Soak: daemons under churn, a light handshake flood and message streams, for a long time.

Five real daemons on loopback in one network. A and B stay up; C, D and E churn: every CHURN seconds one of
them leaves and joins again, is killed with SIGKILL and restarted, or is stopped and started again. All the
while a member floods A with initiations from fresh identities (a light flood: --flood per second), A sends
a numbered message stream to B and C sends one to A (each message is `channel.send` with wait=True: an
acknowledged message is an accepted one), and every daemon that is up answers a timed `status.get` every
few seconds. At the end:

- every message B and A acknowledged is in their inbox (no accepted message lost; duplicates counted);
- the slowest `status.get` (no stuck RPC);
- RSS of A and B at the start, their maximum and at the end (no growth beyond --rss-bound MB).

    python3 bench/soak.py [--minutes 30] [--churn 20] [--flood 50] [--json]

Exit status 1 if a bound is broken. It runs outside CI (the issue asks for at least 30 minutes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon"), str(ROOT / "bench")]

from flood import pct  # noqa: E402

from meshd.flood import flood  # noqa: E402
from meshd.harness import DaemonProc, wait_connected  # noqa: E402

STREAM = "soak"


def light_flood(invite: str, target: str, dst: tuple[str, int], rate: float, stop: mp.Event) -> None:  # type: ignore[valid-type]
    flood(invite, target, dst, rate, lambda: not stop.is_set(), [f"127.0.0.{20 + i}" for i in range(16)])  # type: ignore[attr-defined]


class Stream:
    """Numbered messages from ``src`` to ``dst`` on STREAM; what was acknowledged, what arrived."""

    def __init__(self, src: DaemonProc, dst: DaemonProc, dst_id: str, tag: str) -> None:
        self.src, self.dst, self.dst_id, self.tag = src, dst, dst_id, tag
        self.acked: set[int] = set()
        self.failed = 0
        self.received: list[int] = []
        self.n = 0

    def send_one(self) -> None:
        self.n += 1
        try:
            self.src.call("channel.send", peer=self.dst_id, channel=STREAM, data=f"{self.tag}:{self.n}", wait=True, timeout=5.0)
            self.acked.add(self.n)
        except Exception:  # noqa: BLE001 (refused or not acknowledged: not accepted, so not owed)
            self.failed += 1

    def drain(self) -> None:
        while True:
            got = self.dst.call("channel.receive", channel=STREAM, max=1000)["messages"]
            self.received += [int(m["data"].split(":")[1]) for m in got if m["data"].startswith(self.tag + ":")]
            if len(got) < 1000:
                return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--churn", type=float, default=20.0, help="seconds between churn events")
    ap.add_argument("--flood", type=float, default=50.0, help="fresh-identity initiations per second at A")
    ap.add_argument("--rss-bound", type=float, default=150.0, help="MB; A's and B's RSS must stay under it")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(1)
    stop = mp.Event()
    with tempfile.TemporaryDirectory(prefix="omerta-soak-") as tmp:
        quiet = ["--log-level", "info"]
        ds = {n: DaemonProc(Path(tmp), n, quiet).start() for n in "abcde"}
        flooder = None
        try:
            ids = {n: d.call("status.get")["node_id"] for n, d in ds.items()}
            created = ds["a"].call("network.create", name="soak")
            invite, net_id = created["invite"], created["network"]
            for n in "bcde":
                ds[n].call("network.join", invite=invite)
                wait_connected(ds[n], ids["a"], 30)
            for n in "ab":
                ds[n].call("channel.receive", channel=STREAM)  # the stream's receivers open their channel
            host, port = ds["a"].call("status.get")["listen"][0].rsplit(":", 1)
            flooder = mp.Process(target=light_flood, args=(invite, ids["a"], (host, int(port)), args.flood, stop), daemon=True)
            flooder.start()
            streams = [Stream(ds["a"], ds["b"], ids["b"], "ab"), Stream(ds["c"], ds["a"], ids["a"], "ca")]
            rss = {n: [ds[n].rss_kb() / 1024] for n in "ab"}
            status_ms: list[float] = []
            stuck: list[str] = []
            churn_failures: list[str] = []
            churn_log: list[str] = []
            down: set[str] = set()
            lock = threading.Lock()

            def churn_once() -> None:
                n = rng.choice("cde")
                how = rng.choice(["leave-join", "kill-restart", "stop-start"])
                with lock:
                    down.add(n)
                d = ds[n]
                if how == "leave-join":
                    d.call("network.leave", network=net_id)
                    time.sleep(2)
                    d.call("network.join", invite=invite, wait=30)
                elif how == "kill-restart":
                    d.kill()
                    time.sleep(2)
                    d.start()
                else:
                    d.stop()
                    time.sleep(2)
                    d.start()
                if how != "leave-join":
                    ids[n] = d.call("status.get")["node_id"]
                if n == "c":
                    streams[1].src = d
                wait_connected(d, ids["a"], 60)
                with lock:
                    down.discard(n)
                churn_log.append(f"{time.strftime('%H:%M:%S')} {n} {how}")

            end = time.monotonic() + args.minutes * 60
            next_churn = time.monotonic() + args.churn
            next_status = time.monotonic()
            last_print = time.monotonic()
            while time.monotonic() < end:
                for st in streams:
                    with lock:
                        skip = st.src is ds["c"] and "c" in down
                    if not skip:
                        st.send_one()
                if time.monotonic() >= next_churn:
                    try:
                        churn_once()
                    except Exception as e:  # noqa: BLE001 (a churn step that failed is a finding)
                        churn_failures.append(f"{time.strftime('%H:%M:%S')} {e}")
                        down.clear()
                    next_churn = time.monotonic() + args.churn
                if time.monotonic() >= next_status:
                    for n, d in ds.items():
                        if n in down or not d.alive():
                            continue
                        t = time.perf_counter()
                        try:
                            d.call("status.get")
                        except Exception as e:  # noqa: BLE001 (a stuck RPC is a finding: counted, the soak goes on)
                            stuck.append(f"{time.strftime('%H:%M:%S')} {n}: {e}")
                        status_ms.append((time.perf_counter() - t) * 1000)
                    for n in "ab":
                        rss[n].append(ds[n].rss_kb() / 1024)
                    for st in streams:
                        st.drain()
                    next_status = time.monotonic() + 5
                if time.monotonic() - last_print > 60:
                    last_print = time.monotonic()
                    left = (end - time.monotonic()) / 60
                    print(f"soak.py: {left:.0f} min left; {sum(len(s.acked) for s in streams)} messages acknowledged, "
                          f"{len(churn_log)} churn events, RSS A {rss['a'][-1]:.0f} MB", file=sys.stderr)
            time.sleep(2)
            for st in streams:
                st.drain()
        finally:
            stop.set()
            if flooder is not None:
                flooder.join(5)
            for d in ds.values():
                d.close()
    result = {"minutes": args.minutes, "churn_events": len(churn_log), "churn_failures": churn_failures, "flood_per_s": args.flood,
              "streams": {s.tag: {"acknowledged": len(s.acked), "not_accepted": s.failed,
                                  "lost": len(s.acked - set(s.received)), "duplicates": len(s.received) - len(set(s.received))}
                          for s in streams},
              "status_ms": {"max": max(status_ms), "p99": pct(status_ms, 0.99), "calls": len(status_ms),
                            "unanswered": stuck},
              "rss_mb": {n: {"start": v[0], "max": max(v), "end": v[-1]} for n, v in rss.items()},
              "churn": churn_log}
    ok = (all(v["lost"] == 0 for v in result["streams"].values()) and not stuck and not churn_failures and result["status_ms"]["max"] < 5000
          and all(v["max"] < args.rss_bound for v in result["rss_mb"].values()))
    result["ok"] = ok
    print(json.dumps(result, indent=1) if args.json else json.dumps({k: v for k, v in result.items() if k != "churn"}, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
