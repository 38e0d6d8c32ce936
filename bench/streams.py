"""Mesh stream throughput next to the plain link, in the same run: raw bytes and ssh.

Two real daemons on loopback, alfa and bravo, in one network; bravo exposes a sink (reads and discards) and, when
sshd is installed, an sshd of its own on a free port. Measured, each the median of RUNS:

* stream: SIZE MB written into a stream from ``omertactl connect``'s socket (the daemon's stream socket, as the
  command gets it) to the sink, until the sink has read it all; beside it, plain TCP to the same sink; and each
  daemon's CPU time (user + system) per MB over the stream runs;
* forward: the same SIZE MB written into a port forward's local listener (``forward.add``: a plain TCP connection
  to alfa, which opens the stream itself), next to the stream socket's figure;
* ssh: ``ssh ... 'cat > /dev/null'`` with SIZE MB on stdin, through ``ProxyCommand omertactl connect %h %p`` and
  straight to sshd (ssh's own cipher on both), one after the other RUNS times; the ratio is the median of each
  pair's;
* stall (issue 13, "50 concurrent streams with one reader stalled"): STREAMS - 1 streams each read PER MB from a
  source on bravo, first alone, then beside one more stream from an endless source that is never read; the
  aggregate throughput of the readers in both cases and their ratio (1.0: the stalled one costs the others
  nothing), with both daemons' RSS before and after the stalled run (the bound is asserted in
  tests/clients/test_connect.py; here it is only printed).

The plain link is loopback here, so the ratio is against a link no network has; the stream's own cost is what it
shows (a daemon's per-byte work in Python). The daemons here run without TUN, so every figure is the mesh stream
path; bench/ssh_paths.py (root, netns) measures ssh over the stream and over kernel TCP on the virtual network.

    python3 bench/streams.py [--size 64] [--runs 3] [--streams 50] [--per 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon"), str(ROOT / "clients")]

from clients.ctlharness import CLIENT_ENV, ctl, node_id, prepare, serve_tcp, start_all  # noqa: E402
from meshd.harness import join  # noqa: E402
from omerta_clients.ctl.connect import open_stream  # noqa: E402
from sshd import MISSING, Sshd  # noqa: E402


class Sink(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while self.request.recv(1 << 20):
            pass
        self.request.close()


class Source(socketserver.BaseRequestHandler):
    """Sends ``size`` bytes (forever when None), then closes."""

    size: int | None = 2 << 20

    def handle(self) -> None:
        block = b"s" * 65536
        sent = 0
        try:
            while self.size is None or sent < self.size:
                self.request.sendall(block)
                sent += len(block)
        except OSError:
            pass


class Endless(Source):
    size = None


def push(sock: socket.socket, size: int) -> float:
    """Write ``size`` bytes, half-close, wait for the far side to close: seconds."""
    block = b"\0" * (1 << 20)
    t0 = time.monotonic()
    for _ in range(size >> 20):
        sock.sendall(block)
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass
    took = time.monotonic() - t0
    sock.close()
    return took


def drain(socks: list[socket.socket], size: int) -> float:
    """Read every socket to its end at once (a thread each): seconds until all are done; each must bring ``size``."""
    got = [0] * len(socks)

    def one(i: int, s: socket.socket) -> None:
        while data := s.recv(1 << 20):
            got[i] += len(data)
        s.close()

    threads = [threading.Thread(target=one, args=(i, s), daemon=True) for i, s in enumerate(socks)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(600)
    took = time.monotonic() - t0
    if got != [size] * len(socks):
        raise SystemExit(f"streams ended short: {sorted(set(got))} bytes, not {size}")
    return took


def stall(alfa: Any, bravo: Any, streams: int, per: int) -> dict[str, float]:
    """``streams - 1`` readers alone, then beside one stalled stream: aggregate MB/s of the readers, and RSS."""
    Source.size = per << 20
    src, endless = serve_tcp(Source), serve_tcp(Endless)
    for s in (src, endless):
        ctl(bravo.socket, "serve", "add", str(s.server_address[1]))
    n = streams - 1

    def readers() -> list[socket.socket]:
        return [open_stream(str(alfa.socket), "bravo", src.server_address[1])[0] for _ in range(n)]

    try:
        alone = drain(readers(), per << 20)
        rss0 = alfa.rss_kb(), bravo.rss_kb()
        stalled = open_stream(str(alfa.socket), "bravo", endless.server_address[1])[0]
        try:
            beside = drain(readers(), per << 20)
            rss1 = alfa.rss_kb(), bravo.rss_kb()
        finally:
            stalled.close()
    finally:
        for s in (src, endless):
            s.shutdown()
            s.server_close()
    return {"stall_alone_mb_s": n * per / alone, "stall_beside_mb_s": n * per / beside,
            "rss_alfa_before_mb": rss0[0] / 1024, "rss_alfa_after_mb": rss1[0] / 1024,
            "rss_bravo_before_mb": rss0[1] / 1024, "rss_bravo_after_mb": rss1[1] / 1024}


def ssh_run(argv: list[str], size: int) -> float:
    data = b"\0" * size
    t0 = time.monotonic()
    r = subprocess.run(argv + ["cat > /dev/null"], input=data, capture_output=True, timeout=600, env=CLIENT_ENV)
    if r.returncode != 0:
        raise SystemExit(f"ssh failed: {r.stderr.decode(errors='replace')}")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64, help="MB per run (default 64)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--streams", type=int, default=50, help="streams in the stall run, the stalled one included (default 50)")
    ap.add_argument("--per", type=int, default=2, help="MB each reader of the stall run reads (default 2)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    size = a.size << 20
    base = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    seeds = {"alfa": b"S" * 32, "bravo": b"T" * 32}
    ids = {n: node_id(s) for n, s in seeds.items()}
    alfa, bravo = (prepare(base, n, s, ids) for n, s in seeds.items())
    sink = serve_tcp(Sink)
    sshd = None
    out: dict[str, float] = {}
    try:
        start_all([alfa, bravo])
        join(alfa, bravo, "bench")
        port = sink.server_address[1]
        ctl(bravo.socket, "serve", "add", str(port))
        cpu0 = alfa.cpu_s(), bravo.cpu_s()
        mesh = [push(open_stream(str(alfa.socket), "bravo", port)[0], size) for _ in range(a.runs)]
        mb = a.size * a.runs
        out["cpu_ms_per_mb_sender"], out["cpu_ms_per_mb_receiver"] = ((d.cpu_s() - c) * 1000 / mb for d, c in zip((alfa, bravo), cpu0))
        plain = [push(socket.create_connection(("127.0.0.1", port)), size) for _ in range(a.runs)]
        fwd = alfa.call("forward.add", local=0, peer="bravo", port=port)["local"]
        via_fwd = [push(socket.create_connection(("127.0.0.1", fwd)), size) for _ in range(a.runs)]
        out["stream_mb_s"] = a.size / statistics.median(mesh)
        out["forward_mb_s"] = a.size / statistics.median(via_fwd)
        out["plain_tcp_mb_s"] = a.size / statistics.median(plain)
        out.update(stall(alfa, bravo, a.streams, a.per))
        if MISSING is None:
            sshd = Sshd(base / "ssh")
            sshd.start()
            ctl(bravo.socket, "serve", "add", str(sshd.port))
            common = ["ssh", *sshd.ssh_opts(), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
            proxy = f"{sys.executable} -m omerta_clients.ctl.main --socket {alfa.socket} connect %h %p"
            # one through the mesh, one plain, in turn: on a shared machine the load changes between runs, and each
            # ratio compares two runs made side by side
            runs = [(ssh_run(common[:1] + ["-o", f"ProxyCommand={proxy}"] + common[1:] + ["root@bravo"], size),
                     ssh_run(common + ["root@127.0.0.1"], size)) for _ in range(a.runs)]
            out["ssh_mesh_mb_s"] = a.size / statistics.median(via for via, _ in runs)
            out["ssh_plain_mb_s"] = a.size / statistics.median(direct for _, direct in runs)
            out["ssh_ratio"] = statistics.median(direct / via for via, direct in runs)
    finally:
        if sshd is not None:
            sshd.stop()
        alfa.close()
        bravo.close()
        sink.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    if a.json:
        print(json.dumps(out))
        return
    print(f"{a.size} MB per run, median of {a.runs}, loopback")
    print(f"  stream  {out['stream_mb_s']:8.1f} MB/s   plain TCP {out['plain_tcp_mb_s']:8.1f} MB/s   "
          f"ratio {out['stream_mb_s'] / out['plain_tcp_mb_s']:.3f}")
    print(f"          CPU per MB: sending daemon {out['cpu_ms_per_mb_sender']:.1f} ms, receiving daemon "
          f"{out['cpu_ms_per_mb_receiver']:.1f} ms")
    print(f"  forward {out['forward_mb_s']:8.1f} MB/s   (a TCP connection to a port forward; ratio to the stream socket "
          f"{out['forward_mb_s'] / out['stream_mb_s']:.3f})")
    print(f"  stall   {a.streams - 1} readers x {a.per} MB: {out['stall_alone_mb_s']:.1f} MB/s alone, "
          f"{out['stall_beside_mb_s']:.1f} MB/s beside a stalled stream (ratio {out['stall_beside_mb_s'] / out['stall_alone_mb_s']:.3f}); "
          f"RSS alfa {out['rss_alfa_before_mb']:.0f} -> {out['rss_alfa_after_mb']:.0f} MB, "
          f"bravo {out['rss_bravo_before_mb']:.0f} -> {out['rss_bravo_after_mb']:.0f} MB")
    if "ssh_mesh_mb_s" in out:
        print(f"  ssh     {out['ssh_mesh_mb_s']:8.1f} MB/s   plain ssh {out['ssh_plain_mb_s']:8.1f} MB/s   "
              f"ratio {out['ssh_ratio']:.3f} (median of each run's against the plain one beside it)")


if __name__ == "__main__":
    main()
