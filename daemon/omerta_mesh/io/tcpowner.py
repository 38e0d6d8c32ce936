"""Which local user owns the other end of a TCP connection on this host: sock_diag netlink, through pyroute2.

A Unix socket tells its server who connected (``SO_PEERCRED``); TCP does not, even on loopback. The kernel knows,
though: the client's socket is in this network namespace's table, and ``sock_diag`` (``SOCK_DIAG_BY_FAMILY``, what
``ss -e`` reads) reports its owner, the ``idiag_uid``: the file-system uid of the process that created the socket
(its socket inode's owner), much as ``SO_PEERCRED`` reports the creds of the process that called ``connect()``.
Anyone may ask, no capability is needed.

``owner_uid((client address, port), (our address, port))`` asks for sockets whose source port is the client's and
destination port is ours (the kernel filters a dump by these two ports), keeps the one whose addresses match too
(so our own accepted end, which has the two swapped, never matches) and returns its uid. It raises
``OwnerUnknown`` with the reason, never a guess, when:

* no such socket exists here: the client is on another host or in another network namespace, or it is gone;
* the socket has no inode (``idiag_inode`` 0): it was closed and lingers as a TIME_WAIT or orphaned entry, which
  the kernel reports as owned by uid 0, so believing it would let anyone pass for root by closing fast;
* netlink cannot answer (pyroute2 missing, a sandbox without ``AF_NETLINK``, a kernel without inet_diag).

It blocks (pyroute2's synchronous API runs its own event loop, and its asyncio transport does not run on uvloop):
call it through ``asyncio.to_thread``. A lookup costs about 1-2 ms. /proc/net/tcp{,6} carries the same uid and
inode but is a text dump of every socket in the namespace; it is not used.
"""

from __future__ import annotations

import ipaddress
import socket

SS_LISTEN = 10
NOT_LISTENING = ((1 << 12) - 1) & ~(1 << SS_LISTEN)  # every TCP state but LISTEN (pyroute2's SS_* numbering)


class OwnerUnknown(Exception):
    """The owner of a client's socket could not be found; the text says why."""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.partition("%")[0])  # (a scope id: fe80::1%lo)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # an IPv4 client of a dual-stack listener: its own socket is AF_INET
    return ip


def _at(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def owner_uid(client: tuple[str, int], server: tuple[str, int]) -> int:
    """The uid owning the socket at ``client`` connected to ``server`` (both as getpeername/getsockname give
    them, IPv6 4-tuples too); ``OwnerUnknown`` when there is none to trust."""
    src, dst = _ip(client[0]), _ip(server[0])
    sport, dport = int(client[1]), int(server[1])
    # an IPv4 connection's client socket is AF_INET, or AF_INET6 when it dialled ::ffff:a.b.c.d
    families = (socket.AF_INET, socket.AF_INET6) if src.version == 4 else (socket.AF_INET6,)
    try:
        from pyroute2 import DiagSocket

        with DiagSocket() as ds:
            ds.bind()
            found = [m for f in families for m in ds.get_sock_stats(family=f, states=NOT_LISTENING, sport=sport, dport=dport)]
    except Exception as e:  # ImportError, OSError, pyroute2's own errors: whatever it is, no owner is known
        raise OwnerUnknown(f"sock_diag netlink failed ({type(e).__name__}: {e})") from e
    for m in found:
        if (m["idiag_sport"], m["idiag_dport"]) != (sport, dport):
            continue
        if _ip(m["idiag_src"]) != src or _ip(m["idiag_dst"]) != dst:
            continue
        if not m["idiag_inode"]:
            raise OwnerUnknown(f"the socket at {_at(src, sport)} is already closed, so no process owns it")
        return int(m["idiag_uid"])
    raise OwnerUnknown(f"no socket at {_at(src, sport)} connected to {_at(dst, dport)} on this host "
                       "(another host or network namespace, or it is gone)")
