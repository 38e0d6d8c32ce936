"""The TUN device's life with pyroute2: name, addresses, MTU, GSO size, routes, up/down, removal, stale cleanup.

The blocking ``IPRoute`` runs in a thread (``asyncio.to_thread``), as ``netlink.py`` does: pyroute2's asyncio
transport cannot run on uvloop. Everything here acts on the caller's network namespace.

**Names.** ``device_name(network)`` is ``om-`` plus the network's name lowercased with every character
outside ``[a-z0-9_-]`` turned into ``-``. If that does not fit the kernel's 15 characters (or the name had
to be changed, or is empty), it becomes ``om-<first 7>-<4 hex of a hash of the original name>``, so two
networks whose names only differ after the cut, or in case or punctuation, still get distinct devices.

**Ownership and stale devices.** A configured device carries an interface alias (``ifalias``) marker
``omerta-mesh pid=<pid> start=<process start time>``. The device itself is never persistent
(no TUNSETPERSIST), so the kernel removes it, with its addresses and routes, when the last fd closes, even
after ``kill -9``. A device can only outlive its daemon if something else still holds its fd (a leaked
child process) or another tool made it persistent. ``find_stale`` reports every link whose marker names a
process that no longer runs (the pid is gone, or it now belongs to a process with another start time, i.e.
a reused pid); ``remove_stale`` deletes them at start. Links without our marker are never touched, even if
their name starts with ``om-``: an admin's device is not ours to delete.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Union

DEFAULT_PREFIX = "om-"
IFNAMSIZ_MAX = 15
MARK = "omerta-mesh"
DEFAULT_GSO_MAX_SIZE = 64000  # one super-segment + headers + tag fits one 64 KB UDP GSO send (BRIEF 4b)
IFA_F_NODAD = 0x02
Interface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class TunDevError(OSError):
    """Configuring the device failed; the message names the device, the step and the fix."""


def device_name(network: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The device name for a network (rule in the module docstring); always a valid interface name."""
    clean = re.sub(r"[^a-z0-9_-]", "-", network.lower())
    room = IFNAMSIZ_MAX - len(prefix)
    if room < 6:
        raise ValueError(f"device prefix {prefix!r} is too long: keep it to {IFNAMSIZ_MAX - 6} characters")
    if clean and clean == network and len(clean) <= room:
        return prefix + clean
    tag = hashlib.blake2s(network.encode(), digest_size=2).hexdigest()
    return f"{prefix}{clean[: room - 5]}-{tag}" if clean.strip("-") else f"{prefix}{tag}"


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None  # field 22: starttime in clock ticks


