"""The virtual network on real kernels (issue 11, per-packet data plane): real omerta-meshd daemons in the
netns lab, each with a TUN per network.

* a direct pair and a relayed pair (port-restricted x symmetric NAT through a public relay) ping each
  other's mesh IPv4 and IPv6 and move TCP between mesh IPs (a Python socket transfer);
* anti-spoofing: a packet whose inner source is another member's address is dropped and counted;
* unknown destinations in the network's prefix get an ICMP unreachable from the gateway;
* leave, stop, kill -9 and restart leave no stale device;
* an unprivileged daemon (no CAP_NET_ADMIN) starts with TUN off and says why in status.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from meshd.rpcclient import RpcError
from netns.lab import Lab
from netns.test_mesh_matrix import Meshd, form_network, host_of, say, start_all, wait_for
from sshd import MISSING, Sshd

pytestmark = pytest.mark.root

TCP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201)); s.listen(1); print('ready', flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
c.sendall(str(n).encode()); c.close()
"""
TCP_CLIENT = r"""
import socket, sys, time
n = int(sys.argv[2]); buf = b'x' * 65536
s = socket.create_connection((sys.argv[1], 5201), timeout=10); t = time.monotonic(); sent = 0
while sent < n:
    sent += s.send(buf[: n - sent])
s.shutdown(socket.SHUT_WR); got = int(s.recv(64)); dt = time.monotonic() - t
print(got, dt)
"""


def daemon(lab: Lab, tmp_path: Path, name: str, kind: str = "public", relay: str = "off", extra: str = "") -> Meshd:
    d = Meshd(lab, host_of(lab, name.lower(), kind), tmp_path, name)
    d.config.write_text(f'[node]\nname = "{name}"\nrelay = "{relay}"\n{extra}')
    return d


def mesh_ips(d: Meshd) -> tuple[str, str]:
    net = d.call("status.get")["networks"][0]
    return net["ipv4"], net["ipv6"]


def device_ready(d: Meshd) -> str | None:
    """The device name once the daemon reports it and the kernel has our address on it."""
    net = d.call("status.get")["networks"]
    if not net or not net[0]["device"]:
        return None
    out = d.lab.exec(d.host, ["ip", "-j", "addr", "show", "dev", net[0]["device"]]).stdout
    addrs = {a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])}
    return net[0]["device"] if net[0]["ipv4"] in addrs and net[0]["ipv6"] in addrs else None


def devices(d: Meshd) -> list[str]:
    out = d.lab.exec(d.host, ["ip", "-j", "link", "show"]).stdout
    return [link["ifname"] for link in json.loads(out or "[]") if link["ifname"].startswith("om-")]


def ping(src: Meshd, dst_ip: str, count: int = 3) -> tuple[bool, str]:
    r = src.lab.exec(src.host, ["ping", "-c", str(count), "-i", "0.2", "-W", "2", dst_ip], timeout=20)
    return r.returncode == 0, r.stdout + r.stderr


def rtt_ms(out: str) -> float | None:
    for line in out.splitlines():
        if "min/avg/max" in line:
            return float(line.split("=")[1].split("/")[1])
    return None


def ping_until(src: Meshd, dst_ip: str, timeout: float = 15.0) -> str:
    out = ""

    def ok() -> bool:
        nonlocal out
        good, out = ping(src, dst_ip, 1)
        return good

    assert wait_for(ok, timeout, 0.2), f"{src} cannot ping {dst_ip}:\n{out}\n{src.log()}"
    good, out = ping(src, dst_ip, 5)
    assert good, out
    return out


def one_by_one(d: Meshd) -> None:
    """``d``'s host sends datagrams one by one, as on a real NIC (a veth passes UDP GSO packets whole, and a
    bridge forwards a GSO packet whatever its segments' size)."""
    d.lab.exec(d.host, ["ethtool", "-K", d.host.iface, "tx-udp-segmentation", "off"], check=True)


def narrow(d: Meshd) -> None:
    """The bridge carries at most 1,400-byte frames to and from ``d``'s host (a tunnel inside a tunnel, PPPoE),
    which sends its datagrams one by one."""
    d.lab.exec(d.lab.inet, ["ip", "link", "set", "dev", d.host.port, "mtu", "1400"], check=True)
    one_by_one(d)


