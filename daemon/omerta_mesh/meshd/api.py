"""DaemonAPI: every operation a client can ask of omerta-meshd, each one method, declared once.

Each method takes its request dataclass and a ``CallContext`` and returns its result dataclass; the
``@api_method`` declaration gives its JSON-RPC name and access level (``registry.py``). ``call`` is the one
entry point both IPC faces use: it checks access (once, before anything else), decodes the params, runs the
method, and turns every failure into an ``ApiError`` — core ``UsageError`` messages are written for users
and are passed on; anything unexpected is logged in full and answered with ``INTERNAL`` only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..core import events as ev
from ..core import views as core_views
from ..core.errors import InviteError, UsageError
from ..core.ids import MIN_PREFIX, NetworkId, NodeId
from ..core.views import NetworkView
from ..core.wire.invite import decode_invite
from ..io.spool import Spool
from ..io.store import StateNotSaved
from ..node import DeliveryFailed, MeshNode
from . import destination, eventlog, inband, metrics, names, owned, sshkeys, views
from . import schema as s
from .config import DaemonConfig
from .errors import ApiError, Code, internal, refused
from .events import EventHub, Subscription, core_event_json
from .inbox import Inboxes
from .registry import READ, WRITE, MethodSpec, api_method, spec_map

log = logging.getLogger("omerta_mesh.meshd.api")


@dataclass
class CallContext:
    """Who calls, through which face, and the face's hooks for streams and subscriptions."""

    caller: Any  # auth.Caller
    face: str  # "jsonrpc", "dbus" or "internal"
    progress: Callable[[str, dict], None] | None = None  # (token, value) -> a progress notification
    attach: Callable[[Subscription], None] | None = None  # start forwarding a subscription's events
    detach: Callable[[int], bool] | None = None  # end one of this caller's subscriptions
    shared_subscription: int | None = None  # D-Bus: the signal emitter's subscription


@dataclass
class DaemonHooks:
    reload: Callable[[], Awaitable[s.ReloadResult]] | None = None
    shutdown: Callable[[], None] | None = None
    status_changed: list[Callable[[], None]] = field(default_factory=list)


