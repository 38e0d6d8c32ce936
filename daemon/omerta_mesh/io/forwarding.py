"""IP forwarding held by the parts that need it (the exit offer, advertised subnet routes), put back as it was
when the last of them lets go. Acts on the caller's network namespace (``/proc/sys``).

IPv4: ``net.ipv4.ip_forward``.

IPv6: ``net.ipv6.conf.all.forwarding``. Writing it sets every interface's ``forwarding`` (and ``default``'s), and
an interface that forwards ignores router advertisements unless its ``accept_ra`` is 2: a host whose uplink gets
its address and default route by SLAAC would lose them when their lifetimes run out. So, as a careful admin does
before turning a host into an IPv6 router, every interface (and ``default``, for interfaces that appear later)
whose ``accept_ra`` is 1 is set to 2 first (``all`` is left alone: the kernel reads ``accept_ra`` per interface).
When the last holder lets go: ``all.forwarding`` is written back, then each interface's own ``forwarding`` that
this changed differently from what it was (an admin may forward on one interface only), and ``accept_ra`` goes
back to 1 where we made it 2 and it still is 2 (an admin's change meanwhile is kept). Interfaces gone meanwhile
are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

V4 = Path("/proc/sys/net/ipv4/ip_forward")
V6_CONF = Path("/proc/sys/net/ipv6/conf")


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str) -> None:
    path.write_text(value + "\n")


def _confs() -> list[str]:
    """Per-interface IPv6 settings (and ``default``), ``all`` excepted."""
    return sorted(n for n in os.listdir(V6_CONF) if n != "all")


class _Saved:
    """What one family's forwarding (and IPv6's accept_ra) was before the first holder turned it on."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.was = ""
        self.per_if: dict[str, str] = {}  # IPv6: each interface's forwarding before
        self.ra_raised: list[str] = []  # IPv6: interfaces whose accept_ra we raised from 1 to 2

    def turn_on(self) -> None:
        if self.version == 4:
            self.was = _read(V4)
            if self.was != "1":
                _write(V4, "1")
            return
        if not V6_CONF.is_dir():
            raise OSError("IPv6 is disabled on this host (no /proc/sys/net/ipv6): it cannot forward IPv6")
        self.was = _read(V6_CONF / "all" / "forwarding")
        self.per_if = {n: _read(V6_CONF / n / "forwarding") for n in _confs()}
        self.ra_raised = []
        for n in _confs():
            ra = V6_CONF / n / "accept_ra"
            if _read(ra) == "1":
                _write(ra, "2")
                self.ra_raised.append(n)
        if self.was != "1" or any(v != "1" for v in self.per_if.values()):
            _write(V6_CONF / "all" / "forwarding", "1")

    def put_back(self) -> None:
        if self.version == 4:
            if self.was and self.was != "1":
                _write(V4, self.was)
            return
        _write(V6_CONF / "all" / "forwarding", self.was or "0")
        for n, v in self.per_if.items():
            _put(V6_CONF / n / "forwarding", v)
        for n in self.ra_raised:
            _put(V6_CONF / n / "accept_ra", "1", only_if="2")


def _put(path: Path, value: str, only_if: str | None = None) -> None:
    """Write ``value`` where it differs (with ``only_if``: only over that value); an interface gone is skipped."""
    try:
        now = _read(path)
        if now != value and (only_if is None or now == only_if):
            _write(path, value)
    except FileNotFoundError:
        pass


_holders: dict[int, set[str]] = {4: set(), 6: set()}
_saved: dict[int, _Saved] = {}


def hold(who: str, version: int, on: bool) -> None:
    """Forwarding of IP ``version`` (4 or 6) on while anyone holds it (``who``: ``"exit"``, ``"subnets"``), put
    back as it was when the last holder lets go. Raises OSError (nothing held) when it cannot be turned on."""
    holders = _holders[version]
    if on and who not in holders:
        if not holders:
            saved = _Saved(version)
            try:
                saved.turn_on()
            except OSError:
                try:
                    saved.put_back()  # (what it changed before failing)
                except OSError:
                    pass
                raise
            _saved[version] = saved
        holders.add(who)
    elif not on and who in holders:
        holders.discard(who)
        if not holders and version in _saved:
            _saved.pop(version).put_back()


def held(version: int) -> bool:
    return bool(_holders[version])
