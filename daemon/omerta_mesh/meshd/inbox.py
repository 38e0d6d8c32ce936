"""The daemon's channel inboxes: who receives channel messages on this node (the core's ``Receivers``).

A channel has an inbox from its first ``channel.receive`` on (at most ``MAX_INBOXES``); the client takes its
messages with ``channel.receive``. What a message sent to this node gets (docs/architecture.md, "Channel
messages"):

* a channel without an inbox: refused. The sender's send fails with "no receiver on channel 'x' at <name>";
  counted here (``core`` counter ``rx.refused.no_receiver``) and there (``tx.refused``).
* a full inbox (``INBOX_MESSAGES`` messages or ``INBOX_BYTES`` bytes unread): held back, unacknowledged (the
  sender's window and queue fill, its ``channel.send`` waits); offered again as soon as the client takes
  messages; after ``HOLD_LIMIT`` seconds in which the client took none, refused ("... is full").
* otherwise taken: put in the inbox and in the spool (``io/spool.py``, ``<state>/inbox/``), which is written and
  fdatasync'd before the acknowledgement leaves (``sync``, the driver's ``before_send``). A daemon killed at any
  moment comes back with every message it acknowledged and the client had not received yet (``load`` at
  start); a channel whose inbox held messages has its inbox again.

A spool that cannot be written (disk full, I/O error) is logged and counted (``inbox.spool_errors``); the
messages of that batch stay in memory (they were acknowledged), and new ones are refused with the reason for
``RETRY_SPOOL`` seconds at a time, until a write succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable

from ..core import events as ev
from ..core.channels import HOLD_LIMIT, Admit, Refuse
from ..core.errors import MeshError
from ..core.ids import NetworkId, NodeId
from ..core.wire.frames import RefuseCode
from ..io.spool import Spool
from .errors import ApiError, Code

log = logging.getLogger("omerta_mesh.meshd.inbox")

INBOX_BYTES = 16 << 20
INBOX_MESSAGES = 4096
MAX_INBOXES = 64
RETRY_SPOOL = 5.0  # seconds messages are refused after the spool could not be written, before trying again


class Inbox:
    """Messages received on one channel, waiting for channel.receive."""

    def __init__(self) -> None:
        self.items: deque[ev.ChannelMessage] = deque()
        self.bytes = 0
        self.wake = asyncio.Event()
        self.full_since: float | None = None  # found full (a message held back) since then, the client taking none

    def full(self, size: int) -> bool:
        return len(self.items) >= INBOX_MESSAGES or (self.bytes + size > INBOX_BYTES and bool(self.items))

    def put(self, m: ev.ChannelMessage) -> None:
        self.items.append(m)
        self.bytes += len(m.data)
        self.wake.set()

    def take(self, n: int) -> list[ev.ChannelMessage]:
        out = [self.items.popleft() for _ in range(min(n, len(self.items)))]
        self.bytes -= sum(len(m.data) for m in out)
        return out


class Inboxes:
    def __init__(self, name: Callable[[], str], spool: Spool | None, on_room: Callable[[], None] = lambda: None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.name, self.spool, self.on_room, self.now = name, spool, on_room, now
        self.boxes: dict[str, Inbox] = {}
        self.spool_errors = 0
        self._broken: tuple[str, float] | None = None  # the spool's last write error and when
        if spool is not None:
            for channel, msgs in spool.load().items():
                box = self.boxes[channel] = Inbox()
                for m in msgs:
                    box.put(m)
                log.info("inbox of channel %r: %d messages restored from %s", channel, len(msgs), spool.dir)

    def open(self, channel: str) -> Inbox:
        box = self.boxes.get(channel)
        if box is None:
            if len(self.boxes) >= MAX_INBOXES:
                raise ApiError(Code.REFUSED, f"{MAX_INBOXES} channels are already being received",
                               "restart the daemon to drop the inboxes that hold no messages")
            box = self.boxes[channel] = Inbox()
        return box

    # ------------------------------------------------------------------ the core's Receivers
    def admit(self, network: NetworkId, peer: NodeId, channel: str, size: int) -> Admit | Refuse:
        box = self.boxes.get(channel)
        if box is None:
            return Refuse(RefuseCode.NO_RECEIVER, f"no receiver on channel {channel!r} at {self.name()}")
        if self._broken is not None:
            why, at = self._broken
            if self.now() - at < RETRY_SPOOL:
                return Refuse(RefuseCode.OTHER, f"the inbox of channel {channel!r} at {self.name()} cannot be kept on disk: {why}")
        if not box.full(size):
            box.full_since = None
            return Admit.ACCEPT
        if box.full_since is None:
            box.full_since = self.now()
        if self.now() - box.full_since < HOLD_LIMIT:
            return Admit.HOLD
        return Refuse(RefuseCode.INBOX_FULL, f"the inbox of channel {channel!r} at {self.name()} is full: "
                                             f"{len(box.items)} messages not received for {HOLD_LIMIT:g} s")

    def deliver(self, message: ev.ChannelMessage) -> None:
        self.open(message.channel).put(message)  # (admit found its inbox; there is one)
        if self.spool is not None:
            self.spool.add(message)

    def sync(self) -> None:
        """Before datagrams leave: what the inboxes took is on disk first (the acknowledgements say so)."""
        if self.spool is None or not self.spool.dirty:
            return
        try:
            self.spool.sync()
            self._broken = None
        except OSError as e:
            self.spool_errors += 1
            self._broken = (e.strerror or str(e), self.now())
            log.error("inbox spool in %s could not be written (%s): the messages just acknowledged are kept in memory "
                      "only, and new ones are refused for %g s", self.spool.dir, e, RETRY_SPOOL)

    # ------------------------------------------------------------------ the client's side
    def take(self, channel: str, n: int) -> list[ev.ChannelMessage]:
        """Up to ``n`` messages for the client: recorded as received (on disk) before they are handed out."""
        box = self.boxes[channel]
        out = box.take(n)
        if out and self.spool is not None:
            try:
                self.spool.taken(channel, len(out), len(box.items), box.bytes)
            except (OSError, MeshError) as e:  # they may come again after a restart: never lost
                self.spool_errors += 1
                log.error("inbox spool in %s: could not record %d messages of %r as received (%s)", self.spool.dir,
                          len(out), channel, e)
        if out and box.full_since is not None:
            box.full_since = None
            self.on_room()  # messages held back at their senders: offered again now
        return out

    def counters(self) -> dict[str, int]:
        return {"inbox.channels": len(self.boxes), "inbox.messages": sum(len(b.items) for b in self.boxes.values()),
                "inbox.spool_syncs": self.spool.syncs if self.spool else 0, "inbox.spool_errors": self.spool_errors}
