"""omertactl netcheck: this node's NAT verdict with its evidence, endpoints, relay latencies (netcheck.run)."""

from __future__ import annotations

import argparse

from .. import output
from .common import Ctx, add_command

EXAMPLES = """\
The verdict is built from what peers report seeing as our address: with fewer than two peers it is
honestly "unknown". Relay latencies are shown when the daemon reports them.

examples:
  omertactl netcheck
  omertactl netcheck --json
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "netcheck", help="NAT verdict with evidence, public endpoints, relay latency",
                    description="Show this node's NAT type with the evidence for it, its public and local "
                                "endpoints, the port-mapping behaviour and relay latencies.",
                    examples=EXAMPLES)
    p.set_defaults(func=run)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit(ctx.call("netcheck.run"), output.netcheck_view)
    return 0
