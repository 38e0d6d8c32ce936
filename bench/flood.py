"""Handshake flood against a running daemon: what it sustains, and what its established peers feel.

Two real daemons on loopback, A and B, in one network. A member of that network (anyone who saw an invite)
floods A with valid Noise initiations, each from a freshly generated identity, round-robin from SOURCES
loopback addresses (127.0.0.2, ...), and answers A's cookie replies the way a real initiator does (the
cookie goes into mac2 of that source's next initiations, and the refused one is sent again at once). While
it runs, B sends channel messages to A and waits for each acknowledgement (the message latency, p50/p99),
and a client times `status.get` on A. Figures per phase come from A's own counters and /proc.

    python3 bench/flood.py [--rates 0,500,2000,5000] [--seconds 8] [--sources 200] [--json]

Columns: offered and sent initiations/s; A's Diffie-Hellman/s (`handshake.dh_performed`), completed
handshakes/s, cookie replies/s, refusals by the global DH budget and by the per-source limit (/s); datagrams
the kernel dropped on a full socket buffer (/proc/net/snmp, the whole host); B's message latency p50/p99 and
lost messages; the slowest `status.get`; A's RSS and CPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import selectors
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon")]

from helpers import fresh_initiation  # noqa: E402
from meshd.harness import DaemonProc, join  # noqa: E402
from omerta_mesh.core.entropy import SystemEntropy  # noqa: E402
from omerta_mesh.core.ids import NodeId  # noqa: E402
from omerta_mesh.core.network import Network  # noqa: E402
from omerta_mesh.core.noise.cookie import open_cookie  # noqa: E402
from omerta_mesh.core.wire import handshake as hw  # noqa: E402
from omerta_mesh.core.wire.invite import decode_invite  # noqa: E402

CHANNEL = "bench-latency"
STATUS_TIMEOUT = 20.0


def _build(job: tuple[str, str, int]) -> list[bytes]:
    invite, target, n = job
    inv, ent = decode_invite(invite), SystemEntropy()
    net, node = Network(inv.network_key, inv.name), NodeId.parse(target)
    return [fresh_initiation(net, node, ent, time.time())[1] for _ in range(n)]


def build_initiations(invite: str, target: str, n: int) -> list[bytes]:
    """``n`` valid initiations to ``target``, each from a fresh identity (built on every core)."""
    procs = os.cpu_count() or 1
    with mp.Pool(procs) as pool:
        parts = pool.map(_build, [(invite, target, n // procs + 1)] * procs)
    return [d for part in parts for d in part][:n]


def flooder(dgrams: list[bytes], dst: tuple[str, int], rate: float, seconds: float, sources: int,
            cookie_key: bytes, out: mp.Queue) -> None:
    """Send ``rate`` initiations a second for ``seconds``; answer cookie replies like a real initiator."""
    socks = []
    for i in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{2 + i % 250}", 0))
        s.setblocking(False)
        socks.append(s)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    cookies: dict[int, bytes] = {}
    sent_by_index: dict[int, bytes] = {}  # sender index -> the initiation, to open its cookie reply
    sent = cookies_got = 0

    def send(i: int, d: bytes) -> None:
        nonlocal sent
        if (c := cookies.get(i)) is not None:
            d = d[: -hw.MAC_LEN] + hw.mac(c, d[: -hw.MAC_LEN])
        sent_by_index[int.from_bytes(d[4:8], "little")] = d
        try:
            socks[i].sendto(d, dst)
            sent += 1
        except BlockingIOError:
            pass

    start = time.monotonic()
    k = 0
    while (now := time.monotonic()) - start < seconds and k < len(dgrams):
        due = int((now - start) * rate)
        while k < min(due, len(dgrams)):
            send(k % sources, dgrams[k])
            k += 1
        for key, _ in sel.select(timeout=0.001):
            s, i = key.fileobj, key.data
            while True:
                try:
                    data = s.recv(2048)  # type: ignore[union-attr]
                except BlockingIOError:
                    break
                if data[:1] == bytes([3]) and len(data) == hw.COOKIE_REPLY_LEN:
                    reply = hw.decode_cookie_reply(data)
                    init = sent_by_index.pop(reply.receiver, None)
                    if init is None:
                        continue
                    mac1 = init[-2 * hw.MAC_LEN : -hw.MAC_LEN]
                    cookie = open_cookie(cookie_key, reply.nonce, reply.encrypted_cookie, mac1)
                    if cookie is not None:
                        cookies[i] = cookie
                        cookies_got += 1
                        send(i, init)  # again, with mac2
        if len(sent_by_index) > 100_000:
            sent_by_index.clear()
    out.put({"sent": sent, "seconds": time.monotonic() - start, "cookies": cookies_got})
    for s in socks:
        s.close()


def kernel_drops() -> int:
    lines = Path("/proc/net/snmp").read_text().splitlines()
    udp = [ln.split() for ln in lines if ln.startswith("Udp:")]
    return int(udp[1][udp[0].index("RcvbufErrors")])


def proc_figures(d: DaemonProc) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of the daemon ``d``."""
    return d.rss_kb() / 1024, d.cpu_s()


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def measure_phase(a: DaemonProc, b: DaemonProc, a_id: str, seconds: float, flood: mp.Process | None) -> dict:
    status_ms: list[float] = []
    stop = threading.Event()

    def poll_status() -> None:
        with a.client(timeout=STATUS_TIMEOUT) as c:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    c.call("status.get")
                except Exception:  # noqa: BLE001 (an unanswered status.get is the figure: it shows as the timeout)
                    status_ms.append(STATUS_TIMEOUT * 1000)
                    return
                status_ms.append((time.perf_counter() - t) * 1000)
                time.sleep(0.2)

    before = a.call("status.get")["counters"]
    drops0, (rss0, cpu0), t0 = kernel_drops(), proc_figures(a), time.monotonic()
    if flood is not None:
        flood.start()
    poller = threading.Thread(target=poll_status, daemon=True)
    poller.start()
    lat, lost = [], 0
    with b.client(timeout=30) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                c.call("channel.send", peer=a_id, channel=CHANNEL, data="x" * 100, wait=True, timeout=5.0)
                lat.append((time.perf_counter() - t) * 1000)
            except Exception:  # noqa: BLE001 (a lost or refused message is counted, the bench goes on)
                lost += 1
            time.sleep(0.02)
    stop.set()
    poller.join()
    dt = time.monotonic() - t0
    with a.client(timeout=300) as c:  # the daemon may be catching up
        after = c.call("status.get")["counters"]
    rss1, cpu1 = proc_figures(a)
    a.call("channel.receive", channel=CHANNEL)  # drain A's inbox
    d = {k: (after.get(k, 0) - before.get(k, 0)) / dt for k in
         ("handshake.dh_performed", "handshake.completed", "drop.cookie_required", "drop.dh_budget", "drop.rate_limited")}
    return {"dh_per_s": d["handshake.dh_performed"], "completed_per_s": d["handshake.completed"],
            "cookies_per_s": d["drop.cookie_required"], "budget_drops_per_s": d["drop.dh_budget"],
            "rate_limited_per_s": d["drop.rate_limited"], "kernel_drops": kernel_drops() - drops0,
            "msg_p50_ms": pct(lat, 0.5), "msg_p99_ms": pct(lat, 0.99), "messages": len(lat), "lost": lost,
            "status_max_ms": max(status_ms) if status_ms else None, "rss_mb": max(rss0, rss1),
            "cpu_pct": 100 * (cpu1 - cpu0) / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="0,500,2000,5000", help="offered initiations per second, one phase each (0: idle)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    ap.add_argument("--sources", type=int, default=200, help="source addresses of the flood (127.0.0.2 up)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="omerta-flood-") as tmp:
        quiet = ["--log-level", "warning"]
        a, b = DaemonProc(Path(tmp), "a", quiet).start(), DaemonProc(Path(tmp), "b", quiet).start()
        try:
            net, a_id, _ = join(a, b, "flood")
            invite = net["invite"]
            a.call("channel.receive", channel=CHANNEL)  # A opens the channel B writes to
            host, port = a.call("status.get")["listen"][0].rsplit(":", 1)
            dst = (host, int(port))
            inv = decode_invite(invite)
            cookie_key = Network(inv.network_key, inv.name).cookie_key(NodeId.parse(a_id).raw)
            for rate in rates:
                flood, q = None, mp.Queue()
                if rate > 0:
                    print(f"flood.py: building {int(rate * args.seconds)} initiations from fresh identities ...", file=sys.stderr)
                    dgrams = build_initiations(invite, a_id, int(rate * args.seconds))
                    flood = mp.Process(target=flooder, args=(dgrams, dst, rate, args.seconds, args.sources, cookie_key, q))
                print(f"flood.py: phase at {rate:g} initiations/s for {args.seconds:g} s ...", file=sys.stderr)
                row = {"offered_per_s": rate, **measure_phase(a, b, a_id, args.seconds, flood)}
                if flood is not None:
                    got = q.get(timeout=60)
                    flood.join()
                    row["sent_per_s"] = got["sent"] / got["seconds"]
                else:
                    row["sent_per_s"] = 0.0
                rows.append(row)
                time.sleep(2.0)  # let the load condition lapse between phases
        finally:
            a.close()
            b.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    head = ["offered/s", "sent/s", "DH/s", "done/s", "cookies/s", "budget/s", "limit/s", "kdrops", "msg p50",
            "msg p99", "msgs", "lost", "status max", "RSS MB", "CPU %"]
    keys = ["offered_per_s", "sent_per_s", "dh_per_s", "completed_per_s", "cookies_per_s", "budget_drops_per_s",
            "rate_limited_per_s", "kernel_drops", "msg_p50_ms", "msg_p99_ms", "messages", "lost", "status_max_ms",
            "rss_mb", "cpu_pct"]
    print(" ".join(f"{h:>10}" for h in head))
    for r in rows:
        print(" ".join(f"{'-' if r[k] is None else (f'{r[k]:.1f}' if isinstance(r[k], float) else r[k]):>10}" for k in keys))
    print("(message latency: channel.send with wait=True from B to A, RPC included, in ms; status max: slowest "
          "status.get on A, in ms)")


if __name__ == "__main__":
    main()