def marker(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{MARK} pid={pid} start={_start_time(pid) or 0}"


def marker_alive(alias: str) -> bool | None:
    """True if the process named by a marker still runs, False if not, None if ``alias`` is not our marker."""
    m = re.fullmatch(rf"{MARK} pid=(\d+) start=(\d+)", alias or "")
    if not m:
        return None
    start = _start_time(int(m.group(1)))
    return start is not None and start == m.group(2)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    name: str
    v4: ipaddress.IPv4Interface | None = None  # address with the network's prefix, e.g. 100.64.3.7/16
    v6: ipaddress.IPv6Interface | None = None  # e.g. fdxx:xxxx:xxxx::1234/64
    mtu: int = 1420
    gso_max_size: int | None = DEFAULT_GSO_MAX_SIZE
    routes: tuple[Network, ...] = field(default_factory=tuple)  # more prefixes into the device (e.g. the ULA /48)


def _index(ipr: Any, name: str) -> int:
    idx = ipr.link_lookup(ifname=name)
    if not idx:
        raise TunDevError(2, f"no device {name}: open the TUN before configuring it (io/tun.py open_tun)")
    return int(idx[0])


def _step(name: str, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except Exception as e:  # pyroute2's NetlinkError carries (code, message)
        code = getattr(e, "code", 0) or 0
        fix = "run as root or give the daemon CAP_NET_ADMIN" if code == 1 else "see the kernel's reason above"
        raise TunDevError(code, f"{what} on {name} failed: {e}; {fix}") from e


def configure(cfg: DeviceConfig) -> None:
    """Set MTU, GSO size, marker, addresses, up, and routes on an opened TUN (idempotent). Other addresses of
    a family we set (an earlier assignment's) are removed; link-local ones stay."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        i = _index(ipr, cfg.name)
        attrs: dict[str, Any] = {"mtu": cfg.mtu, "ifalias": marker()}
        if cfg.gso_max_size:
            attrs["gso_max_size"] = cfg.gso_max_size
        _step(cfg.name, "setting MTU/GSO size", ipr.link, "set", index=i, **attrs)
        if cfg.v6 is not None:
            _enable_ipv6(cfg.name)
        want = {(str(x.ip), x.network.prefixlen) for x in (cfg.v4, cfg.v6) if x is not None}
        have = set()
        for a in ipr.get_addr(index=i):
            key = (a.get("IFA_ADDRESS"), a["prefixlen"])
            mine = cfg.v4 if a["family"] == 2 else cfg.v6
            if mine is not None and key not in want and not str(key[0]).startswith("fe80:"):
                # an address we held before (the assignment moved us): it goes, so no stale one stays behind
                _step(cfg.name, f"removing old address {key[0]}/{key[1]}", ipr.addr, "del", index=i, address=key[0],
                      prefixlen=key[1])
                continue
            have.add(key)
        for iface in (cfg.v4, cfg.v6):
            if iface is None or (str(iface.ip), iface.network.prefixlen) in have:
                continue
            extra = {"flags": IFA_F_NODAD} if iface.version == 6 else {}
            _step(cfg.name, f"adding address {iface}", ipr.addr, "add", index=i, address=str(iface.ip),
                  prefixlen=iface.network.prefixlen, **extra)
        _step(cfg.name, "bringing the device up", ipr.link, "set", index=i, state="up")
        for net in cfg.routes:
            _step(cfg.name, f"adding route {net}", ipr.route, "replace", dst=str(net), oif=i,
                  family=10 if net.version == 6 else 2)


def _enable_ipv6(name: str) -> None:
    """A new device inherits ``net.ipv6.conf.default.disable_ipv6``; ours needs IPv6 for its mesh address."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("0")
    except OSError:
        pass  # no IPv6 in this kernel or namespace: adding the address says so


def set_up(name: str, up: bool) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        _step(name, "setting link state", ipr.link, "set", index=_index(ipr, name), state="up" if up else "down")


def remove(name: str) -> bool:
    """Delete device ``name`` (its addresses and routes go with it); False if there was none."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        _step(name, "deleting the device", ipr.link, "del", index=idx[0])
        return True


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    index: int
    kind: str
    alias: str
    mtu: int
    gso_max_size: int
    up: bool
    addresses: tuple[str, ...]  # "addr/prefixlen"


def describe(name: str) -> LinkInfo | None:
    """What the kernel has for device ``name`` (None if absent): for status output and tests."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return None
        link = ipr.link("get", index=idx[0])[0]
        addrs = tuple(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx[0]))
        return LinkInfo(
            name, idx[0], link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "", link.get("IFLA_IFALIAS") or "",
            link.get("IFLA_MTU") or 0, link.get("IFLA_GSO_MAX_SIZE") or 0, bool(link["flags"] & 1), addrs,
        )


def find_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Links carrying our marker whose process is gone (names starting with ``prefix``)."""
    from pyroute2 import IPRoute

    out = []
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("IFLA_IFNAME") or ""
            if name.startswith(prefix) and marker_alive(link.get("IFLA_IFALIAS") or "") is False:
                out.append(name)
    return sorted(out)


def remove_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Delete every stale device of ours (see ``find_stale``); the names removed."""
    gone = []
    for name in find_stale(prefix):
        try:
            if remove(name):
                gone.append(name)
        except TunDevError:
            pass  # vanished meanwhile, or refused: the next start tries again
    return gone


# asyncio faces: the blocking pyroute2 calls in a worker thread.
async def aconfigure(cfg: DeviceConfig) -> None:
    await asyncio.to_thread(configure, cfg)


async def aremove(name: str) -> bool:
    return await asyncio.to_thread(remove, name)


async def aremove_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    return await asyncio.to_thread(remove_stale, prefix)
