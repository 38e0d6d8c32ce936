"""Subnet routes on real kernels (issue 15, item 2): members A and C, advertiser B with a LAN host L on a link of
its own behind it (A has no route to it). Real daemons with TUN in the netns lab, direct paths.

* before B advertises and before A accepts, A cannot reach L; B's advertisement alone changes nothing;
* A accepts (`omertactl routes accept B PREFIX`): a kernel route via A's device appears; ping and TCP reach L,
  which sees A's mesh IP (no masquerade: L's default route is B); B turned IPv4 forwarding on;
* C sends packets to A with inner sources from B's prefix: dropped and counted (drop.ip_spoofed), never answered;
* a default route and a prefix overlapping A's own LAN route are refused with the reason and counted;
* the accepted prefix is kept across a restart of A; `routes unaccept` removes the kernel route and L is
  unreachable again; B's withdrawal puts forwarding back as it was.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from meshd.rpcclient import RpcError
from netns.lab import Lab
from netns.test_exit import ctl, restart, tcp_to
from netns.test_mesh_matrix import form_network, start_all, wait_for
from netns.test_vnet import daemon, ping, ping_until, up

pytestmark = pytest.mark.root

LAN = "10.77.5.0/24"


def counter(d, name: str) -> int:
    return d.call("status.get")["counters"].get(name, 0)


def kernel_route(d, prefix: str) -> str:
    return d.lab.exec(d.host, ["ip", "route", "show", prefix]).stdout.strip()


def test_subnet_reached_after_accept_not_before_and_spoofed_sources_dropped(lab: Lab, tmp_path: Path, capsys) -> None:
    a, b, c = daemon(lab, tmp_path, "A"), daemon(lab, tmp_path, "B"), daemon(lab, tmp_path, "C")
    start_all([a, b, c])
    form_network(a, [b, c])
    (a4, _), _ = up(a, b)
    up(a, c)
    host = lab.add_lan_host("lan", b.host, LAN)
    lab.exec(b.host, ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)  # the daemon must turn it on
    assert not ping(a, host.ip, 1)[0]

    st = ctl(b, "routes", "advertise", LAN)
    assert st["advertised"] == [LAN]
    assert lab.exec(b.host, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert wait_for(lambda: [o["prefixes"] for o in a.call("routes.list")["offered"]] == [[LAN]], 15)
    assert not ping(a, host.ip, 1)[0] and not kernel_route(a, LAN)  # advertised, not accepted: nothing routed

    # bad input first: a default route, a prefix overlapping A's own LAN route, a prefix with host bits
    with pytest.raises(RpcError, match="default route"):
        a.call("routes.accept", peer=b.id, prefix="0.0.0.0/0")
    own = next(r["dst"] for r in json.loads(lab.exec(a.host, ["ip", "-j", "route"]).stdout)
               if r["dst"] != "default" and not r.get("dev", "").startswith("om-"))
    with pytest.raises(RpcError, match=f"overlaps the local route {own}"):
        a.call("routes.accept", peer=b.id, prefix=str(ipaddress.ip_network(own).supernet()))
    with pytest.raises(RpcError, match="did you mean"):
        a.call("routes.accept", peer=b.id, prefix="10.77.5.1/24")
    with pytest.raises(RpcError, match="default route"):
        b.call("routes.advertise", prefix="0.0.0.0/0")
    assert counter(a, "routes.refused_default") == 1 and counter(a, "routes.refused_overlap") == 1
    assert a.call("routes.list")["accepted"] == []

    st = ctl(a, "routes", "accept", b.id, LAN)
    assert [(x["prefix"], x["state"]) for x in st["accepted"]] == [(LAN, "active")], st
    assert "dev om-" in kernel_route(a, LAN)
    out = ping_until(a, host.ip)
    src = tcp_to(a, host)
    assert src == a4, src  # no masquerade: L saw A's mesh IP
    say_line = f"\nA -> L ({host.ip}) through B: {out.splitlines()[-1]}; TCP 2 MB, L saw {src}"

    # C speaks for B's subnet: A drops it and counts it
    spoofed = "10.77.5.99"
    lab.exec(c.host, ["ip", "addr", "add", f"{spoofed}/32", "dev", "lo"], check=True)
    before = counter(a, "drop.ip_spoofed")
    r = lab.exec(c.host, ["ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", spoofed, a4], timeout=20)
    assert r.returncode != 0, r.stdout  # never answered
    assert wait_for(lambda: counter(a, "drop.ip_spoofed") - before >= 5, 5), counter(a, "drop.ip_spoofed") - before
    assert ping(a, host.ip, 1)[0]  # B's own still pass

    restart_a = a.stop() == 0
    assert restart_a and not kernel_route(a, LAN)  # gone with the device
    restart(a)
    assert wait_for(lambda: a.call("routes.list")["accepted"][0]["state"] == "active", 15)  # kept across restarts
    ping_until(a, host.ip)

    st = ctl(a, "routes", "unaccept", b.id, LAN)
    assert st["accepted"] == [] and not kernel_route(a, LAN)
    assert not ping(a, host.ip, 1)[0]

    assert ctl(b, "routes", "withdraw", LAN)["advertised"] == []
    assert lab.exec(b.host, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"  # put back
    assert wait_for(lambda: a.call("routes.list")["offered"] == [], 15)
    with capsys.disabled():
        print(say_line)
