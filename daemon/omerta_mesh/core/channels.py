"""Channel messages, requests and responses on top of the reliable stream.

* ``split_message`` turns a message into DATA chunks (the first carries the message header).
* ``Assembler`` (one per peer) concatenates in-order chunks back into messages, within a memory budget
  shared by all peers (``ReassemblyBudget``), so no peer, and no number of peers, can grow memory beyond
  ``reassembly_total_bytes``.
* ``PendingRequests`` correlates responses with requests and times requests out.
* ``Receivers`` is the host's side of receiving channel messages (``Admit``, ``Refuse``): see below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Hashable, Protocol

from .errors import DropReason, UsageError, WireError
from .events import ChannelMessage
from .ids import NetworkId, NodeId
from .timers import DeadlineQueue
from .wire.frames import DataFrame, MessageHeader, MessageKind, RefuseCode, check_channel, decode_message_header

HOLD_LIMIT = 10.0  # seconds a host holds a channel's messages back with no room before it refuses them (INBOX_FULL)


class Admit(enum.Enum):
    ACCEPT = "accept"  # the host takes the message (``deliver`` follows when its last chunk arrives)
    HOLD = "hold"  # no room yet: not acknowledged; asked again at the sender's next copy or ``Mesh.resume_receiving``


@dataclass(frozen=True, slots=True)
class Refuse:
    """The host will not take the message: the sender's send fails with ``reason`` (shown to its user as is)."""

    code: RefuseCode
    reason: str


class Receivers(Protocol):
    """Who receives channel messages on this node (``MeshNode``'s subscribers, the daemon's inboxes), given to
    the core as ``Mesh.messages.receivers``. The first chunk of every channel message is offered (``admit``) before
    anything of it is acknowledged; a message taken is handed over whole (``deliver``, instead of a
    ``ChannelMessage`` event) before the acknowledgement that covers it is sent, so a host that keeps it (in
    memory, or on disk before the driver sends: ``Driver.before_send``) makes the sender's "delivered" true.
    Without receivers the core takes every message and reports it as a ``ChannelMessage`` event."""

    def admit(self, network: NetworkId, peer: NodeId, channel: str, size: int) -> Admit | Refuse: ...

    def deliver(self, message: ChannelMessage) -> None: ...


def split_message(header: MessageHeader, body: bytes, chunk_size: int) -> list[bytes]:
    head = header.encode()
    first_room = chunk_size - len(head)
    if first_room <= 0:
        raise UsageError("chunk size too small for the message header")
    chunks = [head + body[:first_room]]
    for off in range(first_room, len(body), chunk_size):
        chunks.append(body[off : off + chunk_size])
    return chunks


def make_header(kind: MessageKind, channel: str, body: bytes, max_message: int, corr_id: int = 0, status: int = 0) -> MessageHeader:
    try:
        check_channel(channel)
    except ValueError as e:
        raise UsageError(f"bad channel name {channel!r}: {e}") from None
    if len(body) > max_message:
        raise UsageError(f"message of {len(body)} bytes is over the {max_message}-byte limit; split it")
    return MessageHeader(kind, len(body), corr_id, status, channel)


@dataclass(frozen=True, slots=True)
class Assembled:
    header: MessageHeader
    body: bytes


class ReassemblyBudget:
    """Bytes reserved by partial messages across all peers."""

    def __init__(self, per_peer: int, total: int) -> None:
        self.per_peer = per_peer
        self.total = total
        self.used = 0

    def can_reserve(self, n: int) -> bool:
        return n <= self.per_peer and self.used + n <= self.total


class Assembler:
    """Reassembles one peer's in-order DATA chunks into messages."""

    __slots__ = ("budget", "max_message", "_header", "_parts", "_have", "_reserved", "_discarding")

    def __init__(self, budget: ReassemblyBudget, max_message: int) -> None:
        self.budget = budget
        self.max_message = max_message
        self._header: MessageHeader | None = None
        self._parts: list[bytes] = []
        self._have = 0
        self._reserved = 0
        self._discarding = False

    def _release(self) -> None:
        self.budget.used -= self._reserved
        self._reserved = 0
        self._header = None
        self._parts = []
        self._have = 0

    def reset(self) -> None:
        self._release()
        self._discarding = False

    def feed(self, frame: DataFrame, decoded: tuple[MessageHeader, bytes] | None = None) -> Assembled | None:
        """Add the next in-order chunk (a first chunk's header already ``decoded``, or not). Returns a complete
        message, None, or raises WireError (the rest of the broken message is then discarded up to its LAST chunk)."""
        if frame.first:
            if self._header is not None:
                self._release()
                self._discarding = False
                raise WireError(DropReason.FRAGMENT_INVALID, "new message before the previous one ended")
            self._discarding = False
            header, body = decoded or decode_message_header(frame.kind, frame.chunk, self.max_message)
            if header.kind != frame.kind:  # pragma: no cover - same source
                raise WireError(DropReason.FRAGMENT_INVALID)
            if frame.last:
                if len(body) != header.total_len:
                    raise WireError(DropReason.FRAGMENT_INVALID, "length mismatch")
                return Assembled(header, body)
            if not self.budget.can_reserve(header.total_len):
                self._discarding = not frame.last
                raise WireError(DropReason.REASSEMBLY_LIMIT, f"{header.total_len} bytes")
            self.budget.used += header.total_len
            self._reserved = header.total_len
            self._header = header
            self._parts = [body]
            self._have = len(body)
            return None
        if self._header is None:
            if self._discarding:
                self._discarding = not frame.last
                return None
            raise WireError(DropReason.FRAGMENT_INVALID, "continuation without a first chunk")
        self._parts.append(frame.chunk)
        self._have += len(frame.chunk)
        header = self._header
        if self._have > header.total_len or (frame.last and self._have != header.total_len):
            self._release()
            self._discarding = not frame.last
            raise WireError(DropReason.FRAGMENT_INVALID, "message longer or shorter than announced")
        if not frame.last:
            return None
        body = b"".join(self._parts)
        self._release()
        return Assembled(header, body)


class PendingRequests:
    """Requests awaiting a response: correlation id -> the peer asked, with a timeout."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._next = 1
        self._peer: dict[int, Hashable] = {}
        self.deadlines = DeadlineQueue()

    def open(self, peer: Hashable, deadline: float) -> int:
        if len(self._peer) >= self.limit:
            raise UsageError(f"{self.limit} requests already pending; wait for answers")
        cid = self._next
        self._next = (self._next % 0xFFFFFFFF) + 1
        while cid in self._peer:  # pragma: no cover - needs 2^32 pending
            cid = self._next
            self._next = (self._next % 0xFFFFFFFF) + 1
        self._peer[cid] = peer
        self.deadlines.set(cid, deadline)
        return cid

    def close(self, cid: int, peer: Hashable) -> bool:
        """True if ``cid`` was pending for ``peer`` (a response from anyone else is refused)."""
        if self._peer.get(cid) != peer:
            return False
        del self._peer[cid]
        self.deadlines.cancel(cid)
        return True

    def expired(self, now: float) -> list[tuple[int, Hashable]]:
        out: list[tuple[int, Hashable]] = []
        for cid in self.deadlines.pop_due(now):  # only request ids are armed here
            if isinstance(cid, int) and (peer := self._peer.pop(cid, None)) is not None:
                out.append((cid, peer))
        return out

    def fail_peer(self, peer: Hashable) -> list[int]:
        cids = [c for c, p in self._peer.items() if p == peer]
        for c in cids:
            del self._peer[c]
            self.deadlines.cancel(c)
        return cids

    def __len__(self) -> int:
        return len(self._peer)
