"""TUN packets per second from Python (root): reads and writes of small and full-size packets, plain and with
virtio-net headers, and which offloads the kernel accepted. Runs in a throwaway network namespace.

    sudo python3 bench/tun_pps.py [--seconds 1.5]

Read: a separate process blasts UDP at an address routed into the TUN; this process reads for a fixed time
(packets lost to a full TUN queue are not counted, so the figure is what Python drains; on 2 cores the Python
sender competes for CPU and bounds it, so read it as a lower bound). Write: this process
writes prebuilt UDP packets addressed to a socket in the namespace as fast as it can.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from omerta_mesh.io import tun, tundev  # noqa: E402
from omerta_mesh.vnet.packet import checksum  # noqa: E402

ME = ipaddress.IPv4Interface("100.64.3.2/16")
PEER = "100.64.3.9"
BLAST = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
p = b"x" * {size}
end = time.monotonic() + {seconds} + 1.0
while time.monotonic() < end:
    for _ in range(256):
        try:
            s.sendto(p, ("{peer}", 9))
        except OSError:
            pass
"""


def udp_packet(size: int, dport: int) -> bytes:
    payload = b"y" * size
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + size, 0, 0x4000, 64, 17, 0,
                               ipaddress.IPv4Address(PEER).packed, ME.ip.packed))
    struct.pack_into("!H", ip, 10, checksum(ip))
    return bytes(ip) + struct.pack("!HHHH", 40000, dport, 8 + size, 0) + payload  # UDP checksum 0: none


def measure_read(t: tun.Tun, size: int, seconds: float) -> float:
    p = subprocess.Popen([sys.executable, "-c", BLAST.format(size=size, seconds=seconds, peer=PEER)])
    try:
        time.sleep(0.3)
        n, buf = 0, bytearray(tun.MAX_FRAME)
        end = time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < end:
            select.select([t.fd], [], [], 0.1)
            for _ in range(256):
                if not t.read_into(buf):
                    break
                n += 1
        return n / (time.perf_counter() - t0)
    finally:
        p.kill()
        p.wait()


def measure_write(t: tun.Tun, size: int, seconds: float) -> float:
    import socket

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((str(ME.ip), 0))
    frame = (tun.PLAIN_VNET_HDR if t.vnet_hdr else b"") + udp_packet(size, sink.getsockname()[1])
    n = 0
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        for _ in range(256):
            try:
                t.write(frame)
                n += 1
            except BlockingIOError:
                break
        try:  # keep the sink from filling (drops there are cheap, but drain a little)
            while sink.recv(4096, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass
    sink.close()
    return n / (time.perf_counter() - t0)


def inner(seconds: float) -> None:
    print(f"{'mode':<12} {'size':>6} {'read pps':>10} {'write pps':>10}")
    for vnet in (False, True):
        name = "om-bench"
        with tun.open_tun(name, vnet_hdr=vnet) as t:
            tundev.configure(tundev.DeviceConfig(name, ME, None, mtu=1500))
            if vnet:
                print(f"# offloads accepted: {t.offloads:#x} (USO {'yes' if t.uso else 'no'})")
            for size in (64, 1400):
                r, w = measure_read(t, size, seconds), measure_write(t, size, seconds)
                print(f"{'vnet-hdr' if vnet else 'plain':<12} {size:>6} {r:>10.0f} {w:>10.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.seconds)
        return
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace and a TUN device); run with sudo")
    ns = f"omtun-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inner", "--seconds", str(args.seconds)],
                       check=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
