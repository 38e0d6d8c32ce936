"""The receive fast path for a UDP GRO run: the IPSEG fragments of a super-segment, back to back, from a peer's
current path, in its current session (the virtual network's bulk traffic; docs/vnet.md).

``Mesh.receive_datagrams`` hands every run of two or more datagrams here first. What makes a fragment safe to
take without the general path is settled once for the run, on its first datagram (``core/express.py`` ``eligible``): a
transport header for our current session with a proven peer, not expired, arriving on the path and socket the
peer is already on (so the packet can only make that path fresher: ``Links.heard_on_current``). Then each datagram of the run that
carries the same receiver index is opened in that session (the replay window and the authentication of each,
as on the general path: a fragment is authenticated before it takes reassembly memory) and its IPSEG frame
goes straight to the reassembly. The first datagram that is something else ends the fast path: a different
receiver or a malformed header is left, unopened, to the general path; a frame that opens to anything but
IPSEG goes to ``received`` (the general path's handling after decryption) and the rest of the run to the
general path, since that frame may have changed the peer's state.

The same work as the general path, once per run instead of once per datagram: the session lookup, the expiry
and path checks, the statistics, the flush timer. About 45 fragments per 64 KB super-segment; the receiver's
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
from .wire.packet import TRANSPORT_HEADER, TRANSPORT_OVERHEAD

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
        peer, session, receiver = got
        net, node, ip, decrypt, unpack = peer.network.id, peer.node, self.ip, session.decrypt, TRANSPORT_HEADER.unpack_from
        taken = opened = size = 0
        flush_at: float | None = None
        try:
            for data in datagrams:
                if len(data) < TRANSPORT_OVERHEAD:
                    break
                kind, ver, index, counter = unpack(data)
                if index != receiver or kind != 4 or ver != 1 or data[2] > 1 or data[3]:
                    break
                taken += 1
                plain = decrypt(data, counter, now)
                if isinstance(plain, DropReason):
                    self.counters.drop(plain)
                    continue
                opened += 1
                size += len(data)
                if not plain or plain[0] != _IPSEG:  # (empty: a keepalive)
                    self._account(peer, opened, size)
                    opened = size = 0
                    self.received(peer, plain, src, local, now)
                    break
                at = ip.receive_seg(net, node, plain, now)
                if at is not None:
                    flush_at = at
        except Exception as e:  # (as on the general path: a malformed frame is a drop, anything else a bug)
            self.failed(e)
        self._account(peer, opened, size)
        if flush_at is not None:
            self.arm_flush(flush_at)
        return taken

    @staticmethod
    def _account(peer: Peer, opened: int, size: int) -> None:
        st = peer.stats
        st.bytes_in += size
        st.packets_in += opened
