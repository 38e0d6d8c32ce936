"""Who is calling: peer credentials of a Unix-socket client, and what it may do.

``SO_PEERCRED`` gives the client's pid, uid and gid as of ``connect()``; ``SO_PEERGROUPS`` (option 59,
Linux 4.13+) its supplementary groups. Root, the daemon's own user (who started an unprivileged daemon owns
it anyway) and members of the daemon's group (``api.group``, default ``omerta``) may call write methods; everyone
may call read methods. The socket file is 0666 so that anyone can connect: the credentials decide, not the file
mode (as Tailscale's safesocket does). The SOCKS gateway's TCP clients are judged by the same rule from their
socket's owner (``user_may_write``: groups from the user database, see there).
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import pwd
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("omerta_mesh.meshd.auth")

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class Caller:
    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]
    may_write: bool

    @classmethod
    def internal(cls) -> "Caller":
        """The daemon itself (signals) or a D-Bus caller, whom the bus policy already admitted."""
        return cls(0, 0, 0, (), True)

    def describe(self) -> str:
        return f"uid={self.uid} pid={self.pid}"


def group_id(name: str) -> int | None:
    """The gid of the write group, or None (then only root may write) with a warning saying the fix."""
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        log.warning("group %r does not exist: only root may change state; create it with systemd-sysusers or groupadd %s", name, name)
        return None


def peer_groups(sock: socket.socket) -> tuple[int, ...]:
    size = 256
    while size <= 65536 * 4:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, size * 4)
        except OSError as e:
            if e.errno == errno.ERANGE:
                size *= 4
                continue
            return ()  # kernel without SO_PEERGROUPS: the primary gid still counts
        return struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    return ()


def may_write(uid: int, groups: Iterable[int], write_gid: int | None) -> bool:
    """Root, the daemon's own user (someone who runs an unprivileged daemon controls it) and the write group."""
    return uid == 0 or uid == os.geteuid() or (write_gid is not None and write_gid in groups)


def caller_of(sock: socket.socket, write_gid: int | None) -> Caller:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    groups = peer_groups(sock)
    return Caller(pid, uid, gid, groups, may_write(uid, (gid, *groups), write_gid))


def user_may_write(uid: int, write_gid: int | None) -> bool:
    """The same rule for a caller known only by its uid (a TCP client: ``io/tcpowner.py``). Its process's groups
    cannot be seen, so the user database's are used (``os.getgrouplist``: the primary group and every group that
    lists the user). They can differ from the process's: a session started before ``usermod -aG`` lacks the group,
    a process that dropped its groups (``setpriv --clear-groups``) still has them here. A uid without a passwd
    entry has no groups. Blocks on NSS (LDAP, sssd): call it where blocking is allowed."""
    if may_write(uid, (), write_gid):
        return True
    try:
        pw = pwd.getpwuid(uid)
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
    except (KeyError, OSError):
        return False
    return may_write(uid, groups, write_gid)
