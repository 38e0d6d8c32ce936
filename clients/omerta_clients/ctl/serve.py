"""omertactl serve add|remove|list PORT: which local TCP ports peers may open mesh streams to."""

from __future__ import annotations

import argparse

from .common import Ctx, add_command

EXAMPLES = """\
Peers reach an exposed port with `omertactl connect THIS-NODE PORT` (or `omerta-ssh`); the daemon connects
their stream to 127.0.0.1:PORT (or ::1). Nothing is exposed by default; a change applies at once and is kept
across restarts (in the state directory); `[serve] ports` in meshd.toml declares ports too.

examples:
  omertactl serve add 22        let peers reach this host's sshd
  omertactl serve list
  omertactl serve remove 22     new streams to 22 are refused ("port 22 not exposed on NAME")
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "serve", help="expose local TCP ports to peers' streams (add, remove, list)",
                    description="Manage the local TCP ports peers may open mesh streams to. Without a subcommand: list them.",
                    examples=EXAMPLES)
    p.set_defaults(func=run_list)
    ssub = p.add_subparsers(dest="serve_cmd", metavar="{add,remove,list}")
    for name, verb in (("add", "expose a port to peers' streams"), ("remove", "stop exposing a port")):
        c = ssub.add_parser(name, parents=[common], help=verb, description=verb[0].upper() + verb[1:] + " (kept across restarts).")
        c.add_argument("port", metavar="PORT", type=int, help="a local TCP port (1-65535)")
        c.set_defaults(func=run_change, method="serve." + name)
    ls = ssub.add_parser("list", parents=[common], help="the exposed ports", description="List the exposed ports.")
    ls.set_defaults(func=run_list)


def run_change(ctx: Ctx, args: argparse.Namespace) -> int:
    def text(r: dict) -> str:
        done = ("exposed" if args.method == "serve.add" else "no longer exposed") if r["changed"] else \
               ("already exposed" if args.method == "serve.add" else "was not exposed")
        return f"port {r['port']} {done}; exposed now: {', '.join(map(str, r['ports'])) or 'none'}"

    ctx.emit_text(ctx.call(args.method, {"port": args.port}), text)
    return 0


def run_list(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("serve.list"), lambda r: "\n".join(
        [f"{p}{'' if p in r['configured'] else '  (added)'}" for p in r["ports"]] or ["no ports exposed (omertactl serve add PORT)"]))
    return 0
