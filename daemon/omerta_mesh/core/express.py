"""The express lanes: one IP packet each way in an established session, with the least work per packet.

A ping, a TCP ACK, a small UDP datagram: a TUN frame that is no super-segment travels as one IPSEG fragment
(count 1, the wire format of ``core/ipseg.py``) in one transport datagram. On the general path such a packet
crosses the vnet layer, ``send_ip``, the fragmenter, the transmit queue, the encryption audit and the driver's
flush (timers re-armed, events drained) on the way out, and the general receive path, the reassembly and the
IP queue on the way in. Warm that is ~5 us a side; but a packet that finds the daemon asleep (a ping every
50 ms) finds the caches cold, and then every call and object on the way costs several times as much: the path's
breadth, not its work, made our added RTT 2-3x Nebula's (docs/vnet.md). A ``Lane`` does only the work that
packet needs: the caller (``meshd/vnet.py``) sends what it sealed, or writes what it opened, at once, and
nothing is flushed, because nothing else changed.

A lane is a member's current session and direct path as they were when it was made; every use checks by
identity that they still are, and takes a packet only when the general path would do exactly the same with it
and nothing more:

* **Out** (``Express.lane``, then ``Lane.seal`` per packet): a sendable current session, a direct current path
  (a relay path is wrapped per packet: ``Transmit.send``), application traffic within the last second (else
  ``send_ip`` marks the peer active and re-arms its heartbeat), a packet that fits the measured path MTU. The same
  session counter, statistics and hole-punching bookkeeping (``Puncher.note_destination``) as ``Transmit.burst``.
* **In** (``Express.open``): the checks ``SegmentRuns`` makes for the first datagram of a GRO run
  (``eligible``, through the peer table's index of our sessions): our current session with a proven peer, not
  expired, on the path and socket the peer is already on. The frame opens to a single-piece IPSEG frame and nothing waits in the IP queue
  (so order is kept), for a network a driver writes to. A frame that opens to anything else goes to
  ``received``: the general path after decryption (the caller flushes then). The replay window and
  authentication are the session's, as always.

With the encryption audit on, the driver makes no sending lanes (every datagram must pass the audit).
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
from .wire.packet import TRANSPORT_AES, TRANSPORT_HEADER, TRANSPORT_OVERHEAD

Address = tuple[str, int]
_IPSEG = FrameType.IPSEG.value
ACTIVE_FOR = 1.0  # seconds: a peer with traffic this recent needs no heartbeat re-arm (``Mesh.send_ip``)


def eligible(table: PeerTable, cfg: CoreConfig, links: Links, data: bytes, src: PathId, local: Address | None,
             now: float) -> tuple[Peer, Session] | None:
    """For a transport datagram that may skip the general path: its peer and our current session with it; None
    when it must take the general path (not a transport header of ours, an unproven peer, another session, an
    expired one, or another path or socket than the peer's current ones). A path that qualifies is marked heard
    now (``Links.heard_on_current``), as the general path would."""
    if len(data) < TRANSPORT_OVERHEAD or data[0] != 4 or data[1] != 1 or data[2] > TRANSPORT_AES or data[3]:
        return None
    found = table.lookup(TRANSPORT_HEADER.unpack_from(data)[2])
    if found is None:
        return None
    peer, session = found
    if session is None or session is not peer.current or not peer.proven or peer.local != local \
            or now >= session.created_at + cfg.reject_after_time or not links.heard_on_current(peer, src, now):
        return None
    return peer, session


class Lane:
    """One member's sending lane: the peer, its current session and direct path (``ep``, from our socket ``local``)
    as they were when the lane was made, so that a packet finds them in one lookup. Every use checks, by identity,
    that they still are the peer's current ones (``current``); a lane that no longer is declines, the general path
    takes the packet, and a new lane is made."""

    __slots__ = ("peer", "session", "ep", "local", "path", "express", "noted")

    def __init__(self, express: "Express", peer: Peer, session: Session, ep: Address) -> None:
        self.express = express
        self.peer = peer
        self.session = session
        self.ep = ep
        self.local = peer.local
        self.path = peer.paths.get(ep)
        self.noted = float("-inf")  # when the destination was last noted for hole punching

    def current(self) -> bool:
        """Whether the peer's session, path and socket are still the ones this lane was made with."""
        peer = self.peer
        return peer.current is self.session and peer.endpoint is self.ep and peer.local is self.local

    def seal(self, frame: bytes, now: float) -> bytes | None:
        """The datagram for one TUN ``frame`` (virtio-net header and a packet that is no super-segment), sealed in
        the session for the lane's path; None: take ``Mesh.send_ip``. (Written flat: each call here is paid for
        cold, once per packet.)"""
        peer, s, x = self.peer, self.session, self.express  # (``current`` written out: one call less, cold)
        if peer.current is not s or peer.endpoint is not self.ep or peer.local is not self.local \
                or now - peer.last_active > ACTIVE_FOR or len(frame) > x.limit or now >= s.created_at + x.max_age \
                or s.send_counter >= x.max_messages:
            return None  # another session or path, idle (send_ip re-arms its heartbeat), too large, or used up
        pmtu = self.path.pmtu if self.path is not None else None
        if pmtu is not None and pmtu.mtu is not None and len(frame) - VNET_LEN > pmtu.mtu - TRANSPORT_OVERHEAD - OVERHEAD:
            return None  # larger than the measured path carries: the general path answers "too big"
        data = s.encrypt(HEAD.pack(_IPSEG, s.send_counter & 0xFFFFFFFF, 0, 1) + frame, now)
        st = peer.stats
        st.bytes_out += len(data)
        st.packets_out += 1
        if now - self.noted > 1.0:  # (what Puncher.note_destination keeps changes at most once a second)
            x.punch.note_destination(self.ep, now)
            self.noted = now
        x.sent += 1
        return data


class Express:
    __slots__ = ("cfg", "counters", "table", "links", "punch", "ip", "received", "failed", "limit", "max_age",
                 "max_messages", "sent", "delivered")

    def __init__(self, cfg: CoreConfig, counters: Counters, table: PeerTable, links: Links, punch: Puncher, ip: IpFrames,
                 received: Callable[[Peer, bytes, PathId, Address | None, float], None],
                 failed: Callable[[Exception], None]) -> None:
        self.cfg = cfg
        self.counters = counters
        self.table = table
        self.links = links
        self.punch = punch
        self.ip = ip
        self.received = received  # a frame that opened to something else: the general path after decryption
        self.failed = failed  # what its handling raised: counted as on the general path (a drop, or a bug)
        self.limit = ip.mtu + 1 - HEAD.size  # the largest TUN frame (virtio-net header and packet) one fragment takes
        self.max_age, self.max_messages = cfg.reject_after_time, cfg.reject_after_messages
        self.sent = 0  # packets each way by this lane (``counts``: plain integers, cheaper than ``Counters`` here)
        self.delivered = 0
        counters.attach(self.counts)

    def lane(self, network: NetworkId, node: NodeId, now: float) -> Lane | None:
        """A sending lane to member ``node``: it has a sendable current session and a direct current path (a relay
        path is wrapped per packet: ``Transmit.send``); None otherwise."""
        peer = self.table.get(network, node)
        if peer is None or type(ep := peer.endpoint) is not tuple or (s := peer.sendable_session(now)) is None \
                or s is not peer.current:
            return None
        return Lane(self, peer, s, ep)

    def open(self, data: bytes, src: PathId, local: Address | None, now: float) -> tuple[NetworkId, NodeId, bytes] | bool:
        """One datagram: (network, sending member, virtio-net frame to write) when this lane delivered it; True when
        it took the datagram another way (dropped, or the general path after decryption: flush then); False when
        it did not take it (the general path must: ``Mesh.receive_datagram``)."""
        got = eligible(self.table, self.cfg, self.links, data, src, local, now)
        if got is None:
            return False
        peer, s = got
        plain = s.decrypt(data, int.from_bytes(data[8:16], "little"), now)
        if isinstance(plain, DropReason):
            self.counters.drop(plain)
            return True
        st = peer.stats
        st.bytes_in += len(data)
        st.packets_in += 1
        ip = self.ip
        net = peer.network.id
        if len(plain) > 7 + VNET_LEN and plain[0] == _IPSEG and plain[5] == 0 and plain[6] == 1 and not ip._in \
                and ip.is_open(net):
            self.delivered += 1
            return net, peer.node, plain[7:]
        try:
            self.received(peer, plain, src, local, now)
        except Exception as e:  # (a malformed frame is a drop, as on the general path; never out into the driver)
            self.failed(e)
        return True

    def counts(self) -> dict[str, int]:
        """For status: the packets this lane sealed and opened."""
        return {"ip.tx_express": self.sent, "ip.rx_express": self.delivered}
