"""Flood a daemon with valid handshake initiations from fresh identities (issue 12, fault 1).

What a holder of the network key (every invite carries it) can do: generate Ed25519 identities and send a
real Noise_IKpsk2 initiation from each, with the right mac1, built by the core's own handshake code
(``fresh_initiation`` in tests/helpers.py). Nothing more is ever sent from those identities: no transport
frame, so each one stays an *unproven* peer at the target. Responses are read and thrown away. ``flood`` is
the loop; bench/soak.py runs it in a process of its own.

Run as a script (a separate process, so the test's own process stays free to measure)::

    python tests/meshd/flood.py INVITE NODE_ID HOST:PORT RATE SECONDS IDS_FILE

It prints "flooding" when it starts sending, writes one node id per line to IDS_FILE as it goes and prints a
JSON summary at the end.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Sequence, TextIO

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "daemon")]

from helpers import fresh_initiation  # noqa: E402
from omerta_mesh.core.entropy import SystemEntropy  # noqa: E402
from omerta_mesh.core.ids import NodeId  # noqa: E402
from omerta_mesh.core.network import Network  # noqa: E402
from omerta_mesh.core.wire.invite import decode_invite  # noqa: E402


def flood(invite: str, node: str, dst: tuple[str, int], rate: float, running: Callable[[], bool],
          sources: Sequence[str] = ("0.0.0.0",), ids: TextIO | None = None) -> dict:
    """Send ``rate`` initiations a second to ``node`` at ``dst``, each from a fresh identity, round-robin from
    sockets bound to the ``sources`` addresses, while ``running()``; every answer is read and thrown away. Each
    identity's node id goes to ``ids``, one a line. Returns what was sent and answered, and for how long."""
    inv = decode_invite(invite)
    net, target, ent = Network(inv.network_key, inv.name), NodeId.parse(node), SystemEntropy()
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in sources]
    for s, host in zip(socks, sources):
        s.bind((host, 0))
        s.setblocking(False)
    interval = 1.0 / rate
    start = nxt = time.monotonic()
    sent = replies = 0
    try:
        while running():
            if (now := time.monotonic()) < nxt:
                time.sleep(min(nxt - now, 0.01))
            else:
                nid, dgram = fresh_initiation(net, target, ent, time.time())
                socks[sent % len(socks)].sendto(dgram, dst)
                if ids is not None:
                    ids.write(nid.text() + "\n")
                sent += 1
                nxt += interval
            for s in socks:  # answers (responses, probes, gossip) are dropped unread by us
                try:
                    while s.recv(65536):
                        replies += 1
                except BlockingIOError:
                    pass
    finally:
        for s in socks:
            s.close()
    return {"sent": sent, "replies": replies, "seconds": round(time.monotonic() - start, 2)}


def main() -> None:
    invite, node, hostport, rate, seconds, ids_path = sys.argv[1:7]
    host, port = hostport.rsplit(":", 1)
    until = time.monotonic() + float(seconds)
    print("flooding", flush=True)
    with open(ids_path, "w") as ids:
        summary = flood(invite, node, (host, int(port)), float(rate), lambda: time.monotonic() < until, ids=ids)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
