"""omertactl peers / peer PEER: the peer table (peers.list) and one peer in detail (peers.get)."""

from __future__ import annotations

import argparse

from .. import output
from .common import PEER_HELP, Ctx, add_command

LIST_EXAMPLES = """\
NAME is the name the peer gives itself (its [node] name, carried in its signed record), or the local name
from [names] in meshd.toml, which wins; two peers with one name are shown as NAME#<id prefix>, and the bare
name is then refused as ambiguous.
columns: NAME, ID (short node id), PATH (direct, punched, relay via NAME), ENDPOINT, RTT (smoothed, from
probes and pings), LOSS (on the current path), NAT (the peer's type, from its signed record), HANDSHAKE
(time since the last one), IN/OUT (bytes); when some peer has any: ROUTES (the subnet routes it advertises or
this node accepted from it, each "active" (routed to it), "accepted" (not in force: see `omertactl routes`) or
"not accepted"), EXIT ("offers" an exit node, "in use" by this node) and, in owned networks, CERT (the role and
tags of its verified certificate and when it expires, UTC). A value the daemon does not report is shown as "-".

examples:
  omertactl peers
  omertactl peers --network home
  omertactl peers bob                 same as `omertactl peer bob`
  omertactl peers --json              the peers.list result, unchanged
"""
DETAIL_EXAMPLES = """\
Shows, per network, the path and why it was chosen (for a relayed peer: the NAT verdicts with their
evidence), candidate endpoints, RTT, handshakes, sessions and traffic.

examples:
  omertactl peer bob
  omertactl peer 3fk2q7ab             a unique id prefix (8+ characters)
  omertactl peer bob --json           the peers.get result, unchanged
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "peers", help="the peer table: path, endpoint, RTT, traffic",
                    description="List every known peer with its path, endpoint, RTT, last handshake and traffic.",
                    examples=LIST_EXAMPLES)
    p.add_argument("peer", nargs="?", metavar="PEER", help="show this peer in detail instead (" + PEER_HELP + ")")
    p.add_argument("--network", metavar="NETWORK", help="only peers of this network (name or id)")
    p.set_defaults(func=run_list)
    d = add_command(sub, common, "peer", help="one peer in detail, including why its path is what it is",
                    description="Show one peer in detail.", examples=DETAIL_EXAMPLES)
    d.add_argument("peer", metavar="PEER", help=PEER_HELP)
    d.add_argument("--network", metavar="NETWORK", help="the network, when the peer is in several")
    d.set_defaults(func=run_detail)


def run_list(ctx: Ctx, args: argparse.Namespace) -> int:
    if args.peer:
        return run_detail(ctx, args)
    res = ctx.call("peers.list", {"network": args.network})
    ctx.emit(res, lambda r: output.peers_table(r["peers"]))
    return 0


def run_detail(ctx: Ctx, args: argparse.Namespace) -> int:
    detail = ctx.call("peers.get", {"peer": args.peer, "network": args.network})
    ctx.emit(detail, output.peer_detail_view)
    return 0
