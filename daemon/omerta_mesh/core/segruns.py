"""The receive fast path for a UDP GRO run: the IPSEG fragments of a super-segment, back to back, from a peer's
current path, in its current session (the virtual network's bulk traffic; docs/vnet.md).

``Mesh.receive_datagrams`` hands every run of two or more datagrams here first. What makes a fragment safe to
take without the general path is settled once for the run, on its first datagram (``core/express.py`` ``eligible``): a
transport header for our current session with a proven peer, not expired, arriving on the path and socket the
peer is already on (so the packet can only make that path fresher: ``Links.heard_on_current``). Then each datagram of the run that
carries the same receiver index is opened in that session (the replay window and the authentication of each,
as on the general path: a fragment is authenticated before it takes reassembly memory) and its IPSEG frame
goes straight to the reassembly. The first datagram with a different receiver or a malformed header ends the
fast path: it and the rest are left, unopened, to the general path. The others are opened in one call
(``Session.open_many``) and their IPSEG frames handed to the reassembly in one call (``IpFrames.receive_segs``);
a frame that opens to anything but IPSEG, and every frame after it, goes to ``received`` (the general path's
handling after decryption, in order), since that frame may change the peer's state. (UDP GRO joins datagrams
of one size, so such a frame, smaller, can only end a run.)

The same work as the general path, once per run instead of once per datagram: the session lookup, the expiry
and path checks, the statistics, the flush timer, the calls per fragment. About 45 fragments per 64 KB super-segment; the receiver's
per-fragment cost is most of what limits TCP through the tunnel (bench/tunnel.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

from .config import CoreConfig
from .counters import Counters
from .errors import DropReason
from .express import eligible
from .ipframes import IpFrames
from .peers.links import Links
from .peers.paths import PathId
from .peers.peer import Peer
from .peers.table import PeerTable
from .wire.frames import FrameType

Address = tuple[str, int]
_IPSEG = FrameType.IPSEG.value


class SegmentRuns:
    def __init__(self, cfg: CoreConfig, counters: Counters, table: PeerTable, links: Links, ip: IpFrames,
                 received: Callable[[Peer, bytes, PathId, Address | None, float], None],
                 arm_flush: Callable[[float], None], failed: Callable[[Exception], None]) -> None:
        self.cfg = cfg
        self.counters = counters
        self.table = table
        self.links = links
        self.ip = ip
        self.received = received  # a frame that opened to something else: the general path after decryption
        self.arm_flush = arm_flush  # the reassembly's flush timer, when it is not set yet
        self.failed = failed  # what a frame's handling raised: counted as on the general path (a drop, or a bug)

    def take(self, datagrams: Sequence[bytes], src: PathId, local: Address | None, now: float) -> int:
        """Open and deliver the leading datagrams of ``datagrams`` that the fast path may take; how many it took
        (0: none, the general path takes them all)."""
        got = eligible(self.table, self.cfg, self.links, datagrams[0], src, local, now)
        if got is None:
            return 0
        peer, session = got
        frames: list[bytes] = []
        others: list[bytes] = []  # opened to something else, and whatever follows it: the general path's handling
        size = 0
        opened = session.open_many(datagrams, now)  # the leading ones with well-formed headers for this session
        try:
            for data, plain in zip(datagrams, opened):
                if isinstance(plain, DropReason):
                    self.counters.drop(plain)
                    continue
                size += len(data)
                if plain and plain[0] == _IPSEG and not others:  # (empty: a keepalive)
                    frames.append(plain)
                else:
                    others.append(plain)
            self._account(peer, len(frames) + len(others), size)
            if frames and (at := self.ip.receive_segs(peer.network.id, peer.node, frames, now)) is not None:
                self.arm_flush(at)
        except Exception as e:  # (as on the general path: anything else is a bug, counted, and we keep serving)
            self.failed(e)
        for plain in others:
            try:
                self.received(peer, plain, src, local, now)
            except Exception as e:  # (a malformed frame is a drop, as alone)
                self.failed(e)
        return len(opened)

    @staticmethod
    def _account(peer: Peer, opened: int, size: int) -> None:
        st = peer.stats
        st.bytes_in += size
        st.packets_in += opened
