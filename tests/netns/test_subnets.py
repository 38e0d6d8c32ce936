"""Subnet routes on real kernels (issue 15, item 2): members A and C, advertiser B with a LAN host L on a link of
its own behind it (A has no route to it), with an IPv4 and an IPv6 prefix. Real daemons with TUN in the netns lab.

Direct paths, one test for the rules:

* before B advertises and before A accepts, A cannot reach L; B's advertisement alone changes nothing;
* B advertises both prefixes: IPv4 forwarding and IPv6 forwarding are on, and B's uplink, which took router
  advertisements (accept_ra 1), still does (2);
* A accepts (`omertactl routes accept B PREFIX`): a kernel route via A's device appears per prefix; ping and TCP
  reach L on both families, and L sees A's mesh IPs (no masquerade: L's default routes are B);
* C sends packets to A with inner sources from B's prefixes (IPv4 and IPv6): dropped and counted
  (drop.ip_spoofed), never answered;
* default routes (0.0.0.0/0, ::/0) and prefixes overlapping A's own routes or the mesh's prefix are refused with
  the reason and counted;
* the accepted prefixes are kept across a restart of A; `routes unaccept` removes the kernel routes and L is
  unreachable again; B's withdrawal puts forwarding and accept_ra back as they were.

Punched, then relayed: A and B behind port-restricted NATs (they punch), the same two prefixes, ping and 2 MB of
TCP to L on both families; then the direct path between the NATs is blocked, A's path to B moves to the relay,
and the same again.
"""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path

import pytest

from meshd.rpcclient import RpcError
from netns.lab import Lab
from netns.test_exit import ctl, restart, tcp_to
from netns.test_mesh_matrix import form_network, say, start_all, wait_for
from netns.test_vnet import daemon, pair, ping, ping_until, up

pytestmark = pytest.mark.root

LAN = "10.77.5.0/24"
LAN6 = "fd77:5::/64"


def counter(d, name: str) -> int:
    return d.call("status.get")["counters"].get(name, 0)


def kernel_route(d, prefix: str) -> str:
    return d.lab.exec(d.host, ["ip", "-6" if ":" in prefix else "-4", "route", "show", prefix]).stdout.strip()


def sysctl(d, *names: str) -> list[str]:
    return d.lab.exec(d.host, ["sysctl", "-n", *names]).stdout.split()


FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.eth0.accept_ra")


def advertise_and_accept(a, b) -> None:
    """B advertises LAN and LAN6, A accepts both once it sees them: both active."""
    for p in (LAN, LAN6):
        ctl(b, "routes", "advertise", p)
    assert wait_for(lambda: [o["prefixes"] for o in a.call("routes.list")["offered"]] == [[LAN, LAN6]], 15)
    for p in (LAN, LAN6):
        st = ctl(a, "routes", "accept", b.id, p)
    assert [(x["prefix"], x["state"]) for x in st["accepted"]] == [(LAN, "active"), (LAN6, "active")], st


def reach(a, host, mine: tuple[str, str]) -> list[str]:
    """Ping and 2 MB of TCP from A to L on both families; L must see A's mesh IPs. One line per family."""
    out = []
    for dst, src in zip((host.ip, host.ip6), mine):
        rtt = ping_until(a, dst).splitlines()[-1]
        seen = tcp_to(a, host, ip=dst)
        assert seen == src, (dst, seen, src)  # no masquerade
        out.append(f"{dst}: {rtt}; TCP 2 MB, L saw {seen}")
    return out


