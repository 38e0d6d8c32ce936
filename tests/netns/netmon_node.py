"""A MeshNode bound to 0.0.0.0 that prints its view as JSON lines, for tests/netns/test_netmon.py.

    python3 netmon_node.py [--loop asyncio|uvloop] [--join INVITE]

First line: {"event": "ready", "node", "port", "invite" (of the network it created, or joined)}.
Then a {"event": "state", ...} line whenever its view changes: its own ``local_endpoints``, how often the
address monitor ran its callback, and for each peer its current path, known endpoints, and the endpoints
and sequence number of the peer's record. Gossip rounds are an hour apart, so whatever spreads quickly
was pushed by the address-change hook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.node import MeshNode

QUIET = DEFAULT_CONFIG.with_(gossip_interval=3600.0)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def view(node: MeshNode) -> dict:
    m = node.mesh
    peers = {}
    for p in m.table:
        rec = m.record_of(p.network.id, p.node)
        peers[str(p.node)] = {
            "connected": p.connected,
            "endpoint": list(p.endpoint) if p.endpoint else None,
            "endpoints": [list(e) for e in p.endpoints],
            "record": [list(e) for e in rec.endpoints] if rec else [],
            "seq": rec.seq if rec else None,
        }
    mon = node._netmon
    return {
        "event": "state",
        "endpoints": [list(e) for e in m.local_endpoints],
        "runs": mon.runs if mon else None,
        "changes": m.counters["local.address_changes"],
        "peers": peers,
    }


async def main(args: argparse.Namespace) -> None:
    async with MeshNode(host="0.0.0.0", port=0, config=QUIET, name="n") as node:
        if args.join:
            net = await node.join(args.join, timeout=10)
        else:
            net = node.create_network("netmon")
        emit({"event": "ready", "node": str(node.node_id), "port": node.port, "invite": node.invite(net.id)})
        last = None
        while True:
            v = view(node)
            if v != last:
                emit(v)
                last = v
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--join", default="")
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop

        uvloop.run(main(a))
    else:
        asyncio.run(main(a))
