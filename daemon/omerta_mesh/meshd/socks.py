"""The SOCKS5 gateway (issue 13, item 5): local programs reach ports peers expose, through mesh streams.

Off by default; ``[socks] listen = "127.0.0.1:1080"`` starts it (``curl --socks5-hostname 127.0.0.1:1080
http://bravo:8080/``). On a loopback address clients need no login unless ``[socks] users`` lists some; on any
other address they must log in (RFC 1929) and without ``users`` the gateway is not started: the daemon runs
on, logs why and ``status.get`` says so (``socks``), as it does when the address cannot be bound.

Who may use it: opening a stream is a write, so without a login the gateway admits whom the stream socket admits
(``meshd/streams.py``): root, the daemon's own user and the ``api.group``. A TCP client has no ``SO_PEERCRED``;
``io/tcpowner.py`` asks the kernel (sock_diag) which uid owns the client's socket, as soon as it is accepted, and
``auth.user_may_write`` applies the rule with that user's groups from the user database (not the process's).
A client who may not write is answered REP 0x02 to its request (``socks.not_permitted``, and an info log line
naming the uid, at most one a minute per uid); a client whose owner cannot be found (closed already, not on this
host, netlink failing) is refused the same way (``socks.owner_unknown``): never let through on a guess. With
``users`` configured the login is the authority and the owner is not looked up: such a gateway may listen where
clients are other hosts, which have no local uid, and whoever holds a password was given the right to use it.

Each client is one task, at most ``max_clients`` at once (counted until its stream ends; more are closed
unread, ``socks.too_many_clients``):

1. the handshake (``socks_wire.Handshake``), read exactly as far as it asks, within ``handshake_timeout``;
   input that breaks the protocol gets the answer RFC 1928 has for it, if any, and the connection is closed;
2. CONNECT to a host (ATYP domain name, IPv4 or IPv6) that ``destination.resolve`` finds: a peer's name,
   ``NAME.NETWORK``, a node id or prefix, a member's mesh IP. The stream goes to that peer's port, as
   ``omertactl connect`` opens it (the peer must expose the port). Anything else is refused with REP 0x02:
   there is no exit node yet to take traffic out of the mesh. BIND is refused with 0x07;
3. the reply, then the client's socket is the stream's local end (``StreamHub.attach``).

UDP ASSOCIATE is granted where the virtual network is up (``meshd/socks_udp.py``: datagrams to members' mesh IPs
go through the TUN) and refused with 0x07 otherwise; the TCP connection then holds the association.

Every refusal is counted as ``socks.<Fault>`` (``status.get`` counters); none is logged above debug, so a
client that floods the gateway costs no log space, except the two refusals of who the client is, rate-limited.
"""

from __future__ import annotations

import asyncio
import grp
import hmac
import ipaddress
import logging
import pwd
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable

from ..core.errors import UsageError
from ..io import tcpowner
from ..io.streams import Spliced, StreamRefused, StreamUnanswered
from . import auth, destination, views
from . import schema as s
from .config import SocksConfig, parse_listen
from .errors import ApiError
from .localserve import admit, listen, stop_serving
from .socks_udp import Association, Refused, UdpRelay
from .socks_wire import CONNECT, UDP_ASSOCIATE, Credentials, Fault, Handshake, NeedData, Reply, Request, SocksError

if TYPE_CHECKING:  # pragma: no cover
    from .api import DaemonAPI

log = logging.getLogger("omerta_mesh.meshd.socks")
WHO = (Fault.NOT_PERMITTED, Fault.OWNER_UNKNOWN)  # refusals of who the client is, not of what it asked
REFUSAL_LOG_EVERY = 60.0  # seconds between info lines about one uid (or about unknown owners)


@dataclass(frozen=True)
class Refusal:
    """Why this client may not use the gateway, decided before its handshake is read."""

    fault: Fault  # NOT_PERMITTED or OWNER_UNKNOWN
    detail: str
    key: Hashable  # what log lines are rate-limited by: the uid, or the fault for unknown owners


class QuietLog:
    """At most one line per key every ``every`` seconds, remembering at most ``keys`` keys (the oldest go)."""

    def __init__(self, every: float, keys: int = 256) -> None:
        self.every = every
        self.keys = keys
        self._next: dict[Hashable, tuple[float, int]] = {}  # key -> (next line allowed at, lines held back)

    def allow(self, key: Hashable, now: float) -> int | None:
        """None: stay quiet; otherwise log, and this many lines were held back since the last one."""
        at, held = self._next.pop(key, (0.0, 0))
        if now < at:
            self._next[key] = (at, held + 1)
            return None
        while len(self._next) >= self.keys:
            del self._next[next(iter(self._next))]
        self._next[key] = (now + self.every, 0)
        return held


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    auth: bool  # clients must log in