def current_mtu(a: Meshd, b: Meshd) -> int | None:
    """The MTU of a's current path to b, as peers.get shows it."""
    paths = a.call("peers.get", peer=b.id)["networks"][0]["paths"]
    return next((p["mtu"] for p in paths if p["current"]), None)


def tcp_transfer(src: Meshd, dst: Meshd, dst_ip: str, size: int = 4_000_000) -> float:
    """Move ``size`` bytes over TCP from src to dst's mesh IP; Mbit/s."""
    srv = dst.lab.run(dst.host, ["python3", "-c", TCP_SERVER, dst_ip], stdout=subprocess.PIPE)
    assert srv.stdout.readline().strip() == b"ready"
    r = src.lab.exec(src.host, ["python3", "-c", TCP_CLIENT, dst_ip, str(size)], timeout=30)
    srv.wait(10)
    assert r.returncode == 0, r.stderr
    got, dt = r.stdout.split()
    assert int(got) == size
    return size * 8 / float(dt) / 1e6


def iperf3(src: Meshd, dst: Meshd, dst_ip: str, seconds: float = 2) -> float:
    """One iperf3 TCP run from src to dst's mesh IP; Mbit/s received."""
    srv = dst.lab.run(dst.host, ["iperf3", "-s", "-1", "-B", dst_ip, "--forceflush"], stdout=subprocess.PIPE)
    while b"Server listening" not in (line := srv.stdout.readline()):  # (said once it listens)
        assert line, "iperf3 -s exited before it listened"
    r = src.lab.exec(src.host, ["iperf3", "-c", dst_ip, "-t", str(seconds), "-J"], timeout=seconds + 30)
    srv.wait(10)
    srv.stdout.close()
    assert r.returncode == 0, r.stdout[-500:]
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6


def pair(lab: Lab, tmp_path: Path, relayed: bool, punched: bool = False, far: str = "") -> tuple[Meshd, Meshd]:
    """Two public daemons; ``relayed``: behind a port-restricted and a random symmetric NAT (they meet only
    through the relay R); ``punched``: behind two port-restricted NATs (they punch). ``far``: more of B's
    config (sections after ``[node]``)."""
    if not relayed and not punched:
        a, b = daemon(lab, tmp_path, "A"), daemon(lab, tmp_path, "B", extra=far)
        start_all([a, b])
        form_network(a, [b])
        return a, b
    r = daemon(lab, tmp_path, "R", relay="on")
    s = daemon(lab, tmp_path, "S")
    a = daemon(lab, tmp_path, "A", "port-restricted", "auto")
    b = daemon(lab, tmp_path, "B", "port-restricted" if punched else "symmetric-random", "auto", far)
    start_all([r, s, a, b])
    form_network(r, [s, a, b])
    return a, b


def up(a: Meshd, b: Meshd) -> tuple[tuple[str, str], tuple[str, str]]:
    assert wait_for(lambda: device_ready(a) and device_ready(b), 10), (a.call("status.get")["vnet"], a.log())
    ia, ib = mesh_ips(a), mesh_ips(b)
    # each sees the other's addresses as the other sees its own (the assignment agrees)
    assert wait_for(lambda: ips_of(a, b) == ib, 15), (ips_of(a, b), ib)
    assert wait_for(lambda: ips_of(b, a) == ia, 15), (ips_of(b, a), ia)
    return ia, ib


def ips_of(d: Meshd, other: Meshd) -> tuple[str, str] | None:
    """other's mesh IPs as d's peers.get shows them (None while d does not know other yet)."""
    try:
        p = d.call("peers.get", peer=other.id)["networks"][0]
    except RpcError:
        return None
    return p["ipv4"], p["ipv6"]


