"""Regression (issue 9): IP frames from a peer piled up forever (5,000 frames left 5 MB).

Nothing reads IP frames until the virtual network exists (``send_ip``/``tun_packets_to_write`` had no
consumer), so each one is dropped and counted (``drop.ip_unrouted``) and nothing grows.
"""

from __future__ import annotations

import tracemalloc

from helpers import Pair
from omerta_mesh.core.wire import frames as fw


def test_a_flood_of_ip_frames_is_dropped_and_counted_and_nothing_grows() -> None:
    p = Pair("ip-flood")
    p.connect()
    b_to_a = p.b.peers()[0]
    packet = bytes([fw.FrameType.IP]) + bytes(1000)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(5):
            for _ in range(1000):
                p.b._send_frame(b_to_a, packet, p.now)
            p.run()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert p.a.counters["drop.ip_unrouted"] == 5000
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if "omerta_mesh" in str(s.traceback))
    assert grown < 500_000, f"{grown} bytes retained after 5,000 IP frames of 1 KB"
