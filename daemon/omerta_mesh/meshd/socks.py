"""The SOCKS5 gateway (issue 13, item 5): local programs reach ports peers expose, through mesh streams.

Off by default; ``[socks] listen = "127.0.0.1:1080"`` starts it (``curl --socks5-hostname 127.0.0.1:1080
http://bravo:8080/``). On a loopback address clients need no login unless ``[socks] users`` lists some; on any
other address they must log in (RFC 1929) and without ``users`` the gateway is not started: the daemon runs
on, logs why and ``status.get`` says so (``socks``), as it does when the address cannot be bound.

Each client is one task, at most ``max_clients`` at once (counted until its stream ends; more are closed
unread, ``socks.too_many_clients``):

1. the handshake (``socks_wire.Handshake``), read exactly as far as it asks, within ``handshake_timeout``;
   input that breaks the protocol gets the answer RFC 1928 has for it, if any, and the connection is closed;
2. CONNECT to a host (ATYP domain name, IPv4 or IPv6) that ``destination.resolve`` finds: a peer's name,
   ``NAME.NETWORK``, a node id or prefix, a member's mesh IP. The stream goes to that peer's port, as
   ``omertactl connect`` opens it (the peer must expose the port). Anything else is refused with REP 0x02:
   there is no exit node yet to take traffic out of the mesh. BIND and UDP ASSOCIATE are refused with 0x07
   (docs/architecture.md, "SOCKS5 gateway", says why for UDP);
3. the reply, then the client's socket is the stream's local end (``StreamHub.attach``).

Every refusal is counted as ``socks.<Fault>`` (``status.get`` counters); none is logged above debug, so a
client that floods the gateway costs no log space.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..io.streams import Spliced, StreamRefused, StreamUnanswered
from . import destination
from . import schema as s
from .config import SocksConfig, parse_listen
from .errors import ApiError
from .socks_wire import CONNECT, UDP_ASSOCIATE, Credentials, Fault, Handshake, NeedData, Reply, Request, SocksError

if TYPE_CHECKING:  # pragma: no cover
    from .api import DaemonAPI

log = logging.getLogger("omerta_mesh.meshd.socks")


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


class SocksGateway:
    def __init__(self, api: "DaemonAPI", config: SocksConfig) -> None:
        self.api = api
        self.cfg = config
        self.plan = plan(config)
        self.users = {u.encode(): p.encode() for u, _, p in (e.partition(":") for e in config.users)}
        self.stats: Counter[str] = Counter()
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
        try:
            self._server = await asyncio.start_server(self._client, p.host, p.port)
        except OSError as e:
            self.problem = (f"not started: cannot listen on {self.cfg.listen}: {e.strerror or e}; "
                            "stop what uses it or choose another socks.listen")
            log.error("SOCKS5 gateway %s", self.problem)
            return
        log.info("SOCKS5 gateway on %s (%s)", self.address(), "username/password" if p.auth else "no login: loopback")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._clients):
            t.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        self._server = None

    def address(self) -> str:
        if self._server is None or not self._server.sockets:
            return ""
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def feature(self) -> s.FeatureInfo:
        if self.plan is None:
            return s.FeatureInfo(False, False, "off")
        if self._server is None:
            return s.FeatureInfo(True, False, self.problem or "not started yet")
        login = "username/password" if isinstance(self.plan, Plan) and self.plan.auth else "no login"
        return s.FeatureInfo(True, True, f"{self.address()} ({login}; {len(self._clients)} clients)")

    def counters(self) -> dict[str, int]:
        if self.plan is None:
            return {}
        return {f"socks.{k}": v for k, v in sorted(self.stats.items())} | {"socks.clients": len(self._clients)}

    # ------------------------------------------------------------------ one client
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= self.cfg.max_clients:
            self.stats[Fault.TOO_MANY_CLIENTS.value] += 1
            writer.transport.abort()
            return
        me = asyncio.current_task()
        assert me is not None
        self._clients.add(me)
        self.stats["accepted"] += 1
        hs = Handshake(auth_required=isinstance(self.plan, Plan) and self.plan.auth)
        stream: Spliced | None = None
        try:
            try:
                req = await asyncio.wait_for(self._handshake(hs, reader, writer), self.cfg.handshake_timeout)
                stream = await self._connect(hs, req, reader, writer)
            except SocksError as e:
                self.stats[e.fault.value] += 1
                writer.write(hs.data_to_send())  # the protocol's answer, if it has one
                log.debug("SOCKS client %s refused: %s", writer.get_extra_info("peername"), e)
            except asyncio.TimeoutError:
                self.stats[Fault.HANDSHAKE_TIMEOUT.value] += 1
            if stream is not None:
                await asyncio.wait(stream.tasks)  # the client counts until its stream ends (the hub owns it now)
        except OSError as e:
            log.debug("SOCKS client went away: %s", e)
        finally:
            self._clients.discard(me)
            if stream is None:
                writer.close()

    async def _handshake(self, hs: Handshake, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request:
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
            elif isinstance(e, Request):
                return e

    async def _connect(self, hs: Handshake, req: Request, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> Spliced:
        """Open the stream and splice the client with it; SocksError (with the reply queued) when that fails."""
        if req.command == UDP_ASSOCIATE:
            raise self._refuse(hs, Fault.UDP_REFUSED, Reply.COMMAND_NOT_SUPPORTED, "UDP ASSOCIATE: mesh streams carry bytes only")
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
        if hub.streams.get((st.peer.key, st.sid)) is not st:  # reset before we came back to it
            raise self._refuse(hs, Fault.REFUSED, Reply.CONNECTION_REFUSED, "the stream was reset at once")
        hs.reply(Reply.SUCCEEDED)
        writer.write(hs.data_to_send())
        self.stats["connected"] += 1
        hub.attach(st, reader, writer)
        return st

    def _refuse(self, hs: Handshake, fault: Fault, code: Reply, detail: str) -> SocksError:
        hs.reply(code)
        return SocksError(fault, detail)
