"""The asyncio driver: feeds the sans-I/O Mesh from real sockets and one loop timer.

After every input (a drained batch of datagrams, a timer, a command) the driver calls ``flush()``, which
is aioquic's ``transmit()``: hand the IP packets the core received to the virtual network's writer
(``ip_sink``), send every datagram the core hands out, pass its events on, then re-arm the single loop timer
handle from ``next_deadline()``. The driver holds no protocol logic. ``before_send``, when set, runs before
each batch of datagrams leaves: the daemon makes the messages its inboxes took durable there, so no
acknowledgement leaves before what it acknowledges is on disk (one write and fsync per batch).

The express lanes (``core/express.py``) are the exception: one IP packet the virtual network sealed in a member's
lane (``lane``) leaves at once by ``udp.sendto``, and one the core opened the express way goes to the virtual
network's writer (``ip_one``) at once; a batch that only held such packets is not flushed, because nothing else
changed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Callable, Sequence

from ..core.audit import AuditViolation
from ..core.events import Event
from ..core.express import Lane
from ..core.ids import NetworkId, NodeId
from ..core.ipframes import Written
from ..core.mesh import Mesh
from .udp import Address, UdpEndpoints

log = logging.getLogger("omerta_mesh.driver")


class Driver:
    def __init__(self, mesh: Mesh, loop: asyncio.AbstractEventLoop, on_event: Callable[[Event], None]) -> None:
        self.mesh = mesh
        self.loop = loop
        self.on_event = on_event
        self.udp = UdpEndpoints(loop, self._on_datagram, self._after_batch)
        self.udp.on_run = self._on_run
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.audit_failure: AuditViolation | None = None
        self._audit_seen = 0
        self.closed = False
        # the virtual network's writer: IP packets the core received, drained after every input; and its writer of
        # one packet the express lane opened (core/express.py), at once
        self.ip_sink: Callable[[Sequence[tuple[NetworkId, NodeId, Written]]], None] | None = None
        self.ip_one: Callable[[NetworkId, NodeId, bytes], None] | None = None
        self._dirty = False  # a datagram took the general path since the last flush
        # destinations never sent to: the virtual network's own prefixes (a path through the tunnel would loop)
        self.blocked: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        self._verdicts: dict[str, bool] = {}
        self.blocked_sends = 0
        self.before_send: Callable[[], None] | None = None  # runs before each batch of datagrams is sent

    # The core's clock is time.monotonic(), not loop.time(): uvloop's loop.time() has millisecond steps,
    # too coarse for RTTs on a LAN. Timers are armed relative to it with call_later.
    @staticmethod
    def wall_offset() -> float:
        return time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic()

    def _on_datagram(self, data: bytes, src: Address, local: Address) -> None:
        now = time.monotonic()
        if self.ip_one is not None:  # the express lane first (core/express.py): one packet in, written at once
            got = self.mesh.express.open(data, src, local, now)
            if got is not False:
                if got is True:
                    self._dirty = True
                else:
                    self.ip_one(*got)
                return
        self._dirty = True
        self.mesh.receive_datagram(data, src, local, now)

    def _on_run(self, datagrams: list[bytes], src: Address, local: Address) -> None:
        self._dirty = True
        self.mesh.receive_datagrams(datagrams, src, local, time.monotonic())

    def _after_batch(self) -> None:
        """After a drained batch of datagrams: a flush, unless the express lane took them all (nothing to send,
        no event, no timer moved)."""
        if self._dirty:
            self.flush()

    def lane(self, network: NetworkId, node: NodeId, now: float) -> Lane | None:
        """An express lane to member ``node`` (core/express.py), for the virtual network to seal single packets in
        and send them itself (``udp.sendto``); None when there is none, when its destination is blocked, or with
        the encryption audit on (it sees every datagram)."""
        if self.mesh.audit is not None or (lane := self.mesh.express.lane(network, node, now)) is None:
            return None
        return None if self.blocked and self._blocked(lane.ep[0]) else lane

    def flush(self) -> None:
        if self.closed:
            return
        self._dirty = False
        mesh = self.mesh
        if self.ip_sink is not None:
            packets = mesh.ip_packets_to_write()
            if packets:
                self.ip_sink(packets)
        for _ in range(64):  # event handlers may issue commands that produce more output
            self._send_out()
            e = mesh.next_event()
            if e is None:
                break
            while e is not None:
                self.on_event(e)
                e = mesh.next_event()
        self._rearm()

    def _send_out(self) -> None:
        mesh = self.mesh
        if self.before_send is not None:
            self.before_send()
        try:
            out = mesh.datagrams_to_send()
        except AuditViolation as e:  # strict audit: stop before anything else leaves
            log.critical("encryption audit violation: %s", e)
            self.audit_failure = e
            self.close()
            raise
        audit = mesh.audit
        if audit is not None and len(audit.violations) > self._audit_seen:
            for v in audit.violations[self._audit_seen :]:
                log.error("encryption audit: dropped %d bytes to %s:%d: %s", v.size, v.dst[0], v.dst[1], v.reason)
            self._audit_seen = len(audit.violations)
        send, batch_send = self.udp.sendto, self.udp.send_batch
        blocked = self.blocked
        i, n = 0, len(out)
        while i < n:
            dst, local, data = out[i]
            if blocked and self._blocked(dst[0]):
                self.blocked_sends += 1
                i += 1
                continue
            # a run to one destination of one size (the last may be shorter): one GSO send (io/udp.py)
            j, size = i + 1, len(data)
            while j < n and out[j][0] == dst and out[j][1] == local and len(out[j - 1][2]) == size >= len(out[j][2]):
                j += 1
            if j - i > 1:
                batch_send([x[2] for x in out[i:j]], dst, local)
            else:
                send(data, dst, local)
            i = j

    def set_blocked(self, prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> None:
        self.blocked = prefixes
        self._verdicts.clear()

    def _blocked(self, host: str) -> bool:
        v = self._verdicts.get(host)
        if v is None:
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                return False
            v = any(addr in p for p in self.blocked)
            if len(self._verdicts) >= 4096:
                self._verdicts.clear()
            self._verdicts[host] = v
        return v

    def _rearm(self) -> None:
        at = self.mesh.next_deadline()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_later(max(0.0, at - time.monotonic()), self._fire)

    def _fire(self) -> None:
        at = self._timer_at
        self._timer = None
        self._timer_at = None
        now = time.monotonic()
        self.mesh.handle_timer(max(at or now, now))
        self.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.udp.close()
