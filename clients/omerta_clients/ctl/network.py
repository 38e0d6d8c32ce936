"""omertactl network create|join|leave|list|invite: the networks this node is in."""

from __future__ import annotations

import argparse

from .. import output
from ..errors import TIMEOUT
from .common import Ctx, add_command

EXAMPLES = """\
examples:
  omertactl network create home       prints the network id and an invite
  omertactl network join omerta1-...  on another machine: join with that invite
  omertactl network list
  omertactl network invite home       a fresh invite for a network you are in
  omertactl network leave home
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "network", help="create, join, leave, list networks; make invites",
                    description="Manage the networks this node is in. Without a subcommand: list them.", examples=EXAMPLES)
    p.set_defaults(func=run_list)
    nsub = p.add_subparsers(dest="network_cmd", metavar="{create,join,leave,list,invite}")
    c = nsub.add_parser("create", parents=[common], help="create a network; prints its id and an invite",
                        description="Create a network with a fresh random key; prints its id and an invite to give "
                                    "to the machines that should join (the invite carries the key: keep it private).")
    c.add_argument("name", nargs="?", default="", metavar="NAME", help="a name for people (carried in invites)")
    c.set_defaults(func=run_create)
    j = nsub.add_parser("join", parents=[common], help="join a network with an invite",
                        description="Join a network with an invite from one of its members.")
    j.add_argument("invite", metavar="INVITE", help="the invite string (omerta1-...)")
    j.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                   help="wait this long for the inviter to answer (0: do not wait; default 10)")
    j.set_defaults(func=run_join)
    lv = nsub.add_parser("leave", parents=[common], help="leave a network (its peers are told)",
                         description="Leave a network: its peers are told and its key is forgotten.")
    lv.add_argument("network", metavar="NETWORK", help="network name or id")
    lv.set_defaults(func=run_leave)
    ls = nsub.add_parser("list", parents=[common], help="the networks this node is in, with peer counts",
                         description="List the networks this node is in, with peer counts.")
    ls.set_defaults(func=run_list)
    inv = nsub.add_parser("invite", parents=[common], help="print an invite for a network",
                          description="Print an invite for a network this node is in (it carries the network key).")
    inv.add_argument("network", metavar="NETWORK", help="network name or id")
    inv.set_defaults(func=run_invite)


def run_create(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.create", {"name": args.name}), lambda r: "\n".join((
        f"created network {r['name'] or '(unnamed)'} ({r['network']})",
        "invite (it carries the network key: give it only to machines that should join):",
        r["invite"],
        f"on another machine: omertactl network join {r['invite']}")))
    return 0


def run_join(ctx: Ctx, args: argparse.Namespace) -> int:
    res = ctx.call("network.join", {"invite": args.invite, "wait": args.wait}, timeout=args.wait + ctx.timeout)
    if ctx.json:
        output.print_json(res, ctx.out)
        return 0
    ctx.say(f"joined network {res['name'] or '(unnamed)'} ({res['network']})")
    if res["connected"]:
        ctx.say(f"connected to the inviter {res['inviter'][:12]}; see `omertactl peers`")
    elif args.wait > 0:
        ctx.say(f"the inviter {res['inviter'][:12]} has not answered within {args.wait:g} s; the daemon keeps trying "
                "(check it runs and is reachable; watch `omertactl peers`)")
        return TIMEOUT
    return 0


def run_leave(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.leave", {"network": args.network}),
                  lambda r: f"left network {args.network} ({r['network']})" if r["left"] else f"was not in network {args.network}")
    return 0


def run_list(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit(ctx.call("network.list"), lambda r: output.networks_table(r["networks"]))
    return 0


def run_invite(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.invite", {"network": args.network}), lambda r: r["invite"])
    return 0