def test_subnet_reached_after_accept_not_before_and_spoofed_sources_dropped(lab: Lab, tmp_path: Path, capsys) -> None:
    a, b, c = daemon(lab, tmp_path, "A"), daemon(lab, tmp_path, "B"), daemon(lab, tmp_path, "C")
    start_all([a, b, c])
    form_network(a, [b, c])
    mine, _ = up(a, b)
    up(a, c)
    host = lab.add_lan_host("lan", b.host, LAN, LAN6)
    lab.exec(b.host, ["sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.eth0.disable_ipv6=0",
                      "net.ipv6.conf.eth0.accept_ra=1"], check=True)  # the daemon must turn forwarding on
    before = sysctl(b, *FORWARDING)
    assert before == ["0", "0", "1"], before
    assert not ping(a, host.ip, 1)[0] and not ping(a, host.ip6, 1)[0]

    st = ctl(b, "routes", "advertise", LAN)
    assert st["advertised"] == [LAN]
    assert sysctl(b, *FORWARDING) == ["1", "0", "1"]  # one family at a time
    assert ctl(b, "routes", "advertise", LAN6)["advertised"] == [LAN, LAN6]
    assert sysctl(b, *FORWARDING) == ["1", "1", "2"]  # a router that still takes its uplink's RAs
    assert wait_for(lambda: [o["prefixes"] for o in a.call("routes.list")["offered"]] == [[LAN, LAN6]], 15)
    assert not ping(a, host.ip, 1)[0] and not kernel_route(a, LAN)  # advertised, not accepted: nothing routed
    assert not ping(a, host.ip6, 1)[0] and not kernel_route(a, LAN6)

    # bad input first: default routes, prefixes overlapping A's own routes or the mesh's, a prefix with host bits
    for default in ("0.0.0.0/0", "::/0"):
        with pytest.raises(RpcError, match="default route"):
            a.call("routes.accept", peer=b.id, prefix=default)
        with pytest.raises(RpcError, match="default route"):
            b.call("routes.advertise", prefix=default)
    own = next(r["dst"] for r in json.loads(lab.exec(a.host, ["ip", "-j", "route"]).stdout)
               if r["dst"] != "default" and not r.get("dev", "").startswith("om-"))
    with pytest.raises(RpcError, match=f"overlaps the local route {own}"):
        a.call("routes.accept", peer=b.id, prefix=str(ipaddress.ip_network(own).supernet()))
    lab.exec(a.host, ["ip", "-6", "route", "add", "unreachable", "fd99:7::/64"], check=True)  # A's own IPv6 route
    with pytest.raises(RpcError, match="overlaps the local route fd99:7::/64 dev lo"):
        a.call("routes.accept", peer=b.id, prefix="fd99:7::/48")
    ula = ipaddress.ip_network(mine[1]).supernet(new_prefix=48)
    with pytest.raises(RpcError, match=f"overlaps the mesh's own prefix {ula}"):
        a.call("routes.accept", peer=b.id, prefix=str(ula.supernet(new_prefix=40)))
    with pytest.raises(RpcError, match="did you mean"):
        a.call("routes.accept", peer=b.id, prefix="fd77:5::1/64")
    assert counter(a, "routes.refused_default") == 2 and counter(a, "routes.refused_overlap") == 3
    assert a.call("routes.list")["accepted"] == []

    for p in (LAN, LAN6):
        st = ctl(a, "routes", "accept", b.id, p)
        assert "dev om-" in kernel_route(a, p)
    assert [(x["prefix"], x["state"]) for x in st["accepted"]] == [(LAN, "active"), (LAN6, "active")], st
    lines = reach(a, host, mine)

    # C speaks for B's subnet on both families: A drops it and counts it
    a4, a6 = mine
    for spoofed, dst in (("10.77.5.99", a4), ("fd77:5::99", a6)):
        lab.exec(c.host, ["ip", "addr", "add", spoofed, "dev", "lo"], check=True)
        before_drops = counter(a, "drop.ip_spoofed")
        r = lab.exec(c.host, ["ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", spoofed, dst], timeout=20)
        assert r.returncode != 0, r.stdout  # never answered
        assert wait_for(lambda n=before_drops: counter(a, "drop.ip_spoofed") - n >= 5, 5), spoofed
    assert ping(a, host.ip, 1)[0] and ping(a, host.ip6, 1)[0]  # B's own still pass

    restart_a = a.stop() == 0
    assert restart_a and not kernel_route(a, LAN) and not kernel_route(a, LAN6)  # gone with the device
    restart(a)
    assert wait_for(lambda: [x["state"] for x in a.call("routes.list")["accepted"]] == ["active"] * 2, 15)  # kept
    ping_until(a, host.ip)
    ping_until(a, host.ip6)

    for p in (LAN, LAN6):
        st = ctl(a, "routes", "unaccept", b.id, p)
        assert not kernel_route(a, p)
    assert st["accepted"] == []
    assert not ping(a, host.ip, 1)[0] and not ping(a, host.ip6, 1)[0]

    # accepted by meshd.toml ([routes] accept) instead, live with `omertactl reload`; status and peers show it in force
    a.config.write_text(a.config.read_text() + f'\n[routes]\naccept = [{{ peer = "{b.name}", prefix = "{LAN}" }}]\n')
    assert ctl(a, "reload")["changed"] == ["routes.accept"]
    assert wait_for(lambda: [(x["state"], x["source"]) for x in a.call("routes.list")["accepted"]] == [("active", "config")], 5)
    assert "dev om-" in kernel_route(a, LAN) and not kernel_route(a, LAN6)
    ping_until(a, host.ip)
    pb = next(p for p in ctl(a, "peers")["peers"] if p["node_id"] == b.id)
    assert (pb["routes"], pb["routes_accepted"], pb["routes_active"]) == ([LAN, LAN6], [LAN], [LAN]), pb
    [acc] = ctl(a, "status")["routes"]["accepted"]
    assert (acc["prefix"], acc["state"], acc["installed"], acc["source"]) == (LAN, "active", True, "config"), acc
    a.config.write_text(a.config.read_text().split("\n[routes]")[0])
    assert ctl(a, "reload")["changed"] == ["routes.accept"]
    assert wait_for(lambda: not kernel_route(a, LAN), 5) and a.call("routes.list")["accepted"] == []

    assert ctl(b, "routes", "withdraw", LAN6)["advertised"] == [LAN]
    assert sysctl(b, *FORWARDING) == ["1", "0", "1"]  # put back, IPv4's still held
    assert ctl(b, "routes", "withdraw", LAN)["advertised"] == []
    assert sysctl(b, *FORWARDING) == before
    assert wait_for(lambda: a.call("routes.list")["offered"] == [], 15)
    say(capsys, "\ndirect: A -> L through B: " + "\n  ".join(lines))


