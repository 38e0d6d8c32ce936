"""omertactl events: the daemon's event stream (events.subscribe: a snapshot, then deltas)."""

from __future__ import annotations

import argparse
import time

from .. import output
from .common import Ctx, add_command

EXAMPLES = """\
With --json the events.subscribe result (subscription, seq, snapshot) is printed unchanged on the first
line, then each event object on a line of its own (JSON Lines).

examples:
  omertactl events
  omertactl events -n 5               exit after five events
  omertactl events --json | jq .type
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "events", help="follow the daemon's events (snapshot, then changes)",
                    description="Print a snapshot of this node and its peers, then every event as it happens.", examples=EXAMPLES)
    p.add_argument("-n", "--count", type=int, metavar="N", help="exit after N events")
    p.add_argument("--for", dest="duration", type=float, metavar="SECONDS", help="exit after this many seconds")
    p.set_defaults(func=run)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    sub = ctx.client.subscribe()
    if ctx.json:
        output.print_json(sub, ctx.out, lines=True)
    else:
        snap = sub.get("snapshot") or {}
        st = snap.get("status") or {}
        ctx.console.print(f"{st.get('name', '-')} ({(st.get('node_id') or '')[:12]}): {st.get('status_text', '-')}  "
                          f"[snapshot at event #{sub.get('seq')}]")
        ctx.console.print(output.peers_table(snap.get("peers") or []))
        ctx.console.print("events (Ctrl-C to stop):")
        ctx.out.flush()
    end = None if args.duration is None else time.monotonic() + args.duration
    seen = 0
    while args.count is None or seen < args.count:
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            break
        ev = ctx.client.next_event(timeout=left)
        if ev is None:
            continue
        seen += 1
        if ctx.json:
            output.print_json(ev, ctx.out, lines=True)
        else:
            ctx.console.print(output.event_line(ev))
            ctx.out.flush()
    return 0
