"""MeshNode: the mesh as an asyncio library, no daemon needed.

    async with MeshNode(port=0, host="127.0.0.1") as node:
        net = node.create_network("home")
        invite = node.invite(net.id)
        ...
        await node.send(peer_id, "chat", b"hello")
        async for msg in node.messages("chat"):
            print(msg.peer, msg.data)

It owns one ``Mesh`` core and one ``Driver``; every method is a thin call into the core followed by a
flush. Waiting (for a connection, for send-queue room, for a response) is done with futures resolved
from the core's events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from .core import events as ev
from .core import views
from .core.channels import Receivers
from .core.config import DEFAULT_CONFIG, CoreConfig
from .core.entropy import Entropy
from .core.errors import MeshError, UsageError
from .core.ids import NetworkId, NodeId
from .core.keys import Identity
from .core.member.check import Verdict
from .core.membership import InviteOptions
from .core.mesh import Mesh
from .core.network import Network
from .core.session.reliable import QueueFull
from .core.wire.invite import check_network_name, decode_invite
from .io.driver import Driver
from .io.enrolstate import ENROL_EVENTS, EnrolWaits, save_enrolment
from .io.netlink import local_addresses
from .io.netmon import AddressMonitor
from .io.ownership import restore_membership, save_membership
from .io.peercache import PEER_CACHE, PeerCacheSaves, peer_cache_doc, restore_peers
from .io.store import NetworkState, StateNotSaved, StateStore
from .io.streams import StreamHub
from .io.subscribers import Subscribers, offer

Address = tuple[str, int]
Handler = Callable[[NodeId, bytes], Awaitable[bytes]]
QUEUE_LIMIT = 10_000
R = TypeVar("R")
log = logging.getLogger("omerta_mesh.node")


class RequestFailed(MeshError):
    """The peer answered the request with an error, or the request timed out."""


class DeliveryFailed(MeshError):
    """A message could not be delivered (the peer vanished or restarted)."""


class MeshNode:
    def __init__(
        self,
        identity: Identity | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        ipv6: bool = False,
        config: CoreConfig = DEFAULT_CONFIG,
        audit: bool = False,
        strict_audit: bool = False,
        entropy: Entropy | None = None,
        advertise: list[Address] | None = None,
        state_dir: str | None = None,
        name: str = "",
        watch_addresses: bool = True,
        new_identity: bool = False,
        host_keys: tuple[bytes, ...] = (),  # our sshd's host public keys (SSH blobs), published in our records
    ) -> None:
        self._identity, self._host_keys = identity, host_keys
        self._host, self._port, self._ipv6 = host, port, ipv6
        self._config = config
        self._audit, self._strict = audit, strict_audit
        self._entropy = entropy
        self._advertise = advertise
        self.store = StateStore(state_dir) if state_dir else None
        self._peer_saves: PeerCacheSaves | None = None  # the peer cache's debounced, threaded saves (io/peercache.py)
        self._new_identity = new_identity  # a missing or damaged identity file: make a new one (StateStore.load_identity)
        self._name = name
        self._watch = watch_addresses  # follow local address changes (only when bound to a wildcard)
        self._netmon: AddressMonitor | None = None
        # the virtual network's prefixes (mesh IPs): never advertised as endpoints, never sent to (a tunnel in
        # the tunnel would loop); the daemon's vnet layer sets them before it brings a device up
        self.mesh_prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        self.mesh: Mesh | None = None
        self.driver: Driver | None = None
        # who receives channel messages: our subscribers, unless the host gives its own (set_receivers)
        self._subs = Subscribers(lambda: self._name or (self.mesh.node_id.short() if self.mesh else "?"),
                                  lambda: self.driver.now() if self.driver else 0.0, self._holding)
        self._event_queues = self._subs.events
        self._receivers: Receivers = self._subs
        self._before_send: Callable[[], None] | None = None
        self._room_timer: asyncio.TimerHandle | None = None
        self._handlers: dict[str, Handler] = {}
        self._waiters: dict[tuple[str, int], asyncio.Future] = {}
        self._connected: dict[bytes, tuple[asyncio.Event, int]] = {}  # (event, waiters): only nodes someone awaits
        self._enrol_waits = EnrolWaits()  # joins awaiting their enrolment's answer (io/enrolstate.py)
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.streams = StreamHub(lambda: self._m, self._now, self._flush)  # byte streams to peers' ports (io/streams.py)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "MeshNode":
        loop = asyncio.get_running_loop()
        if self._identity is None and self.store is not None:
            self._identity = self.store.load_identity(self._entropy, self._new_identity)
        identity = self._identity or Identity.generate(self._entropy or _system_entropy())
        self.mesh = Mesh(
            identity,
            config=self._config,
            entropy=self._entropy,
            wall_offset=Driver.wall_offset(),
            audit=self._audit,
            strict_audit=self._strict,
            name=self._name,
        )
        self.mesh.gossip.set_host_keys(self._host_keys)
        self.driver = Driver(self.mesh, loop, self._on_event)
        self._apply_receivers()
        self.driver.udp.bind(self._host, self._port)
        if self._ipv6:
            self.driver.udp.bind("::" if self._host in ("0.0.0.0", "") else "::1", self.port)
        if self._config.nat_tests:
            try:  # a second socket for NAT filtering tests; without it filtering stays "unknown"
                self.mesh.probe_local = self.driver.udp.bind(self._host, 0, probe=True)
            except OSError as e:
                log.warning("no second UDP socket for NAT tests (%s): filtering will be reported unknown", e)
        self._watch_addresses()  # before the first read, so no change falls in between
        await self._learn_addresses()
        if self.store is not None:
            self._peer_saves = PeerCacheSaves(self.store, lambda: peer_cache_doc(self._m.table), self.mesh.counters.inc)
            self._restore()
        self.driver.flush()
        return self

    def set_receivers(self, receivers: Receivers, before_send: Callable[[], None] | None = None) -> None:
        """Who receives channel messages instead of this node's subscribers (the daemon: its inboxes), and what to
        run before each batch of datagrams leaves (the daemon makes what its inboxes took durable there, before the
        acknowledgements go out)."""
        self._receivers, self._before_send = receivers, before_send
        self._apply_receivers()

    def _apply_receivers(self) -> None:
        if self.mesh is not None:
            self.mesh.messages.receivers = self._receivers
        if self.driver is not None:
            self.driver.before_send = self._before_send

    def resume_receiving(self) -> None:
        """A receiver that held messages back (no room) has room again: offer them again now (rather than at the
        sender's next retransmission)."""
        if self.driver is not None and not self.driver.closed:
            self._m.resume_receiving(self._now())
            self._flush()

    def _holding(self) -> None:
        """Our subscribers held a message back: look for room every 0.1 s while the core holds one."""
        if self._room_timer is None and self.driver is not None:
            self._room_timer = asyncio.get_running_loop().call_later(0.1, self._check_room)

    def _check_room(self) -> None:
        self._room_timer = None
        if self.driver is None or self.driver.closed or self.mesh is None or not self.mesh.messages.held():
            return
        if self._subs.room():
            self.resume_receiving()  # (held again: _holding re-arms)
        if self._room_timer is None:
            self._room_timer = asyncio.get_running_loop().call_later(0.1, self._check_room)

    async def _learn_addresses(self) -> None:
        """Tell the core where its sockets are reachable locally (LAN candidates, NAT evidence)."""
        assert self.mesh is not None
        self.mesh.local_endpoints, self.mesh.local_ips = await self._read_addresses()

    def _bound_to_wildcard(self) -> bool:
        assert self.driver is not None
        return any(h in ("0.0.0.0", "::") for h, _ in self.driver.udp.addresses)

    def set_mesh_prefixes(self, prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        """The virtual network's prefixes: excluded from our endpoints and refused as destinations."""
        self.mesh_prefixes = tuple(prefixes)
        if self.driver is not None:
            self.driver.set_blocked(self.mesh_prefixes)

    def _watch_addresses(self) -> None:
        if self._watch and self._netmon is None and self._bound_to_wildcard():
            mon = AddressMonitor(self._addresses_changed)
            self._netmon = mon if mon.start() else None

    async def _addresses_changed(self) -> None:
        """The netlink monitor saw a change: re-read the addresses and let the core re-announce them."""
        try:
            eps, ips = await self._read_addresses(strict=True)
        except OSError as e:  # keep what we had rather than advertise nothing
            log.warning("could not re-read local addresses: %s", e)
            return
        if self.driver is None or self.driver.closed or self.mesh is None:
            return
        if self.mesh.local_addresses_changed(eps, ips, self._now()):
            log.info("local addresses changed: now %s", ", ".join(f"{h}:{p}" for h, p in eps))
        self.driver.flush()

    async def _read_addresses(self, strict: bool = False) -> tuple[list[Address], frozenset[str]]:
        """Our sockets' local endpoints (advertised ones first) and the host's IPs."""
        assert self.driver is not None
        bound = self.driver.udp.addresses
        ips = await local_addresses(strict=strict) if self._bound_to_wildcard() else []
        if self.mesh_prefixes:
            ips = [ip for ip in ips if not any(ipaddress.ip_address(ip) in p for p in self.mesh_prefixes)]
        eps: list[Address] = []
        for host, port in bound:
            if host == "0.0.0.0":
                eps += [(ip, port) for ip in ips if ":" not in ip] or [("127.0.0.1", port)]
            elif host == "::":
                eps += [(ip, port) for ip in ips if ":" in ip] or [("::1", port)]
            else:
                eps.append((host, port))
        endpoints = list(self._advertise or []) + [e for e in eps if e not in (self._advertise or [])]
        return endpoints, frozenset(ips) | {h for h, _ in eps}

    # ------------------------------------------------------------------ persistence
    def _restore(self) -> None:
        assert self.store is not None and self.mesh is not None
        now = self._now()
        for st in self.store.load_network_states():
            self.mesh.add_network(st.network, now)
            if st.network.owner is not None and st.credential:
                self.mesh.set_credential(st.network.id, st.credential, now)
            elif st.network.owner is not None and st.invite:  # not enrolled yet: ask again (the same token)
                self.mesh.join(st.invite, now)
            restore_membership(self.store, self.mesh, st, now)  # invites, revocations, rotation; owner claims (io/ownership.py)
        restore_peers(self.store, self.mesh, self._config.max_endpoints_per_peer, now)

    def _change_networks(self, networks: list[Network], change: Callable[[], R], entry: NetworkState | None = None) -> R:
        """Save ``networks`` (networks.json; ``entry``: what to write for its network besides the key) first, then make
        ``change`` in the core and flush: a save that fails raises StateNotSaved with nothing changed in memory; a
        change that fails puts the file back."""
        before: list[Network | NetworkState] = list(self._m.networks.values())
        changed = [n.id for n in networks] != [n.id for n in self._m.networks.values()]
        store = self.store if changed or entry else None  # None: nothing to save
        if store is not None:
            before = [store.network_state(n.id) or n for n in self._m.networks.values()]
            store.save_networks([entry if entry is not None and n.id == entry.network.id else n for n in networks])
        try:
            result = change()
        except BaseException:
            if store is not None:
                try:
                    store.save_networks(before)
                except StateNotSaved as e:
                    log.error("networks.json not put back after a failed change: %s", e)
            raise
        self._flush()
        return result

    def save_peers(self) -> None:
        """Write the peer cache (endpoints of known peers) so a restart reconnects without the invite. Never
        raises: a write that fails is counted and tried again later (``StateStore.background``)."""
        if self._peer_saves is not None:  # (what it writes: proven peers only, bounded: io/peercache.py)
            self._peer_saves.store.background.save(PEER_CACHE, self._peer_saves.write_now)

    async def __aenter__(self) -> "MeshNode":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._netmon is not None:
            self._netmon.stop()
            self._netmon = None
        if self.driver is None or self.driver.closed:
            return
        assert self.mesh is not None
        self.streams.close()  # every stream reset (its peer hears why), before the goodbye
        self.mesh.close(self.driver.now())  # the goodbye first: a save that fails below cannot stop it
        self.driver.flush()
        if (saves := self._peer_saves) is not None:  # no more scheduled saves (a write in flight finishes first), then
            await saves.close()  # the last peer cache and the saves waiting for a retry, once more (failures logged)
            saves.store.background.close((PEER_CACHE, saves.write_now))
        self.driver.close()
        for t in list(self._tasks):
            t.cancel()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(MeshError("node closed"))

    @property
    def _m(self) -> Mesh:
        if self.mesh is None:
            raise UsageError("the node is not started: use `async with MeshNode(...)` or `await node.start()`")
        return self.mesh

    @property
    def core(self) -> Mesh:
        """The started core (`mesh` typed as present); UsageError before `start`."""
        return self._m

    def _flush(self) -> None:
        assert self.driver is not None
        self.driver.flush()

    def _now(self) -> float:
        assert self.driver is not None
        return self.driver.now()

    @property
    def node_id(self) -> NodeId:
        return self._m.node_id

    @property
    def port(self) -> int:
        assert self.driver is not None
        return self.driver.udp.addresses[0][1]

    @property
    def endpoints(self) -> list[Address]:
        """Where other nodes can reach this one (advertised in invites)."""
        if self._advertise:
            return list(self._advertise)
        assert self.driver is not None
        assert self.mesh is not None
        return list(self.mesh.local_endpoints)

    # ------------------------------------------------------------------ networks and peers
    def create_network(self, name: str = "", owned: bool = False) -> Network:
        """A new network (saved before it exists in the core: StateNotSaved, with nothing changed, if the disk refuses);
        ``owned``: we own it (docs/membership.md), with a self-signed owner certificate; invites are signed tokens."""
        try:
            check_network_name(name)  # as Mesh.create_network does: the name goes into invites, state and replies
        except ValueError as e:
            raise UsageError(f"cannot create a network named {name!r}: {e}") from None
        net, cred = Network.create(self._m.entropy, name), None
        if owned:
            net = Network(net.key, name, owner=self.node_id)
            cred = self._m.enrolment.owner_credential(net, self._now() + self._m.wall_offset, self._m.cfg.cert_lifetime)
        self.add_network(net, NetworkState(net, credential=cred, origin="created", stays_open=not owned))
        if cred is not None:
            self._m.set_credential(net.id, cred, self._now())
        return net

    def add_network(self, net: Network, entry: NetworkState | None = None) -> None:
        """``entry``: what networks.json says of it besides its key (how we came to it; our credential when owned)."""
        self._change_networks(self._networks_with(net), lambda: self._m.add_network(net, self._now()), entry)

    def _networks_with(self, net: Network) -> list[Network]:
        have = list(self._m.networks.values())
        return have if net.id.raw in self._m.networks else [*have, net]

    def invite(self, network: NetworkId, endpoints: list[Address] | None = None, opts: InviteOptions | None = None) -> str:
        """An invite; for an owned network a fresh signed token (``opts``: uses, expiry, name, tags), saved."""
        text = self._m.invite(network, endpoints or self.endpoints, self._now(), opts)
        if self.store is not None and self._m.network(network).owner is not None:
            save_enrolment(self.store.members, self._m.enrolment, network)
        return text

    async def join(self, invite: str, timeout: float | None = 10.0) -> Network:
        """Join by invite; with a timeout, wait until the inviter answered (for an owned network: enrolled us, or
        refused the invite: UsageError saying why, "used", "expired", ..., and what to do)."""
        inv = decode_invite(invite)
        joined = Network.of_invite(inv)
        enrolled = self._enrol_waits.expect(joined.id) if inv.token is not None else None
        try:
            net = self._change_networks(self._networks_with(joined), lambda: self._m.join(invite, self._now()),
                                        NetworkState(joined, origin="joined", inviter=inv.inviter,
                                                     invite=invite if inv.token is not None else None))
            if timeout and enrolled is not None:
                await asyncio.wait_for(enrolled, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer to the invite from {inv.inviter.short()} after {timeout:g} s: is it running and "
                               "reachable?") from None
        finally:
            self._enrol_waits.done(joined.id)
        if timeout:  # (to the admin that enrolled us: another one the invite named, when the inviter was away)
            cert = self._m.credentials.own_certificate(joined.id) if inv.token is not None else None
            await self.wait_connected(cert.issuer if cert is not None else inv.inviter, timeout)
        return net

    def leave(self, network: NetworkId) -> None:
        self._m.network(network)  # UsageError when not a member
        self._change_networks([n for n in self._m.networks.values() if n.id != network], lambda: self._m.leave(network, self._now()))
        if self.store is not None:
            self.store.members.forget(network)
        self.save_peers()

    def set_credential(self, network: NetworkId, credential: bytes | None) -> Verdict:
        """Our credential in an owned network: saved first (networks.json), then presented in our handshakes and signed
        into our record. The answer is what members will make of it (it is set either way)."""
        net = self._m.network(network)
        old = (self.store.network_state(network) if self.store is not None else None) or NetworkState(net)
        return self._change_networks(list(self._m.networks.values()), lambda: self._m.set_credential(network, credential, self._now()),
                                     dataclasses.replace(old, network=net, credential=credential))

    def remove_member(self, network: NetworkId, node: NodeId) -> None:
        """Remove ``node`` from the owned ``network`` (we are its owner or an admin): signed, spread, saved (UsageError: why not)."""
        self._m.remove_member(network, node, self._now())
        self._flush()

    def add_peer(self, network: NetworkId, node: NodeId, endpoints: list[Address]) -> None:
        self._m.add_peer(network, node, endpoints, self._now())
        self._flush()

    def is_connected(self, node: NodeId) -> bool:
        return any(p.connected for p in self._m.table.by_node(node))

    # ------------------------------------------------------------------ read model (immutable snapshots)
    def snapshot(self) -> views.NodeView:
        """This node, its networks, peers (paths, sessions, stats), members and NAT verdict, as of now."""
        return views.node_view(self._m, self._now())

    @property
    def max_message(self) -> int:
        """The largest channel message or request body, in bytes."""
        return self._m.cfg.max_message

    def peer_views(self, network: NetworkId | None = None) -> list[views.PeerView]:
        return views.peer_views(self._m, self._now(), network)

    def peer_view(self, node: NodeId, network: NetworkId | None = None) -> views.PeerView | None:
        """One peer (a pure lookup: it never opens a session); None when there is none."""
        return views.find_peer_view(self._m, node, self._now(), network)

    async def connect(self, node: NodeId, network: NetworkId | None = None, timeout: float = 10.0) -> None:
        """Open a session with a member (known by invite, cache or gossip) if there is none, and wait for it."""
        if self.is_connected(node):
            return
        self._m.find_peer(node, network, self._now())  # with `now`: a member known by its record gets a session
        self._flush()
        await self.wait_connected(node, timeout)

    async def wait_connected(self, node: NodeId, timeout: float = 10.0) -> None:
        if self.is_connected(node):
            return
        event, waiters = self._connected.get(node.raw, (asyncio.Event(), 0))
        self._connected[node.raw] = (event, waiters + 1)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no session with {node.short()} after {timeout:g} s: is it running and reachable?") from None
        finally:  # (kept only while awaited: one per fresh identity of a handshake flood leaked ~1 KB each)
            event, waiters = self._connected[node.raw]
            if waiters > 1:
                self._connected[node.raw] = (event, waiters - 1)
            else:
                del self._connected[node.raw]

    # ------------------------------------------------------------------ messages
    async def send(self, peer: NodeId, channel: str, data: bytes, network: NetworkId | None = None, wait: bool = False) -> int:
        """Queue a message (waiting for send-queue room if needed); with ``wait``, until acknowledged."""
        while True:
            try:
                mid = self._m.send(peer, channel, data, self._now(), network)
                break
            except QueueFull:
                self._room.clear()
                self._flush()
                await self._room.wait()
        fut = self._future("msg", mid) if wait else None
        self._flush()
        if fut is not None:
            await fut
        return mid

    async def request(self, peer: NodeId, channel: str, data: bytes, timeout: float = 10.0, network: NetworkId | None = None) -> bytes:
        rid = self._m.request(peer, channel, data, self._now(), network, timeout)
        fut = self._future("req", rid)
        self._flush()
        return await fut

    async def ping(self, peer: NodeId, timeout: float = 5.0, network: NetworkId | None = None) -> float:
        pid = self._m.ping(peer, self._now(), network)
        fut = self._future("ping", pid)
        self._flush()
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._waiters.pop(("ping", pid), None)
            raise TimeoutError(f"no answer from {peer.short()} within {timeout:g} s") from None

    def serve(self, channel: str, handler: Handler) -> None:
        """Answer requests on ``channel`` with ``await handler(peer, data)``; an exception answers an error."""
        self._handlers[channel] = handler

    async def messages(self, channel: str) -> AsyncIterator[ev.ChannelMessage]:
        """Every message on ``channel`` while iterating. While nobody receives a channel (this, ``subscribe``,
        ``events``), messages sent to it are refused: the sender's send fails with the reason."""
        q: asyncio.Queue[ev.ChannelMessage] = asyncio.Queue()
        entry = (q, QUEUE_LIMIT)
        self._subs.channels[channel].append(entry)
        try:
            while True:
                yield await q.get()
        finally:
            self._subs.channels[channel].remove(entry)

    def subscribe(self, channel: str) -> asyncio.Queue[ev.ChannelMessage]:
        """A queue that receives every message on ``channel`` from now on. At ``QUEUE_LIMIT * 10`` unread messages
        more are held back, unacknowledged (the senders wait), and refused after ``HOLD_LIMIT`` s of no reading."""
        q: asyncio.Queue[ev.ChannelMessage] = asyncio.Queue()
        self._subs.channels[channel].append((q, QUEUE_LIMIT * 10))
        return q

    async def events(self) -> AsyncIterator[ev.Event]:
        q: asyncio.Queue[ev.Event] = asyncio.Queue(QUEUE_LIMIT)
        self._event_queues.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._event_queues.remove(q)

    # ------------------------------------------------------------------ events from the core
    def _future(self, kind: str, ident: int) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters[(kind, ident)] = fut
        return fut

    def _resolve(self, kind: str, ident: int, value: object = None, error: Exception | None = None) -> None:
        fut = self._waiters.pop((kind, ident), None)
        if fut is None or fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    def _on_event(self, e: ev.Event) -> None:
        if isinstance(e, (ev.StreamEvent, ev.PeerRestarted, ev.PeerLeft)) and self.streams.on_event(e):
            return  # a stream's event: the stream hub's (io/streams.py), never the subscribers'
        for q in self._event_queues:
            offer(q, e)
        save_membership(e, self._m, self.store, self._now())  # removals, rotations, owner claims (io/ownership.py)
        if isinstance(e, ENROL_EVENTS):  # enrolments and renewals: saved (io/enrolstate.py)
            self._enrol_waits.on_event(e, self._m, self.store)
        elif isinstance(e, ev.PeerConnected):
            if (w := self._connected.get(e.peer.raw)) is not None:
                w[0].set()
            if self._peer_saves is not None:  # debounced, off the loop (io/peercache.py): never a write per event
                self._peer_saves.changed()
        elif isinstance(e, ev.PeerDisconnected):
            if (w := self._connected.get(e.peer.raw)) is not None:
                w[0].clear()
        elif isinstance(e, ev.MessageDelivered):
            self._resolve("msg", e.message_id)
            self._room.set()
        elif isinstance(e, ev.MessageFailed):
            self._resolve("msg", e.message_id, error=DeliveryFailed(f"message to {e.peer.short()} failed: {e.reason}"))
            self._room.set()
        elif isinstance(e, ev.ResponseReceived):
            if e.ok:
                self._resolve("req", e.request_id, e.data)
            else:
                self._resolve("req", e.request_id, error=RequestFailed(e.data.decode("utf-8", "replace")))
        elif isinstance(e, ev.RequestTimedOut):
            self._resolve("req", e.request_id, error=RequestFailed(f"request to {e.peer.short()} timed out"))
        elif isinstance(e, ev.PongReceived):
            self._resolve("ping", e.probe_id, e.rtt)
        elif isinstance(e, ev.RequestReceived):
            handler = self._handlers.get(e.channel)
            if handler is None:
                self._m.respond(e.peer, e.request_id, f"no handler for channel {e.channel!r}".encode(), self._now(), e.network, ok=False)
            else:
                t = asyncio.get_running_loop().create_task(self._answer(handler, e))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)

    async def _answer(self, handler: Handler, e: ev.RequestReceived) -> None:
        try:
            body, ok = await handler(e.peer, e.data), True
        except Exception as exc:  # the handler's failure is the requester's answer
            body, ok = f"{type(exc).__name__}: {exc}".encode(), False
        if self.driver is None or self.driver.closed:
            return
        try:
            self._m.respond(e.peer, e.request_id, body, self._now(), e.network, ok=ok)
        except UsageError:
            return
        self._flush()


def _system_entropy() -> Entropy:
    from .core.entropy import SystemEntropy

    return SystemEntropy()
