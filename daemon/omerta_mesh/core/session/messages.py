"""Messages: the message path over each peer's reliable stream (an owned sub-machine; ``mesh.messages``).

Sending: a message (channel message, request, response, or an internal control message) is split into
DATA frames and queued on the peer's ``ReliableStream`` (``queue``); ``frames`` hands out what the stream
allows to send now, and ACKs. Receiving: DATA frames are reassembled into messages (``on_data``): channel
messages, requests and responses become events, control messages are handed back to the ``Mesh`` to
dispatch through its handler table; ACKs free the window (``on_ack``). Message ids of control messages
are internal: no delivery or failure events for them. Requests are matched with their responses and time
out (``PendingRequests``).

Receiving channel messages asks the host's ``Receivers`` (``core/channels.py``) at each message's first chunk:
a message it holds back stays unacknowledged (``retry`` offers it again), one it refuses is answered with
REFUSE (the sender's send fails with the host's reason), one it takes is handed to it whole. On the sending
side a REFUSE fails that one message (``MessageFailed`` with the receiver's reason).

Like every sub-machine it never holds the ``Mesh``: frames to seal and send, events and peers to pump go
into the ``Outbox`` the caller passes; starting a handshake when there is no session is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import events as ev
from ..channels import Admit, PendingRequests, Receivers, Refuse, split_message
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
    def __init__(self, config: CoreConfig, counters: Counters, chunk_size: int,
                 control_lost: Callable[[Peer, str, Outbox], None] = lambda peer, name, out: None) -> None:
        self.cfg = config
        self.counters = counters
        self.chunk_size = chunk_size
        self.requests = PendingRequests(config.max_pending_requests)
        self._next_msg_id = 1
        self._control_ids: dict[int, str] = {}  # internal messages (id -> name): no delivery events for applications
        # a control message that will never arrive, told to its owner (Mesh: a lost stream message resets the
        # peer's streams, whose bytes now have a hole); gossip and punching repeat themselves and need nothing
        self.control_lost = control_lost
        self.receivers: Receivers | None = None  # the host's (None: take everything, as ChannelMessage events)
        self._held: dict[tuple[bytes, bytes], Peer] = {}  # peers whose stream holds a message back

    # ------------------------------------------------------------------ send
    def queue(self, peer: Peer, header: fw.MessageHeader, body: bytes, internal: bool) -> int:
        """Queue a message on the peer's stream (raises UsageError when its queue is full); its id."""
        mid = self._next_msg_id
        self._next_msg_id += 1
        peer.stream.enqueue(header.kind, split_message(header, body, self.chunk_size), mid)
        if internal:
            self._control_ids[mid] = header.channel
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
            if (name := self._control_ids.pop(mid, None)) is not None:
                self.control_lost(peer, name, out)
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
        """An ACK, or a REFUSE (an ACK of what came before the refused message, which fails)."""
        if frame[0] == fw.FrameType.REFUSE:
            r = fw.decode_refuse(frame)
            delivered, refused = peer.stream.on_refuse(r.seq, now)
            events = self._delivered(peer, delivered)
            if refused is not None:
                self.counters.inc("tx.refused")
                if self._control_ids.pop(refused, None) is None:  # (a control message is never refused)
                    events.append(ev.MessageFailed(peer.network.id, peer.node, refused, r.reason))
            return Acked((), tuple(events))
        a = fw.decode_ack(frame)
        delivered, resend = peer.stream.on_ack(a.next_seq, a.sack, now)
        return Acked(tuple(resend), tuple(self._delivered(peer, delivered)))

    def _delivered(self, peer: Peer, msg_ids: list[int]) -> list[ev.Event]:
        events: list[ev.Event] = []
        for mid in msg_ids:
            if self._control_ids.pop(mid, None) is None:
                events.append(ev.MessageDelivered(peer.network.id, peer.node, mid))
        return events

    def on_data(self, peer: Peer, frame: fw.DataFrame, now: float) -> Received:
        return self._take(peer, peer.stream.on_data(frame, now), now)

    def held(self) -> list[Peer]:
        """Peers whose stream holds a message back for the host (forgetting those that no longer do)."""
        for key in [k for k, p in self._held.items() if not p.stream.receive_held]:
            del self._held[key]
        return list(self._held.values())

    def retry(self, peer: Peer, now: float) -> Received:
        """Offer the host the message the peer's stream holds back, and what follows it, again."""
        return self._take(peer, peer.stream.retry(now), now)

    def _take(self, peer: Peer, frames: list[fw.DataFrame], now: float) -> Received:
        controls: list[tuple[str, bytes]] = []
        events: list[ev.Event] = []
        active = False
        receivers = self.receivers
        for i, f in enumerate(frames):
            if f.reset:
                peer.assembler.reset()
            decoded = None
            if receivers is not None and f.first and f.kind is fw.MessageKind.MESSAGE:
                try:
                    decoded = fw.decode_message_header(f.kind, f.chunk, self.cfg.max_message)  # (given to the assembler)
                except WireError:
                    pass  # the assembler drops it and counts why
                else:
                    verdict = receivers.admit(peer.network.id, peer.node, decoded[0].channel, decoded[0].total_len)
                    if isinstance(verdict, Refuse):
                        peer.stream.refuse(frames[i:], verdict.code, verdict.reason, now)
                        self.counters.inc("rx.refused." + verdict.code.name.lower())
                        break
                    if verdict is Admit.HOLD:
                        peer.stream.hold_back(frames[i:])
                        self._held[peer.key] = peer
                        self.counters.inc("rx.held")
                        break
            try:
                msg = peer.assembler.feed(f, decoded)
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
                if receivers is None:
                    events.append(ev.ChannelMessage(net, node, h.channel, msg.body))
                else:
                    receivers.deliver(ev.ChannelMessage(net, node, h.channel, msg.body))
            elif h.kind is fw.MessageKind.REQUEST:
                events.append(ev.RequestReceived(net, node, h.channel, h.corr_id, msg.body))
            elif self.requests.close(h.corr_id, peer):
                events.append(ev.ResponseReceived(net, node, h.corr_id, h.status == 0, msg.body))
            else:
                self.counters.inc("rx.unmatched_responses")
        return Received(tuple(events), tuple(controls), active, peer.stream.ack_due(now))
