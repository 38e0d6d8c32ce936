"""omertactl streams: the open mesh streams (peer, port, direction, bytes, age, the forward that opened each) and
the port forwards (streams.list)."""

from __future__ import annotations

import argparse

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..output import duration, size
from . import forward
from .common import Ctx, Json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("streams", parents=[common], help="open mesh streams and port forwards: peer, ports, bytes, age",
                       description="List the open mesh streams: out (opened here: omertactl connect, omerta-ssh, a forward) "
                                   "and in (peers' streams to ports exposed here: omertactl serve); then the port forwards "
                                   "(omertactl forward).")
    p.set_defaults(func=run)


def table(streams: list[Json]) -> RenderableType:
    if not streams:
        return Text("no open streams")
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    for col in ("PEER", "PORT", "DIR", "ID", "IN", "OUT", "AGE", "FORWARD"):
        t.add_column(col, no_wrap=True, justify="right" if col in ("PORT", "ID", "IN", "OUT", "AGE") else "left")
    for x in streams:
        ident = str(x["stream"]) if x.get("stream") is not None else x.get("via", "tcp")  # (a peer's kernel TCP: no id)
        t.add_row(x["name"] or x["peer"][:12], str(x["port"]), x["direction"], ident, size(x["bytes_in"]),
                  size(x["bytes_out"]), duration(x["age_s"]), x.get("forward") or "-")
    return t


def view(r: Json) -> RenderableType:
    """Streams, then forwards (omitted when there are none)."""
    parts = [table(r["streams"])]
    if r.get("forwards"):
        parts += [Text(""), Text("forwards", style="bold"), forward.table(r["forwards"])]
    return Group(*parts)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit(ctx.call("streams.list"), view)
    return 0
