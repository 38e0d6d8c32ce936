"""omerta-mesh against Nebula and tinc (root): iperf3 TCP throughput (1 and 4 streams), ping RTT and CPU seconds
per Gbit between two network namespaces, over the raw link and over each tunnel, at several datagram loss rates,
all from one run on this machine.

    sudo python3 bench/tunnel.py [--seconds 5] [--loss 0,1,2] [--only omerta,nebula,tinc,raw] [--json]

Two public hosts in the netns lab (tests/netns/lab.py) are the endpoints; the tunnels run one after another on
the same link (each stopped before the next starts):

* raw: the hosts' own lab addresses (0% loss only, the baseline);
* omerta: one omerta-meshd per host (tests/netns/test_mesh_matrix.py ``Meshd``), a network of two, the mesh IPs;
* nebula: a CA and two host certificates made with nebula-cert, static host map, no lighthouse, no punching,
  ``tun.dev nebula1``, an allow-all firewall, UDP 4242; otherwise Nebula's defaults;
* tinc: tinc 1.0 style configuration, ``Mode = router``, ``Interface = tinc0``, 2048-bit RSA keys, UDP/TCP 655;
  otherwise tinc's defaults.

The wire: each host's veth segments UDP GSO on send (``tx-udp-segmentation off``, as a NIC without UDP
segmentation offload does; a veth would otherwise pass a 64 KB super-packet whole) and aggregates on receive
(``gro on``, a NIC's default; a veth has GRO only with NAPI, which this turns on; the kernel aggregates a UDP run
only for a socket that asks for it with UDP_GRO, so only tunnels that read runs gain from it). The same for every
tunnel and every loss rate.

Loss: per datagram, on the wire: an nftables rule in the bridge between the hosts (table ``bridge bench``, a
forward-hook rule ``udp dport <tunnel port> numgen random mod 100 < N drop``) drops N% of the tunnel's datagrams
in each direction, one datagram at a time (the senders have segmented them, the receivers have not yet
aggregated them); only the tunnel's UDP port is touched. The rule also counts what it saw and dropped, and the
table shows the measured drop rate.

CPU: user+sys time (/proc/PID/stat utime+stime, the process and its descendants) of the tunnel processes on both
hosts during the 1-stream iperf3 run, divided by the Gbit received. Ratios omerta/Nebula come from the same run;
the targets are printed (PASS/MISS), not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "clients"), str(ROOT / "daemon")]

from netns.lab import Host, Lab  # noqa: E402
from netns.test_mesh_matrix import PORT as OMERTA_PORT  # noqa: E402
from netns.test_mesh_matrix import Meshd, form_network, start_all  # noqa: E402
from netns.test_vnet import rtt_ms, up  # noqa: E402

TUNNELS = ("raw", "omerta", "nebula", "tinc")
NEBULA_PORT = 4242
TINC_PORT = 655
IPERF_PORT = 5201
# Targets for omerta / Nebula, printed next to the ratios: (metric, loss -> (op, threshold)).
TARGETS: dict[str, Callable[[int], tuple[str, float]]] = {
    "tcp1": lambda loss: (">=", 5.0 if loss == 0 else 1.0),
    "tcp4": lambda loss: (">=", 5.0 if loss == 0 else 1.0),
    "added_rtt": lambda loss: ("<=", 1.2),
}
TICK = os.sysconf("SC_CLK_TCK")


def say(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def tools_missing(names: list[str] | None = None) -> list[str]:
    """The external programs the bench needs (for ``names`` tunnels, default all) that are not installed."""
    names = list(TUNNELS) if names is None else names
    need = ["iperf3", "ethtool"] + (["nebula", "nebula-cert"] if "nebula" in names else []) + (["tincd"] if "tinc" in names else [])
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [t for t in need if shutil.which(t, path=path) is None]


# ------------------------------------------------------------------------------------------ CPU time
def _tree(pid: int) -> list[int]:
    """pid and its live descendants."""
    out = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids = children.read_text().split()
        except OSError:
            continue
        for k in kids:
            out += _tree(int(k))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """user+sys CPU seconds so far of the processes and their descendants (threads included)."""
    ticks = 0
    for root in pids:
        for pid in _tree(root):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / TICK


# ------------------------------------------------------------------------------------------ tunnels
@dataclass
class Tunnel:
    """One way across between hosts a and b: b's address (the target) and a's, the UDP port loss applies to,
    the tunnel's processes (CPU is measured on these), and how to stop it."""

    name: str
    ip_a: str
    ip_b: str
    port: int | None = None
    procs: list[subprocess.Popen] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]


