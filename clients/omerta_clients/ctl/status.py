"""omertactl status: this node's id, networks, endpoints, NAT verdict, peer counts, uptime, features, the exit node,
subnet routes (status.get)."""

from __future__ import annotations

import argparse

from .. import output
from .common import Ctx, add_command

EXAMPLES = """\
examples:
  omertactl status          this node at a glance
  omertactl status -v       ... with the daemon's counters
  omertactl status --json   the status.get result, unchanged
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "status", help="this node: id, networks, endpoints, NAT, peers, uptime",
                    description="Show this node: its id and name, networks, endpoints, NAT verdict, peer counts, "
                                "uptime, features (mesh DNS: where it answers, systemd-resolved's state), the exit node "
                                "(offered, in use and its state) and subnet routes (advertised, accepted and their "
                                "state).", examples=EXAMPLES)
    p.add_argument("-v", "--verbose", action="store_true", help="also list the daemon's counters")
    p.set_defaults(func=run)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    st = ctx.call("status.get")
    ctx.emit(st, lambda r: output.status_view(r, args.verbose))
    return 0
