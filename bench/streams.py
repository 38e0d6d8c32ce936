"""Mesh stream throughput next to the plain link, in the same run: raw bytes and ssh.

Two real daemons on loopback, alfa and bravo, in one network; bravo exposes a sink (reads and discards) and, when
sshd is installed, an sshd of its own on a free port. Measured, each the median of RUNS:

* stream: SIZE MB written into a stream from ``omertactl connect``'s socket (the daemon's stream socket, as the
  command gets it) to the sink, until the sink has read it all; beside it, plain TCP to the same sink;
* ssh: ``ssh ... 'cat > /dev/null'`` with SIZE MB on stdin, through ``ProxyCommand omertactl connect %h %p`` and
  straight to sshd (ssh's own cipher on both).

The plain link is loopback here, so the ratio is against a link no network has; the stream's own cost is what it
shows (a daemon's per-byte work in Python).

    python3 bench/streams.py [--size 64] [--runs 3] [--json]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon"), str(ROOT / "clients")]

from clients.ctlharness import CLIENT_ENV, ctl, node_id, prepare, start_all  # noqa: E402
from meshd.harness import join  # noqa: E402
from omerta_clients.ctl.connect import open_stream  # noqa: E402
from sshd import MISSING, Sshd  # noqa: E402


class Sink(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while self.request.recv(1 << 20):
            pass
        self.request.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


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
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    size = a.size << 20
    base = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    seeds = {"alfa": b"S" * 32, "bravo": b"T" * 32}
    ids = {n: node_id(s) for n, s in seeds.items()}
    alfa, bravo = (prepare(base, n, s, ids) for n, s in seeds.items())
    sink = Server(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sshd = None
    out: dict[str, float] = {}
    try:
        start_all([alfa, bravo])
        join(alfa, bravo, "bench")
        port = sink.server_address[1]
        ctl(bravo.socket, "serve", "add", str(port))
        mesh = [push(open_stream(str(alfa.socket), "bravo", port)[0], size) for _ in range(a.runs)]
        plain = [push(socket.create_connection(("127.0.0.1", port)), size) for _ in range(a.runs)]
        out["stream_mb_s"] = a.size / statistics.median(mesh)
        out["plain_tcp_mb_s"] = a.size / statistics.median(plain)
        if MISSING is None:
            sshd = Sshd(base / "ssh")
            sshd.start()
            ctl(bravo.socket, "serve", "add", str(sshd.port))
            common = ["ssh", *sshd.ssh_opts(), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
            proxy = f"{sys.executable} -m omerta_clients.ctl.main --socket {alfa.socket} connect %h %p"
            via = [ssh_run(common[:1] + ["-o", f"ProxyCommand={proxy}"] + common[1:] + ["root@bravo"], size) for _ in range(a.runs)]
            direct = [ssh_run(common + ["root@127.0.0.1"], size) for _ in range(a.runs)]
            out["ssh_mesh_mb_s"] = a.size / statistics.median(via)
            out["ssh_plain_mb_s"] = a.size / statistics.median(direct)
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
    if "ssh_mesh_mb_s" in out:
        print(f"  ssh     {out['ssh_mesh_mb_s']:8.1f} MB/s   plain ssh {out['ssh_plain_mb_s']:8.1f} MB/s   "
              f"ratio {out['ssh_mesh_mb_s'] / out['ssh_plain_mb_s']:.3f}")


if __name__ == "__main__":
    main()