def wait_ping(lab: Lab, src: Host, ip: str, timeout: float, what: str, logs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.exec(src, ["ping", "-c", "1", "-W", "1", ip], timeout=5).returncode == 0:
            return
        if any(p.poll() is not None for p in logs):
            break
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.args}\n{_log_tail(p)}" for p in logs)
    raise RuntimeError(f"{what}: {src.name} cannot ping {ip} within {timeout} s\n{tails}")


def _log_tail(p: subprocess.Popen, n: int = 2000) -> str:
    try:
        return Path(p.log_path).read_text(errors="replace")[-n:]  # type: ignore[attr-defined]
    except (AttributeError, OSError, TypeError):
        return ""


def _stopper(lab: Lab, procs: list[subprocess.Popen]) -> Callable[[], None]:
    def stop() -> None:
        for p in procs:
            lab.stop(p)

    return stop


def start_raw(lab: Lab, a: Host, b: Host, tmp: Path) -> Tunnel:
    return Tunnel("raw", a.ip, b.ip)


def start_omerta(lab: Lab, a: Host, b: Host, tmp: Path) -> Tunnel:
    ds = []
    for host, name in ((a, "A"), (b, "B")):
        d = Meshd(lab, host, tmp / "omerta", name)
        d.config.write_text(f'[node]\nname = "{name}"\nrelay = "off"\n')
        ds.append(d)
    start_all(ds)
    form_network(ds[0], [ds[1]])
    (ia, _), (ib, _) = up(ds[0], ds[1])
    procs = [d.proc for d in ds]
    wait_ping(lab, a, ib, 20, "omerta", procs)

    def stop() -> None:
        for d in ds:
            d.stop()

    return Tunnel("omerta", ia, ib, OMERTA_PORT, procs, stop)


def _nebula_config(d: Path, me: str, other_ip: str, other_lab_ip: str) -> Path:
    # JSON is YAML: no YAML writer needed.
    cfg = {
        "pki": {"ca": str(d / "ca.crt"), "cert": str(d / f"{me}.crt"), "key": str(d / f"{me}.key")},
        "static_host_map": {other_ip: [f"{other_lab_ip}:{NEBULA_PORT}"]},
        "lighthouse": {"am_lighthouse": False, "interval": 60, "hosts": []},
        "listen": {"host": "0.0.0.0", "port": NEBULA_PORT},
        "punchy": {"punch": False},
        "relay": {"am_relay": False, "use_relays": False},
        "tun": {"disabled": False, "dev": "nebula1", "drop_local_broadcast": False, "drop_multicast": False},
        "logging": {"level": "info", "format": "text"},
        "firewall": {
            "outbound": [{"port": "any", "proto": "any", "host": "any"}],
            "inbound": [{"port": "any", "proto": "any", "host": "any"}],
        },
    }
    path = d / f"{me}.yml"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def start_nebula(lab: Lab, a: Host, b: Host, tmp: Path) -> Tunnel:
    d = tmp / "nebula"
    d.mkdir()
    ips = {"a": "10.77.0.1", "b": "10.77.0.2"}
    cert = shutil.which("nebula-cert") or "nebula-cert"
    subprocess.run([cert, "ca", "-name", "bench", "-out-crt", "ca.crt", "-out-key", "ca.key"], cwd=d, check=True,
                   capture_output=True)
    for n, ip in ips.items():
        subprocess.run([cert, "sign", "-ca-crt", "ca.crt", "-ca-key", "ca.key", "-name", n, "-ip", f"{ip}/24",
                        "-out-crt", f"{n}.crt", "-out-key", f"{n}.key"], cwd=d, check=True, capture_output=True)
    procs = []
    for host, me, other, other_host in ((a, "a", "b", b), (b, "b", "a", a)):
        cfg = _nebula_config(d, me, ips[other], other_host.ip)
        procs.append(lab.run(host, [shutil.which("nebula") or "nebula", "-config", cfg]))
    wait_ping(lab, a, ips["b"], 20, "nebula", procs)
    return Tunnel("nebula", ips["a"], ips["b"], NEBULA_PORT, procs, _stopper(lab, procs))


