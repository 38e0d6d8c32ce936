"""Flood a daemon with valid handshake initiations from fresh identities (issue 12, fault 1).

What a holder of the network key (every invite carries it) can do: generate Ed25519 identities and send a
real Noise_IKpsk2 initiation from each, with the right mac1, built by the core's own handshake code
(``Handshakes.initiate``). Nothing more is ever sent from those identities: no transport frame, so each one
stays an *unproven* peer at the target. Responses are read and thrown away.

Run as a script (a separate process, so the test's own process stays free to measure)::

    python tests/meshd/flood.py INVITE NODE_ID HOST:PORT RATE SECONDS IDS_FILE

It writes one node id per line to IDS_FILE as it goes and prints a JSON summary at the end.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "daemon"))

from omerta_mesh.core.config import DEFAULT_CONFIG  # noqa: E402
from omerta_mesh.core.counters import Counters  # noqa: E402
from omerta_mesh.core.entropy import SystemEntropy  # noqa: E402
from omerta_mesh.core.ids import NodeId  # noqa: E402
from omerta_mesh.core.keys import Identity  # noqa: E402
from omerta_mesh.core.network import Network  # noqa: E402
from omerta_mesh.core.peers.table import PeerTable  # noqa: E402
from omerta_mesh.core.session.handshakes import Handshakes  # noqa: E402
from omerta_mesh.core.wire.invite import decode_invite  # noqa: E402


def initiation(net: Network, target: NodeId, entropy: SystemEntropy) -> tuple[NodeId, bytes]:
    """A fresh identity and one valid initiation from it to ``target`` in ``net``."""
    ident = Identity.generate(entropy)
    hs = Handshakes(ident, DEFAULT_CONFIG, entropy, Counters(), PeerTable(entropy, 4), 1)
    x = hs.x25519_of(target.raw)
    assert x is not None
    peer = hs.admit(net, target, x)
    return ident.node_id, hs.initiate(peer, time.monotonic(), time.time())


def main() -> None:
    invite, node, hostport, rate, seconds, ids_path = sys.argv[1:7]
    inv = decode_invite(invite)
    net = Network(inv.network_key, inv.name)
    target = NodeId.parse(node)
    host, port = hostport.rsplit(":", 1)
    dst = (host, int(port))
    ent = SystemEntropy()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    interval = 1.0 / float(rate)
    start = time.monotonic()
    until = start + float(seconds)
    sent = replies = 0
    with open(ids_path, "w") as ids:
        nxt = start
        while (now := time.monotonic()) < until:
            if now < nxt:
                time.sleep(min(nxt - now, 0.01))
            else:
                nid, dgram = initiation(net, target, ent)
                sock.sendto(dgram, dst)
                ids.write(nid.text() + "\n")
                sent += 1
                nxt += interval
            while True:  # answers (responses, probes, gossip) are dropped unread by us
                try:
                    sock.recv(65536)
                    replies += 1
                except BlockingIOError:
                    break
    print(json.dumps({"sent": sent, "replies": replies, "seconds": round(time.monotonic() - start, 2)}), flush=True)


if __name__ == "__main__":
    main()