def plan(c: SocksConfig) -> Plan | str | None:
    """Where and how to listen; a string: why the gateway must not start; None: it is off."""
    if not c.listen:
        return None
    host, port = parse_listen(c.listen)  # (validated with the config)
    if not ipaddress.ip_address(host).is_loopback and not c.users:
        return (f"not started: {c.listen} is not a loopback address and [socks] users is empty, so anyone who reaches it "
                "could open this node's mesh streams; add users = [\"USER:PASSWORD\"] or listen on 127.0.0.1")
    return Plan(host, port, bool(c.users))


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "no such user"


def judge(client: tuple[str, int], server: tuple[str, int], write_gid: int | None) -> Refusal | int:
    """The uid owning the client's socket if it may open streams, else why not; blocks (netlink, NSS): run it in a
    thread."""
    try:
        uid = tcpowner.owner_uid(client, server)
    except tcpowner.OwnerUnknown as e:
        return Refusal(Fault.OWNER_UNKNOWN, f"who connected is unknown, so it may not open streams: {e}", Fault.OWNER_UNKNOWN)
    if auth.user_may_write(uid, write_gid):
        return uid
    try:
        group = grp.getgrgid(write_gid).gr_name if write_gid is not None else ""
    except KeyError:
        group = str(write_gid)
    fix = f"run it as root or as a member of group {group} (usermod -aG {group} USER)" if group else "run it as root"
    return Refusal(Fault.NOT_PERMITTED, f"uid {uid} ({_user(uid)}) may not open mesh streams; {fix}, "
                   "or set [socks] users so that clients log in", uid)