def start_tinc(lab: Lab, a: Host, b: Host, tmp: Path) -> Tunnel:
    base = tmp / "tinc"
    ips = {"a": "10.78.0.1", "b": "10.78.0.2"}
    lab_ips = {"a": a.ip, "b": b.ip}
    tincd = shutil.which("tincd") or "/usr/sbin/tincd"
    for me, other in (("a", "b"), ("b", "a")):
        d = base / me
        (d / "hosts").mkdir(parents=True)
        (d / "tinc.conf").write_text(f"Name = {me}\nInterface = tinc0\nMode = router\nPort = {TINC_PORT}\nAddressFamily = ipv4\n"
                                     + (f"ConnectTo = {other}\n" if me == "a" else ""))
        (d / "hosts" / me).write_text(f"Address = {lab_ips[me]}\nPort = {TINC_PORT}\nSubnet = {ips[me]}/32\n")
        up_script = d / "tinc-up"
        up_script.write_text(f"#!/bin/sh\nip addr add {ips[me]}/24 dev $INTERFACE\nip link set $INTERFACE up\n")
        up_script.chmod(0o755)
        subprocess.run([tincd, f"--config={d}", "-K2048"], stdin=subprocess.DEVNULL, check=True, capture_output=True)
    for me, other in (("a", "b"), ("b", "a")):
        shutil.copy(base / other / "hosts" / other, base / me / "hosts" / other)
    procs = [lab.run(host, [tincd, "-D", f"--config={base / me}", f"--pidfile={base / me / 'tinc.pid'}"])
             for host, me in ((a, "a"), (b, "b"))]
    wait_ping(lab, a, ips["b"], 30, "tinc", procs)
    return Tunnel("tinc", ips["a"], ips["b"], TINC_PORT, procs, _stopper(lab, procs))


STARTERS = {"raw": start_raw, "omerta": start_omerta, "nebula": start_nebula, "tinc": start_tinc}


# ------------------------------------------------------------------------------------------ link and loss
def prepare_link(lab: Lab, hosts: list[Host]) -> None:
    """Per-datagram packets on the wire, as between real NICs: each host's veth segments UDP GSO on send
    (``tx-udp-segmentation off``) and aggregates on receive (``gro on``: a NIC's default; a veth has GRO only
    with NAPI, which this turns on; UDP runs are aggregated only for sockets that ask for them with UDP_GRO)."""
    for h in hosts:
        lab.exec(h, ["ethtool", "-K", h.iface, "tx-udp-segmentation", "off"], check=True)
        lab.exec(h, ["ethtool", "-K", h.iface, "gro", "on", "rx-udp-gro-forwarding", "on"], check=True)


def _switches(hosts: list[Host]) -> list[str]:
    """The namespaces of the bridges the hosts hang on (where the wire between them is)."""
    return sorted({h.switch_ns for h in hosts})


def set_loss(lab: Lab, hosts: list[Host], port: int, pct: int) -> None:
    """Drop pct% of the datagrams to ``port`` on the wire between the hosts (in the bridge, so in both
    directions, one datagram at a time: the senders' veths have segmented them, the receivers' GRO has not
    yet aggregated them), counting them."""
    rules = (f"table bridge bench {{\n chain forward {{\n  type filter hook forward priority -10; policy accept;\n"
             f"  udp dport {port} counter numgen random mod 100 < {pct} counter drop\n }}\n}}\n")
    clear_loss(lab, hosts)
    for ns in _switches(hosts):
        lab.exec(ns, ["nft", "-f", "-"], input=rules, check=True)


def clear_loss(lab: Lab, hosts: list[Host]) -> None:
    for ns in _switches(hosts):
        lab.exec(ns, ["nft", "delete", "table", "bridge", "bench"])


