"""The exit node's nftables rules, as data (pure; the user side's policy routing is in ``io/exitroute.py``).

Ownership of ``table inet omerta``. The daemon owns the table; the exit node owns only what is named
``exit_*`` in it: the sets ``exit_members4`` / ``exit_members6`` (current members' mesh IPs) and the base chains
``exit_forward`` (hook forward) and ``exit_postrouting`` (hook nat postrouting). Other parts (per-network firewall
rules) keep chains of their own names in the same table; removing the exit deletes only the ``exit_*`` objects,
and the table itself only when nothing else is left in it (``remove_script``, then ``io/nft.py`` ``drop_table_if_empty``).

The forward chain accepts traffic from the mesh devices (``om-*``) only with a current member's mesh IP as its
source and drops (and counts) the rest of what comes from them; answers are let through by conntrack. The
postrouting chain masquerades members' traffic leaving by any other device. ``policy accept``: traffic that is
none of ours (the host's own forwarding) is left to the host's rules.

IPv6 is the same, NAT66: members' ULA mesh addresses (``exit_members6``) are masqueraded to the exit's own
address on the outgoing device, as Tailscale does for its ULA range (a ULA is not routed on the Internet).

The user side's "allow LAN access" switch decides which prefixes leave by the exit (``lan_prefixes``): without it,
the prefixes of the uplinks' routes (the LAN this host is attached to) go through the exit too.

Every script is one nft transaction (``nft -f -``), and idempotent: ``add`` of what exists is a no-op, and
``remove_script`` adds each object before deleting it, so it works whether or not they exist (nft 1.0.6 has no
``destroy``).
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterable, Union

from .fwrules import TABLE  # table inet omerta, shared with the firewall rules

DEVICES = "om-*"  # the mesh devices (io/tundev.py DEFAULT_PREFIX)

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_SETS = (("exit_members4", "ipv4_addr"), ("exit_members6", "ipv6_addr"))
_CHAINS = (("exit_forward", "type filter hook forward priority filter; policy accept;"),
           ("exit_postrouting", "type nat hook postrouting priority srcnat; policy accept;"))


def _elements(addrs: Iterable[Address], version: int) -> str:
    return ", ".join(sorted(str(a) for a in addrs if a.version == version))


def offer_script(members: Iterable[Address]) -> str:
    """Create or update the exit's objects with ``members`` (mesh IPs allowed to leave through us)."""
    members = list(members)
    lines = [f"add table inet {TABLE}"]
    for name, kind in _SETS:
        lines += [f"add set inet {TABLE} {name} {{ type {kind}; }}", f"flush set inet {TABLE} {name}"]
    for version, (name, _) in zip((4, 6), _SETS):
        if elems := _elements(members, version):
            lines.append(f"add element inet {TABLE} {name} {{ {elems} }}")
    for name, spec in _CHAINS:
        lines += [f"add chain inet {TABLE} {name} {{ {spec} }}", f"flush chain inet {TABLE} {name}"]
    fwd, post = f"add rule inet {TABLE} exit_forward", f"add rule inet {TABLE} exit_postrouting"
    lines += [
        f"{fwd} ct state established,related accept",
        f'{fwd} iifname "{DEVICES}" ip saddr @exit_members4 accept',
        f'{fwd} iifname "{DEVICES}" ip6 saddr @exit_members6 accept',
        f'{fwd} iifname "{DEVICES}" counter drop comment "exit: not a current member"',
        f'{post} oifname != "{DEVICES}" ip saddr @exit_members4 counter masquerade',
        f'{post} oifname != "{DEVICES}" ip6 saddr @exit_members6 counter masquerade',
    ]
    return "\n".join(lines) + "\n"


def remove_script() -> str:
    """Delete the exit's chains and sets (whether or not they exist), leaving the table and others' chains."""
    lines = [f"add table inet {TABLE}"]
    for name, spec in _CHAINS:
        lines += [f"add chain inet {TABLE} {name} {{ {spec} }}", f"delete chain inet {TABLE} {name}"]
    for name, kind in _SETS:
        lines += [f"add set inet {TABLE} {name} {{ type {kind}; }}", f"delete set inet {TABLE} {name}"]
    return "\n".join(lines) + "\n"



def lan_prefixes(routes: Iterable[tuple[Network, str]], ours: Callable[[str], bool]) -> list[Network]:
    """The LAN this host is attached to, as the prefixes an exit user without "allow LAN access" sends through the
    exit (``io/exitroute.py`` ``set_lan``). ``routes``: the main table's unicast routes as (prefix, device), both
    families; ``ours``: whether a device is one of the mesh's. Per family, the uplinks are the devices that carry
    a default route; their other routes (connected or via a gateway) are the LAN. Left out: link-local prefixes
    (neighbour discovery, never routed), and a prefix that holds or is inside a route of our devices (the mesh's
    prefixes and accepted subnet routes keep theirs, e.g. a carrier-grade NAT uplink in 100.64.0.0/10). Routes on
    other devices (containers' bridges, other VPNs) are not the LAN and stay as they are."""
    routes = list(routes)
    uplinks = {(net.version, dev) for net, dev in routes if net.prefixlen == 0 and not ours(dev)}
    mesh = [net for net, dev in routes if ours(dev)]
    out: set[Network] = set()
    for net, dev in routes:
        if net.prefixlen == 0 or (net.version, dev) not in uplinks or net.is_link_local or net.is_multicast:
            continue
        if any(m.version == net.version and net.overlaps(m) for m in mesh):
            continue
        out.add(net)
    return sorted(out, key=lambda n: (n.version, n))
