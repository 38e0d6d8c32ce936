"""A local demo mesh: three nodes on loopback join one network by invite and talk.

Run it with ``make demo`` (or ``python3 -m omerta_mesh.demo``). It uses an embedded default
configuration: no files, no root, ports chosen by the kernel on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from rich.console import Console
from rich.table import Table

from .node import MeshNode

NAMES = ("alice", "bob", "carol")


async def run_demo(console: Console, messages: int = 3) -> dict:
    started = time.monotonic()
    nodes = [MeshNode(host="127.0.0.1", strict_audit=True) for _ in NAMES]
    for n in nodes:
        await n.start()
    alice, bob, carol = nodes
    name_of = {n.node_id: name for n, name in zip(nodes, NAMES)}
    try:
        for n, name in zip(nodes, NAMES):
            console.print(f"[bold]{name}[/] node id [cyan]{n.node_id.short()}…[/] listening on udp {n.endpoints[0][0]}:{n.port}")
        net = alice.create_network("demo")
        invite = alice.invite(net.id)
        console.print(f"alice created network [green]demo[/] ({net.id}); invite:")
        console.print(f"  [dim]{invite}[/]", soft_wrap=True)
        for n, name in ((bob, "bob"), (carol, "carol")):
            t0 = time.monotonic()
            await n.join(invite, timeout=5)
            console.print(f"{name} joined by invite: Noise session with alice in {1000 * (time.monotonic() - t0):.1f} ms")
        # bob and carol meet through what alice tells them (gossip does this on its own in the full mesh)
        bob.add_peer(net.id, carol.node_id, carol.endpoints)
        await bob.wait_connected(carol.node_id, 5)
        await carol.wait_connected(bob.node_id, 5)
        console.print("bob and carol opened a direct session")

        async def greeter(peer, data: bytes) -> bytes:
            return b"hello " + data + b", this is " + NAMES[nodes.index(carol)].encode()

        carol.serve("greet", greeter)
        inboxes = {name: n.subscribe("chat") for n, name in zip(nodes, NAMES)}
        for i in range(messages):
            for src, sname in zip(nodes, NAMES):
                for dst, dname in zip(nodes, NAMES):
                    if src is not dst:
                        await src.send(dst.node_id, "chat", f"{sname}->{dname} #{i}".encode())
        table = Table(title="channel 'chat': messages received (authenticated sender, in order)")
        table.add_column("node")
        table.add_column("received")
        table.add_column("from")
        received: dict[str, list[str]] = {}
        for name in NAMES:
            msgs = [await asyncio.wait_for(inboxes[name].get(), 5) for _ in range(2 * messages)]
            received[name] = [m.data.decode() for m in msgs]
            table.add_row(name, str(len(msgs)), ", ".join(sorted({name_of[m.peer] for m in msgs})))
        console.print(table)
        answer = await bob.request(carol.node_id, "greet", b"bob")
        console.print(f"bob asked carol on channel 'greet' and got: [italic]{answer.decode()}[/]")
        rtts = {}
        for src, sname in zip(nodes, NAMES):
            for dst, dname in zip(nodes, NAMES):
                if src is not dst:
                    rtts[f"{sname}->{dname}"] = await src.ping(dst.node_id)
        pt = Table(title="mesh ping (authenticated probe, round trip)")
        pt.add_column("path")
        pt.add_column("rtt", justify="right")
        for k, v in rtts.items():
            pt.add_row(k, f"{v * 1000:.3f} ms")
        console.print(pt)
        audits = [a for n in nodes if (a := n.core.audit) is not None]
        violations = sum(len(a.violations) for a in audits)
        checked = sum(a.checked for a in audits)
        console.print(f"encryption audit: {checked} outgoing datagrams checked, {violations} violations")
        return {
            "network": str(net.id),
            "nodes": {name: str(n.node_id) for n, name in zip(nodes, NAMES)},
            "received": received,
            "request_answer": answer.decode(),
            "rtt_ms": {k: round(v * 1000, 3) for k, v in rtts.items()},
            "audit": {"checked": checked, "violations": violations},
            "seconds": round(time.monotonic() - started, 3),
        }
    finally:
        for n in nodes:
            await n.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="omerta-mesh-demo", description="Start a three-node omerta mesh on loopback and show it working.")
    ap.add_argument("--messages", type=int, default=3, help="messages each node sends each other node (default 3)")
    ap.add_argument("--json", action="store_true", help="print the outcome as JSON")
    args = ap.parse_args(argv)
    console = Console(stderr=args.json, quiet=args.json)
    result = asyncio.run(run_demo(console, args.messages))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        console.print(f"[bold green]demo finished in {result['seconds']:.2f} s[/]")
    ok = result["audit"]["violations"] == 0 and all(len(v) == 2 * args.messages for v in result["received"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
