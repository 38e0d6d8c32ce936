"""The per-packet virtual network between two real daemons (root): ping RTT and iperf3 TCP throughput over
the mesh IPs, next to the same over the raw link (the lab's veths), in one run.

    sudo python3 bench/vnet_perpacket.py [--seconds 5] [--relayed]

Two public hosts in the netns lab (tests/netns/lab.py), one omerta-meshd each (a network of two; with
``--relayed`` a port-restricted and a symmetric NAT host through a public relay). Prints one line per
measurement and the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "clients"), str(ROOT / "daemon")]

from netns.lab import Lab  # noqa: E402
from netns.test_vnet import mesh_ips, pair, rtt_ms, up  # noqa: E402


def ping(lab: Lab, host, ip: str, n: int = 20) -> float | None:
    r = lab.exec(host, ["ping", "-c", str(n), "-i", "0.05", "-W", "2", ip], timeout=60)
    return rtt_ms(r.stdout)


def iperf(lab: Lab, src, dst, ip: str, seconds: float, streams: int = 1) -> float:
    srv = lab.run(dst, ["iperf3", "-s", "-1", "-B", ip], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    r = lab.exec(src, ["iperf3", "-c", ip, "-t", str(seconds), "-P", str(streams), "-J"], timeout=seconds + 30)
    srv.wait(10)
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--relayed", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Lab(workdir=tmp) as lab:
        da, db = pair(lab, Path(tmp), a.relayed)
        up(da, db)
        (_, _), (b4, _) = mesh_ips(da), mesh_ips(db)
        raw_ip = db.host.public_ip if not a.relayed else None
        out = {}
        if raw_ip:
            out["raw ping ms"] = ping(lab, da.host, raw_ip)
            out["raw TCP Mbit/s"] = iperf(lab, da.host, db.host, raw_ip, a.seconds)
        ping(lab, da.host, b4, 3)  # the session and path are up before measuring
        out["mesh ping ms"] = ping(lab, da.host, b4)
        out["mesh TCP Mbit/s"] = iperf(lab, da.host, db.host, b4, a.seconds)
        out["mesh TCP 4 streams Mbit/s"] = iperf(lab, da.host, db.host, b4, a.seconds, 4)
        path = da.call("peers.get", peer=db.id)["networks"][0]["path"]
        print(f"path {path}")
        for k, v in out.items():
            print(f"{k:28s} {v:10.3f}" if v is not None else f"{k:28s} -")
        if raw_ip and out["raw TCP Mbit/s"] and out["mesh ping ms"] and out["raw ping ms"]:
            print(f"mesh/raw TCP {out['mesh TCP Mbit/s'] / out['raw TCP Mbit/s']:.4f}; "
                  f"added RTT {out['mesh ping ms'] - out['raw ping ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
