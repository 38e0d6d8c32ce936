"""MTU on the virtual network, on real kernels (issue 11): MSS clamping on the device and path MTU through a
relay. Real daemons in the netns lab, real TUN devices, a real masquerading router and real TCP.

* A host behind member A (its own MTU 1500; A forwards and masquerades it into the mesh) opens TCP to B's mesh
  IP. A's uplink carries 1,400-byte packets out (full size in), and A's firewall drops ICMP "fragmentation
  needed", as many do. The kernel alone gets this wrong: the host offers MSS 1460 and B answers with 1300 (its
  device MTU, and B's path to A carries full size), so the host's 1,340-byte packets are larger than A's path
  carries and the too-big answers never reach it (a black hole). A lowers the MSS of the host's SYN on its way
  out and of B's SYN-ACK on its way in to what its measured path carries.
* A relayed pair whose relay's link carries 1,400-byte packets: full-size fragments inside the relay's frames
  vanish there. Padded probes through the relay find the relay path's MTU, and TCP adapts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from netns.lab import Lab
from netns.test_mesh_matrix import form_network, say, start_all, wait_for
from netns.test_vnet import TCP_CLIENT, TCP_SERVER, current_mtu, daemon, narrow, one_by_one, ping_until, tcp_transfer, up

pytestmark = pytest.mark.root

# the MSS option of the first TCP SYN to port 5201 seen on a device (AF_PACKET: a TUN gives bare IP packets)
SYN_MSS = r"""
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))
s.bind((sys.argv[1], 0)); s.settimeout(30); print('ready', flush=True)
while True:
    p = s.recv(65535)
    if len(p) < 40 or p[0] >> 4 != 4 or p[9] != 6:
        continue
    t = (p[0] & 15) * 4
    if struct.unpack_from('!H', p, t + 2)[0] != 5201 or p[t + 13] & 0x12 != 0x02:
        continue
    i, end = t + 20, t + (p[t + 12] >> 4) * 4
    while i < end and p[i] != 0:
        if p[i] == 2:
            print(struct.unpack_from('!H', p, i + 2)[0], flush=True); sys.exit(0)
        i += 1 if p[i] == 1 else p[i + 1]
    print('none', flush=True); sys.exit(0)
"""
NARROW_OUT = """
table bridge omtest {
    chain narrow { type filter hook forward priority 0; iifname "%s" ip length > 1400 drop; }
}
"""
MASQUERADE = """
table ip omtest {
    chain post { type nat hook postrouting priority srcnat; oifname "om-*" masquerade; }
    chain forward_icmp { type filter hook forward priority filter; icmp type destination-unreachable icmp code frag-needed drop; }
}
"""


def test_syns_through_the_device_get_the_mss_the_path_carries(lab: Lab, tmp_path: Path, capsys) -> None:
    if shutil.which("ethtool") is None:
        pytest.skip("ethtool missing: apt-get install -y ethtool")
    a, b = daemon(lab, tmp_path, "A"), daemon(lab, tmp_path, "B")
    lab.exec(lab.inet, ["nft", "-f", "-"], input=NARROW_OUT % a.host.port, check=True)  # out of A: 1,400 bytes
    one_by_one(a)
    start_all([a, b])
    form_network(a, [b])
    (_a4, _a6), (b4, _b6) = up(a, b)
    ping_until(a, b4)
    assert wait_for(lambda: current_mtu(a, b) == 1340 and current_mtu(b, a) == 1472, 20), (current_mtu(a, b),
                                                                                          current_mtu(b, a))
    h = lab.add_lan_host("h", a.host, "192.168.77.0/24")
    lab.exec(a.host, ["nft", "-f", "-"], input=MASQUERADE, check=True)
    dev_b = b.call("status.get")["networks"][0]["device"]
    cap = lab.run(b.host, ["python3", "-c", SYN_MSS, dev_b], stdout=subprocess.PIPE)
    assert cap.stdout.readline().strip() == b"ready"
    srv = lab.run(b.host, ["python3", "-c", TCP_SERVER, b4], stdout=subprocess.PIPE)
    assert srv.stdout.readline().strip() == b"ready"
    size = 4_000_000
    r = lab.exec(h, ["python3", "-c", TCP_CLIENT, b4, str(size)], timeout=40)
    mss = cap.stdout.readline().strip().decode()
    if r.returncode != 0:  # (the connection died: the server still waits for its end)
        lab.stop(srv)
    srv.wait(10)
    ca, cb = a.call("status.get")["counters"], b.call("status.get")["counters"]
    # A's path carries 1,340-byte datagrams: an IPSEG fragment of 1,291-byte IP packets, so MSS 1251
    limit = 1340 - 32 - 17 - 40
    say(capsys, f"\nhost (MTU 1500) behind A -> B, A's uplink 1,400 bytes out, ICMP frag-needed dropped at A: SYN MSS "
                f"at B {mss} (the host offered 1460), {ca.get('ip.mss_clamped', 0)} + {cb.get('ip.mss_clamped', 0)} "
                f"clamped at A + B; {size / 1e6:.0f} MB: {r.stdout.strip() or r.stderr.strip()[-200:]}")
    assert mss.isdigit() and int(mss) <= limit, mss
    assert r.returncode == 0 and int(r.stdout.split()[0]) == size, r.stderr[-800:]
    # A: H's SYN on its way out, B's SYN-ACK on its way in; B's path carries full size: nothing to clamp there
    assert ca.get("ip.mss_clamped", 0) == 2 and cb.get("ip.mss_clamped", 0) == 0


def test_a_relay_whose_link_is_narrow_gives_the_relay_path_a_smaller_mtu(lab: Lab, tmp_path: Path, capsys) -> None:
    """A and B meet only through R (port-restricted x random symmetric NAT); R's link carries 1,400-byte
    packets. A full-size fragment in R's frames is 1,456 bytes: without path MTU on relay paths every full-size
    TCP segment vanished at R."""
    if shutil.which("ethtool") is None:
        pytest.skip("ethtool missing: apt-get install -y ethtool")
    r = daemon(lab, tmp_path, "R", relay="on")
    s = daemon(lab, tmp_path, "S")
    a = daemon(lab, tmp_path, "A", "port-restricted", "auto")
    b = daemon(lab, tmp_path, "B", "symmetric-random", "auto")
    narrow(r)
    for d in (a, b):
        one_by_one(d)
    start_all([r, s, a, b])
    form_network(r, [s, a, b])
    (_a4, _a6), (b4, _b6) = up(a, b)
    ping_until(a, b4)
    assert wait_for(lambda: (p := a.path_to(b)) is not None and p.startswith("relay"), 15), a.path_to(b)
    # R's link takes 1,372-byte datagrams: 1,305 bytes inside R's frames; the probes find 1273
    assert wait_for(lambda: current_mtu(a, b) == 1273 and current_mtu(b, a) == 1273, 40), current_mtu(a, b)
    mbit = tcp_transfer(a, b, b4, 4_000_000)
    ca, cb = a.call("status.get")["counters"], b.call("status.get")["counters"]
    say(capsys, f"\nrelayed through a 1,400-byte relay link: relay path MTU {current_mtu(a, b)} (end to end), "
                f"{ca.get('ip.mss_clamped', 0)} + {cb.get('ip.mss_clamped', 0)} SYNs clamped, "
                f"{ca.get('ip.tx_too_big', 0)} too-big answers; 4 MB at {mbit:.0f} Mbit/s; "
                f"relay quota drops {r.call('status.get')['counters'].get('drop.relay_quota', 0)}")
    assert ca.get("ip.mss_clamped", 0) + ca.get("ip.tx_too_big", 0) >= 1
