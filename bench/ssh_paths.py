"""ssh through omerta-mesh on each path, next to plain ssh, in the same run (issue 13: "at least half of plain ssh").

Root only: two public hosts of the netns lab (tests/netns/lab.py), A and B, each with an omerta-meshd and its TUN
device in one network; a real sshd on B (127.0.0.1 and B's lab address, port 22, exposed to streams). From A,
``ssh ... 'cat > /dev/null'`` with SIZE MB on stdin:

* plain: straight to B's lab address over the lab's link (the baseline);
* stream: ``ProxyCommand omertactl connect --via stream --fdpass %h %p`` with ``ProxyUseFdpass``, as omerta-ssh
  runs it: a mesh stream (io/streams.py), every byte through both daemons;
* tcp: the same with ``--via tcp``: kernel TCP from A's mesh IP to B's stream gate (meshd/meshtcp.py), over the
  virtual network's data plane, spliced in the kernel with sshd's 127.0.0.1:22;
* with ``--copy``, stream-copy and tcp-copy too: the same paths with omertactl copying the bytes (a ProxyCommand
  without ProxyUseFdpass, as before omerta-ssh passed the descriptor).

The kinds run in turn, RUNS times (each round: every kind once), so load that comes and goes on a shared machine
falls on all of them; each figure is the median of its RUNS, each ratio the median of the per-round ratios against
that round's plain run. The load average before and after and both daemons' CPU per MB on each path are printed.

    sudo python3 bench/ssh_paths.py [--size 64] [--runs 3] [--copy] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon"), str(ROOT / "clients")]

from meshd.harness import cpu_seconds  # noqa: E402
from netns.lab import Lab, requirements_missing  # noqa: E402
from netns.test_mesh_matrix import Meshd, wait_for  # noqa: E402
from netns.test_vnet import pair, up  # noqa: E402
from sshd import MISSING, Sshd  # noqa: E402


def cpu_s(d: Meshd) -> float:
    """The daemon's user + system seconds (``ip netns exec`` execs it: the pid is the daemon's)."""
    return cpu_seconds(d.proc.pid)


def commands(a: Meshd, b: Meshd, sshd: Sshd, copy: bool) -> dict[str, list[str]]:
    common = ["ssh", *sshd.ssh_opts(), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    ctl = f"{sys.executable} -m omerta_clients.ctl.main --socket {a.socket} connect"

    def via(path: str, fdpass: bool) -> list[str]:
        proxy = ["-o", f"ProxyCommand={ctl} --via {path} --fdpass %h %p", "-o", "ProxyUseFdpass=yes"] if fdpass \
            else ["-o", f"ProxyCommand={ctl} --via {path} %h %p"]
        return [*common[:1], *proxy, *common[1:], "root@B"]

    kinds = {"plain": [*common, f"root@{b.host.ip}"], "stream": via("stream", True), "tcp": via("tcp", True)}
    if copy:
        kinds |= {"stream-copy": via("stream", False), "tcp-copy": via("tcp", False)}
    return kinds


def run_once(lab: Lab, a: Meshd, argv: list[str], data: bytes) -> float:
    p = lab.run(a.host, [*argv, "cat > /dev/null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    _, err = p.communicate(data, timeout=600)
    took = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"ssh failed ({p.returncode}): {err.decode(errors='replace')}")
    return took


def measure(size_mb: int, runs: int, copy: bool) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-ssh-paths-"))
    data = b"\0" * (size_mb << 20)
    try:
        with Lab(workdir=base) as lab:
            a, b = pair(lab, base, False, False, "[serve]\nports = [22]\n")
            up(a, b)
            sshd = Sshd(base / "ssh", listen=("127.0.0.1", b.host.ip), port=22)
            sshd.start(popen=functools.partial(lab.run, b.host))
            try:
                kinds = commands(a, b, sshd, copy)
                tcp_up = lambda: subprocess.run(lab_argv(lab, a, kinds["tcp"]) + ["true"], capture_output=True).returncode == 0  # noqa: E731
                if not wait_for(tcp_up, 10, 0.5):  # B's gate listens once its device is up (meshd/meshtcp.py REFRESH)
                    raise SystemExit("the kernel TCP path did not come up within 10 s")
                load0 = os.getloadavg()
                took: dict[str, list[float]] = {k: [] for k in kinds}
                cpu: dict[str, list[float]] = {k: [0.0, 0.0] for k in kinds}
                for _ in range(runs):
                    for k, argv in kinds.items():
                        c0 = cpu_s(a), cpu_s(b)
                        took[k].append(run_once(lab, a, argv, data))
                        cpu[k][0] += cpu_s(a) - c0[0]
                        cpu[k][1] += cpu_s(b) - c0[1]
                load1 = os.getloadavg()
                counters = {k: v for k, v in a.call("status.get")["counters"].items() if k.startswith("streams.tcp")}
            finally:
                sshd.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out: dict[str, Any] = {"size_mb": size_mb, "runs": runs, "load_before": load0, "load_after": load1, "counters": counters}
    for k, t in took.items():
        out[k] = {"mb_s": [round(size_mb / x, 1) for x in t], "median_mb_s": round(size_mb / statistics.median(t), 1),
                  "ratio": round(statistics.median(p / x for p, x in zip(took["plain"], t)), 3),
                  "cpu_ms_per_mb": [round(c * 1000 / (size_mb * runs), 2) for c in cpu[k]]}
    return out


def lab_argv(lab: Lab, a: Meshd, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", lab._ns_of(a.host), *argv]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64, help="MB per ssh run (default 64)")
    ap.add_argument("--runs", type=int, default=3, help="rounds, each kind once per round (default 3)")
    ap.add_argument("--copy", action="store_true", help="also the paths with omertactl copying the bytes (no fd passing)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    why = MISSING or requirements_missing()
    if why is not None:
        raise SystemExit(f"ssh_paths: {why}")
    out = measure(a.size, a.runs, a.copy)
    if a.json:
        print(json.dumps(out))
        return
    print(f"ssh 'cat > /dev/null' of {a.size} MB, A -> B in the netns lab, {a.runs} rounds; load average "
          f"{out['load_before'][0]:.2f} before, {out['load_after'][0]:.2f} after, {os.cpu_count()} CPUs")
    print(f"  {'path':12s} {'median':>8s}  {'ratio':>6s}  {'runs (MB/s)':24s} daemon CPU ms/MB (A, B)")
    for k in [k for k in out if isinstance(out[k], dict) and "mb_s" in out[k]]:
        v = out[k]
        print(f"  {k:12s} {v['median_mb_s']:8.1f}  {v['ratio']:6.3f}  {str(v['mb_s']):24s} {v['cpu_ms_per_mb']}")
    print(f"  A's counters: {out['counters']}")


if __name__ == "__main__":
    main()
