"""The NAT lab's nftables rulesets: one RFC 4787 category per NAT kind, and the "internet" namespace's ruleset.

Used by lab.py (the Lab class); the kinds' expected behaviour is KINDS.
"""

from __future__ import annotations

SEQ_BASE, SEQ_SIZE = 20000, 1024
MAPPING_TIMEOUT = "2m"  # RFC 4787 REQ-5: at least 2 minutes

#: claimed kind -> (mapping, filtering, port allocation) that ``verify`` must observe
KINDS: dict[str, tuple[str, str, str]] = {
    "full-cone": ("EIM", "EIF", "preserve"),
    "restricted": ("EIM", "ADF", "preserve"),
    "port-restricted": ("EIM", "APDF", "preserve"),
    "symmetric-random": ("APDM", "APDF", "random"),
    "symmetric-sequential": ("APDM", "APDF", "sequential"),
}


class NatVerificationError(AssertionError):
    """A NAT router did not behave as the kind it claims."""



# ------------------------------------------------------------------------------------ nft rulesets
def nat_ruleset(kind: str, wan_ip: str, wan: str = "wan0", lan: str = "lan0") -> str:
    """The nftables ruleset of a NAT router of ``kind`` (see KINDS). UDP gets the exact behaviour;
    other protocols are masqueraded."""
    if kind not in KINDS:
        raise ValueError(f"unknown NAT kind {kind!r}; one of {sorted(KINDS)}")
    sets, pre, post, track = [], [], [], []
    if kind in ("full-cone", "restricted"):
        # Endpoint-independent mapping, remembered in two dynamic maps (refreshed by every packet out):
        # cone_out: internal ip . port -> external port; cone_in: external port -> internal ip . port.
        dyn = f"flags dynamic,timeout; timeout {MAPPING_TIMEOUT};"
        sets += [f"map cone_out {{ typeof ip saddr . udp sport : udp sport; {dyn} }}",
                 f"map cone_in {{ typeof udp dport : ip daddr . udp dport; {dyn} }}"]
        post += [
            # an internal endpoint that has a mapping keeps it, whatever the destination (EIM)
            f'oifname "{wan}" meta l4proto udp ip saddr . udp sport @cone_out '
            f"snat ip to {wan_ip} : ip saddr . udp sport map @cone_out",
            # its own port is already another endpoint's external port: take a random one
            f'oifname "{wan}" udp sport @cone_in snat ip to {wan_ip} : 1024-65535 fully-random',
            # otherwise preserve the port
            f'oifname "{wan}" meta l4proto udp snat ip to {wan_ip}',
        ]
        track += [
            f'oifname "{wan}" meta l4proto udp ct direction original '
            "update @cone_out { ct original ip saddr . ct original proto-src : udp sport } "
            "update @cone_in { udp sport : ct original ip saddr . ct original proto-src }",
            f'oifname "{wan}" meta l4proto udp ct direction reply '
            "update @cone_out { ct reply ip saddr . ct reply proto-src : udp sport } "
            "update @cone_in { udp sport : ct reply ip saddr . ct reply proto-src }",
        ]
        if kind == "full-cone":  # endpoint-independent filtering: anyone may use a live mapping
            pre.append(f'iifname "{wan}" udp dport @cone_in dnat ip to udp dport map @cone_in')
        else:  # address-dependent filtering: only addresses this mapping has sent to
            sets.append(f"set seen {{ typeof ip daddr . udp sport; {dyn} }}")
            track.append(f'oifname "{wan}" meta l4proto udp update @seen {{ ip daddr . udp sport }}')
            pre.append(f'iifname "{wan}" udp dport @cone_in ip saddr . udp dport @seen '
                       "dnat ip to udp dport map @cone_in")
        post.append(f'oifname "{wan}" masquerade')
    elif kind == "port-restricted":  # plain Linux masquerade: EIM with port preservation, APDF
        post.append(f'oifname "{wan}" masquerade')
    elif kind == "symmetric-random":
        post.append(f'oifname "{wan}" masquerade fully-random')
    elif kind == "symmetric-sequential":
        # numgen used directly as a port is byte-swapped; map the counter to ports for +1 steps
        elems = ", ".join(f"{i} : {SEQ_BASE + i}" for i in range(SEQ_SIZE))
        sets.append(f"map seqport {{ typeof numgen inc mod {SEQ_SIZE} : udp sport; elements = {{ {elems} }} }}")
        post += [f'oifname "{wan}" meta l4proto udp snat ip to {wan_ip} : numgen inc mod {SEQ_SIZE} map @seqport',
                 f'oifname "{wan}" masquerade fully-random']
    body = "\n".join([
        "table ip omnat {",
        *[f"  {s}" for s in sets],
        "  chain input { type filter hook input priority filter; policy drop;",
        '    iif "lo" accept',
        "    ct state established,related accept",
        f'    iifname "{lan}" accept',
        "  }",
        "  chain forward { type filter hook forward priority filter; policy drop;",
        f'    iifname "{lan}" oifname "{wan}" accept',
        f'    iifname "{wan}" ct state established,related accept',
        f'    iifname "{wan}" ct status dnat accept',
        "  }",
        "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;",
        *[f"    {r}" for r in pre],
        "  }",
        "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;",
        *[f"    {r}" for r in post],
        "  }",
        "  chain track { type filter hook postrouting priority srcnat + 10; policy accept;",
        *[f"    {r}" for r in track],
        "  }",
        "}",
    ])
    return "table ip omnat {}\ndelete table ip omnat\n" + body + "\n"


INET_RULESET = """
table ip omlab {
  chain pre { type filter hook prerouting priority raw; policy drop; }
  chain out { type filter hook output priority raw; policy drop; }
}
table bridge omlab {
  set blocked { type ipv4_addr . ipv4_addr; }
  chain forward { type filter hook forward priority filter; policy accept;
    ip saddr . ip daddr @blocked drop
  }
}
"""
