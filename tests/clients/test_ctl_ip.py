"""omertactl ip [PEER]: mesh IPs for people, for scripts (-4/-6) and as the ip.get result (--json); the
daemons run with TUN off (tests never create devices in the host's namespace), so it also says why."""

from __future__ import annotations

import ipaddress
import re

from clients.ctlharness import check_result, ctl


def test_own_and_peer_mesh_ips(mesh3) -> None:
    alice = mesh3.sock("alice")
    own = check_result("ip.get", ctl(alice, "ip", "--json").json())
    assert own["node_id"] == mesh3.ids["alice"] and own["vnet"]["active"] is False
    [home] = own["addresses"]
    assert ipaddress.ip_address(home["ipv4"]) in ipaddress.ip_network(home["subnet4"])
    assert ipaddress.ip_address(home["ipv6"]) in ipaddress.ip_network(home["subnet6"])
    text = ctl(alice, "ip").out
    assert "home" in text and home["ipv4"] in text and home["ipv6"] in text and "TUN off" in text
    bob = check_result("ip.get", ctl(alice, "ip", "bob", "--json").json())
    assert bob["node_id"] == mesh3.ids["bob"] and bob["addresses"][0]["ipv4"] != home["ipv4"]
    assert bob["addresses"][0]["device"] is None
    # the same address as bob gives itself, and as the peer table shows
    bob_own = check_result("ip.get", ctl(mesh3.sock("bob"), "ip", "--json").json())
    assert bob_own["addresses"][0]["ipv4"] == bob["addresses"][0]["ipv4"]
    assert bob["addresses"][0]["ipv4"] in ctl(alice, "peers").out
    four = ctl(alice, "ip", "bob", "-4")
    assert four.rc == 0 and four.out.strip() == bob["addresses"][0]["ipv4"]
    six = ctl(alice, "ip", "bob", "-6").out.strip()
    assert re.fullmatch(r"fd[0-9a-f:]+", six)


def test_unknown_peer_is_an_error_with_a_fix(mesh3) -> None:
    r = ctl(mesh3.sock("alice"), "ip", "nobody-here")
    assert r.rc != 0 and "omertactl peers" in r.err
