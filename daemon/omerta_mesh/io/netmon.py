"""Watch the host's addresses and links, and report a change once per burst (roaming, DHCP, VPNs).

The kernel announces RTM_NEWADDR / RTM_DELADDR on the rtnetlink groups RTMGRP_IPV4_IFADDR and
RTMGRP_IPV6_IFADDR, and RTM_NEWLINK / RTM_DELLINK on RTMGRP_LINK. ``AddressMonitor`` subscribes a
non-blocking netlink socket to them, reads it with ``loop.add_reader`` and decodes the messages with
pyroute2's rtnetlink marshal.

Why a plain socket rather than pyroute2's socket classes: the async ones need
``create_datagram_endpoint``, which uvloop refuses for AF_NETLINK, and the blocking ``IPRoute`` runs a
private asyncio loop for every call, which cannot run inside ours. A socket read by ``add_reader`` works on
both loops and needs no thread. Decoding stays pyroute2's.

Events are hints, not state: the callback re-reads the addresses itself (``netlink.local_addresses``).
A burst (an interface going down with all its addresses, a DHCP renewal) is debounced: the callback runs
once, ``debounce`` seconds after the last event, and never later than ``max_delay`` after the first. If
the kernel dropped events (ENOBUFS, the socket buffer overflowed) that counts as a change too. A link event
counts only when the link appears, disappears, or starts or stops running (administratively up with a
carrier, or a virtual link); statistics and MTU updates do not count.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import socket
from typing import Awaitable, Callable

from .netlink import IFF_RUNNING  # up and operational (carrier, or a virtual link that does not report one)

log = logging.getLogger("omerta_mesh.netmon")

Callback = Callable[[], Awaitable[None] | None]
READS_PER_WAKEUP = 64  # datagrams read before yielding to the loop (a flood cannot starve the node)
RCVBUF = 1 << 20


class AddressMonitor:
    """``AddressMonitor(callback).start()`` inside a running loop; ``stop()`` (idempotent) when done.

    ``start`` returns False, after logging why, if netlink is unavailable; the caller carries on without.
    The callback may be a plain function or a coroutine function; runs never overlap (a change seen while
    one runs leads to one more run after it).
    """

    def __init__(self, callback: Callback, *, debounce: float = 0.3, max_delay: float = 2.0, links: bool = True) -> None:
        self.callback = callback
        self.debounce = debounce
        self.max_delay = max(max_delay, debounce)
        self.links = links
        self.events = 0  # relevant netlink events seen
        self.runs = 0  # callback runs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._marshal = None
        self._link_up: dict[int, bool] = {}  # ifindex -> running, for the links we heard of
        self._first: float | None = None  # time of the first event of the current burst
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Future | None = None
        self._again = False

    @property
    def running(self) -> bool:
        return self._sock is not None

    def start(self) -> bool:
        if self._sock is not None:
            return True
        loop = asyncio.get_running_loop()
        sock = None
        try:
            from pyroute2.netlink.rtnl.marshal import MarshalRtnl

            sock = _open(_groups(self.links))
            loop.add_reader(sock.fileno(), self._readable)
        except Exception as e:  # no netlink (a sandbox, another OS), no pyroute2: addresses stay as read at start
            if sock is not None:
                sock.close()
            log.warning("cannot watch local address changes (%s): new addresses are advertised at the next record refresh", e)
            return False
        self._loop, self._sock, self._marshal = loop, sock, MarshalRtnl()
        return True

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.remove_reader(sock.fileno())
            finally:
                sock.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self._first = None
        self._again = False

    # ------------------------------------------------------------------ reading
    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        changed = False
        for _ in range(READS_PER_WAKEUP):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped events: we do not know what changed
                    changed = True
                    continue
                log.warning("netlink monitor stopped: %s", e)
                self.stop()
                return
            if not data:
                break
            changed = self._relevant(data) or changed
        if changed:
            self.events += 1
            self.poke()

    def _relevant(self, data: bytes) -> bool:
        hit = False
        try:
            msgs = list(self._marshal.parse(data))  # type: ignore[attr-defined]  # set in start(); pyroute2 is untyped
        except Exception as e:  # a message pyroute2 cannot decode: re-read to be safe
            log.debug("netlink: undecodable message (%s)", e)
            return True
        for msg in msgs:
            event = msg.get("event") or ""
            if event in ("RTM_NEWADDR", "RTM_DELADDR"):
                log.debug("netlink: %s %s", event, msg.get_attr("IFA_ADDRESS"))
                hit = True
            elif event in ("RTM_NEWLINK", "RTM_DELLINK"):
                idx = msg.get("index")
                up = event == "RTM_NEWLINK" and bool(msg.get("flags", 0) & IFF_RUNNING)
                was = self._link_up.get(idx)
                if event == "RTM_DELLINK":
                    self._link_up.pop(idx, None)
                else:
                    self._link_up[idx] = up
                if was != up:
                    log.debug("netlink: link %s %s", msg.get_attr("IFLA_IFNAME"), "up" if up else "down")
                    hit = True
        return hit

    # ------------------------------------------------------------------ debouncing
    def poke(self) -> None:
        """Note a change: the callback runs once the burst is over."""
        loop = self._loop
        if loop is None or self._sock is None:
            return
        now = loop.time()
        if self._first is None:
            self._first = now
        at = min(now + self.debounce, self._first + self.max_delay)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._first = None
        if self._sock is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True  # one more run when this one ends
            return
        self.runs += 1
        try:
            result = self.callback()
        except Exception:
            log.exception("address change handler failed")
            return
        if inspect.isawaitable(result):
            assert self._loop is not None
            self._task = asyncio.ensure_future(result, loop=self._loop)
            self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("address change handler failed", exc_info=task.exception())
        if self._task is task:
            self._task = None
        if self._again and self._sock is not None:
            self._again = False
            self._fire()


def _open(groups: int) -> socket.socket:
    """A non-blocking rtnetlink socket subscribed to ``groups``."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, groups))
    except OSError:
        sock.close()
        raise
    return sock


def _groups(links: bool) -> int:
    from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK

    return RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | (RTMGRP_LINK if links else 0)
