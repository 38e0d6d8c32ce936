"""Exit nodes on real kernels (issue 15, item 1): member A, exit E and an "internet" host I on a link of its own
behind E with IPv4 and IPv6 (A has no route to it). Real daemons with TUN in the netns lab, over direct, punched
and relayed paths.

* before E offers, `exit use E` is refused and counted, and A cannot reach I (IPv4 or IPv6);
* E offers (`omertactl exit offer`): its record says so (IPv4 and IPv6), `table inet omerta` appears with A's mesh
  IPs in the member sets, IPv4 and IPv6 forwarding are on and E's uplink still takes router advertisements
  (accept_ra 1 -> 2, back to 1 when the offer ends); A uses it (`omertactl exit use E`): ping and TCP to I work
  over IPv4 and IPv6, I sees E's addresses (masquerade, NAT66 of A's ULA) and A's own datagrams to E still go by
  the uplink (no loop);
* the LAN (direct: A's uplink's 203.0.113.0/24, where a host L sits): without --allow-lan TCP to L goes through E
  (L sees E's address); with --allow-lan it goes directly (L sees A's); behind a NAT the NAT's LAN is the one
  `exit status` names;
* `exit use --off`: A's rules (IPv4 and IPv6) and table are gone and I is unreachable again;
* E stops offering while A uses it: I is unreachable (ICMP from the gateway, no leak) and E's table is gone;
* A leaves the network: E's member set no longer holds A's address;
* E killed with SIGKILL while offering leaves the table; the restarted daemon removes it; a SIGTERM stop removes
  it too; A killed with SIGKILL while using leaves its rules (both families); the restarted daemon removes them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from meshd.rpcclient import RpcError
from netns.lab import Lab
from netns.test_mesh_matrix import Meshd, say, wait_for
from netns.test_vnet import pair, ping, ping_until, up

pytestmark = pytest.mark.root

INET_NET = "198.18.77.0/24"  # I's link behind E (benchmarking range: nowhere else in the lab)
INET_NET6 = "2001:db8:77::/64"  # ... and its IPv6 (documentation range); E is ::1 there
SERVER = r"""
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # (IPv4 and IPv6 clients)
s.bind(('::', 8080)); s.listen(1); print('ready', flush=True)
c, peer = s.accept(); n = 0
while (b := c.recv(65536)):
    n += len(b)
c.sendall(f'{n} {peer[0].removeprefix("::ffff:")}'.encode()); c.close()
"""
CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 8080), timeout=10); s.sendall(b'x' * int(sys.argv[2]))
s.shutdown(socket.SHUT_WR); print(s.recv(200).decode())
"""


