"""omertactl routes list|advertise|withdraw|accept|unaccept: subnet routes (routes.*)."""

from __future__ import annotations

import argparse

from .common import PEER_HELP, Ctx, add_command

EXAMPLES = """\
A member advertises IPv4 and IPv6 prefixes it reaches (signed into its records; it forwards to them, without
masquerade: the subnet's hosts need a route back to the mesh prefixes via that member). Nothing is routed to a
member's prefix until this node accepts it; accepted prefixes are kept across restarts. Default routes and
prefixes overlapping the mesh's or a local route are refused with the reason. Overlaps between members: the
longest prefix wins; the same prefix from two members: the lower node id.

examples:
  omertactl routes advertise 10.1.0.0/24     (on the router) offer the LAN behind this node to members
  omertactl routes advertise fd00:1::/64     the same for its IPv6 prefix
  omertactl routes withdraw 10.1.0.0/24      stop offering it
  omertactl routes accept bob 10.1.0.0/24    route 10.1.0.0/24 to bob, which advertises it
  omertactl routes unaccept bob 10.1.0.0/24  stop routing it
  omertactl routes list                      what is advertised, accepted, in force (also without a subcommand)
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "routes", help="subnet routes: advertise prefixes, accept members' (list, advertise, accept...)",
                    description="Subnet routes: advertise prefixes this node forwards to, and accept (route to) members' "
                    "advertised prefixes. Without a subcommand: the list.", examples=EXAMPLES)
    p.set_defaults(func=run_list)
    rsub = p.add_subparsers(dest="routes_cmd", metavar="{list,advertise,withdraw,accept,unaccept}")
    s = rsub.add_parser("list", parents=[common], help="advertised, accepted and offered prefixes",
                        description="Show the prefixes this node advertises, those it accepted with their state, "
                        "and members' advertisements.")
    s.set_defaults(func=run_list)
    for name, method, what in (("advertise", "routes.advertise", "advertise a prefix this node reaches (IPv4 or IPv6)"),
                               ("withdraw", "routes.withdraw", "stop advertising a prefix")):
        a = rsub.add_parser(name, parents=[common], help=what, description=what[0].upper() + what[1:] + ".")
        a.add_argument("prefix", metavar="PREFIX", help="an IPv4 or IPv6 prefix, e.g. 10.1.0.0/24 or fd00:1::/64")
        a.set_defaults(func=run_prefix, method=method)
    for name, method, what in (("accept", "routes.accept", "route a member's advertised prefix to it"),
                               ("unaccept", "routes.unaccept", "stop routing a member's prefix")):
        a = rsub.add_parser(name, parents=[common], help=what, description=what[0].upper() + what[1:] + ".")
        a.add_argument("peer", metavar="PEER", help="the advertising member (" + PEER_HELP + ")")
        a.add_argument("prefix", metavar="PREFIX", help="the prefix as the member advertises it")
        a.set_defaults(func=run_peer_prefix, method=method)


def text(r: dict) -> str:
    lines = ["advertised: " + (", ".join(r["advertised"]) or "none")]
    acc = [f"  {a['prefix']:<18} {a['name'] or a['node_id'][:12]:<16} {a['state']}" for a in r.get("accepted") or []]
    lines += ["accepted:", *acc] if acc else ["accepted: none"]
    off = [f"  {o['name'] or o['node_id'][:12]:<16} {', '.join(o['prefixes'])}" for o in r.get("offered") or []]
    lines += ["offered by members:", *off] if off else ["offered by members: none"]
    if r.get("error"):
        lines.append(f"note: {r['error']}")
    return "\n".join(lines)


def run_list(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("routes.list"), text)
    return 0


def run_prefix(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call(args.method, {"prefix": args.prefix}), text)
    return 0


def run_peer_prefix(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call(args.method, {"peer": args.peer, "prefix": args.prefix}), text)
    return 0
