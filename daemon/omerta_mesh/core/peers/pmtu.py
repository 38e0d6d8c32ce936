"""Path MTU per path: the largest datagram a path carries, found by padded probes (owned by ``Links``).

A path inside another tunnel, over PPPoE or through a misconfigured link may carry less than the 1,472-byte
datagrams we send at most (a full-size IPSEG fragment is 1,389 bytes at the default device MTU), and it drops
the larger ones silently: a black hole for every full-size TCP segment while pings and handshakes pass.
So once a direct path answers, and again every ``RECHECK`` seconds, we send one PING padded to each size of
``SIZES`` in turn, largest first, until one is answered: that size is the path's MTU (UDP payload bytes).
A padded probe that goes unanswered while the path's ordinary probes are answered says only that the size is
too large; it never counts as loss (the path stays up). The virtual network asks ``Mesh.ip_mtu`` for the
largest packet a peer's current path carries and answers larger ones with ICMP "too big" into the device, so
the sending host's kernel lowers its path MTU to the mesh IP and TCP shrinks its segments; the device also
lowers the MSS of TCP SYNs to it (meshd/vnet.py).

A relay path is probed the same way, end to end: the padded PING goes through the relay to the peer and the
PONG comes back through it. Each leg wraps our datagram in a RELAY/RELAYED frame sealed in the relay's session
(``RELAY_OVERHEAD`` bytes), and either of the relay's links may be the narrow one, so the sizes tried are
``RELAY_SIZES`` (what fits a 1,472-byte outer datagram, and so on down) and ``mtu`` is the largest end-to-end
datagram the path carries. A relay forwards within a byte quota per client: one padded probe at a time, a
search at most every ``RECHECK`` seconds, and on a relay path a size counts as too large only after
``tries`` (2) losses in a row while ordinary probes came back (a probe the quota dropped is not a narrow link).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..wire.frames import RELAY_HEADER_LEN
from ..wire.packet import TRANSPORT_OVERHEAD

SIZES = (1472, 1420, 1380, 1340, 1280)  # UDP payloads probed, largest first (1472: a 1500-byte IPv4 path)
RECHECK = 300.0  # seconds between re-checks of a path whose MTU is known
WAIT = 2.0  # seconds a padded probe has to come back
PROBE_HEAD = 5  # a PING frame without padding (type, probe id)
RELAY_OVERHEAD = RELAY_HEADER_LEN + TRANSPORT_OVERHEAD  # what each relay leg adds around our datagram (67)
RELAY_SIZES = tuple(s - RELAY_OVERHEAD for s in SIZES)  # end-to-end datagrams probed on a relay path


@dataclass(slots=True)
class PathMtu:
    """One path's MTU state (``relay``: a relay path, ``RELAY_SIZES`` and two tries per size)."""

    relay: bool = False
    mtu: int | None = None  # the largest datagram answered (None: not measured yet)
    next_at: float = 0.0  # when to probe next
    trying: int = 0  # index into the sizes being tried
    pending: tuple[int, int, float] | None = None  # (probe id, size, sent at)
    lost: int = 0  # padded probes of the size being tried lost while the path answered

    @property
    def sizes(self) -> tuple[int, ...]:
        return RELAY_SIZES if self.relay else SIZES

    @property
    def tries(self) -> int:
        """Losses in a row that make a size too large."""
        return 2 if self.relay else 1

    def due(self, now: float) -> int | None:
        """The size to probe now, or None."""
        if self.pending is not None or now < self.next_at:
            return None
        return self.sizes[self.trying]

    def wake_at(self) -> float:
        """When this path's search needs the timer: a padded probe's answer is overdue, or the next is due."""
        return self.pending[2] + WAIT if self.pending is not None else self.next_at

    def sent(self, pid: int, size: int, now: float) -> None:
        self.pending = (pid, size, now)

    def answered(self, pid: int, now: float) -> bool:
        """A PONG: True when it answered our padded probe (the size is the path's MTU)."""
        if self.pending is None or self.pending[0] != pid:
            return False
        self.mtu = self.pending[1]
        self.pending = None
        self.trying = self.lost = 0
        self.next_at = now + RECHECK
        return True

    def expire(self, now: float, last_pong: float | None) -> None:
        """A padded probe unanswered for ``WAIT``: too large if the path answered ordinary probes meanwhile
        (``tries`` times in a row: then try the next size at once); else the path itself was silent (try the
        same size again later)."""
        if self.pending is None or now < self.pending[2] + WAIT:
            return
        _pid, size, at = self.pending
        self.pending = None
        if last_pong is not None and last_pong > at:
            self.lost += 1
            self.next_at = now
            if self.lost < self.tries:
                return  # the same size once more
            self.lost = 0
            if self.trying + 1 < len(self.sizes):
                self.trying += 1
            else:  # not even the smallest: keep the smallest as the answer (IPv6's minimum path carries it)
                self.mtu, self.trying, self.next_at = self.sizes[-1], 0, now + RECHECK
        else:
            self.next_at = now + WAIT


def padding(size: int, overhead: int) -> int:
    """Padding bytes for a PING whose datagram is ``size`` bytes (``overhead``: transport header and tag)."""
    return max(0, size - overhead - PROBE_HEAD)
