"""omertactl rules: the firewall rules on the mesh devices and their counters (rules.list)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .common import Ctx, add_command

EXAMPLES = """\
Rules are [[rules]] tables in meshd.toml (from, to, action, and network), applied with nftables to the mesh
devices (table inet omerta, chains rules_*). A network no rule applies to is not filtered; one with rules
accepts answers to our own connections and ping, then the rules in file order (the first match wins), and drops
everything else. Edit the file and reload (systemctl reload omerta-meshd, or omertactl reload) to change them.

examples:
  omertactl rules                 each rule, whom it matches and its counters; the default drops per device
  omertactl rules --json          the rules.list result, unchanged
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "rules", help="firewall rules on the mesh devices and their counters",
                    description="Show the firewall rules ([[rules]] in meshd.toml) in force on the mesh devices, with "
                    "the packets and bytes each has matched.", examples=EXAMPLES)
    p.set_defaults(func=run)


def view(res: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = []
    if res.get("error"):
        parts.append(Text(f"not in force: {res['error']}", style="yellow"))
    elif not res.get("active"):
        parts.append(Text("no filtering: no [[rules]] apply to a device of ours (everything from members is allowed)"))
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    for col in ("#", "NETWORK", "FROM", "TO", "ACTION", "PACKETS", "BYTES"):
        t.add_column(col, no_wrap=True, justify="right" if col in ("#", "PACKETS", "BYTES") else "left")
    for r in res.get("rules") or []:
        t.add_row(str(r["index"]), r["network"] or "*", r["from"], r["to"], r["action"], str(r["packets"]), str(r["bytes"]))
        if r.get("note"):
            t.add_row("", "", Text(r["note"], style="yellow"))
    for f in res.get("filtered") or []:
        t.add_row("", f["network_name"] or f["network"][:12], "(rest)", f"on {f['device']}", "deny",
                  str(f["dropped_packets"]), str(f["dropped_bytes"]))
    if res.get("rules"):
        parts.append(t)
    return Group(*parts)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit(ctx.call("rules.list"), view)
    return 0
