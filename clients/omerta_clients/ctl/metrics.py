"""omertactl metrics: the daemon's Prometheus metrics (metrics.get): the text exposition, or its families as JSON.

``--json`` parses the text with prometheus_client's own parser, so what it prints is what a Prometheus
server would read: a list of families, each with its name, type, help and samples (name, labels, value).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from .. import output
from .common import Ctx, Json, add_command

EXAMPLES = """\
Served over HTTP too when the daemon's configuration says where ([metrics] listen = "127.0.0.1:9464";
`omertactl status` shows the address).

examples:
  omertactl metrics                   every metric, as Prometheus reads them
  omertactl metrics omerta_peer_rtt   only the families whose name contains omerta_peer_rtt
  omertactl metrics drops --json      the drop counters by reason, parsed, as JSON
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "metrics", help="Prometheus metrics: counters, drops by reason, per-peer RTT/loss/bytes",
                    description="Print the daemon's metrics in the Prometheus text format: its counters (drops by reason, "
                                "handshakes, datagrams, relay use, event-queue drops...), per peer RTT, loss, bytes, packets, "
                                "path kind and session age, per network the members.",
                    examples=EXAMPLES)
    p.add_argument("match", nargs="?", default="", help="only families whose name contains this text")
    p.set_defaults(func=run)


def families(text: str, match: str = "") -> list[Json]:
    """The exposition's families as JSON-ready dicts (a value that is not finite becomes a string: "NaN", "+Inf")."""
    out = []
    for f in text_string_to_metric_families(text):
        if match in f.name:
            samples = [{"name": x.name, "labels": dict(x.labels), "value": _value(x.value)} for x in f.samples]
            out.append({"name": f.name, "type": f.type, "help": f.documentation, "samples": samples})
    return out


def _value(v: float) -> Any:
    if math.isfinite(v):
        return int(v) if v.is_integer() and abs(v) < 2**53 else v
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")


def _only(text: str, match: str) -> str:
    """The text with only the families whose name contains ``match`` (their HELP, TYPE and samples)."""
    keep, out = True, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            keep = match in line.split(" ", 3)[2]
        if keep:
            out.append(line)
    return "\n".join(out) + "\n" if out else ""


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    text = ctx.call("metrics.get")["text"]
    if ctx.json:
        output.print_json(families(text, args.match), ctx.out)
    else:
        ctx.out.write(_only(text, args.match) if args.match else text)
        ctx.out.flush()
    return 0
