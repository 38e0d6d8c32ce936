"""omertactl ping PEER: mesh-level ping inside the session; each answer says which path carried it."""

from __future__ import annotations

import argparse

from .. import output
from ..errors import TIMEOUT
from .common import PEER_HELP, Ctx, add_command

EXAMPLES = """\
Each probe is an authenticated message inside the peer's session; the answer names the path (direct,
punched, relay via NAME) and endpoint it came back on. Exits 0 if any probe was answered, 6 if none was.

examples:
  omertactl ping bob
  omertactl ping bob -c 5 -i 0.2
  omertactl ping bob --json           the ping result, unchanged (after the last probe)
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "ping", help="mesh ping: which path answered and the RTT",
                    description="Ping a peer through the mesh and say which path answered and how long it took.",
                    examples=EXAMPLES)
    p.add_argument("peer", metavar="PEER", help=PEER_HELP)
    p.add_argument("-c", "--count", type=int, default=1, metavar="N", help="number of probes (1-100, default 1)")
    p.add_argument("-i", "--interval", type=float, default=1.0, metavar="SECONDS", help="between probes (default 1)")
    p.add_argument("-W", "--wait", type=float, default=5.0, metavar="SECONDS", help="wait this long for each answer (default 5)")
    p.add_argument("--network", metavar="NETWORK", help="the network, when the peer is in several")
    p.set_defaults(func=run)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    params = {"peer": args.peer, "count": args.count, "interval": args.interval, "timeout": args.wait}
    if args.network:
        params["network"] = args.network
    budget = args.count * (args.interval + args.wait) + ctx.timeout
    client = ctx.client
    if ctx.json:
        res = client.call("ping", params, timeout=budget)
        output.print_json(res, ctx.out)
    else:
        header = [f"PING {args.peer} through the mesh: {args.count} probe{'s' if args.count != 1 else ''}"]

        def progress(probe: dict) -> None:
            while header:  # once the daemon took the peer: nothing on stdout for a refused one
                ctx.console.print(header.pop())
            ctx.console.print(output.ping_probe_line(probe, args.peer))
            ctx.out.flush()

        res = client.call_streamed("ping", params, progress, timeout=budget)
        ctx.console.print(output.ping_summary(res))
    return 0 if res.get("received") else TIMEOUT