def ctl(d: Meshd, *args: str) -> dict:
    r = d.lab.exec(d.host, [sys.executable, "-m", "omerta_clients.ctl.main", "--socket", str(d.socket), *args, "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def omerta_table(d: Meshd) -> str | None:
    r = d.lab.exec(d.host, ["nft", "list", "table", "inet", "omerta"])
    return r.stdout if r.returncode == 0 else None


def rules(d: Meshd) -> str:
    """Both families' rules and table 51889."""
    return "".join(d.lab.exec(d.host, ["ip", f, *what]).stdout for f in ("-4", "-6")
                   for what in (["rule"], ["route", "show", "table", "51889"]))


def sysctl(d: Meshd, name: str) -> str:
    return d.lab.exec(d.host, ["sysctl", "-n", name]).stdout.strip()


def tcp_to(a: Meshd, inet, size: int = 2_000_000, ip: str | None = None) -> str:
    """Send ``size`` bytes from A to I (at ``ip``, else ``inet.ip``) over TCP; the source address I saw."""
    srv = a.lab.run(inet, ["python3", "-c", SERVER], stdout=subprocess.PIPE)
    assert srv.stdout.readline().strip() == b"ready"
    r = a.lab.exec(a.host, ["python3", "-c", CLIENT, ip or inet.ip, str(size)], timeout=30)
    srv.wait(10)
    assert r.returncode == 0, r.stderr
    got, src = r.stdout.split()
    assert int(got) == size
    return src


def restart(d: Meshd) -> None:
    d.start()
    d.wait_ready()


@pytest.mark.parametrize("kind", ["direct", "punched", "relayed"])
def test_exit_node(lab: Lab, tmp_path: Path, capsys, kind: str) -> None:
    a, e = pair(lab, tmp_path, relayed=kind == "relayed", punched=kind == "punched")
    (a4, a6), _ = up(a, e)
    inet = lab.add_lan_host("www", e.host, INET_NET, INET_NET6)
    lab.exec(e.host, ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)  # the daemon must turn it on
    assert sysctl(e, "net.ipv6.conf.all.forwarding") == "0"
    assert sysctl(e, "net.ipv6.conf.eth0.accept_ra") == "1"  # (the kernel's default: RAs unless forwarding)
    assert not ping(a, inet.ip, 1)[0] and not ping(a, inet.ip6, 1)[0]
    with pytest.raises(RpcError) as refused:
        a.call("exit.use", peer=e.id)
    assert "does not offer" in str(refused.value)
    assert a.call("status.get")["counters"].get("exit.refused_not_offered") == 1

    offer = ctl(e, "exit", "offer")
    assert offer["offering"] is True and offer["families"] == ["ipv4", "ipv6"], offer
    assert wait_for(lambda: [o["node_id"] for o in a.call("exit.status")["offered_by"]] == [e.id], 15)
    assert sysctl(e, "net.ipv4.ip_forward") == sysctl(e, "net.ipv6.conf.all.forwarding") == "1"
    assert sysctl(e, "net.ipv6.conf.eth0.accept_ra") == "2"  # the uplink keeps taking router advertisements
    assert wait_for(lambda: a4 in (omerta_table(e) or "") and a6 in (omerta_table(e) or ""), 5), omerta_table(e)
    st = ctl(a, "exit", "use", e.id)
    assert st["using"] == e.id and st["state"] == "active" and st["allow_lan"] is False, st
    own_lan = str(a.host.nat.lan) if a.host.nat else "203.0.113.0/24"
    assert st["lan"] == [own_lan], st  # A's uplink's LAN goes through E as well
    assert "lookup 51889" in lab.exec(a.host, ["ip", "-6", "rule"]).stdout
    # omertactl status and peers show it: A uses E (active), E offers (issue 15 item 5)
    x = ctl(a, "status")["exit"]
    assert (x["using"], x["using_name"], x["state"]) == (e.id, e.name, "active") and ctl(e, "status")["exit"]["offering"], x
    pe = next(p for p in ctl(a, "peers")["peers"] if p["node_id"] == e.id)
    assert (pe["exit_offered"], pe["exit_used"]) == (True, True), pe
    out = ping_until(a, inet.ip)
    out6 = ping_until(a, inet.ip6)
    src = tcp_to(a, inet)
    assert src != a4 and src.startswith("198.18.77."), src  # masqueraded as E's address on I's link
    src6 = tcp_to(a, inet, 500_000, inet.ip6)
    assert src6 == "2001:db8:77::1", src6  # NAT66: A's ULA masqueraded as E's address on I's link
    path = a.call("peers.get", peer=e.id)["networks"][0]["path"]
    say(capsys, f"\n{kind} ({path}): A -> I through E: {out.splitlines()[-1]}; IPv6 {out6.splitlines()[-1]}; "
                f"TCP 2 MB, I saw {src}; 0.5 MB over IPv6, I saw {src6}")
    if kind == "direct":  # A's LAN is the public link: L there is reached through E, or with --allow-lan directly
        lan = lab.add_public_host("lan")
        assert tcp_to(a, lan, 10_000) == e.host.ip
        st = ctl(a, "exit", "use", e.id, "--allow-lan")
        assert st["allow_lan"] is True and st["lan"] == [] and "5186" not in rules(a), st
        assert tcp_to(a, lan, 10_000) == a.host.ip
        ping_until(a, inet.ip)  # the Internet still goes by E

    assert ctl(a, "exit", "use", "--off")["using"] is None
    assert "51889" not in rules(a)
    assert not ping(a, inet.ip, 1)[0] and not ping(a, inet.ip6, 1)[0]

    ctl(a, "exit", "use", e.id)
    ping_until(a, inet.ip)
    ctl(e, "exit", "offer", "--off")
    assert omerta_table(e) is None
    assert sysctl(e, "net.ipv6.conf.all.forwarding") == "0" and sysctl(e, "net.ipv6.conf.eth0.accept_ra") == "1"
    assert wait_for(lambda: a.call("exit.status")["state"].startswith("lost"), 15)
    pe = next(p for p in ctl(a, "peers")["peers"] if p["node_id"] == e.id)
    assert (pe["exit_offered"], pe["exit_used"], ctl(a, "status")["exit"]["state"][:4]) == (False, True, "lost"), pe
    # ICMP from the gateway once A's routes follow E's record (at most REFRESH later): no leak by the uplink
    assert wait_for(lambda: "Unreachable" in ping(a, inet.ip, 1)[1], 5), ping(a, inet.ip, 1)
    assert a.call("status.get")["counters"].get("ip.icmp_unreachable", 0) >= 1

    ctl(e, "exit", "offer")
    assert wait_for(lambda: a.call("exit.status")["state"] == "active", 15)
    ping_until(a, inet.ip)

    os.killpg(e.proc.pid, signal.SIGKILL)  # a crash while offering leaves the table
    e.proc.wait(10)
    assert "exit_forward" in (omerta_table(e) or "")
    restart(e)
    assert omerta_table(e) is None  # stale rules cleaned at start
    ctl(e, "exit", "offer")
    assert omerta_table(e) is not None
    assert e.stop() == 0
    assert omerta_table(e) is None  # and removed on stop

    os.killpg(a.proc.pid, signal.SIGKILL)  # a crash while using leaves the rules
    a.proc.wait(10)
    assert "lookup 51889" in rules(a) and "lookup 51889" in lab.exec(a.host, ["ip", "-6", "rule"]).stdout
    restart(a)
    assert "51889" not in rules(a) and "5186" not in rules(a)


def test_a_member_that_leaves_is_removed_from_the_exit(lab: Lab, tmp_path: Path) -> None:
    a, e = pair(lab, tmp_path, relayed=False)
    (a4, _), _ = up(a, e)
    inet = lab.add_lan_host("www", e.host, INET_NET)
    ctl(e, "exit", "offer")
    assert wait_for(lambda: a.call("exit.status")["offered_by"], 15)
    ctl(a, "exit", "use", e.id)
    ping_until(a, inet.ip)
    assert a4 in (omerta_table(e) or "")
    net = a.call("status.get")["networks"][0]["network"]
    a.call("network.leave", network=net)
    assert wait_for(lambda: a4 not in (omerta_table(e) or ""), 15), omerta_table(e)
    assert not ping(a, inet.ip, 1)[0]
