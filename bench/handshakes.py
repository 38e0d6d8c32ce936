"""Handshakes per second per core: the full Noise_IKpsk2 exchange through the Mesh core (mac1 checks,
two messages, session install), and the bare Noise part for comparison. Prints a table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from omerta_mesh.core.config import CoreConfig  # noqa: E402
from omerta_mesh.core.entropy import SystemEntropy  # noqa: E402
from omerta_mesh.core.keys import Identity  # noqa: E402
from omerta_mesh.core.mesh import Mesh  # noqa: E402
from omerta_mesh.core.noise.handshake import InitiatorHandshake, ResponderHandshake  # noqa: E402

A, B = ("10.0.0.1", 1), ("10.0.0.2", 2)


def bench_noise(n: int) -> float:
    ent = SystemEntropy()
    ia, ib = Identity.generate(ent), Identity.generate(ent)
    psk = ent.random_bytes(32)
    t = time.perf_counter()
    for _ in range(n):
        i = InitiatorHandshake(ia.x25519_private, ib.x25519_public, psk, b"p", ent.random_bytes(32))
        r = ResponderHandshake(ib.x25519_private, psk, b"p", ent.random_bytes(32))
        r.read_message_1(i.write_message_1(b"x" * 52))
        i.read_message_2(r.write_message_2(b"y" * 8))
        i.split(), r.split()
    return n / (time.perf_counter() - t)


def bench_mesh(n: int) -> float:
    ent = SystemEntropy()
    cfg = CoreConfig(handshakes_per_second_under_load=10**9)  # measure the work, not the cookie defence
    a, b = Mesh(Identity.generate(ent), config=cfg), Mesh(Identity.generate(ent), config=cfg)
    net = a.create_network("bench", 0.0)
    b.add_network(net, 0.0)
    b.add_peer(net.id, a.node_id, [A], 0.0)
    now = 0.0
    b.datagrams_to_send()
    peer = b.find_peer(a.node_id)
    t = time.perf_counter()
    for _ in range(n):
        now += 0.001
        init = b.hs.initiate(peer, now, now)
        a.receive_datagram(init, B, None, now)
        for _, _, resp in a.datagrams_to_send():
            b.receive_datagram(resp, A, None, now)
        b.datagrams_to_send()
    elapsed = time.perf_counter() - t
    assert b.counters["handshake.completed"] >= n
    return n / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rows = [("Noise_IKpsk2 only (both sides)", bench_noise(n)), ("Mesh core, full exchange (both sides)", bench_mesh(n))]
    print(f"{'handshakes, one core':40} {'per second':>12} {'us each':>10}")
    for name, rate in rows:
        print(f"{name:40} {rate:12.0f} {1e6 / rate:10.1f}")
    print("(both sides run in this one process, so one side alone manages about twice the rate)")


if __name__ == "__main__":
    main()
