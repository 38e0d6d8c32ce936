"""omertactl exit offer|use PEER|use --off|status: exit nodes (exit.offer, exit.use, exit.status)."""

from __future__ import annotations

import argparse

from .common import PEER_HELP, Ctx, add_command

EXAMPLES = """\
An exit node forwards members' Internet traffic (IPv4, and IPv6 when it can forward it: members' ULA mesh
addresses are masqueraded, NAT66) and masquerades it: its signed record says it offers one, and it forwards only
for current members' mesh IPs (nftables `table inet omerta`). A member that uses it sends its default routes
(IPv4 and IPv6) into the mesh device by policy routing (table 51889); the daemon's own datagrams keep the normal
routes. The LAN this host is on goes through the exit too, unless --allow-lan keeps it reachable directly (a
printer, a NAS; but also every host on a cafe's network). Both are runtime choices: a restart starts without them.

examples:
  omertactl exit offer            (on the exit) offer Internet egress to members
  omertactl exit offer --off      stop offering
  omertactl exit use bob          send this host's Internet traffic through bob (the LAN's too)
  omertactl exit use bob --allow-lan   ... but reach the LAN directly
  omertactl exit use --off        back to the normal routes
  omertactl exit status           who offers one, which one is in use (also without a subcommand)
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "exit", help="exit nodes: offer Internet egress, or use a member's (offer, use, status)",
                    description="Exit nodes: offer this node's Internet egress to members, or send this node's Internet "
                    "traffic through a member that offers it. Without a subcommand: the status.", examples=EXAMPLES)
    p.set_defaults(func=run_status)
    esub = p.add_subparsers(dest="exit_cmd", metavar="{offer,use,status}")
    o = esub.add_parser("offer", parents=[common], help="offer this node as an exit node",
                        description="Offer this node as an exit node (announced in its signed records).")
    o.add_argument("--off", action="store_true", help="stop offering (the exit's nftables rules are removed)")
    o.set_defaults(func=run_offer)
    u = esub.add_parser("use", parents=[common], help="send this node's Internet traffic through a member's exit node",
                        description="Send this node's default (Internet) traffic through PEER, which must offer an exit node.")
    u.add_argument("peer", nargs="?", metavar="PEER", help="the exit node (" + PEER_HELP + ")")
    u.add_argument("--off", action="store_true", help="stop using an exit node: the routes and rules are restored")
    u.add_argument("--network", metavar="NETWORK", help="the network, when PEER is in several")
    u.add_argument("--allow-lan", action="store_true",
                   help="keep the LAN this host is attached to reachable directly (default: it goes through the exit too)")
    u.set_defaults(func=run_use, use_parser=u)
    s = esub.add_parser("status", parents=[common], help="who offers an exit node, which one is in use",
                        description="Show whether this node offers an exit node, which one it uses, and who offers one.")
    s.set_defaults(func=run_status)


def text(r: dict) -> str:
    lines = [f"offering: {'yes (' + ', '.join(r.get('families') or []) + ')' if r['offering'] else 'no'}"]
    if r.get("using"):
        names = {o["node_id"]: o["name"] for o in r.get("offered_by") or []}
        lines.append(f"using: {names.get(r['using']) or r['using'][:12]} ({r['using'][:12]}) {r.get('state', '')}")
        lan = ", ".join(r.get("lan") or []) or "none found"
        lines.append("LAN: " + ("reached directly (--allow-lan)" if r.get("allow_lan") else f"through the exit too ({lan})"))
    else:
        lines.append("using: none")
    offers = [f"  {o['name'] or o['node_id'][:12]}  {o['node_id'][:12]}" for o in r.get("offered_by") or []]
    lines += ["offered by:", *offers] if offers else ["offered by: nobody"]
    if r.get("error"):
        lines.append(f"note: {r['error']}")
    return "\n".join(lines)


def run_status(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("exit.status"), text)
    return 0


def run_offer(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("exit.offer", {"offer": not args.off}), text)
    return 0


def run_use(ctx: Ctx, args: argparse.Namespace) -> int:
    if bool(args.peer) == bool(args.off):
        args.use_parser.error("name the exit node (PEER) or give --off")
    if args.off and args.allow_lan:
        args.use_parser.error("--allow-lan goes with PEER (with --off nothing goes through an exit)")
    ctx.emit_text(ctx.call("exit.use", {"peer": None if args.off else args.peer, "network": args.network,
                                        "allow_lan": args.allow_lan}), text)
    return 0
