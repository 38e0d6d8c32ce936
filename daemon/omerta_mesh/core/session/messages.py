"""Messages: the message path over each peer's reliable stream (an owned sub-machine; ``mesh.messages``).

Sending: a message (channel message, request, response, or an internal control message) is split into
DATA frames and queued on the peer's ``ReliableStream`` (``queue``); ``frames`` hands out what the stream
allows to send now, and ACKs. Receiving: DATA frames are reassembled into messages (``on_data``): channel
messages, requests and responses become events, control messages are handed back to the ``Mesh`` to
dispatch through its handler table; ACKs free the window (``on_ack``). Message ids of control messages
are internal: no delivery or failure events for them. Requests are matched with their responses and time
out (``PendingRequests``).

Like every sub-machine it never holds the ``Mesh``: frames to seal and send, events and peers to pump go
into the ``Outbox`` the caller passes; starting a handshake when there is no session is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import events as ev
from ..channels import PendingRequests, split_message
from ..config import CoreConfig
from ..counters import Counters
from ..errors import WireError
from ..outbox import Outbox
from ..peers.peer import Peer
from ..wire import frames as fw


@dataclass(frozen=True, slots=True)
class Received:
    """What DATA frames brought: events to publish, control messages for the caller to dispatch (in order),
    whether any application message came (traffic: the peer counts as active), and an ACK to send."""

    events: tuple[ev.Event, ...] = ()
    controls: tuple[tuple[str, bytes], ...] = ()
    active: bool = False
    ack: bytes | None = None


@dataclass(frozen=True, slots=True)
class Acked:
    """What an ACK brought: frames to send again, and delivery events (then the stream may send more)."""

    resend: tuple[bytes, ...] = ()
    events: tuple[ev.Event, ...] = ()


class Messages:
    def __init__(self, config: CoreConfig, counters: Counters, chunk_size: int) -> None:
        self.cfg = config
        self.counters = counters
        self.chunk_size = chunk_size
        self.requests = PendingRequests(config.max_pending_requests)
        self._next_msg_id = 1
        self._control_ids: set[int] = set()  # internal messages: no delivery events for applications

    # ------------------------------------------------------------------ send
    def queue(self, peer: Peer, header: fw.MessageHeader, body: bytes, internal: bool) -> int:
        """Queue a message on the peer's stream (raises UsageError when its queue is full); its id."""
        mid = self._next_msg_id
        self._next_msg_id += 1
        peer.stream.enqueue(header.kind, split_message(header, body, self.chunk_size), mid)
        if internal:
            self._control_ids.add(mid)
        return mid

    def frames(self, peer: Peer, now: float) -> list[bytes]:
        """What the peer's stream may send now (the caller checked there is a session), and a due ACK.
        (The hot path: a list, not an Outbox.)"""
        out = peer.stream.frames_to_send(now)
        ack = peer.stream.ack_due(now)
        return out if ack is None else [*out, ack]

    def timeout(self, peer: Peer, now: float, out: Outbox) -> None:
        """The stream's timers: retransmissions, give-up (MessageFailed), delayed ACKs."""
        resend, failed = peer.stream.on_timeout(now)
        if failed:
            self.failed(peer, failed, "not acknowledged in time", out)
        for f in resend:
            out.frame(peer, f)

    def failed(self, peer: Peer, msg_ids: list[int], reason: str, out: Outbox) -> None:
        """Messages that will not be delivered, and the peer's open requests."""
        for mid in msg_ids:
            if mid in self._control_ids:
                self._control_ids.discard(mid)
            else:
                out.event(ev.MessageFailed(peer.network.id, peer.node, mid, reason))
        for cid in self.requests.fail_peer(peer):
            out.event(ev.RequestTimedOut(peer.network.id, peer.node, cid))

    def expired_requests(self, now: float, out: Outbox) -> float | None:
        """Requests past their deadline time out; the next deadline."""
        for cid, peer in self.requests.expired(now):
            if isinstance(peer, Peer):
                out.event(ev.RequestTimedOut(peer.network.id, peer.node, cid))
        return self.requests.deadlines.next_deadline()

    # ------------------------------------------------------------------ receive
    def on_ack(self, peer: Peer, frame: bytes, now: float) -> Acked:
        a = fw.decode_ack(frame)
        delivered, resend = peer.stream.on_ack(a.next_seq, a.sack, now)
        events: list[ev.Event] = []
        for mid in delivered:
            if mid in self._control_ids:
                self._control_ids.discard(mid)
            else:
                events.append(ev.MessageDelivered(peer.network.id, peer.node, mid))
        return Acked(tuple(resend), tuple(events))

    def on_data(self, peer: Peer, frame: fw.DataFrame, now: float) -> Received:
        controls: list[tuple[str, bytes]] = []
        events: list[ev.Event] = []
        active = False
        for f in peer.stream.on_data(frame, now):
            if f.reset:
                peer.assembler.reset()
            try:
                msg = peer.assembler.feed(f)
            except WireError as e:
                self.counters.drop(e.reason)
                continue
            if msg is None:
                continue
            h = msg.header
            net, node = peer.network.id, peer.node
            if h.kind is fw.MessageKind.CONTROL:
                controls.append((h.channel, msg.body))
                continue
            active = True
            if h.kind is fw.MessageKind.MESSAGE:
                events.append(ev.ChannelMessage(net, node, h.channel, msg.body))
            elif h.kind is fw.MessageKind.REQUEST:
                events.append(ev.RequestReceived(net, node, h.channel, h.corr_id, msg.body))
            elif self.requests.close(h.corr_id, peer):
                events.append(ev.ResponseReceived(net, node, h.corr_id, h.status == 0, msg.body))
            else:
                self.counters.inc("rx.unmatched_responses")
        return Received(tuple(events), tuple(controls), active, peer.stream.ack_due(now))