class SocksGateway:
    def __init__(self, api: "DaemonAPI", config: SocksConfig, write_gid: Callable[[], int | None]) -> None:
        self.api = api
        self.cfg = config
        self.write_gid = write_gid
        self.plan = plan(config)
        self.check_owner = isinstance(self.plan, Plan) and not self.plan.auth  # a login is the authority where required
        self._quiet = QuietLog(REFUSAL_LOG_EVERY)
        self.users = {u.encode(): p.encode() for u, _, p in (e.partition(":") for e in config.users)}
        self.stats: Counter[str] = Counter()
        self.udp = UdpRelay(api, self.stats)
        self.problem: str | None = self.plan if isinstance(self.plan, str) else None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle, status
    async def start(self) -> None:
        p = self.plan
        if p is None:
            return
        if isinstance(p, str):
            log.error("SOCKS5 gateway %s", p)
            return
        got = await listen(self._client, p.host, p.port, "socks.listen")
        if isinstance(got, str):
            self.problem = got
            log.error("SOCKS5 gateway %s", got)
            return
        self._server = got
        log.info("SOCKS5 gateway on %s (%s)", self.address(), "username/password" if p.auth else "no login: local users who may write")

    async def close(self) -> None:
        await stop_serving(self._server, self._clients)
        self._server = None

    def address(self) -> str:
        if self._server is None or not self._server.sockets:
            return ""
        return views.ep(self._server.sockets[0].getsockname()[:2]) or ""

    def feature(self) -> s.FeatureInfo:
        if self.plan is None:
            return s.FeatureInfo(False, False, "off")
        if self._server is None:
            return s.FeatureInfo(True, False, self.problem or "not started yet")
        login = "username/password" if isinstance(self.plan, Plan) and self.plan.auth else "no login; users who may write"
        return s.FeatureInfo(True, True, f"{self.address()} ({login}; {len(self._clients)} clients)")

    def counters(self) -> dict[str, int]:
        if self.plan is None:
            return {}
        return {f"socks.{k}": v for k, v in sorted(self.stats.items())} | {"socks.clients": len(self._clients),
                                                                           "socks.udp_active": len(self.udp.active)}

    # ------------------------------------------------------------------ one client
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (me := admit(self._clients, self.cfg.max_clients, writer)) is None:
            self.stats[Fault.TOO_MANY_CLIENTS.value] += 1
            return
        self.stats["accepted"] += 1
        hs = Handshake(auth_required=isinstance(self.plan, Plan) and self.plan.auth)
        stream: Spliced | Association | None = None
        try:
            try:
                who = await self._admit(writer) if self.check_owner else None  # (first: the client is still there)
                req, login = await asyncio.wait_for(self._handshake(hs, reader, writer), self.cfg.handshake_timeout)
                if isinstance(who, Refusal):
                    self._log_refusal(writer, who)
                    raise self._refuse(hs, who.fault, Reply.NOT_ALLOWED, who.detail)
                if req.command == UDP_ASSOCIATE:  # (the client: its uid, or its login)
                    stream = await self._associate(hs, req, writer, ("uid", who) if login is None else ("login", login))
                else:
                    stream = await self._connect(hs, req, reader, writer)
            except SocksError as e:
                self.stats[e.fault.value] += 1
                writer.write(hs.data_to_send())  # the protocol's answer, if it has one
                if e.fault not in WHO:  # (those were logged already)
                    log.debug("SOCKS client %s refused: %s", writer.get_extra_info("peername"), e)
            except asyncio.TimeoutError:
                self.stats[Fault.HANDSHAKE_TIMEOUT.value] += 1
            if isinstance(stream, Association):
                await stream.run(reader)  # until the client closes the connection, or the association is idle
            elif stream is not None:
                await asyncio.wait(stream.tasks)  # the client counts until its stream ends (the hub owns it now)
        except OSError as e:
            log.debug("SOCKS client went away: %s", e)
        finally:
            self._clients.discard(me)
            if not isinstance(stream, Spliced):
                writer.close()

    async def _admit(self, writer: asyncio.StreamWriter) -> Refusal | int:
        """The uid of the client's owner, or why it may not use the gateway."""
        client, server = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        if not client or not server:  # (asyncio could not read them: reset before it accepted)
            return Refusal(Fault.OWNER_UNKNOWN, "the client was gone before it could be looked up", Fault.OWNER_UNKNOWN)
        try:
            return await asyncio.wait_for(asyncio.to_thread(judge, client, server, self.write_gid()),
                                          self.cfg.handshake_timeout)
        except asyncio.TimeoutError:  # (a hung NSS lookup: the thread finishes on its own)
            return Refusal(Fault.OWNER_UNKNOWN, f"looking up who connected took over {self.cfg.handshake_timeout:g} s",
                           Fault.OWNER_UNKNOWN)

    def _log_refusal(self, writer: asyncio.StreamWriter, r: Refusal) -> None:
        """At info level, at most one line a minute per uid (or for unknown owners); the rest at debug."""
        held = self._quiet.allow(r.key, asyncio.get_running_loop().time())
        more = f" ({held} more since the last line like this)" if held else ""
        log.log(logging.DEBUG if held is None else logging.INFO, "SOCKS client %s refused: %s%s",
                writer.get_extra_info("peername"), r.detail, more)

    async def _handshake(self, hs: Handshake, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> tuple[Request, bytes | None]:
        """The request, and the user name the client logged in with (None: no login)."""
        login: bytes | None = None
        while True:
            e = hs.next_event()
            if out := hs.data_to_send():
                writer.write(out)
            if isinstance(e, NeedData):
                data = await reader.read(e.n)  # never past what the handshake needs: the rest is the stream's
                if not data:
                    raise SocksError(Fault.TRUNCATED, f"the client closed during the {hs.phase.value}")
                hs.receive_data(data)
            elif isinstance(e, Credentials):
                want = self.users.get(e.user)
                hs.auth_result(want is not None and hmac.compare_digest(want, e.password))
                login = e.user
            elif isinstance(e, Request):
                return e, login

    async def _connect(self, hs: Handshake, req: Request, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> Spliced:
        """Open the stream and splice the client with it; SocksError (with the reply queued) when that fails."""
        if req.command != CONNECT:
            raise self._refuse(hs, Fault.BAD_COMMAND, Reply.COMMAND_NOT_SUPPORTED, f"command {req.command}")
        if req.port == 0:
            raise self._refuse(hs, Fault.BAD_PORT, Reply.NOT_ALLOWED, "port 0")
        hub = self.api.node.streams
        try:
            node, network = destination.resolve(self.api, req.host)
            st = await hub.open(node, req.port, network, timeout=self.cfg.connect_timeout)
        except ApiError as e:
            raise self._refuse(hs, Fault.NOT_MESH, Reply.NOT_ALLOWED, f"{req.host}: {e.message} (no exit node)") from None
        except StreamUnanswered as e:
            raise self._refuse(hs, Fault.UNREACHABLE, Reply.HOST_UNREACHABLE, str(e)) from None
        except StreamRefused as e:
            raise self._refuse(hs, Fault.REFUSED, Reply.CONNECTION_REFUSED, str(e)) from None
        except UsageError as e:  # the stream limits, a peer not in that network
            raise self._refuse(hs, Fault.FAILED, Reply.GENERAL_FAILURE, str(e)) from None
        if not hub.is_open(st):  # reset before we came back to it (attach would abort the socket: no reply)
            raise self._refuse(hs, Fault.REFUSED, Reply.CONNECTION_REFUSED, "the stream was reset at once")
        hs.reply(Reply.SUCCEEDED)
        writer.write(hs.data_to_send())
        self.stats["connected"] += 1
        hub.attach(st, reader, writer)
        return st

    async def _associate(self, hs: Handshake, req: Request, writer: asyncio.StreamWriter, client: Hashable) -> Association:
        """A UDP relay for this client (RFC 1928 section 7); SocksError (with the reply queued) when it may not have one."""
        why = self.udp.unavailable()
        if why is not None:
            raise self._refuse(hs, Fault.UDP_REFUSED, Reply.COMMAND_NOT_SUPPORTED, why)
        try:
            a = await self.udp.open(client, writer, req.port)
        except Refused as e:
            raise self._refuse(hs, e.fault, Reply.GENERAL_FAILURE, str(e)) from None
        hs.reply(Reply.SUCCEEDED, a.bound)
        writer.write(hs.data_to_send())
        return a

    def _refuse(self, hs: Handshake, fault: Fault, code: Reply, detail: str) -> SocksError:
        hs.reply(code)
        return SocksError(fault, detail)
