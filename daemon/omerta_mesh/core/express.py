"""The express lane: one IP packet each way in an established session, with the least work per packet.

A ping, a TCP ACK, a small UDP datagram: a TUN frame that is no super-segment travels as one IPSEG fragment
(count 1, the wire format of ``core/ipseg.py``) in one transport datagram. On the general path such a packet
crosses the vnet layer, ``send_ip``, the fragmenter, the transmit queue, the encryption audit and the driver's
flush (timers re-armed, events drained) on the way out, and the general receive path, the reassembly and the
IP queue on the way in. Warm that is ~5 us a side; but a packet that finds the daemon asleep (a ping every
50 ms) finds the caches cold, and then every function and object on the way costs ten times as much: the path's
breadth, not its work, made our added RTT 2-3x Nebula's (docs/vnet.md). The express lane does only the work
that packet needs, and hands the sealed datagram (or the opened frame) straight back to the driver, which sends
it (writes it) at once and flushes nothing, because nothing else changed.

It takes a packet only when the general path would do exactly the same with it and nothing more:

* **Out** (``seal``): the peer has a sendable session and a direct current path, and had application traffic
  within the last second (else ``send_ip`` marks it active and re-arms its heartbeat: the general path). The
  packet fits the path (``limit``). Same session counter, same statistics, same hole-punching bookkeeping
  (``Puncher.note_destination``) as ``Transmit.burst``.
* **In** (``open``): the checks ``SegmentRuns`` makes for the first datagram of a GRO run (``eligible``): our
  current session with a proven peer, not expired, on the path and socket the peer is already on. The frame
  opens to a single-piece IPSEG frame and nothing else waits in the IP queue (so order is kept), for a network
  a driver writes to. A frame that opens to anything else goes to ``received``: the general path after
  decryption (the caller flushes then). The replay window and authentication are the session's, as always.

With the encryption audit on, the driver sends nothing by this lane (every datagram must pass the audit).
"""

from __future__ import annotations

from typing import Callable

from .config import CoreConfig
from .counters import Counters
from .errors import DropReason
from .ids import NetworkId, NodeId
from .ipframes import IpFrames
from .ipseg import HEAD, OVERHEAD, VNET_LEN
from .nat.punch import Puncher
from .peers.links import Links
from .peers.paths import PathId
from .peers.peer import Peer
from .peers.table import PeerTable
from .session.session import Session
from .wire.frames import FrameType
from .wire.packet import TRANSPORT_HEADER, TRANSPORT_OVERHEAD

Address = tuple[str, int]
Sealed = tuple[bytes, Address, "Address | None"]  # (datagram, destination, our local socket or None)
_IPSEG = FrameType.IPSEG.value
ACTIVE_FOR = 1.0  # seconds: a peer with traffic this recent needs no heartbeat re-arm (``Mesh.send_ip``)


def eligible(table: PeerTable, cfg: CoreConfig, links: Links, data: bytes, src: PathId, local: Address | None,
             now: float) -> tuple[Peer, Session, int] | None:
    """For a transport datagram that may skip the general path: its peer, our current session with it, and its
    receiver index; None when it must take the general path (not a transport header of ours, an unproven peer,
    another session, an expired one, or another path or socket than the peer's current ones). A path that
    qualifies is marked heard now (``Links.heard_on_current``), as the general path would."""
    if len(data) < TRANSPORT_OVERHEAD or data[0] != 4 or data[1] != 1 or data[2] > 1 or data[3]:
        return None
    receiver = TRANSPORT_HEADER.unpack_from(data)[2]
    found = table.lookup(receiver)
    if found is None:
        return None
    peer, session = found
    if session is None or session is not peer.current or not peer.proven or peer.local != local \
            or session.older_than(cfg.reject_after_time, now) or not links.heard_on_current(peer, src, now):
        return None
    return peer, session, receiver


class Express:
    __slots__ = ("cfg", "counters", "table", "links", "punch", "ip", "received", "limit", "sent", "delivered")

    def __init__(self, cfg: CoreConfig, counters: Counters, table: PeerTable, links: Links, punch: Puncher, ip: IpFrames,
                 received: Callable[[Peer, bytes, PathId, Address | None, float], None]) -> None:
        self.cfg = cfg
        self.counters = counters
        self.table = table
        self.links = links
        self.punch = punch
        self.ip = ip
        self.received = received  # a frame that opened to something else: the general path after decryption
        self.limit = ip.mtu + 1 - HEAD.size  # the largest TUN frame (virtio-net header and packet) one fragment takes
        self.sent = 0  # packets each way by this lane (``counts``: plain integers, cheaper than ``Counters`` here)
        self.delivered = 0
        counters.attach(self.counts)

    def seal(self, network: NetworkId, node: NodeId, frame: bytes, now: float) -> Sealed | None:
        """The datagram for one TUN ``frame`` (virtio-net header and a packet that is no super-segment) to member
        ``node``, sealed in its session for its current direct path; None: take ``Mesh.send_ip``. (Written flat:
        every call and lookup here is paid for cold, once per packet.)"""
        peer = self.table.get(network, node)
        if peer is None or now - peer.last_active > ACTIVE_FOR or len(frame) > self.limit:
            return None
        ep, s = peer.endpoint, peer.current
        if type(ep) is not tuple or s is None or now >= s.created_at + self.cfg.reject_after_time \
                or s.send_counter >= self.cfg.reject_after_messages:
            return None  # no direct path (none, or a relay: Transmit.send wraps it), or no session to send in now
        path = peer.paths.get(ep)
        mtu = path.pmtu.mtu if path is not None and path.pmtu is not None else None
        if mtu is not None and len(frame) - VNET_LEN > mtu - TRANSPORT_OVERHEAD - OVERHEAD:
            return None  # larger than the measured path carries: the general path answers "too big"
        ip = self.ip
        ip._seg_id = seg = (ip._seg_id + 1) & 0xFFFFFFFF
        data = s.encrypt(HEAD.pack(_IPSEG, seg, 0, 1) + frame, now)
        st = peer.stats
        st.bytes_out += len(data)
        st.packets_out += 1
        self.punch.note_destination(ep, now)
        self.sent += 1
        return data, ep, peer.local

    def open(self, data: bytes, src: PathId, local: Address | None, now: float) -> tuple[NetworkId, NodeId, bytes] | bool:
        """One datagram: (network, sending member, virtio-net frame to write) when this lane delivered it; True when
        it took the datagram another way (dropped, or the general path after decryption: flush then); False when
        it did not take it (the general path must: ``Mesh.receive_datagram``)."""
        got = eligible(self.table, self.cfg, self.links, data, src, local, now)
        if got is None:
            return False
        peer, session, _ = got
        plain = session.decrypt(data, int.from_bytes(data[8:16], "little"), now)
        if isinstance(plain, DropReason):
            self.counters.drop(plain)
            return True
        st = peer.stats
        st.bytes_in += len(data)
        st.packets_in += 1
        net = peer.network.id
        ip = self.ip
        if len(plain) > 7 + VNET_LEN and plain[0] == _IPSEG and plain[5] == 0 and plain[6] == 1 and not ip._in \
                and ip.is_open(net):
            self.delivered += 1
            return net, peer.node, plain[7:]
        self.received(peer, plain, src, local, now)
        return True

    def counts(self) -> dict[str, int]:
        """For status: the packets this lane sealed and opened."""
        return {"ip.tx_express": self.sent, "ip.rx_express": self.delivered}