def test_subnet_over_punched_then_relayed_paths(lab: Lab, tmp_path: Path, capsys) -> None:
    t0 = time.monotonic()
    a, b = pair(lab, tmp_path, relayed=False, punched=True)
    mine, _ = up(a, b)
    host = lab.add_lan_host("lan", b.host, LAN, LAN6)
    advertise_and_accept(a, b)
    lines = []
    for kind in ("punched", "relayed"):
        if kind == "punched":
            ping(a, host.ip, 1)
            assert wait_for(lambda: a.path_to(b) == "punched", 20), a.path_to(b)
        else:  # the NATs cannot reach each other any more: the relay takes over (pings keep the path busy)
            t_cut = time.monotonic()
            lab.block(a.host, b.host)
            assert wait_for(lambda: ping(a, host.ip, 1) and (a.path_to(b) or "").startswith("relay"), 20), a.path_to(b)
            kind += f" {time.monotonic() - t_cut:.1f} s after the cut"
        out = reach(a, host, mine)
        path = a.path_to(b) or ""
        assert path == "punched" if kind == "punched" else path.startswith("relay"), (kind, path)
        lines.append(f"{kind} ({path}): " + "\n  ".join(out))
    say(capsys, f"\nA -> L through B ({time.monotonic() - t0:.1f} s):\n" + "\n".join(lines))
