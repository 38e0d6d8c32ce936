"""EventHub: core events -> subscribers. A snapshot first, then deltas; bounded queues; slow ones cut off.

Every published event is a JSON-ready dict with a ``type`` (``peer.connected``, ``network.joined``, ...),
a sequence number ``seq`` (1, 2, ... per daemon run) and a wall-clock ``time``. A subscriber gets, with its
subscription, a snapshot stamped with the current ``seq``; every later event has a larger one, so a client
folds deltas onto the snapshot without gaps or repeats.

``publish`` never waits: it appends to each subscriber's bounded queue. A subscriber whose queue is full
is cut off (its queue is closed with a reason; the JSON-RPC face tells the client and it may subscribe
again for a fresh snapshot). The D-Bus signal emitter subscribes with ``drop_oldest`` instead and counts
what it dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from typing import Any, Callable

from ..core import events as ev
from ..core.ids import NetworkId, NodeId
from ..core.peers.paths import ViaRelay
from .views import ep

Json = dict[str, Any]


class SubscriptionClosed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Subscription:
    def __init__(self, hub: "EventHub", sid: int, limit: int, drop_oldest: bool) -> None:
        self.hub = hub
        self.id = sid
        self.limit = limit
        self.drop_oldest = drop_oldest
        self.queue: deque[Json] = deque()
        self.dropped = 0
        self.closed: str | None = None
        self._wake = asyncio.Event()

    def offer(self, item: Json) -> None:
        if self.closed is not None:
            return
        if len(self.queue) >= self.limit:
            if not self.drop_oldest:
                self.close(f"subscriber too slow: {self.limit} events queued and unread")
                self.hub.cut_off += 1
                return
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(item)
        self._wake.set()

    def close(self, reason: str, drain: bool = False) -> None:
        """End the subscription; with ``drain`` the events already queued are still handed out."""
        if self.closed is None:
            self.closed = reason
            if not drain:
                self.queue.clear()
            self.hub._subs.pop(self.id, None)
            self._wake.set()

    async def get(self, max_items: int = 256) -> list[Json]:
        """The next queued events (at least one); raises SubscriptionClosed once closed."""
        while not self.queue:
            if self.closed is not None:
                raise SubscriptionClosed(self.closed)
            self._wake.clear()
            await self._wake.wait()
        n = min(max_items, len(self.queue))
        return [self.queue.popleft() for _ in range(n)]


class EventHub:
    def __init__(self, queue_limit: int = 1024) -> None:
        self.queue_limit = queue_limit
        self.seq = 0
        self.published = 0
        self.cut_off = 0
        self._subs: dict[int, Subscription] = {}
        self._next_id = 1

    def subscribe(self, limit: int | None = None, drop_oldest: bool = False) -> Subscription:
        sub = Subscription(self, self._next_id, limit or self.queue_limit, drop_oldest)
        self._next_id += 1
        self._subs[sub.id] = sub
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, kind: str, /, **fields: Any) -> Json:
        self.seq += 1
        self.published += 1
        item = {**fields, "type": kind, "seq": self.seq, "time": round(time.time(), 3)}
        for sub in list(self._subs.values()):
            sub.offer(item)
        return item

    def close_all(self, reason: str) -> None:
        for sub in list(self._subs.values()):
            sub.close(reason, drain=True)


# ---------------------------------------------------------------------- core event -> JSON
# Core event class name -> the event type clients see. Events not listed (channel data, requests and
# responses, deliveries) are data-plane traffic, not state changes, and are not published.
CORE_EVENTS = {
    "NetworkJoined": "network.joined",
    "NetworkLeft": "network.left",
    "PeerConnected": "peer.connected",
    "PeerDisconnected": "peer.disconnected",
    "PeerLeft": "peer.left",
    "PeerRestarted": "peer.restarted",
    "SessionRekeyed": "peer.rekeyed",
    "HandshakeFailed": "peer.handshake_failed",
    "PathChanged": "peer.path_changed",
    "PunchFinished": "peer.punch_finished",
    "PeerDiscovered": "peer.discovered",
    "PongReceived": "peer.pong",
    "MessageFailed": "message.failed",
    "NatChanged": "nat.changed",
    # owned networks (docs/membership.md): enrolment, invites, removal, key rotation, renewal
    "Enrolled": "member.enrolled",
    "EnrolmentRefused": "member.enrolment_refused",
    "InviteRedeemed": "invite.redeemed",
    "InviteOffered": "invite.offered",
    "MemberRemoved": "member.removed",
    "NetworkRekeyed": "network.rekeyed",
    "OwnerClaimed": "network.owner_claimed",  # an open network becoming owned (docs/membership.md 7)
    "NetworkOwned": "network.owned",
    "CredentialRenewed": "credential.renewed",
    "RenewalRefused": "credential.renewal_refused",
}
DAEMON_EVENTS = ["daemon.reloaded", "daemon.stopping"]
EVENT_TYPES = [*CORE_EVENTS.values(), *DAEMON_EVENTS]


def _value(v: Any) -> Any:
    if isinstance(v, (NodeId, NetworkId)):
        return str(v)
    if isinstance(v, ViaRelay):
        return ep(v)
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int):
        return ep(v)  # type: ignore[arg-type]
    if isinstance(v, (bytes, bytearray)):
        return None  # payloads never go into the event stream
    return v


def core_event_json(e: ev.Event, name_of: Callable[[Any], str]) -> tuple[str, Json] | None:
    """(type, fields) for a core event that clients should see; None for data-plane events.

    Fields are the event's own, made JSON-ready: ids as text, addresses as "host:port", ``peer`` as
    ``node_id`` plus the peer's ``name`` (both null when the event names no peer: ``member.removed`` of a
    certificate or an invite), any other node (``by``) as its id plus ``<field>_name``, ``rtt`` (seconds) as
    ``rtt_ms``.
    """
    kind = CORE_EVENTS.get(type(e).__name__)
    if kind is None or not dataclasses.is_dataclass(e):
        return None
    out: Json = {}
    peer = getattr(e, "peer", None)
    if isinstance(peer, NodeId):
        out["node_id"], out["name"] = str(peer), name_of(peer)
    elif peer is None and hasattr(e, "peer"):
        out["node_id"] = out["name"] = None
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if f.name == "peer":
            continue
        if isinstance(v, NodeId):
            out[f.name], out[f.name + "_name"] = str(v), name_of(v)
        elif f.name == "rtt" and isinstance(v, float):
            out["rtt_ms"] = round(v * 1000, 3)
        elif f.name == "name" and not v and "name" in out:
            continue
        elif (j := _value(v)) is not None or v is None:
            out[f.name] = j
    return kind, out
