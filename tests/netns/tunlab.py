"""Helpers for the root-only TUN tests: namespaces named per process, running code inside one, a relay loop.

``in_ns(ns, fn)`` runs ``fn`` in a fresh thread that has joined namespace ``ns`` (setns changes only the
calling thread), so a TUN opened or a netlink socket made there belongs to ``ns``. ``Relay`` is the test's
stand-in for the mesh: it moves frames between TUN devices in different namespaces by destination address
and answers unknown destinations with ICMP unreachable (built by vnet/packet.py).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import select
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from omerta_mesh.core import ipseg
from omerta_mesh.io.tun import VNET_HDR, VNET_HDR_LEN, Tun
from omerta_mesh.vnet import packet as pk
from omerta_mesh.vnet.segments import pseudo_seed, rebuild_run

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ns_prefix() -> str:
    return f"omtun-{os.getpid()}-"


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.returncode} {r.stderr.strip()}")
    return r


def make_ns(tag: str) -> str:
    ns = ns_prefix() + tag
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    return ns


def sweep_ns(prefix: str | None = None) -> None:
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix or ns_prefix()):
            sh("ip", "netns", "del", name, check=False)


def sweep_dead() -> None:
    """Remove namespaces left by test processes that died (``omtun-<pid>-...`` whose pid is gone)."""
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        parts = line.split()[0].split("-") if line.split() else []
        if len(parts) > 2 and parts[0] == "omtun" and parts[1].isdigit() and not os.path.exists(f"/proc/{parts[1]}"):
            sh("ip", "netns", "del", line.split()[0], check=False)


def in_ns(ns: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            finally:
                os.close(fd)
            out["r"] = fn(*args, **kw)
        except BaseException as e:  # re-raised in the caller's thread
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if "e" in out:
        raise out["e"]
    return out.get("r")


@dataclass
class Relay:
    """Move frames between TUNs by destination; answer unknown destinations with ICMP unreachable."""

    tuns: list[Tun]
    owners: dict[Any, int]  # address -> index into tuns
    gateway4: ipaddress.IPv4Address
    gateway6: ipaddress.IPv6Address
    corrupt_icmp: bool = False  # negative control: the kernel must drop an ICMP with a bad checksum
    clamp: int | None = None  # clamp the MSS of TCP SYNs crossing the relay
    lose_every: int | None = None  # carry frames as IPSEG fragments (core/ipseg.py) and lose every Nth fragment
    fragments: int = 0
    lost: int = 0
    runs: int = 0  # runs of incomplete super-segments rebuilt (vnet/segments.py) and written
    seeds_checked: int = 0  # TCP super-segments whose checksum seed we recomputed from the kernel's headers
    seeds_wrong: int = 0
    clamped: int = 0
    max_gso_size: int = 0
    frames: int = 0
    gso_frames: int = 0
    max_frame: int = 0
    unreachable_sent: int = 0
    dropped: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "Relay":
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _loop(self) -> None:
        fds = {t.fileno(): i for i, t in enumerate(self.tuns)}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(fds), [], [], 0.1)
            for fd in ready:
                src = self.tuns[fds[fd]]
                for _ in range(64):
                    frame = src.read()
                    if frame is None:
                        break
                    self._one(src, frame)

    def _lossy(self, frame: bytes, out: Tun) -> None:
        """The mesh's way with one super-segment: IPSEG fragments, some lost, the rest put back and written."""
        flags, gso, _hl, _size, start, off = VNET_HDR.unpack_from(frame)
        if gso & ~ipseg.GSO_ECN in (ipseg.GSO_TCPV4, ipseg.GSO_TCPV6):
            pkt = frame[VNET_HDR_LEN:]
            want = pseudo_seed(pkt, 6, len(pkt) - start)
            self.seeds_checked += 1
            self.seeds_wrong += int.from_bytes(pkt[start + off : start + off + 2], "big") != want
        r = ipseg.Reassembly()
        ready: list = []
        for f in ipseg.fragments(frame, self.frames):
            self.fragments += 1
            if self.fragments % self.lose_every == 0:
                self.lost += 1
                continue
            ready += r.add(f, 0.0)
        ready += r.flush(0.0, everything=True)
        for x in ready:
            if isinstance(x, ipseg.SegmentRun):
                self.runs += 1
                x = rebuild_run(x)
            out.write(x)

    def _one(self, src: Tun, frame: bytes) -> None:
        hl = VNET_HDR_LEN if src.vnet_hdr else 0
        self.frames += 1
        self.max_frame = max(self.max_frame, len(frame))
        vflags = 0
        if hl:
            vflags, gso_type, _, gso_size, _, _ = VNET_HDR.unpack_from(frame)
            if gso_type:
                self.gso_frames += 1
                self.max_gso_size = max(self.max_gso_size, gso_size)
        if self.clamp is not None:
            buf = bytearray(frame[hl:])
            if pk.clamp_mss(buf, self.clamp, partial_csum=bool(vflags & 1)):
                self.clamped += 1
                frame = frame[:hl] + bytes(buf)
        h = pk.try_parse(frame[hl:])
        if h is None:
            self.dropped += 1
            return
        dst = self.owners.get(h.dst)
        if dst is not None:
            out = self.tuns[dst]
            try:
                if self.lose_every and hl and out.vnet_hdr:
                    self._lossy(frame, out)
                else:
                    out.write(frame if out.vnet_hdr == src.vnet_hdr else frame[hl:])
            except BlockingIOError:
                self.dropped += 1
            return
        reply = pk.unreachable(frame[hl:], self.gateway4, self.gateway6)
        if reply is None:
            self.dropped += 1
            return
        if self.corrupt_icmp:
            off = 20 if h.version == 4 else 40
            b = bytearray(reply)
            b[off + 2] ^= 0xFF
            reply = bytes(b)
        src.write_packet(reply)
        self.unreachable_sent += 1
