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
* **In** (``Express.open``, lanes by our session's index): the checks ``SegmentRuns`` makes for the first
  datagram of a GRO run (``eligible``): our current session with a proven peer, not expired, on the path and
  socket the peer is already on. The frame opens to a single-piece IPSEG frame and nothing waits in the IP queue
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
from .wire.packet import TRANSPORT_HEADER, TRANSPORT_OVERHEAD

Address = tuple[str, int]
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


class Lane:
    """One member's express lane: the peer, its current session and direct path, and our socket towards it, as
    they were when the lane was made, so that a packet finds them in one lookup (``Express.lane`` for sending,
    the session's index for receiving). Every use checks, by identity, that they still are the peer's current
    ones; a lane that no longer fits declines and the general path takes the packet (and a new lane is made)."""

    __slots__ = ("peer", "session", "ep", "local", "path", "network", "node", "express", "noted")

    def __init__(self, express: "Express", peer: Peer, session: Session) -> None:
        self.express = express
        self.peer = peer
        self.session = session
        self.ep = peer.endpoint
        self.local = peer.local
        self.path = peer.paths.get(peer.endpoint) if peer.endpoint is not None else None
        self.network = peer.network.id
        self.node = peer.node
        self.noted = float("-inf")  # when the destination was last noted for hole punching

    def seal(self, frame: bytes, now: float) -> bytes | None:
        """The datagram for one TUN ``frame`` (virtio-net header and a packet that is no super-segment), sealed in
        the session for the lane's path; None: take ``Mesh.send_ip``. (Written flat: each call here is paid for
        cold, once per packet.)"""
        peer, s, x = self.peer, self.session, self.express
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
            x.punch.note_destination(self.ep, now)  # type: ignore[arg-type]  # (direct: Express.lane)
            self.noted = now
        x.sent += 1
        return data


class Express:
    __slots__ = ("cfg", "counters", "table", "links", "punch", "ip", "received", "limit", "max_age", "max_messages",
                 "sent", "delivered", "_in")

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
        self.max_age, self.max_messages = cfg.reject_after_time, cfg.reject_after_messages
        self.sent = 0  # packets each way by this lane (``counts``: plain integers, cheaper than ``Counters`` here)
        self.delivered = 0
        self._in: dict[int, Lane] = {}  # receiving: lanes by our session's index
        counters.attach(self.counts)

    def lane(self, network: NetworkId, node: NodeId, now: float) -> Lane | None:
        """A sending lane to member ``node``: it has a sendable current session and a direct current path (a relay
        path is wrapped per packet: ``Transmit.send``); None otherwise."""
        peer = self.table.get(network, node)
        if peer is None or type(peer.endpoint) is not tuple or peer.current is None or peer.sendable_session(now) is None:
            return None
        return Lane(self, peer, peer.current)

    def open(self, data: bytes, src: PathId, local: Address | None, now: float) -> tuple[NetworkId, NodeId, bytes] | bool:
        """One datagram: (network, sending member, virtio-net frame to write) when this lane delivered it; True when
        it took the datagram another way (dropped, or the general path after decryption: flush then); False when
        it did not take it (the general path must: ``Mesh.receive_datagram``)."""
        if len(data) < TRANSPORT_OVERHEAD or data[0] != 4:
            return False
        lane = self._in.get(int.from_bytes(data[4:8], "little"))
        if lane is not None:
            peer, s = lane.peer, lane.session
            path = lane.path
            if peer.current is s and src == lane.ep and peer.endpoint is lane.ep and peer.local == local and path is not None \
                    and peer.paths.get(src) is path and now < s.created_at + self.max_age and data[1] == 1 and data[2] < 2 \
                    and not data[3]:
                path.last_rx = now  # (Links.heard_on_current)
            else:
                lane = None
        if lane is None:
            got = eligible(self.table, self.cfg, self.links, data, src, local, now)
            if got is None:
                return False
            peer, s, index = got
            if len(self._in) >= 1024:  # (lanes of sessions gone are dropped with the rest, now and then)
                self._in.clear()
            lane = self._in[index] = Lane(self, peer, s)
        plain = s.decrypt(data, int.from_bytes(data[8:16], "little"), now)
        if isinstance(plain, DropReason):
            self.counters.drop(plain)
            return True
        st = peer.stats
        st.bytes_in += len(data)
        st.packets_in += 1
        ip = self.ip
        if len(plain) > 7 + VNET_LEN and plain[0] == _IPSEG and plain[5] == 0 and plain[6] == 1 and not ip._in \
                and ip.is_open(lane.network):
            self.delivered += 1
            return lane.network, lane.node, plain[7:]
        self.received(peer, plain, src, local, now)
        return True

    def counts(self) -> dict[str, int]:
        """For status: the packets this lane sealed and opened."""
        return {"ip.tx_express": self.sent, "ip.rx_express": self.delivered}
