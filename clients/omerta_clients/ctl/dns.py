"""omertactl dns: mesh DNS, where NAME.NETWORK.mesh is answered and what to configure by hand (dns.get)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .common import Ctx, add_command

EXAMPLES = """\
Each member is NAME.NETWORK.mesh (NAME alone through the search domain, and NAME.mesh when one member holds it),
answered on this node's mesh IPs, port 53. With systemd-resolved the daemon registers every device itself
(resolvectl status om-NETWORK shows it); without it, this prints the lines to configure by hand.

examples:
  omertactl dns                   the listeners, systemd-resolved's state, what to configure
  omertactl dns --json            the dns.get result, unchanged
  dig @100.64.12.34 bravo.home.mesh   ask the responder directly
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "dns", help="mesh DNS: NAME.NETWORK.mesh, and what to configure",
                    description="Show where mesh names are answered and, without systemd-resolved, what to configure.",
                    examples=EXAMPLES)
    p.set_defaults(func=run)


def view(res: dict[str, Any]) -> RenderableType:
    feat = res.get("dns") or {}
    parts: list[RenderableType] = []
    if not feat.get("active"):
        parts.append(Text(f"DNS off: {feat.get('detail', '')}", style="yellow"))
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    for col in ("DEVICE", "DOMAIN", "LISTENING ON (PORT 53)"):
        t.add_column(col, no_wrap=True)
    for sv in res.get("servers") or []:
        t.add_row(sv.get("device", "-"), sv.get("domain") or "-", ", ".join(sv.get("addresses") or []) or "-")
        if sv.get("error"):
            t.add_row("", "", Text(sv["error"], style="yellow"))
    parts += [t, Text(f"systemd-resolved: {res.get('resolved', '-')}")]
    if res.get("configure"):
        parts.append(Text("configure by hand (systemd-resolved, or dnsmasq):", style="bold"))
        parts += [Text("  " + line) for line in res["configure"]]
    return Group(*parts)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit(ctx.call("dns.get"), view)
    return 0
