"""omertactl forward [--bind ADDR] [--persist] LOCALPORT PEER:PORT | list | remove LOCALPORT: port forwards
(forward.add, forward.list, forward.remove): a local TCP port whose connections become mesh streams to a port a
peer exposes."""

from __future__ import annotations

import argparse

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from ..output import duration, size
from .common import PEER_HELP, Ctx, Json, add_command

USAGE = """\
omertactl forward [--bind ADDR] [--persist] [--network NETWORK] LOCALPORT PEER:PORT
       omertactl forward list
       omertactl forward remove [--bind ADDR] LOCALPORT"""
EXAMPLES = """\
Each connection to the local port becomes a mesh stream to PORT on PEER, which must expose it (`omertactl
serve add PORT` there). Anyone who can connect to the local address uses the forward; making or removing one
needs root or the omerta group. Without --persist a forward lasts until the daemon stops; [[forward]] tables in
meshd.toml declare forwards too.

examples:
  omertactl forward 8080 bravo:80             http://127.0.0.1:8080 is bravo's port 80
  omertactl forward --persist 2222 bravo:22   kept across restarts (in the state directory)
  omertactl forward --bind ::1 8080 bravo:80  listen on IPv6 loopback
  omertactl forward 0 bravo:80 --json         any free local port; the result says which
  omertactl forward list                      connections, bytes, errors (the last reason) per forward
  omertactl forward remove 8080               closes the listener and its connections
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "forward", help="forward a local TCP port to a peer's exposed port (list, remove)",
                    usage=USAGE, description="Forward a local TCP port to a port a peer exposes, list the forwards, "
                                             "or remove one.", examples=EXAMPLES)
    p.add_argument("words", nargs="*", metavar="LOCALPORT PEER:PORT | list | remove LOCALPORT",
                   help="the local port (0: any free one) and the peer's port (PEER is " + PEER_HELP + ", or a mesh IP)")
    p.add_argument("--bind", metavar="ADDR", help="the local address to listen on (default 127.0.0.1; IPv6 too, e.g. ::1)")
    p.add_argument("--persist", action="store_true", help="keep the forward across daemon restarts")
    p.add_argument("--network", metavar="NETWORK", help="the network, when the peer is in several")
    p.set_defaults(func=run, forward_parser=p)


def _port(p: argparse.ArgumentParser, text: str, what: str, lo: int) -> int:
    if not text.isdigit() or not lo <= int(text) <= 65535:
        p.error(f"{what} {text!r} is not a TCP port ({lo}-65535)")
    return int(text)


def target(p: argparse.ArgumentParser, text: str) -> tuple[str, int]:
    """``PEER:PORT`` (an IPv6 mesh IP in brackets: ``[fd7a::1]:22``) -> (peer, port)."""
    peer, sep, port = text.rpartition(":")
    peer = peer[1:-1] if peer.startswith("[") and peer.endswith("]") else peer
    if not sep or not peer:
        p.error(f"{text!r} is not PEER:PORT (e.g. bravo:22, or [MESH-IPV6]:22)")
    return peer, _port(p, port, "PORT", 1)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    p, w = args.forward_parser, args.words
    if w in ([], ["list"]):
        ctx.emit(ctx.call("forward.list"), lambda r: table(r["forwards"]))
    elif w[0] == "remove" and len(w) == 2:
        r = ctx.call("forward.remove", {"local": _port(p, w[1], "LOCALPORT", 1), "bind": args.bind})
        ctx.emit_text(r, lambda r: "\n".join([f"removed {line(r)} ({r['connections_total']} connections, in {size(r['bytes_in'])}, "
                                              f"out {size(r['bytes_out'])})"] +
                                             (["it is declared in meshd.toml: it comes back at the next start unless "
                                               "removed there"] if r["kept_in"] == "config" else [])))
    elif len(w) == 2 and w[0] not in ("list", "remove"):
        peer, port = target(p, w[1])
        params = {"local": _port(p, w[0], "LOCALPORT", 0), "peer": peer, "port": port, "bind": args.bind,
                  "network": args.network, "persist": args.persist}
        ctx.emit_text(ctx.call("forward.add", params), lambda r: f"forwarding {line(r)}" +
                      (" (kept across restarts)" if r["kept_in"] == "state" else " (until the daemon stops; --persist keeps it)"))
    else:
        p.error("give LOCALPORT PEER:PORT, `list`, or `remove LOCALPORT`")
    return 0


def local_text(f: Json) -> str:
    return f"[{f['bind']}]:{f['local']}" if ":" in f["bind"] else f"{f['bind']}:{f['local']}"


def line(f: Json) -> str:
    return f"{local_text(f)} -> {f['name'] or f['peer']}:{f['port']}"


def table(forwards: list[Json]) -> RenderableType:
    if not forwards:
        return Text("no forwards (omertactl forward LOCALPORT PEER:PORT)")
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    right = ("PORT", "CONNS", "TOTAL", "IN", "OUT", "AGE", "ERRORS")
    for col in ("LOCAL", "PEER", "PORT", "CONNS", "TOTAL", "IN", "OUT", "AGE", "ERRORS", "KEPT", "LAST ERROR"):
        t.add_column(col, no_wrap=col != "LAST ERROR", justify="right" if col in right else "left")
    for f in forwards:
        t.add_row(local_text(f) + ("" if f["listening"] else " (not listening)"), f["name"] or f["peer"], str(f["port"]),
                  str(f["connections"]), str(f["connections_total"]), size(f["bytes_in"]), size(f["bytes_out"]),
                  duration(f["age_s"]), str(f["errors"]), f["kept_in"] or "-", f["last_error"] or "-",
                  style=None if f["listening"] else "red")
    return t
