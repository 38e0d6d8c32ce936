#!/usr/bin/env python3
"""Userspace link emulator: forwards Ethernet frames between two interfaces with delay, jitter and loss.

The lab uses it for ``Lab.netem`` when the kernel has no ``sch_netem`` (some VM kernels ship without it).
It runs inside the switch namespace, between a node's veth port and a new veth whose peer sits in the
bridge. Frames are forwarded in order per direction. Checksums left for offload (veth hands frames over
with CHECKSUM_PARTIAL) are filled in for IPv4 UDP/TCP, since a raw re-send cannot finish them. Frames
larger than the MTU (GSO, e.g. bulk TCP) cannot be re-sent and are dropped: fine for UDP and ping tests,
not for TCP throughput. Stdlib only.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23


def open_iface(name: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    s.bind((name, ETH_P_ALL))
    s.setblocking(False)
    return s


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def fix_checksum(frame: bytes) -> bytes:
    """Recompute the UDP/TCP checksum of an untagged IPv4 frame (no-op for anything else)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    if proto not in (6, 17) or struct.unpack("!H", frame[20:22])[0] & 0x3FFF:  # fragments: leave alone
        return frame
    total_len = struct.unpack("!H", frame[16:18])[0]
    l4 = 14 + ihl
    seg = bytearray(frame[l4:14 + total_len])
    off = 6 if proto == 17 else 16
    if len(seg) < off + 2 or (proto == 17 and seg[6:8] == b"\0\0"):
        return frame
    seg[off:off + 2] = b"\0\0"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, proto, len(seg))
    c = 0xFFFF - _sum16(pseudo + bytes(seg))
    if proto == 17 and c == 0:
        c = 0xFFFF
    seg[off:off + 2] = struct.pack("!H", c)
    return frame[:l4] + bytes(seg) + frame[14 + total_len:]


class Direction:
    def __init__(self, spec: str, seed: int) -> None:
        delay, jitter, loss = (float(x) for x in spec.split(","))
        self.delay, self.jitter, self.loss = delay / 1000, jitter / 1000, loss / 100
        self.rng = random.Random(seed)
        self.last_due = 0.0

    def schedule(self, now: float) -> float | None:
        if self.loss and self.rng.random() < self.loss:
            return None
        due = now + self.delay + (self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
        self.last_due = max(due, self.last_due, now)  # keep order, like a FIFO link
        return self.last_due


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--node-side", required=True, help="interface towards the node")
    p.add_argument("--net-side", required=True, help="interface towards the bridge")
    p.add_argument("--up", default="0,0,0", help="node->net: delay_ms,jitter_ms,loss_pct")
    p.add_argument("--down", default="0,0,0", help="net->node: delay_ms,jitter_ms,loss_pct")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    node, net = open_iface(a.node_side), open_iface(a.net_side)
    route = {node.fileno(): (net, Direction(a.up, a.seed)), net.fileno(): (node, Direction(a.down, a.seed + 1))}
    heap: list[tuple[float, int, socket.socket, bytes]] = []
    seq = 0
    print(json.dumps({"event": "ready"}), flush=True)
    while True:
        timeout = max(0.0, heap[0][0] - time.monotonic()) if heap else None
        ready, _, _ = select.select(list(route), [], [], timeout)
        for fd in ready:
            out, direction = route[fd]
            src = node if fd == node.fileno() else net
            while True:
                try:
                    frame = src.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                due = direction.schedule(time.monotonic())
                if due is not None:
                    seq += 1
                    heapq.heappush(heap, (due, seq, out, frame))
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, out, frame = heapq.heappop(heap)
            try:
                out.send(fix_checksum(frame))
            except OSError:
                pass  # oversized (GSO) frame or interface going away


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
