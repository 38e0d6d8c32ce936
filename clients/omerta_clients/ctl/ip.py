"""omertactl ip [PEER]: mesh IPs, this node's per network or a peer's (ip.get)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .common import PEER_HELP, Ctx, add_command

EXAMPLES = """\
Mesh IPs are the virtual network's addresses: one IPv4 (a /16 of 100.64.0.0/10 per network) and one IPv6 (a ULA
/48 per network) for every member, derived from its node id and carried in its signed record.

examples:
  omertactl ip                    this node's mesh IPs in each network, and its TUN devices
  omertactl ip bob                bob's mesh IPs (e.g. `ssh user@$(omertactl ip bob -4)`)
  omertactl ip bob -4             only the IPv4 address, bare (for scripts)
  omertactl ip --json             the ip.get result, unchanged
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "ip", help="mesh IPs: this node's per network, or a peer's",
                    description="Print mesh IPs: this node's in each network (with its TUN device), or a peer's.", examples=EXAMPLES)
    p.add_argument("peer", nargs="?", metavar="PEER", help="whose addresses (" + PEER_HELP + "); default this node")
    p.add_argument("--network", metavar="NETWORK", help="only this network (name or id)")
    fam = p.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const="ipv4", help="print only IPv4 addresses, one per line")
    fam.add_argument("-6", dest="family", action="store_const", const="ipv6", help="print only IPv6 addresses, one per line")
    p.set_defaults(func=run, family=None)


def view(res: dict[str, Any], family: str | None, own: bool = True) -> RenderableType:
    addrs = res.get("addresses") or []
    if family:
        return Text("\n".join(a[family] for a in addrs if a.get(family)))
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    for col in ("NETWORK", "IPV4", "IPV6", "DEVICE"):
        t.add_column(col, no_wrap=True)
    for a in addrs:
        t.add_row(a.get("network_name") or a.get("network", "-"), a.get("ipv4") or "-", a.get("ipv6") or "-",
                  a.get("device") or "-")
    parts: list[RenderableType] = [Text(f"{res.get('name', '-')}  {res.get('node_id', '-')}", style="bold"), t]
    vnet = res.get("vnet") or {}
    if own and not vnet.get("active"):
        parts.append(Text(f"TUN off: {vnet.get('detail', '')}", style="yellow"))
    if not addrs:
        parts.append(Text("no networks: create one with `omertactl network create NAME` or join one with an invite"))
    return Group(*parts)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    res = ctx.call("ip.get", {"peer": args.peer, "network": args.network})
    ctx.emit(res, lambda r: view(r, args.family, own=args.peer is None))
    return 0
