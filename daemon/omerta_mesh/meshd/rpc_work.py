"""Fair, bounded JSON-RPC work: whose requests are read, and which of them run, now.

Every request counts, each item of a batch too. Two gates:

* ``admit``: a frame's requests are taken in only while they fit the bounds on work in flight (read and not
  yet answered): ``api.max_inflight_per_user`` for one non-root uid across all its connections, and
  ``api.max_inflight_total`` for everyone (callers who may write have ``RESERVED`` more, so root and the
  group are still served when others fill it). A frame with more requests than a bound is taken alone.
  A connection whose frame does not fit stops being read; waiting frames are taken in order per uid, the
  uids in turn.
* ``turn``: a request starts running only with a turn. At most ``PER_TURN`` requests start per event-loop
  turn, round-robin across uids, so the mesh's own work (UDP reads, timers, sessions) runs between them and
  root's request waits behind at most one request of each other user.

The connection itself bounds what it holds (``api.max_inflight``, the reply buffer: ``rpc_server.py``).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Callable

PER_TURN = 16  # requests started per event-loop turn (a status.get is ~0.3 ms: ~5 ms of API work per turn)
RESERVED = 64  # requests in flight beyond api.max_inflight_total for callers who may write (one full batch)


class Work:
    def __init__(self, limits: Callable[[], Any]) -> None:
        self.limits = limits  # () -> the ApiConfig now (a reload changes it)
        self.inflight: collections.Counter[int] = collections.Counter()  # uid -> requests admitted, not answered
        self.total = 0
        self._admits: dict[int, collections.deque[tuple[asyncio.Future[None], int, bool]]] = {}  # uid -> frames waiting
        self._turns: dict[int, collections.deque[asyncio.Future[None]]] = {}  # uid -> requests waiting to start
        self._budget = PER_TURN
        self._armed = False

    def backlog(self) -> int:
        """Requests admitted and waiting for a turn."""
        return sum(len(q) for q in self._turns.values())

    # ---- admission
    def _fits(self, uid: int, n: int, may_write: bool) -> bool:
        cfg = self.limits()
        if self.total and self.total + n > cfg.max_inflight_total + (RESERVED if may_write else 0):
            return False
        return uid == 0 or not self.inflight[uid] or self.inflight[uid] + n <= cfg.max_inflight_per_user

    def _take(self, uid: int, n: int) -> None:
        self.inflight[uid] += n
        self.total += n

    async def admit(self, uid: int, may_write: bool, n: int) -> None:
        """Wait until ``n`` more requests of ``uid`` fit; they are in flight until ``release``."""
        if uid not in self._admits and self._fits(uid, n, may_write):
            self._take(uid, n)
            return
        fut = asyncio.get_running_loop().create_future()
        self._admits.setdefault(uid, collections.deque()).append((fut, n, may_write))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(uid, n)  # admitted, then cancelled before it could run
            else:
                self._forget_admit(uid, fut)
            raise

    def release(self, uid: int, n: int) -> None:
        self.inflight[uid] -= n
        if self.inflight[uid] <= 0:
            del self.inflight[uid]
        self.total -= n
        self._admit_waiting()

    def _forget_admit(self, uid: int, fut: asyncio.Future[None]) -> None:
        q = self._admits.get(uid)
        if q is not None:
            for item in q:
                if item[0] is fut:
                    q.remove(item)
                    break
            if not q:
                del self._admits[uid]
        self._admit_waiting()  # (a big frame at the head may have held smaller ones back)

    def _admit_waiting(self) -> None:
        moved = True
        while moved and self._admits:
            moved = False
            for uid in list(self._admits):
                q = self._admits[uid]
                fut, n, may_write = q[0]
                if not self._fits(uid, n, may_write):
                    continue
                q.popleft()
                del self._admits[uid]
                if q:
                    self._admits[uid] = q  # to the back: the other uids come first
                self._take(uid, n)
                fut.set_result(None)
                moved = True

    # ---- turns
    async def turn(self, uid: int) -> None:
        """Wait for this request's turn to start."""
        if not self._turns and self._budget > 0:
            self._budget -= 1
            self._arm()
            return
        fut = asyncio.get_running_loop().create_future()
        self._turns.setdefault(uid, collections.deque()).append(fut)
        self._arm()
        try:
            await fut
        except asyncio.CancelledError:
            q = self._turns.get(uid)
            if q is not None and fut in q:
                q.remove(fut)
                if not q:
                    del self._turns[uid]
            raise

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._new_turn)

    def _new_turn(self) -> None:
        """A new loop turn: a fresh budget, given to the waiting requests one uid after another."""
        self._armed = False
        self._budget = PER_TURN
        while self._budget > 0 and self._turns:
            uid = next(iter(self._turns))
            q = self._turns.pop(uid)
            fut = q.popleft()
            if q:
                self._turns[uid] = q  # to the back
            if not fut.done():
                fut.set_result(None)
                self._budget -= 1
        if self._turns or self._budget < PER_TURN:
            self._arm()
