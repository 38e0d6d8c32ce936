"""omertactl send PEER CHANNEL TEXT / listen CHANNEL: messages on named channels (channel.send/receive)."""

from __future__ import annotations

import argparse
import sys
import time

from .. import output
from ..errors import Timeout
from .common import PEER_HELP, Ctx, add_command, add_common

SEND_EXAMPLES = """\
examples:
  omertactl send bob chat "hello"
  echo hello | omertactl send bob chat -      the text from stdin
  omertactl send bob chat hi --no-wait        do not wait for the acknowledgement
"""
LISTEN_EXAMPLES = """\
The daemon keeps a channel's messages from the first time it is read (on disk, across restarts, until they
are received); before that, messages sent to the channel are refused to their senders ("no receiver on
channel ..."), so start listening before the sender sends. With --json each channel.receive result that
carries messages is printed unchanged, one JSON document per line.

examples:
  omertactl listen chat
  omertactl listen chat -n 1 --timeout 30     exit after one message (exit 6 if none came in 30 s)
  omertactl listen chat --for 60              print what arrives for a minute, then exit 0
"""
POLL = 5.0  # seconds per channel.receive long poll


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    s = add_command(sub, common, "send", help="send a message to a peer on a named channel",
                    description="Send a message to a peer on a named channel, reliably and in order.", examples=SEND_EXAMPLES)
    s.add_argument("peer", metavar="PEER", help=PEER_HELP)
    s.add_argument("channel", metavar="CHANNEL", help="channel name")
    s.add_argument("text", metavar="TEXT", help='the message ("-": read it from stdin)')
    s.add_argument("--no-wait", action="store_true", help="return once queued, without waiting for the acknowledgement")
    s.add_argument("--wait-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="wait this long for room and acknowledgement (default 10)")
    s.add_argument("--network", metavar="NETWORK", help="the network, when the peer is in several")
    s.set_defaults(func=run_send)
    own = argparse.ArgumentParser(add_help=False)  # the global options but --timeout, which is listen's own
    add_common(own, suppress=True, with_timeout=False)
    lt = add_command(sub, own, "listen", help="print messages arriving on a channel",
                     description="Print messages arriving on a named channel until interrupted.", examples=LISTEN_EXAMPLES)
    lt.add_argument("channel", metavar="CHANNEL", help="channel name")
    lt.add_argument("-n", "--count", type=int, metavar="N", help="exit after N messages")
    lt.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                    help="stop after this many seconds (with -n: exit 6 if fewer came)")
    # listen's --timeout is how long to wait for messages (exit 6 if none, or fewer than -n, came); the
    # daemon's answer time is then the root option `omertactl --timeout S listen ...`
    lt.add_argument("--timeout", dest="listen_timeout", type=float, metavar="SECONDS",
                    help="wait this long for messages; exit 6 if none came (with -n: fewer than N)")
    lt.add_argument("--base64", action="store_true", help="receive the payload as base64 (binary messages)")
    lt.set_defaults(func=run_listen)


def run_send(ctx: Ctx, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    params = {"peer": args.peer, "channel": args.channel, "data": text, "network": args.network,
              "wait": not args.no_wait, "timeout": args.wait_timeout}
    res = ctx.call("channel.send", params, timeout=args.wait_timeout + ctx.timeout)
    delivered = res.get("delivered")
    state = "delivered" if delivered else "queued (not waiting for the acknowledgement)" if delivered is None else "not acknowledged"
    ctx.emit_text(res, lambda r: f"sent {r['bytes']} bytes to {args.peer} on channel {args.channel} (message {r['message_id']}): {state}")
    return 0


def run_listen(ctx: Ctx, args: argparse.Namespace) -> int:
    got = 0
    limit = args.listen_timeout if args.listen_timeout is not None else args.duration
    end = None if limit is None else time.monotonic() + limit
    encoding = "base64" if args.base64 else "utf-8"
    first = True
    while args.count is None or got < args.count:
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            break
        wait = 0.0 if first else min(POLL, left if left is not None else POLL)
        params = {"channel": args.channel, "timeout": wait, "encoding": encoding,
                  "max": min(1000, args.count - got) if args.count else 1000}
        res = ctx.call("channel.receive", params, timeout=wait + ctx.timeout)
        if first:
            ctx.note(f"listening on channel {args.channel} (Ctrl-C to stop)")
            first = False
        if res.get("dropped"):
            ctx.note(f"warning: {res['dropped']} messages were dropped (the daemon's inbox for {args.channel} was full)")
        msgs = res.get("messages") or []
        if not msgs:
            continue
        got += len(msgs)
        if ctx.json:
            output.print_json(res, ctx.out, lines=True)
            continue
        for m in msgs:
            ctx.say(f"{output.clock(time.time())} {m.get('peer')}: {m.get('data')}")
    wanted = args.count if args.count is not None else (1 if args.listen_timeout is not None else 0)
    if got < wanted:
        raise Timeout(f"no message on channel {args.channel} within {limit:g} s" if got == 0 else
                      f"{got} of {wanted} messages on channel {args.channel} within {limit:g} s",
                      "check the sender names this node and the channel, or wait longer (--timeout SECONDS)")
    return 0