@pytest.mark.parametrize("kind", ["direct", "punched", "relayed"])
def test_ping_and_tcp_between_mesh_ips(lab: Lab, tmp_path: Path, capsys, kind: str) -> None:
    relayed = kind == "relayed"
    a, b = pair(lab, tmp_path, relayed, kind == "punched")
    (a4, a6), (b4, b6) = up(a, b)
    out4 = ping_until(a, b4)
    out6 = ping_until(a, b6)
    ping_until(b, a4)
    if kind == "punched":
        assert wait_for(lambda: a.path_to(b) == "punched" and b.path_to(a) == "punched", 20), (a.path_to(b), b.path_to(a))
    path = a.call("peers.get", peer=b.id)["networks"][0]["path"]
    if relayed:
        assert path and path.startswith("relay"), path
    mbit = iperf3(a, b, b4) if shutil.which("iperf3") else tcp_transfer(a, b, b4)
    mbit6 = tcp_transfer(b, a, a6, 2_000_000)  # (every byte arrives: the count is checked)
    say(capsys, f"\n{kind} ({path}): ping v4 {rtt_ms(out4)} ms, v6 {rtt_ms(out6)} ms; "
                f"TCP {mbit:.0f} Mbit/s v4 (iperf3), {mbit6:.0f} Mbit/s v6 (super-segments, IPSEG fragments)")
    c = a.call("status.get")["counters"]
    assert c.get("ip.tx_frames", 0) > 100 and c.get("drop.ip_spoofed", 0) == 0
    # single packets (pings, ACKs) in the express lane on a direct path; a relay path wraps each one the general way
    cb = b.call("status.get")["counters"]
    if relayed:
        assert c.get("ip.tx_express", 0) == 0, c
    else:
        assert c.get("ip.tx_express", 0) > 10 and cb.get("ip.rx_express", 0) > 10, (c, cb)
    # no tunnel inside the tunnel: a mesh IP is never advertised or used as an endpoint (it looped: 900k
    # packets and 550 MB for a 6 MB transfer, when the device's address was advertised like any other)
    assert c["ip.tx_frames"] < 30_000, c
    subnet = a.call("ip.get")["addresses"][0]["subnet4"].rsplit(".", 2)[0] + "."
    for x, y in ((a, b), (b, a)):
        eps = x.call("peers.get", peer=y.id)["networks"][0]["endpoints"]
        assert not any(e.startswith(subnet) or e.startswith("[fd") for e in eps), eps


def test_unknown_destination_gets_unreachable_and_spoofed_sources_are_dropped(lab: Lab, tmp_path: Path) -> None:
    a, b, c = daemon(lab, tmp_path, "A"), daemon(lab, tmp_path, "B"), daemon(lab, tmp_path, "C")
    start_all([a, b, c])
    form_network(a, [b, c])
    (a4, _a6), (b4, _b6) = up(a, b)
    c4, c6 = mesh_ips(c)
    ping_until(a, b4)
    ping_until(b, c4)
    # nobody holds this address: the gateway answers unreachable at once (no 2 s timeout)
    base = a4.rsplit(".", 2)[0]
    nobody = next(f"{base}.{i}.{i}" for i in range(77, 99) if f"{base}.{i}.{i}" not in (a4, b4, c4))
    ok, out = ping(a, nobody, 1)
    assert not ok and "Unreachable" in out, out
    # B sends to A with C's address as its source (C's address added on B's device: the packets leave B's
    # kernel through the TUN and B's daemon routes them to A, which must refuse them)
    dev_b = device_ready(b)
    before = a.call("status.get")["counters"]
    b.lab.exec(b.host, ["ip", "addr", "add", f"{c4}/32", "dev", dev_b], check=True)
    b.lab.exec(b.host, ["ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", c4, a4], timeout=10)
    after = wait_for(lambda: (x := a.call("status.get")["counters"]).get("drop.ip_spoofed", 0) >= before.get("drop.ip_spoofed", 0) + 3
                     and x, 5)
    assert after, a.call("status.get")["counters"]
    # nothing of it reached A's kernel: A's TUN got no packet in that time beyond the three drops
    assert after.get("ip.rx_packets", 0) == before.get("ip.rx_packets", 0), (before, after)


