"""The embedded node's receivers of channel messages and events (``MeshNode``'s, moved out of node.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Callable

from ..core import events as ev
from ..core.channels import HOLD_LIMIT, Admit, Refuse
from ..core.ids import NetworkId, NodeId
from ..core.wire.frames import RefuseCode


class Subscribers:
    """The embedded node's receivers (core/channels.py ``Receivers``). A channel is received while someone iterates
    ``messages(channel)`` or holds a ``subscribe(channel)`` queue, or iterates ``events()`` (which sees every
    message, and drops what its bounded queue cannot hold). Messages on any other channel are refused: the
    sender's send fails with "no receiver on channel ...". A channel queue at its limit holds messages back,
    unacknowledged, instead of dropping them (they are offered again as it drains), and after ``HOLD_LIMIT``
    seconds without room refuses them too."""

    def __init__(self, name: Callable[[], str], now: Callable[[], float], holding: Callable[[], None]) -> None:
        self.channels: dict[str, list[tuple[asyncio.Queue[ev.ChannelMessage], int]]] = defaultdict(list)
        self.events: list[asyncio.Queue[ev.Event]] = []
        self.full_since: dict[str, float] = {}  # channels found full, since when (no room since then)
        self._name, self._now, self._holding = name, now, holding

    def _full(self, channel: str) -> bool:
        return any(q.qsize() >= limit for q, limit in self.channels.get(channel, ()))

    def admit(self, network: NetworkId, peer: NodeId, channel: str, size: int) -> Admit | Refuse:
        if not self.channels.get(channel):
            if self.events:
                return Admit.ACCEPT
            return Refuse(RefuseCode.NO_RECEIVER, f"no receiver on channel {channel!r} at {self._name()}")
        if not self._full(channel):
            self.full_since.pop(channel, None)
            return Admit.ACCEPT
        if self._now() - self.full_since.setdefault(channel, self._now()) < HOLD_LIMIT:
            self._holding()
            return Admit.HOLD
        return Refuse(RefuseCode.INBOX_FULL, f"channel {channel!r} at {self._name()} is full: not read for {HOLD_LIMIT:g} s")

    def deliver(self, message: ev.ChannelMessage) -> None:
        for q in self.events:
            offer(q, message)
        for cq, _ in self.channels.get(message.channel, ()):
            cq.put_nowait(message)  # (unbounded: admit keeps each queue within its limit)

    def room(self) -> bool:
        """Whether a channel found full has room now."""
        return any(not self._full(c) for c in self.full_since)


def offer(q: asyncio.Queue, item: object) -> None:
    try:
        q.put_nowait(item)
    except asyncio.QueueFull:
        pass