def loss_counters(lab: Lab, hosts: list[Host]) -> tuple[int, int]:
    """(datagrams seen, datagrams dropped) by the loss rules so far."""
    seen = dropped = 0
    for ns in _switches(hosts):
        r = lab.exec(ns, ["nft", "-j", "list", "table", "bridge", "bench"])
        if r.returncode != 0:
            continue
        for item in json.loads(r.stdout)["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            counters = [e["counter"] for e in rule["expr"] if "counter" in e]
            if len(counters) == 2:
                seen += counters[0]["packets"]
                dropped += counters[1]["packets"]
    return seen, dropped


# ------------------------------------------------------------------------------------------ measurements
PINGS = 60  # per measurement, 50 ms apart: the median, so one scheduling stall on this shared machine does not
# decide the figure (the mean is kept beside it)


def ping(lab: Lab, src: Host, ip: str, n: int = PINGS) -> dict:
    """``n`` pings 50 ms apart: the median and mean RTT in ms, and the loss."""
    r = lab.exec(src, ["ping", "-c", str(n), "-i", "0.05", "-W", "2", ip], timeout=60)
    lost = None
    times = sorted(float(line.split("time=")[1].split()[0]) for line in r.stdout.splitlines() if "time=" in line)
    for line in r.stdout.splitlines():
        if "packet loss" in line:
            lost = float(line.split("%")[0].split()[-1])
    median = times[len(times) // 2] if times else None
    return {"rtt_ms": median, "rtt_mean_ms": rtt_ms(r.stdout), "ping_loss_pct": lost}


def iperf(lab: Lab, src: Host, dst: Host, ip: str, seconds: float, streams: int, cpu_pids: list[int] | None = None) -> dict:
    """iperf3 TCP from src to ip (a server in dst): Mbit/s received, bytes, retransmits, and the CPU seconds
    of ``cpu_pids`` during the run."""
    srv = lab.run(dst, ["iperf3", "-s", "-1", "-B", ip, "-p", str(IPERF_PORT)], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not lab.exec(dst, ["ss", "-Hltn", f"sport = :{IPERF_PORT}"]).stdout.strip():
            if time.monotonic() > deadline or srv.poll() is not None:
                return {"error": "iperf3 server did not start"}
            time.sleep(0.05)
        cpu0 = cpu_seconds(cpu_pids) if cpu_pids else 0.0
        try:
            r = lab.exec(src, ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-P", str(streams), "-J"],
                         timeout=seconds + 40)
        except subprocess.TimeoutExpired:
            return {"error": "iperf3 client timed out"}
        cpu = cpu_seconds(cpu_pids) - cpu0 if cpu_pids else None
        try:
            j = json.loads(r.stdout)
        except json.JSONDecodeError:
            return {"error": f"iperf3: {r.stderr.strip() or r.stdout.strip()}"[:200]}
        if "error" in j:
            return {"error": f"iperf3: {j['error']}"}
        end = j["end"]
        return {"mbit": end["sum_received"]["bits_per_second"] / 1e6, "bytes": end["sum_received"]["bytes"],
                "retransmits": end["sum_sent"].get("retransmits"), "cpu_s": cpu}
    finally:
        lab.stop(srv)


def measure(lab: Lab, a: Host, b: Host, tun: Tunnel, loss: int, seconds: float) -> dict:
    hosts = [a, b]
    row: dict[str, Any] = {"tunnel": tun.name, "loss_pct": loss}
    if tun.port is not None:
        set_loss(lab, hosts, tun.port, loss)
    try:
        ping(lab, a, tun.ip_b, 3)  # warm: sessions, paths, ARP
        row.update(ping(lab, a, tun.ip_b))
        one = iperf(lab, a, b, tun.ip_b, seconds, 1, tun.pids() if tun.port is not None else None)
        four = iperf(lab, a, b, tun.ip_b, seconds, 4)
        row["tcp1_mbit"] = one.get("mbit")
        row["tcp4_mbit"] = four.get("mbit")
        row["retransmits1"] = one.get("retransmits")
        row["retransmits4"] = four.get("retransmits")
        row["cpu_s"] = one.get("cpu_s")
        gbit = one.get("bytes", 0) * 8 / 1e9
        row["cpu_s_per_gbit"] = one["cpu_s"] / gbit if one.get("cpu_s") is not None and gbit > 0 else None
        errors = [x["error"] for x in (one, four) if "error" in x]
        if errors:
            row["error"] = "; ".join(errors)
        if tun.port is not None:
            seen, dropped = loss_counters(lab, hosts)
            row["datagrams"] = seen
            row["dropped_pct"] = 100.0 * dropped / seen if seen else None
    finally:
        if tun.port is not None:
            clear_loss(lab, hosts)
    return row


METRICS = (("tcp1", "tcp1_mbit"), ("tcp4", "tcp4_mbit"), ("added_rtt", "added_rtt_ms"), ("cpu_per_gbit", "cpu_s_per_gbit"))


def ratio_rows(rows: list[dict], losses: list[int]) -> list[dict]:
    """omerta / nebula at each loss: TCP 1 and 4 streams, added RTT (with targets), CPU per Gbit (no target)."""
    by = {(r["tunnel"], r["loss_pct"]): r for r in rows}
    out = []
    for loss in losses:
        o, n = by.get(("omerta", loss)), by.get(("nebula", loss))
        if not o or not n:
            continue
        for metric, key in METRICS:
            ov, nv = o.get(key), n.get(key)
            ratio = ov / nv if ov is not None and nv is not None and nv > 0 else None
            entry: dict[str, Any] = {"loss_pct": loss, "metric": metric, "omerta": ov, "nebula": nv, "ratio": ratio}
            if metric in TARGETS:
                op, thr = TARGETS[metric](loss)
                entry["target"] = f"{op} {thr:g}x"
                if metric == "added_rtt" and ov is not None and nv is not None and nv <= 0:
                    ok = ov <= 0  # Nebula adds nothing measurable: only as little passes
                else:
                    ok = ratio is not None and (ratio >= thr if op == ">=" else ratio <= thr)
                entry["verdict"] = "PASS" if ok else "MISS"
            out.append(entry)
    return out


def run(seconds: float = 5.0, losses: list[int] | None = None, only: list[str] | None = None) -> dict:
    """Everything, in one lab; the result as a JSON-ready dict (rows per tunnel and loss, ratios)."""
    losses = [0, 1, 2] if losses is None else losses
    names = [t for t in TUNNELS if only is None or t in only]
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-tunnel-") as tmpdir, Lab(workdir=tmpdir) as lab:
        tmp = Path(tmpdir)
        a, b = lab.add_public_host("a"), lab.add_public_host("b")
        prepare_link(lab, [a, b])
        raw = Tunnel("raw", a.ip, b.ip)
        ping(lab, a, b.ip, 3)
        raw_rtt = ping(lab, a, b.ip)["rtt_ms"]  # the baseline for added RTT, measured even without the raw row
        for name in names:
            say(f"[{time.monotonic() - t0:5.0f} s] {name}: starting")
            started = len(lab.procs)
            try:
                tun = raw if name == "raw" else STARTERS[name](lab, a, b, tmp)
            except Exception as e:  # one tunnel that does not come up costs its rows, not the run
                for p in lab.procs[started:]:
                    lab.stop(p)
                say(f"{name} did not come up: {e}")
                rows.append({"tunnel": name, "loss_pct": losses[0] if losses else 0, "error": f"did not come up: {str(e)[:300]}"})
                continue
            try:
                for loss in ([0] if name == "raw" else losses):
                    say(f"[{time.monotonic() - t0:5.0f} s] {name}: {loss}% loss")
                    row = measure(lab, a, b, tun, loss, seconds)
                    if name != "raw" and row.get("rtt_ms") is not None and raw_rtt is not None:
                        row["added_rtt_ms"] = row["rtt_ms"] - raw_rtt
                    rows.append(row)
            finally:
                tun.stop()
    return {
        "seconds": seconds, "losses": losses, "tunnels": names, "raw_rtt_ms": raw_rtt,
        "link": "veth pair through a bridge; tx-udp-segmentation off, gro on; loss in the bridge",
        "cpus": os.cpu_count(), "loadavg_before": round(load0, 2), "elapsed_s": round(time.monotonic() - t0, 1),
        "rows": rows, "ratios": ratio_rows(rows, losses),
    }


# ------------------------------------------------------------------------------------------ output
def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render(res: dict) -> str:
    lines = [f"tunnel bench: iperf3 {res['seconds']:g} s per run, ping {PINGS} x 50 ms (median), {res['cpus']} CPUs; {res['link']}",
             f"raw RTT baseline {_f(res['raw_rtt_ms'], '.3f')} ms; loss = per datagram on the tunnel's UDP port, each direction",
             "",
             f"{'tunnel':8s} {'loss':>4s} {'dropped':>8s} {'ping ms':>8s} {'+RTT ms':>8s} {'TCP1 Mbit/s':>12s} {'TCP4 Mbit/s':>12s} "
             f"{'retr1':>6s} {'retr4':>6s} {'CPU s/Gbit':>10s}"]
    for r in res["rows"]:
        dropped = "-" if r.get("dropped_pct") is None else f"{r['dropped_pct']:.2f}%"
        lines.append(
            f"{r['tunnel']:8s} {r['loss_pct']:>3d}% {dropped:>8s} "
            f"{_f(r.get('rtt_ms'), '.3f'):>8s} {_f(r.get('added_rtt_ms'), '.3f'):>8s} {_f(r.get('tcp1_mbit'), '.1f'):>12s} "
            f"{_f(r.get('tcp4_mbit'), '.1f'):>12s} {_f(r.get('retransmits1'), 'd'):>6s} {_f(r.get('retransmits4'), 'd'):>6s} "
            f"{_f(r.get('cpu_s_per_gbit'), '.2f'):>10s}" + (f"  ERROR {r['error'].splitlines()[0]}" if r.get("error") else ""))
    lines.append("")
    if res["ratios"]:
        names = {"tcp1": "TCP 1 stream", "tcp4": "TCP 4 streams", "added_rtt": "added RTT", "cpu_per_gbit": "CPU s/Gbit"}
        lines.append("omerta / nebula, same run")
        lines.append(f"{'loss':>4s} {'metric':14s} {'omerta':>10s} {'nebula':>10s} {'ratio':>8s} {'target':>8s}  verdict")
        for x in res["ratios"]:
            fmt = ".3f" if x["metric"] in ("added_rtt", "cpu_per_gbit") else ".1f"
            lines.append(f"{x['loss_pct']:>3d}% {names[x['metric']]:14s} {_f(x['omerta'], fmt):>10s} {_f(x['nebula'], fmt):>10s} "
                         f"{_f(x['ratio'], '.2f') + ('x' if x['ratio'] is not None else ''):>8s} {x.get('target', '-'):>8s}  "
                         f"{x.get('verdict', '-')}")
    else:
        lines.append("(no omerta / nebula ratios: both must be measured)")
    lines.append(f"\nelapsed {res['elapsed_s']:.0f} s; load average {res['loadavg_before']:.2f} before the run "
                 "(other work on this machine competes with the tunnels for CPU)")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="iperf3 duration per run (default 5)")
    ap.add_argument("--loss", type=_ints, default=[0, 1, 2], help="datagram loss percentages, e.g. 0,1,2")
    ap.add_argument("--only", default=",".join(TUNNELS), help=f"tunnels to run, of {','.join(TUNNELS)}")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    a = ap.parse_args(argv)
    only = [t.strip() for t in a.only.split(",") if t.strip()]
    if bad := [t for t in only if t not in TUNNELS]:
        ap.error(f"unknown tunnel(s) {','.join(bad)}; of {','.join(TUNNELS)}")
    if any(not 0 <= x <= 100 for x in a.loss):
        ap.error("--loss takes percentages 0..100")
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, TUN, nftables)")
    if missing := tools_missing(only):
        ap.error(f"missing {', '.join(missing)} (apt-get install iperf3 ethtool nebula tinc)")
    res = run(a.seconds, a.loss, only)
    print(json.dumps(res) if a.json else render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
