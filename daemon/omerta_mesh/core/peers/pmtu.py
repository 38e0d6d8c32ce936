"""Path MTU per direct path: the largest datagram a path carries, found by padded probes (owned by ``Links``).

A path inside another tunnel, over PPPoE or through a misconfigured link may carry less than the 1,472-byte
datagrams we send at most (a full-size IPSEG fragment is 1,389 bytes at the default device MTU), and it drops
the larger ones silently: a black hole for every full-size TCP segment while pings and handshakes pass.
So once a direct path answers, and again every ``RECHECK`` seconds, we send one PING padded to each size of
``SIZES`` in turn, largest first, until one is answered: that size is the path's MTU (UDP payload bytes).
A padded probe that goes unanswered while the path's ordinary probes are answered says only that the size is
too large; it never counts as loss (the path stays up). The virtual network asks ``Mesh.ip_mtu`` for the
largest packet a peer's current path carries and answers larger ones with ICMP "too big" into the device, so
the sending host's kernel lowers its path MTU to the mesh IP and TCP shrinks its segments.
"""

from __future__ import annotations

from dataclasses import dataclass

SIZES = (1472, 1420, 1380, 1340, 1280)  # UDP payloads probed, largest first (1472: a 1500-byte IPv4 path)
RECHECK = 300.0  # seconds between re-checks of a path whose MTU is known
WAIT = 2.0  # seconds a padded probe has to come back
PROBE_HEAD = 5  # a PING frame without padding (type, probe id)


@dataclass(slots=True)
class PathMtu:
    """One direct path's MTU state."""

    mtu: int | None = None  # the largest UDP payload answered (None: not measured yet)
    next_at: float = 0.0  # when to probe next
    trying: int = 0  # index into SIZES being tried
    pending: tuple[int, int, float] | None = None  # (probe id, size, sent at)

    def due(self, now: float) -> int | None:
        """The size to probe now, or None."""
        if self.pending is not None or now < self.next_at:
            return None
        return SIZES[self.trying]

    def sent(self, pid: int, size: int, now: float) -> None:
        self.pending = (pid, size, now)

    def answered(self, pid: int, now: float) -> bool:
        """A PONG: True when it answered our padded probe (the size is the path's MTU)."""
        if self.pending is None or self.pending[0] != pid:
            return False
        self.mtu = self.pending[1]
        self.pending = None
        self.trying = 0
        self.next_at = now + RECHECK
        return True

    def expire(self, now: float, last_pong: float | None) -> None:
        """A padded probe unanswered for ``WAIT``: too large if the path answered ordinary probes sent after
        it (try the next size at once); else the path itself was silent (try the same size again later)."""
        if self.pending is None or now < self.pending[2] + WAIT:
            return
        _pid, size, at = self.pending
        self.pending = None
        if last_pong is not None and last_pong > at:
            if self.trying + 1 < len(SIZES):
                self.trying += 1
                self.next_at = now
            else:  # not even the smallest: keep the smallest as the answer (IPv6's minimum path carries it)
                self.mtu, self.trying, self.next_at = SIZES[-1], 0, now + RECHECK
        else:
            self.next_at = now + WAIT


def padding(size: int, overhead: int) -> int:
    """Padding bytes for a PING whose datagram is ``size`` bytes (``overhead``: transport header and tag)."""
    return max(0, size - overhead - PROBE_HEAD)