def test_a_packet_larger_than_the_device_mtu_gets_too_big(lab: Lab, tmp_path: Path) -> None:
    """Someone raised the device MTU by hand: a DF packet larger than the mesh carries is answered with ICMP
    "fragmentation needed" / "packet too big" (mtu 1340) from the gateway, so the sender's kernel adapts."""
    a, b = pair(lab, tmp_path, False)
    (_a4, _a6), (b4, b6) = up(a, b)
    ping_until(a, b4)
    dev = device_ready(a)
    a.lab.exec(a.host, ["ip", "link", "set", "dev", dev, "mtu", "1500"], check=True)
    r4 = a.lab.exec(a.host, ["ping", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1400", b4], timeout=10)
    r6 = a.lab.exec(a.host, ["ping", "-6", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1400", b6], timeout=10)
    assert r4.returncode != 0 and "mtu = 1340" in (r4.stdout + r4.stderr).replace("mtu=", "mtu = "), r4.stdout + r4.stderr
    assert r6.returncode != 0 and "1340" in r6.stdout + r6.stderr, r6.stdout + r6.stderr
    assert a.call("status.get")["counters"].get("ip.tx_too_big", 0) >= 2
    # and what fits still goes
    ok, out = ping(a, b4, 2)
    assert ok, out


def test_leave_stop_and_kill_leave_no_device(lab: Lab, tmp_path: Path) -> None:
    a, b = pair(lab, tmp_path, False)
    up(a, b)
    assert devices(a) and devices(b)
    net = b.call("status.get")["networks"][0]["network"]
    b.call("network.leave", network=net)
    assert wait_for(lambda: not devices(b), 5), devices(b)
    assert a.stop() == 0
    assert not devices(a)
    # what a crash with a leaked fd or a persistent device would leave: our marker naming a dead process,
    # one of them with the very name the daemon wants (removed before it opens its own)
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in ("om-lab", "om-old"):
        a.lab.exec(a.host, ["ip", "tuntap", "add", "dev", name, "mode", "tun"], check=True)
        a.lab.exec(a.host, ["ip", "link", "set", name, "alias", f"omerta-mesh pid={dead.pid} start=1"], check=True)
    a.start()
    a.wait_ready()
    assert wait_for(lambda: device_ready(a), 10), a.log()
    assert devices(a) == ["om-lab"], devices(a)
    before = mesh_ips(a)
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait()
    assert wait_for(lambda: not devices(a), 5), devices(a)
    a.start()
    a.wait_ready()
    assert wait_for(lambda: device_ready(a), 10)
    assert mesh_ips(a) == before  # kept across restarts


def test_without_cap_net_admin_tun_is_off_and_says_why(lab: Lab, tmp_path: Path) -> None:
    a = daemon(lab, tmp_path, "A")
    # drop CAP_NET_ADMIN from the daemon's bounding and effective sets
    orig = a.lab.run

    def run_capless(node, argv, **kw):
        return orig(node, ["capsh", "--drop=cap_net_admin", "--", "-c", " ".join(f"'{x}'" for x in map(str, argv))], **kw)

    a.lab.run = run_capless  # type: ignore[method-assign]
    try:
        start_all([a])
    finally:
        a.lab.run = orig  # type: ignore[method-assign]
    a.call("network.create", name="lab")
    st = a.call("status.get")
    assert st["vnet"]["active"] is False and "CAP_NET_ADMIN" in st["vnet"]["detail"], st["vnet"]
    assert st["networks"][0]["ipv4"] and st["networks"][0]["device"] is None
    assert not devices(a)
    assert "TUN is off" in a.log()
    time.sleep(0.1)


def test_the_control_plane_answers_while_the_tunnel_is_saturated(lab: Lab, tmp_path: Path, capsys) -> None:
    """iperf3 fills the tunnel (both daemons busy with super-segments); meanwhile ``status.get`` round trips on
    the sender's and the receiver's socket are timed and heartbeats keep coming (the figure is printed; the
    100 ms goal is measured here and in bench/, the test only bounds it loosely)."""
    if shutil.which("iperf3") is None:
        pytest.skip("iperf3 missing: apt-get install -y iperf3")
    a, b = pair(lab, tmp_path, False)
    (_a4, _a6), (b4, _b6) = up(a, b)
    ping_until(a, b4)
    srv = lab.run(b.host, ["iperf3", "-s", "-1", "-B", b4], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    client = lab.run(a.host, ["iperf3", "-c", b4, "-t", "4", "-J"], stdout=subprocess.PIPE)
    time.sleep(0.5)  # saturated from here on
    lat: dict[str, list[float]] = {"sender": [], "receiver": []}
    pongs0 = a.call("peers.get", peer=b.id)["networks"][0]["paths"][0]["last_answer_s"]
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        for name, d in (("sender", a), ("receiver", b)):
            t = time.monotonic()
            d.call("status.get")
            lat[name].append((time.monotonic() - t) * 1000)
        time.sleep(0.05)
    out, _ = client.communicate(timeout=20)
    srv.wait(10)
    mbit = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    last_answer = a.call("peers.get", peer=b.id)["networks"][0]["paths"][0]["last_answer_s"]
    worst = {k: max(v) for k, v in lat.items()}
    med = {k: sorted(v)[len(v) // 2] for k, v in lat.items()}
    say(capsys, f"\nstatus.get during iperf3 at {mbit:.0f} Mbit/s: sender median {med['sender']:.1f} ms, worst "
                f"{worst['sender']:.1f} ms; receiver median {med['receiver']:.1f} ms, worst {worst['receiver']:.1f} ms; "
                f"last heartbeat answer {last_answer} s ago (before the run: {pongs0} s)")
    assert mbit > 10
    assert max(worst.values()) < 1000, lat  # a loose bound: the goal (100 ms) is a measurement, not a unit test
    # IP traffic counts as activity: heartbeats every 1.5 s (they were 25 s apart: a dead path would have gone
    # unnoticed for half a minute under a saturating iperf3)
    assert last_answer is not None and last_answer < 3


def test_ssh_to_a_peers_mesh_ip_with_a_real_sshd(lab: Lab, tmp_path: Path, capsys) -> None:
    """A real sshd listening only on B's mesh IP; ssh from A runs a command there (key auth, batch mode)."""
    if MISSING is not None:
        pytest.skip(MISSING)
    a, b = pair(lab, tmp_path, False)
    (_a4, _a6), (b4, b6) = up(a, b)
    ping_until(a, b4)
    sshd = Sshd(tmp_path / "ssh", listen=(b4, b6), port=2222)
    sshd.start(popen=functools.partial(lab.run, b.host))
    try:
        opts = [*sshd.ssh_opts(), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
        outs = {}
        for ip in (b4, b6):
            r = lab.exec(a.host, ["ssh", *opts, f"root@{ip}", "echo over-the-mesh; hostname -I"], timeout=30)
            assert r.returncode == 0, (r.stderr, sshd.log_text()[-2000:])
            outs[ip] = r.stdout
            assert r.stdout.startswith("over-the-mesh") and b4 in r.stdout  # it ran on B, reached by its mesh IP
        say(capsys, f"\nssh over the mesh: {b4} and [{b6}] answered: {outs[b4].split()[0]}")
    finally:
        sshd.stop()


def test_a_tcp_connection_survives_failover_to_a_relay_and_roaming(lab: Lab, tmp_path: Path, capsys) -> None:
    """One iperf3 TCP connection between mesh IPs runs on while the direct path is cut (the relay takes over)
    and healed, and then while B's host and B's router get new addresses: the session follows, TCP never
    notices more than a stall."""
    if shutil.which("iperf3") is None:
        pytest.skip("iperf3 missing: apt-get install -y iperf3")
    r = daemon(lab, tmp_path, "R", relay="on")
    a = daemon(lab, tmp_path, "A", "full-cone")
    b = daemon(lab, tmp_path, "B", "port-restricted")
    start_all([r, a, b])
    form_network(r, [a, b])
    (_a4, _a6), (b4, _b6) = up(a, b)
    ping_until(a, b4)
    assert wait_for(lambda: a.path_to(b) in ("direct", "punched") and b.path_to(a) in ("direct", "punched"), 20)
    na, nb = a.host.nat, b.host.nat
    seconds = 16
    srv = lab.run(b.host, ["iperf3", "-s", "-1", "-B", b4], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    t0 = time.monotonic()
    # at 20 Mbit/s: within the relay's quota (4 MB/s per client), so the relayed stretch carries it too
    client = lab.run(a.host, ["iperf3", "-c", b4, "-t", str(seconds), "-J", "-b", "20M"], stdout=subprocess.PIPE)
    seen, events = [], []
    try:
        time.sleep(2)
        lab.block(na, nb)
        assert wait_for(lambda: (p := a.path_to(b)) and p.startswith("relay"), 8, 0.1), a.path_to(b)
        seen.append(f"cut at {time.monotonic() - t0:.1f} s: {a.path_to(b)}")
        events.append(time.monotonic() - t0)
        time.sleep(2)
        lab.unblock(na, nb)
        assert wait_for(lambda: a.path_to(b) in ("direct", "punched"), 15, 0.1), a.path_to(b)
        seen.append(f"healed at {time.monotonic() - t0:.1f} s: {a.path_to(b)}")
        events.append(time.monotonic() - t0)
        time.sleep(1.5)
        for what, node in (("B's LAN address", b.host), ("B's router's public address", nb)):
            new_ip = lab.set_address(node)
            seen.append(f"{what} -> {new_ip} at {time.monotonic() - t0:.1f} s")
            events.append(time.monotonic() - t0)
            time.sleep(3)
        out, _ = client.communicate(timeout=seconds + 30)
    finally:
        if client.poll() is None:
            client.kill()
        srv.wait(10)
    assert client.returncode == 0, out[-800:]
    res = json.loads(out)
    rates = [round(i["sum"]["bits_per_second"] / 1e6) for i in res["intervals"]]
    total = res["end"]["sum_received"]["bytes"]
    say(capsys, f"\none TCP connection through failover and roaming: {'; '.join(seen)}; Mbit/s per second {rates}; "
                f"{total / 1e6:.0f} MB received, path now {a.path_to(b)}")
    assert "error" not in res and total > 0
    # after every event (the path moved to the relay, back, and twice to new addresses) data flows again within
    # a few seconds: stalls, never a dead connection
    starts = [i["sum"]["start"] for i in res["intervals"]]
    for te in events:
        assert any(te <= st0 <= te + 4 and x > 0 for st0, x in zip(starts, rates)), (te, list(zip(starts, rates)))
    assert rates[-1] > 0


def test_a_path_narrower_than_our_datagrams_is_measured_and_tcp_adapts(lab: Lab, tmp_path: Path, capsys) -> None:
    """The link between the two hosts carries 1,400-byte packets, not 1,500 (a tunnel inside a tunnel, PPPoE):
    full-size IPSEG fragments (1,417 bytes on the wire) vanish there while pings and handshakes pass. Padded
    probes find the path's MTU, SYNs carry the MSS it allows, and larger packets get ICMP "too big" into the device."""
    if shutil.which("iperf3") is None or shutil.which("ethtool") is None:
        pytest.skip("iperf3 or ethtool missing: apt-get install -y iperf3 ethtool")
    a, b = daemon(lab, tmp_path, "A"), daemon(lab, tmp_path, "B")
    for d in (a, b):  # the bridge drops frames larger than 1,400 bytes towards either host: a black hole
        narrow(d)
    start_all([a, b])
    form_network(a, [b])
    (_a4, _a6), (b4, _b6) = up(a, b)
    ping_until(a, b4)
    assert wait_for(lambda: current_mtu(a, b) == 1340, 20), a.call("peers.get", peer=b.id)["networks"][0]["paths"]
    # TCP: the SYNs' MSS is clamped to what the path carries (1340 - 32 - 17 - 40 = 1251), so no segment is
    # too big; anything else larger than 1,291 bytes gets ICMP too-big with that MTU
    mbit = iperf3(a, b, b4)
    big = a.lab.exec(a.host, ["ping", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1300", b4], timeout=10)
    c = a.call("status.get")["counters"]
    say(capsys, f"\na 1,400-byte link: path MTU {current_mtu(a, b)} (UDP payload), {c.get('ip.mss_clamped', 0)} SYNs clamped, "
                f"{c.get('ip.tx_too_big', 0)} too-big answers, TCP {mbit:.0f} Mbit/s")
    assert big.returncode != 0 and "mtu = 1291" in (big.stdout + big.stderr).replace("mtu=", "mtu = "), big.stdout + big.stderr
    assert c.get("ip.tx_too_big", 0) >= 1 and c.get("ip.mss_clamped", 0) >= 1 and mbit > 10
