"""A device whose address moves (the assignment gave ours to another member): configure replaces the old
address instead of adding a second one, keeps link-local addresses, and works with IPv6 disabled by default
in the namespace (the device turns it on for itself)."""

from __future__ import annotations

import ipaddress

import pytest

from netns.test_tun import A4, A6, ULA, open_configured, two_ns  # noqa: F401 (fixture)
from netns.tunlab import in_ns, sh
from omerta_mesh.io import tundev

pytestmark = pytest.mark.root


def test_a_moved_address_replaces_the_old_one(two_ns) -> None:  # noqa: F811
    ns = two_ns[0]
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
    t = open_configured(ns, "om-move", A4, A6)
    try:
        new4, new6 = ipaddress.IPv4Interface("100.64.9.9/16"), ipaddress.IPv6Interface("fd5e:1234:abcd::99/64")
        in_ns(ns, tundev.configure, tundev.DeviceConfig("om-move", new4, new6, mtu=1400, routes=(ULA,)))
        addrs = set(in_ns(ns, tundev.describe, "om-move").addresses)
        assert {"100.64.9.9/16", "fd5e:1234:abcd::99/64"} <= addrs
        assert not {"100.64.3.2/16", "fd5e:1234:abcd::a/64"} & addrs, addrs
    finally:
        t.close()