class DaemonAPI:
    def __init__(self, node: MeshNode, config: DaemonConfig, hub: EventHub, *, name: str, version: str,
                 endpoints: Callable[[], list[tuple[str, int]]]) -> None:
        self.node = node
        self.config = config
        self.hub = hub
        self.name = name
        self.version = version
        self.endpoints = endpoints
        self.hooks = DaemonHooks()
        self.started = time.monotonic()
        self.stopping = False
        self.dbus_face: Any = None  # the DbusService, when the daemon offers D-Bus (its state is in status)
        self.vnet: Any = None  # the VirtualNetworks (meshd/vnet.py), once the daemon started it
        self.exits: Any = None  # the ExitNodes (meshd/exitnode.py), once the daemon started it
        self.subnets: Any = None  # the SubnetRoutes (meshd/subnetroutes.py), once the daemon started it
        self.firewall: Any = None  # the Firewall (meshd/firewall.py), once the daemon started it
        self.dns: Any = None  # the MeshDns (meshd/dns.py), once the daemon started it
        self.exposed: Any = None  # the ExposedPorts (meshd/serve.py): local ports peers' streams may reach
        self.socks: Any = None  # the SocksGateway (meshd/socks.py): its state is in status
        self.forwards: Any = None  # the Forwards (meshd/forward.py): local listeners whose connections become streams
        self.gate: Any = None  # the stream gate (meshd/meshtcp.py): peers' streams as kernel TCP, listed by streams.list
        self.metrics = metrics.Exporter(self)  # Prometheus metrics (meshd/metrics.py), served by HTTP when configured
        self.names: dict[str, NodeId] = config.name_map()
        self._directory: names.Directory | None = None
        self._directory_at = 0.0
        self._gone = names.Remembered()  # names of peers no longer known: events about their going name them
        self.rtt: dict[tuple[bytes, bytes], float] = {}
        # channel inboxes (meshd/inbox.py): the node's receivers, kept in <state>/inbox/ when the node has a state dir
        self.inboxes = Inboxes(lambda: self.name, Spool(node.store.dir / "inbox") if node.store is not None else None,
                               node.resume_receiving)
        node.set_receivers(self.inboxes, self.inboxes.sync)
        self.specs = spec_map(type(self))
        self.counter_sources: list[Callable[[], dict[str, int]]] = [self.inboxes.counters]  # and the faces' refusals
        if node.store is not None:
            self.counter_sources.append(node.store.counters)  # state.save_failed, state.save_retried, state.save_pending
        self.eventlog = eventlog.for_daemon(self)  # core events and refusals as log lines (meshd/eventlog.py)
        self.counter_sources.append(self.eventlog.stats)

    # ================================================================== the one entry point
    async def call(self, method: str, params: Any, ctx: CallContext) -> Any:
        spec = self.specs.get(method)
        if spec is None:
            raise ApiError(Code.METHOD_NOT_FOUND, f"no method {method!r}")
        return s.to_json(await self.call_spec(spec, params, ctx))

    async def call_spec(self, spec: MethodSpec, params: Any, ctx: CallContext) -> Any:
        if spec.access is WRITE and not ctx.caller.may_write:
            raise ApiError(Code.PERMISSION_DENIED, f"{spec.name} changes the daemon's state; {ctx.caller.describe()} may only read")
        if self.stopping:
            raise ApiError(Code.SHUTTING_DOWN, "omerta-meshd is shutting down")
        req = s.decode_request(spec.request, params)
        try:
            return await getattr(self, spec.attr)(req, ctx)
        except ApiError:
            raise
        except InviteError as e:
            raise ApiError(Code.INVITE_INVALID, str(e)) from None
        except StateNotSaved as e:  # disk full, I/O error: nothing was changed (MeshNode saves first)
            raise ApiError(Code.STATE_NOT_SAVED, str(e), f"{e.fix}; nothing was changed") from None
        except UsageError as e:
            raise ApiError(Code.REFUSED, str(e)) from None
        except (TimeoutError, asyncio.TimeoutError):
            raise ApiError(Code.TIMEOUT, f"{spec.name} timed out") from None
        except DeliveryFailed as e:
            raise ApiError(Code.DELIVERY_FAILED, str(e)) from None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", spec.name, extra={"METHOD": spec.name})
            raise internal() from None

    # ================================================================== core events
    async def pump_events(self) -> None:
        """Consume the node's event stream for the daemon's lifetime (start before node.start())."""
        async for e in self.node.events():
            try:
                self.on_core_event(e)
            except Exception:  # one bad event must not stop the stream
                log.exception("handling %s failed", type(e).__name__)

    def on_core_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.PongReceived):
            self.rtt[(e.network.raw, e.peer.raw)] = e.rtt
        if isinstance(e, ev.PeerDiscovered):
            self._directory = None  # its name is new: name it in this very event
        mapped = core_event_json(e, self.name_of)
        if mapped is not None:
            self.hub.publish(mapped[0], **mapped[1])
        if isinstance(e, (ev.PeerConnected, ev.PeerDisconnected, ev.NetworkJoined, ev.NetworkLeft, ev.HandshakeFailed)):
            self.changed()
        if isinstance(e, (ev.PeerDiscovered, ev.NetworkJoined, ev.NetworkLeft)) or (
                isinstance(e, ev.PeerConnected) and self._named(e.network, e.peer)):
            self._directory = None  # someone new (or a name) to know (a peer with no name changes no name shown)
        self.eventlog.on_event(e)  # (after the directory learnt a new name: the line names the peer)

    def _named(self, network: NetworkId, node: NodeId) -> bool:
        """Whether a peer gives itself a name (its record, or what was applied from it): a connection of one
        without (a flood of fresh identities, say) need not rebuild the directory."""
        rec, peer = self.node.core.record_of(network, node), self.node.core.table.get(network, node)
        return bool(rec is not None and rec.name or peer is not None and peer.name)

    def changed(self) -> None:
        for cb in self.hooks.status_changed:
            cb()

    # ================================================================== helpers
    def directory(self, fresh: bool = True, view: "views.NodeView | None" = None) -> names.Directory:
        """Who is called what (gossiped names, [names] overriding, collisions suffixed). API reads build it
        fresh; event mapping reuses one at most a second old (or until a peer or network comes or goes)."""
        now = time.monotonic()
        if fresh or view is not None or self._directory is None or now - self._directory_at > 1.0:
            # from the names alone, not a full snapshot: this runs for every peer that comes (a flood of fresh
            # identities made it quadratic: issue 12, fault 1)
            gossiped = ([(p.node, p.name) for p in view.peers] + [(m.node, m.name) for m in view.members]
                        if view is not None else core_views.names(self.node.core))
            self._directory = names.build(gossiped, self.names, {n for n, _ in gossiped}, self.node.node_id)
            self._directory_at = now
            self._gone.update(self._directory)
        return self._directory

    def name_of(self, node: NodeId) -> str:
        """The name shown for ``node`` (one gone: the last it had; this node: its own)."""
        return self.name if node == self.node.node_id and self.name else self._gone.name_of(self.directory(fresh=False), node)

    def resolve_peer(self, query: str) -> NodeId:
        """A peer name, full node id or unique prefix (8+) -> the node; a pure lookup, nothing is opened."""
        return self.directory().resolve(query)

    def resolve_network(self, text: str) -> NetworkView:
        nets = list(self.node.snapshot().networks)
        t = text.strip().lower()
        exact = [n for n in nets if str(n.id) == t] or [n for n in nets if n.name == text.strip()]
        if not exact and len(t) >= MIN_PREFIX:
            exact = [n for n in nets if str(n.id).startswith(t)]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            raise ApiError(Code.NETWORK_NOT_FOUND, f"{text!r} matches {len(exact)} networks; use the network id")
        raise ApiError(Code.NETWORK_NOT_FOUND, f"this node is not in a network {text!r}")

    def _net_id(self, text: str | None) -> NetworkId | None:
        return self.resolve_network(text).id if text else None

    def endpoint_strings(self) -> list[str]:
        return [views.ep(e) or "" for e in self.endpoints()]

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": s.to_json(views.status(self)),
            "peers": [s.to_json(p) for p in views.peer_infos(self, None)],
        }

    # ================================================================== read methods
    @api_method("status.get", READ, s.Empty, s.StatusResult)
    async def status_get(self, req: s.Empty, ctx: CallContext) -> s.StatusResult:
        """This node: id, name, networks, endpoints, NAT verdict, peer counts, uptime, counters."""
        return views.status(self)

    @api_method("peers.list", READ, s.PeersListRequest, s.PeersListResult)
    async def peers_list(self, req: s.PeersListRequest, ctx: CallContext) -> s.PeersListResult:
        """Every known peer with its path, endpoint, RTT, last handshake and traffic."""
        return s.PeersListResult(views.peer_infos(self, self._net_id(req.network)))

    @api_method("peers.get", READ, s.PeerRequest, s.PeerGetResult)
    async def peers_get(self, req: s.PeerRequest, ctx: CallContext) -> s.PeerGetResult:
        """One peer in detail: per network, its candidate endpoints, sessions and counters."""
        node = self.resolve_peer(req.peer)
        net = self._net_id(req.network)
        view = self.node.snapshot()
        details = [views.peer_detail(self, p, view) for p in view.peers if p.node == node and (net is None or p.network == net)]
        if not details:
            raise ApiError(Code.PEER_NOT_FOUND, f"{node.short()} is not a peer in network {req.network}")
        return s.PeerGetResult(str(node), self.name_of(node), details)

    @api_method("ip.get", READ, s.IpRequest, s.IpResult)
    async def ip_get(self, req: s.IpRequest, ctx: CallContext) -> s.IpResult:
        """Mesh IPs (the virtual network's addresses): this node's per network, or a peer's."""
        node = self.resolve_peer(req.peer) if req.peer else self.node.node_id
        net = self.resolve_network(req.network).id if req.network else None
        addrs = self._started(self.vnet, "the virtual network is").addresses_of(node, net)
        if req.peer and not addrs:
            raise ApiError(Code.PEER_NOT_FOUND, f"{node.short()} is not a member of {req.network or 'any network of ours'}")
        return s.IpResult(str(node), self.name if node == self.node.node_id else self.name_of(node),
                          [s.IpAddresses(**a) for a in addrs], views.vnet_feature(self))

    @api_method("dns.get", READ, s.Empty, s.DnsResult)
    async def dns_get(self, req: s.Empty, ctx: CallContext) -> s.DnsResult:
        """Mesh DNS: where NAME.NETWORK.mesh is answered, systemd-resolved's state, what to configure by hand."""
        return self._started(self.dns, "mesh DNS is").info()

    @api_method("exit.status", READ, s.Empty, s.ExitResult)
    async def exit_status(self, req: s.Empty, ctx: CallContext) -> s.ExitResult:
        """Exit nodes: whether this node offers one, which one it uses and its state, and who offers one."""
        return views.exit_info(self, self._exits())

    @api_method("exit.offer", WRITE, s.ExitOfferRequest, s.ExitResult)
    async def exit_offer(self, req: s.ExitOfferRequest, ctx: CallContext) -> s.ExitResult:
        """Offer (or stop offering) Internet egress to members: signed into our records; forwarding, masquerade."""
        await self._exits().offer(req.offer)
        return await self.exit_status(s.Empty(), ctx)

    @api_method("exit.use", WRITE, s.ExitUseRequest, s.ExitResult)
    async def exit_use(self, req: s.ExitUseRequest, ctx: CallContext) -> s.ExitResult:
        """Send this node's default (Internet) traffic through a member that offers an exit node (allow_lan: the LAN stays
        local); null: stop, restoring routing."""
        target = None
        if req.peer:
            node, net = self.resolve_peer(req.peer), self._net_id(req.network)
            nets = [n.id for n in self.node.core.networks.values() if (net is None or n.id == net)
                    and self.node.core.record_of(n.id, node) is not None]
            if not nets:
                raise ApiError(Code.PEER_NOT_FOUND, f"{node.short()} is not a member of {req.network or 'any network of ours'}")
            target = (nets[0], node)
        await self._exits().use(target, req.allow_lan)
        return await self.exit_status(s.Empty(), ctx)

    @api_method("rules.list", READ, s.Empty, s.RulesResult)
    async def rules_list(self, req: s.Empty, ctx: CallContext) -> s.RulesResult:
        """Firewall rules on the mesh devices ([[rules]]): each rule with its sources and counters, the default drops."""
        return s.RulesResult(**await self._started(self.firewall, "the firewall is").info())

    @api_method("routes.list", READ, s.Empty, s.RoutesResult)
    async def routes_list(self, req: s.Empty, ctx: CallContext) -> s.RoutesResult:
        """Subnet routes: the prefixes this node advertises, those it accepted (and their state), members' advertisements."""
        return s.RoutesResult(**self._routes().listing(self.name_of))

    @api_method("routes.advertise", WRITE, s.RoutePrefixRequest, s.RoutesResult)
    async def routes_advertise(self, req: s.RoutePrefixRequest, ctx: CallContext) -> s.RoutesResult:
        """Advertise a prefix this node reaches (signed into its records; its family's forwarding on); members must accept it."""
        await self._routes().advertise(req.prefix)
        return await self.routes_list(s.Empty(), ctx)

    @api_method("routes.withdraw", WRITE, s.RoutePrefixRequest, s.RoutesResult)
    async def routes_withdraw(self, req: s.RoutePrefixRequest, ctx: CallContext) -> s.RoutesResult:
        """Stop advertising a prefix."""
        await self._routes().withdraw(req.prefix)
        return await self.routes_list(s.Empty(), ctx)

    @api_method("routes.accept", WRITE, s.RouteAcceptRequest, s.RoutesResult)
    async def routes_accept(self, req: s.RouteAcceptRequest, ctx: CallContext) -> s.RoutesResult:
        """Route a member's advertised prefix to it (kept across restarts); default routes and overlaps are refused."""
        await self._routes().accept(self.resolve_peer(req.peer), req.prefix)
        return await self.routes_list(s.Empty(), ctx)

    @api_method("routes.unaccept", WRITE, s.RouteAcceptRequest, s.RoutesResult)
    async def routes_unaccept(self, req: s.RouteAcceptRequest, ctx: CallContext) -> s.RoutesResult:
        """Stop routing a member's prefix (its kernel route is removed)."""
        await self._routes().unaccept(self.resolve_peer(req.peer), req.prefix)
        return await self.routes_list(s.Empty(), ctx)

    def _routes(self) -> Any:
        return self._started(self.subnets, "subnet routes are")

    def _exits(self) -> Any:
        return self._started(self.exits, "exit nodes are")

    @staticmethod
    def _started(part: Any, what: str) -> Any:
        """A part the daemon starts after this API exists (``what``: "exit nodes are"...), or BUSY until it is."""
        if part is None:
            raise ApiError(Code.BUSY, f"{what} not started yet", "wait for the daemon to finish starting")
        return part

    @api_method("serve.list", READ, s.Empty, s.ServeListResult)
    async def serve_list(self, req: s.Empty, ctx: CallContext) -> s.ServeListResult:
        """The local TCP ports peers may open streams to (`omertactl connect`, `omerta-ssh`), and those the config declares."""
        return s.ServeListResult(*self._exposed().lists())

    @api_method("serve.add", WRITE, s.ServeRequest, s.ServeChangeResult)
    async def serve_add(self, req: s.ServeRequest, ctx: CallContext) -> s.ServeChangeResult:
        """Expose a local TCP port to peers' streams, at once and after restarts (kept in the state directory)."""
        return s.ServeChangeResult(req.port, self._exposed().add(req.port), self._exposed().ports())

    @api_method("serve.remove", WRITE, s.ServeRequest, s.ServeChangeResult)
    async def serve_remove(self, req: s.ServeRequest, ctx: CallContext) -> s.ServeChangeResult:
        """Stop exposing a port: new streams to it are refused (open ones go on). Kept across restarts."""
        return s.ServeChangeResult(req.port, self._exposed().remove(req.port), self._exposed().ports())

    @api_method("streams.list", READ, s.Empty, s.StreamsListResult)
    async def streams_list(self, req: s.Empty, ctx: CallContext) -> s.StreamsListResult:
        """Open mesh streams (peer, port, direction: out is opened here, bytes each way, age, the forward that opened
        it, via: stream, or tcp for a peer's kernel TCP through our stream gate) and the port forwards (as forward.list)."""
        now = time.monotonic()
        fwd = self.forwards.of_stream() if self.forwards is not None else {}
        gated = [s.StreamInfo(str(g["node"]), self.name_of(g["node"]), g["port"], None, "in", g["bytes_in"], g["bytes_out"],
                              g["age_s"], None, "tcp") for g in (self.gate.info() if self.gate is not None else [])]
        return s.StreamsListResult([s.StreamInfo(str(x.peer.node), self.name_of(x.peer.node), x.port, x.sid, "out" if x.outgoing else "in",
                                                 x.bytes_in, x.bytes_out, round(now - x.opened, 3), fwd.get(id(x)))
                                    for x in self.node.streams.streams.values()] + gated, self._forward_infos())

    def _forward_infos(self) -> list[s.ForwardInfo]:
        return [f.info(self.name_of) for f in self.forwards.list()] if self.forwards is not None else []

    @api_method("forward.list", READ, s.Empty, s.ForwardListResult)
    async def forward_list(self, req: s.Empty, ctx: CallContext) -> s.ForwardListResult:
        """Port forwards: local address and port, the peer and its port, open and total connections, bytes each way,
        age, and the connections that got no stream (errors, last_error: the reason)."""
        return s.ForwardListResult(self._forward_infos())

    @api_method("forward.add", WRITE, s.ForwardAddRequest, s.ForwardInfo)
    async def forward_add(self, req: s.ForwardAddRequest, ctx: CallContext) -> s.ForwardInfo:
        """Listen on a local TCP port (127.0.0.1 unless bind says otherwise); each connection becomes a mesh stream
        to a port the peer exposes. With persist, kept across restarts (in the state directory)."""
        return (await self._forwards().add(req)).info(self.name_of)

    @api_method("forward.remove", WRITE, s.ForwardRemoveRequest, s.ForwardInfo)
    async def forward_remove(self, req: s.ForwardRemoveRequest, ctx: CallContext) -> s.ForwardInfo:
        """Close a forward's listener and its open connections (a kept one is forgotten too; one from meshd.toml
        returns at the next start). Answers its last figures."""
        return (await self._forwards().remove(req.local, req.bind)).info(self.name_of)

    def _forwards(self) -> Any:
        return self._started(self.forwards, "forwards are")

    def _exposed(self) -> Any:
        if self.exposed is None:
            raise ApiError(Code.REFUSED, "this daemon serves no streams", "run omerta-meshd (it serves streams once started)")
        return self.exposed

    @api_method("ssh.known_hosts", READ, s.SshKnownHostsRequest, s.SshKnownHostsResult)
    async def ssh_known_hosts(self, req: s.SshKnownHostsRequest, ctx: CallContext) -> s.SshKnownHostsResult:
        """A peer's SSH host keys as known_hosts lines for its node id (omerta-ssh's HostKeyAlias): the keys its
        signed records publish, so ssh checks them strictly (KnownHostsCommand). No lines: it publishes none."""
        node, _ = destination.resolve(self, req.peer)
        lines = sshkeys.known_hosts_lines(str(node), sshkeys.published(self.node.core, node))
        return s.SshKnownHostsResult(str(node), self.name_of(node), lines)

    @api_method("ping", READ, s.PingRequest, s.PingResult, streams=True)
    async def ping(self, req: s.PingRequest, ctx: CallContext) -> s.PingResult:
        """Mesh-level ping: authenticated probes inside the session; says which path answered and the RTT."""
        node = self.resolve_peer(req.peer)
        net = self._net_id(req.network)
        peer = self.node.peer_view(node, net)
        if peer is None or not peer.connected:
            # like `tailscale ping`: a member we have no session with yet gets one, within the probe timeout
            try:
                await self.node.connect(node, net, timeout=req.timeout)
            except (UsageError, TimeoutError) as e:
                raise ApiError(Code.NOT_CONNECTED, f"no session with {self.name_of(node)}: {e}") from None
            peer = self.node.peer_view(node, net)
            if peer is None or not peer.connected:
                raise ApiError(Code.NOT_CONNECTED, f"no session with {self.name_of(node)} yet")
        probes: list[s.PingProbe] = []
        for seq in range(1, req.count + 1):
            if seq > 1:
                await asyncio.sleep(req.interval)
            try:
                rtt = await self.node.ping(node, timeout=req.timeout, network=peer.network)
                now = self.node.peer_view(node, peer.network) or peer
                probe = s.PingProbe(seq, True, round(rtt * 1000, 3), views.ep(now.endpoint), views.path_of(self, now), None)
            except TimeoutError:
                probe = s.PingProbe(seq, False, None, None, None, f"no answer within {req.timeout:g} s")
            except UsageError as e:
                probe = s.PingProbe(seq, False, None, None, None, str(e))
            probes.append(probe)
            if req.progress is not None and ctx.progress is not None:
                ctx.progress(req.progress, s.to_json(probe))
        rtts = [p.rtt_ms for p in probes if p.rtt_ms is not None]
        return s.PingResult(
            peer=self.name_of(node), node_id=str(node), network=str(peer.network), sent=len(probes), received=len(rtts),
            loss=round(1 - len(rtts) / len(probes), 4),
            rtt_min_ms=min(rtts) if rtts else None, rtt_avg_ms=round(sum(rtts) / len(rtts), 3) if rtts else None,
            rtt_max_ms=max(rtts) if rtts else None, probes=probes,
        )

    @api_method("netcheck.run", READ, s.Empty, s.NatVerdict)
    async def netcheck_run(self, req: s.Empty, ctx: CallContext) -> s.NatVerdict:
        """The NAT verdict (mapping, port allocation, filtering, hairpinning) with its evidence, public endpoints
        and relay latencies; "unknown" until two peers reported our address."""
        return views.nat_verdict(self)

    @api_method("metrics.get", READ, s.Empty, s.MetricsResult)
    async def metrics_get(self, req: s.Empty, ctx: CallContext) -> s.MetricsResult:
        """Prometheus metrics in the text exposition format: counters (drops by reason, handshakes, datagrams, relay
        use, event-queue drops...), per peer RTT, loss, bytes, packets, path kind and session age, per network members."""
        return s.MetricsResult(self.metrics.text())

    @api_method("network.list", READ, s.Empty, s.NetworkListResult)
    async def network_list(self, req: s.Empty, ctx: CallContext) -> s.NetworkListResult:
        """The networks this node is in, with peer counts (never their keys)."""
        return s.NetworkListResult(views.networks(self.node.snapshot(), self.vnet))

    @api_method("events.subscribe", READ, s.Empty, s.SubscribeResult)
    async def events_subscribe(self, req: s.Empty, ctx: CallContext) -> s.SubscribeResult:
        """A snapshot (status and peers) stamped with a sequence number, then every later event as a delta."""
        snap = self.snapshot()
        if ctx.attach is not None:
            sub = self.hub.subscribe()
            ctx.attach(sub)
            return s.SubscribeResult(sub.id, self.hub.seq, snap)
        if ctx.shared_subscription is not None:  # D-Bus: deltas are the Events signal
            return s.SubscribeResult(ctx.shared_subscription, self.hub.seq, snap)
        raise ApiError(Code.REFUSED, "this connection cannot carry events")

    @api_method("events.unsubscribe", READ, s.SubscriptionRequest, s.OkResult)
    async def events_unsubscribe(self, req: s.SubscriptionRequest, ctx: CallContext) -> s.OkResult:
        """End a subscription made on this connection."""
        if ctx.detach is None or not ctx.detach(req.subscription):
            fix = "on D-Bus, remove the match rule for the Events signal instead" if ctx.face == "dbus" else None
            raise ApiError(Code.SUBSCRIPTION_NOT_FOUND, f"no subscription {req.subscription} on this connection", fix)
        return s.OkResult(True)

    # ================================================================== write methods
    async def vnet_sync(self) -> None:
        """Networks joined or left: their devices and mesh IPs now, not at the next refresh."""
        if self.vnet is not None:
            await self.vnet.reconcile()

    @api_method("network.create", WRITE, s.NetworkCreateRequest, s.NetworkCreateResult)
    async def network_create(self, req: s.NetworkCreateRequest, ctx: CallContext) -> s.NetworkCreateResult:
        """Create a network (a fresh random key) and return its id and an invite. ``owned``: this node owns it
        (docs/membership.md): members hold certificates and each invite is a fresh signed token."""
        net = self.node.create_network(req.name, owned=req.owned)
        await self.vnet_sync()
        return s.NetworkCreateResult(str(net.id), net.name, self.node.invite(net.id, self.endpoints()))

    @api_method("network.join", WRITE, s.NetworkJoinRequest, s.NetworkJoinResult)
    async def network_join(self, req: s.NetworkJoinRequest, ctx: CallContext) -> s.NetworkJoinResult:
        """Join a network with an invite; optionally wait until the inviter answered. An owned network's invite
        (omerta2-) enrols this node first: a refusal ("used", "expired", ...) is REFUSED with the fix, and the
        network is left again unless this node was in it before."""
        inv = decode_invite(req.invite)
        if inv.token is not None:
            return await owned.enrol(self, req, inv)
        net = await self.node.join(req.invite, timeout=None)
        await self.vnet_sync()
        connected = inv.inviter == self.node.node_id or self.node.is_connected(inv.inviter)
        if req.wait > 0 and not connected:
            try:
                await self.node.wait_connected(inv.inviter, req.wait)
                connected = True
            except TimeoutError:
                connected = False
        return s.NetworkJoinResult(str(net.id), net.name, str(inv.inviter), connected)

    @api_method("network.leave", WRITE, s.NetworkRequest, s.NetworkLeaveResult)
    async def network_leave(self, req: s.NetworkRequest, ctx: CallContext) -> s.NetworkLeaveResult:
        """Leave a network: its peers are told, its key is forgotten."""
        net = self.resolve_network(req.network)
        self.node.leave(net.id)
        await self.vnet_sync()
        return s.NetworkLeaveResult(str(net.id), True)

    @api_method("network.remove", WRITE, s.NetworkRemoveRequest, s.NetworkRemoveResult)
    async def network_remove(self, req: s.NetworkRemoveRequest, ctx: CallContext) -> s.NetworkRemoveResult:
        """Remove a member from an owned network (this node is its owner or an admin; docs/membership.md 5): a signed
        revocation, saved and spread to every member, which closes its sessions with it and refuses it from then on.
        Refused, with the reason and the fix, for an open network, a node that is no admin, and the owner."""
        net, node = self.resolve_network(req.network), self.resolve_peer(req.peer)
        try:
            self.node.remove_member(net.id, node)
        except UsageError as e:
            raise refused(e) from None
        return s.NetworkRemoveResult(str(net.id), str(node), True, self.node.core.network(net.id).epoch)

    network_invites, network_revoke_invite, network_rekey = owned.network_invites, owned.network_revoke_invite, owned.network_rekey
    network_offers, network_accept, network_admin = inband.network_offers, inband.network_accept, owned.network_admin
    network_own, network_accept_owner = owned.network_own, owned.network_accept_owner

    @api_method("network.invite", WRITE, s.NetworkInviteRequest, s.NetworkInviteResult)
    async def network_invite(self, req: s.NetworkInviteRequest, ctx: CallContext) -> s.NetworkInviteResult:
        """An invite for a network (it carries the network key: write access only). An owned network's is a fresh
        signed token each call: ``uses``, ``expires``, and the certificate's ``name`` and ``tags``; an open
        network's is its key, always the same, and takes no options."""
        net = self.resolve_network(req.network)
        eps = self.endpoints()
        to = inband.offer_target(self, net, req.to) if req.to else None  # in-band (meshd/inband.py): first, so a refusal
        text = self.node.invite(net.id, eps, owned.invite_options(net, req))  # leaves no token behind
        sent = inband.send_offer(self, to, text) if to is not None else (None, None)
        return s.NetworkInviteResult(str(net.id), text, [views.ep(e) or "" for e in eps], *sent)

    @api_method("channel.send", WRITE, s.ChannelSendRequest, s.ChannelSendResult)
    async def channel_send(self, req: s.ChannelSendRequest, ctx: CallContext) -> s.ChannelSendResult:
        """Send a message to a peer on a named channel; with `wait`, until the peer has it in its inbox for the channel
        (an omerta-meshd: on disk). Fails with DELIVERY_FAILED and the peer's reason when nobody receives the channel
        there; waits while that inbox is full."""
        data = _decode_data(req.data, req.encoding)
        limit = self.node.max_message
        if len(data) > limit:
            raise ApiError(Code.INVALID_PARAMS, f"message is {len(data)} bytes; the limit is {limit}",
                           f"send at most {limit} bytes per message: split larger data into several messages")
        node = self.resolve_peer(req.peer)
        mid = await asyncio.wait_for(self.node.send(node, req.channel, data, self._net_id(req.network), wait=req.wait), req.timeout)
        return s.ChannelSendResult(mid, len(data), True if req.wait else None)

    @api_method("channel.receive", WRITE, s.ChannelReceiveRequest, s.ChannelReceiveResult)
    async def channel_receive(self, req: s.ChannelReceiveRequest, ctx: CallContext) -> s.ChannelReceiveResult:
        """Messages received on a channel, oldest first. The first call opens the channel's inbox: from then on
        messages sent to this node on it are kept (on disk, across restarts) until received here; before that, and
        after a restart with none left, they are refused to their senders."""
        if req.encoding not in ("utf-8", "base64"):
            raise ApiError(Code.INVALID_PARAMS, f"encoding {req.encoding!r}: use utf-8 or base64")
        box = self.inboxes.open(req.channel)
        if not box.items and req.timeout > 0:
            box.wake.clear()
            try:
                await asyncio.wait_for(box.wake.wait(), req.timeout)
            except (TimeoutError, asyncio.TimeoutError):
                pass
        out = [views.channel_message(self, m, req.encoding) for m in self.inboxes.take(req.channel, req.max)]
        return s.ChannelReceiveResult(out, 0)  # (nothing is dropped: a full inbox holds senders back)

    @api_method("daemon.reload", WRITE, s.Empty, s.ReloadResult)
    async def daemon_reload(self, req: s.Empty, ctx: CallContext) -> s.ReloadResult:
        """Read the configuration file again (as SIGHUP does); says what changed and what needs a restart."""
        if self.hooks.reload is None:
            raise ApiError(Code.REFUSED, "this daemon cannot reload")
        return await self.hooks.reload()

    @api_method("daemon.shutdown", WRITE, s.Empty, s.OkResult)
    async def daemon_shutdown(self, req: s.Empty, ctx: CallContext) -> s.OkResult:
        """Stop the daemon gracefully (peers are told, state is saved), after answering."""
        if self.hooks.shutdown is None:
            raise ApiError(Code.REFUSED, "this daemon cannot be stopped through the API")
        asyncio.get_running_loop().call_later(0.05, self.hooks.shutdown)
        return s.OkResult(True)

    # ================================================================== configuration
    def apply_config(self, config: DaemonConfig) -> None:
        self.config = config
        self.names = config.name_map()
        self._directory = None
        self.hub.queue_limit = config.api.subscriber_queue


def _decode_data(data: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        return data.encode("utf-8")  # well-formed: schema.check_text refused lone surrogates
    if encoding == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(Code.INVALID_PARAMS, "parameter 'data' is not valid base64") from None
    raise ApiError(Code.INVALID_PARAMS, f"encoding {encoding!r}: use utf-8 or base64")
