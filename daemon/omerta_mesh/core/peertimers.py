"""PeerTimers: each peer's one deadline in the core's ``DeadlineQueue``, computed once per input batch rather
than once per datagram (an owned part of ``Mesh``).

Every input that may move a peer's deadline marks the peer (``touch``: each datagram of a run, each command,
each timer). The deadline itself (``Sessions.deadline``: sessions, handshakes, the reliable stream's
retransmission and ACK timers, heartbeats, path expiry, punching) is computed from the peer's state when the
queue is next read: ``settle`` runs at the start of ``Mesh.next_deadline`` and ``Mesh.handle_timer``. The
queue therefore holds what computing it at the last touch would have put there (that touch's ``now`` is kept
for the lower bound), and the driver, which reads ``next_deadline`` after every input, arms the same timer;
only the work is once per peer per batch (bench/streams.py: re-arming after every datagram was about an
eighth of the receiving daemon's time).
"""

from __future__ import annotations

from typing import Callable

from .peers.peer import Peer, PeerState
from .timers import DeadlineQueue, PeerTimer


class PeerTimers:
    __slots__ = ("_queue", "_deadline", "_touched")

    def __init__(self, queue: DeadlineQueue, deadline: Callable[[Peer], float | None]) -> None:
        self._queue = queue
        self._deadline = deadline
        self._touched: dict[tuple[bytes, bytes], tuple[Peer, float]] = {}  # peer key -> (peer, last touch's now)

    def touch(self, peer: Peer, now: float) -> None:
        """The peer's deadline may have moved: compute it before the queue is read next."""
        self._touched[peer.key] = (peer, now)

    def settle(self) -> None:
        """Arm (or cancel: a REMOVED peer, or nothing to wait for) every touched peer's timer."""
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        queue = self._queue
        for key, (peer, now) in touched.items():
            at = None if peer.state is PeerState.REMOVED else self._deadline(peer)
            if at is None:
                queue.cancel(PeerTimer(key))
            else:
                queue.set(PeerTimer(key), at if at > now else now)
