"""Mesh: the one sans-I/O core object a driver feeds.

Inputs:  ``receive_datagram(data, src, local, now)``, ``handle_timer(now)``, and commands (``join``,
         ``add_peer``, ``send``, ``request``, ``respond``, ``ping``, ``leave``, ``close``).
Outputs: ``datagrams_to_send()`` -> [(dst, local, bytes)], ``next_event()`` -> Event | None,
         ``next_deadline()`` -> float | None.
The driver calls ``datagrams_to_send`` and ``next_deadline`` after every input, sends what it got, and arms one
timer; single IP packets may go by ``express`` (core/express.py), which hands back what it sealed or opened.
Nothing here touches a socket or a clock: ``now`` is monotonic seconds from the caller (``wall_offset``, wall
minus monotonic clock, only stamps handshake initiations).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Sequence, TypeVar

from . import events as ev
from .audit import EncryptionAudit
from .channels import ReassemblyBudget, make_header
from .config import DEFAULT_CONFIG, CoreConfig
from .counters import Counters
from .discovery.gossip import Gossip, OwnFacts
from .entropy import Entropy, SystemEntropy
from .errors import DropReason, UsageError, WireError
from .express import Express
from .ids import NetworkId, NodeId
from .ipframes import IpFrames, Written
from .keys import Identity
from .member.check import Verdict
from .member.credentials import Credentials
from .member.renewal import RENEWAL, Renewal
from .member.rotation import Rotation
from .membership import MEMBER_CONTROLS, InviteOptions, Members
from .nat.classify import Mapping, NatObserver, NatVerdict
from .nat.punch import Ours, Puncher
from .nat.side import NatSide
from .network import Network
from .outbox import Outbox
from .peers.links import Links
from .peers.paths import Address, PathId, PathKind, ViaRelay
from .peers.peer import Peer
from .peers.table import PeerTable
from .peertimers import PeerTimers
from .relay.client import RelayClient
from .relay.server import RelayServer
from .segruns import SegmentRuns
from .session.handshakes import Completed, CookieReply, Handshakes
from .session.lifecycle import Sessions
from .session.messages import Messages
from .streams import Streams
from .timers import DeadlineQueue, PeerTimer, Timer
from .transmit import Transmit
from .wire import control as cw
from .wire import frames as fw
from .wire import streams as sw
from .wire.packet import TRANSPORT_AES, TRANSPORT_HEADER, TRANSPORT_OVERHEAD
from .wire.records import AddrClaim, PeerRecord
from .wire.rekey import REKEY
from .wire.revocations import Revocation

RELAY_HEADROOM = 72  # bytes kept free in every datagram for the relay frame and outer transport header
R = TypeVar("R")


class Mesh:
    def __init__(self, identity: Identity, *, config: CoreConfig = DEFAULT_CONFIG, entropy: Entropy | None = None,
                 wall_offset: float = 0.0, audit: bool = False, strict_audit: bool = False, name: str = "") -> None:
        self.identity = identity
        self.node_id = identity.node_id
        self.cfg = config
        self.entropy = entropy or SystemEntropy()
        self.wall_offset = wall_offset
        self.incarnation = int.from_bytes(self.entropy.random_bytes(8), "little")
        self.counters = Counters()
        self.table = PeerTable(self.entropy, config.max_peers_per_network, config.max_unproven_peers, self.counters)
        self.budget = ReassemblyBudget(config.reassembly_per_peer_bytes, config.reassembly_total_bytes)
        self.credentials = Credentials(config, wall_offset)  # owned networks: ours, revocations, the check (core/member/)
        self.hs = Handshakes(identity, config, self.entropy, self.counters, self.table, self.incarnation, self.budget, wall_offset,
                             self.credentials)
        self.enrolment = self.hs.enrolment  # owned networks we administer: invite tokens issued and redeemed (core/member/)
        self._timers = DeadlineQueue()
        self._events: deque[ev.Event] = deque()
        self.last_internal_error: str | None = None
        self._last_now = 0.0
        self.nat = NatObserver()
        self.punch = Puncher(config, self.counters, self.entropy, self.table, self.nat)  # hole punching
        self.relay_client = RelayClient(config, self.counters, self.table)
        self.relay_server = RelayServer(config, self.counters, self.table)
        self.links = Links(config, self.counters, self.relay_client, self.punch, self.nat)  # paths, probes, choice
        self.local_endpoints: list[Address] = []  # our sockets' addresses (the driver fills these in)
        self.local_ips: frozenset[str] = frozenset()
        self.name = name
        self.gossip = Gossip(identity, config, self.counters, self.entropy, self.table, wall_offset, name, self.credentials)
        self.natside = NatSide(config, self.counters, self.entropy, self.table, self.nat, self.punch, self.gossip.record_of)
        self.tx = Transmit(self.relay_client, self.punch, self.natside.tests.on_probe_socket)  # sealing, paths, relay wrapping
        self._timer_handlers: dict[Timer, Callable[[float], None]] = {
            Timer.GOSSIP: self._gossip_round, Timer.NAT: self._nat_timer, Timer.REQUESTS: self._requests_timer,
            Timer.IP_FLUSH: lambda now: self._timer(Timer.IP_FLUSH, self.ip.flush(now)),
            Timer.RENEW: lambda now: self._timer(Timer.RENEW, self._run(now, lambda out: self.renewal.timer(now, out)), True)}
        self._control_handlers: dict[str, Callable[[Peer, str, bytes, float], None]] = {
            "gossip.sync": self._on_gossip, "gossip.records": self._on_gossip, "gossip.want": self._on_gossip,
            "punch.candidates": self._on_candidates,
            **dict.fromkeys(sw.NAMES, lambda p, n, body, now: self._run(now, lambda out: self.streams.receive(p, n, body, now, out))),
            "nat.test": lambda p, _n, body, now: self._nat(now, lambda out: self.natside.tests.on_test(p, body, now, out)),
            "nat.ack": lambda p, _n, body, now: self._nat(now, lambda _out: self.natside.tests.on_ack(p, body, now)),
            **dict.fromkeys(RENEWAL, lambda p, n, body, now: self._run(now, lambda out: self.renewal.receive(p, n, body, now, out))),
            **dict.fromkeys(("member.marks", "member.marks.sync"),  # invite token uses (core/session/lifecycle.py)
                            lambda p, n, body, now: self._run(now, lambda out: self.sessions.on_marks(p, n, body, now, out))),
            **dict.fromkeys(MEMBER_CONTROLS, lambda p, n, b, now: self._run(now, lambda out: self.members.receive(p, n, b, now, out))),
            REKEY: lambda p, _n, body, now: self._run(now, lambda out: self.rotation.receive(p, body, now, out))}
        self.streams = Streams(config, self.counters)  # byte streams to peers' local ports; lost stream messages reset them
        self.messages = Messages(config, self.counters, config.max_datagram - TRANSPORT_OVERHEAD - RELAY_HEADROOM - fw.DATA_HEADER_LEN,
                                 self.streams.lost)
        self.sessions = Sessions(config, self.hs, self.table, self.links, self.messages, self.gossip, wall_offset,
                                 audit or strict_audit)  # the session lifecycle
        self._peer_timers = PeerTimers(self._timers, self.sessions.deadline)
        self.ip = IpFrames(self.counters, config.max_datagram - TRANSPORT_OVERHEAD - RELAY_HEADROOM - 1, config.max_ip_queue)
        self.express = Express(config, self.counters, self.table, self.links, self.punch, self.ip, self._received, self._failed)
        self.seg_runs = SegmentRuns(config, self.counters, self.table, self.links, self.ip, self._received,
                                    lambda at: self._timer(Timer.IP_FLUSH, at), self._failed)  # GRO runs of IPSEG
        self.members = Members(config, self.entropy, self.node_id, self.hs, self.table, self.gossip, self.links, self.sessions,
                               self.punch, self.credentials, identity, self.counters,  # networks, membership, removal
                               lambda net, now, out: self.rotation.after_removal(net, now, out), facts=self._own_facts)
        self.rotation = Rotation(config, self.counters, self.entropy, identity, self.table, self.hs, self.credentials, self.members)
        self.networks, self.address_claims = self.members.networks, self.members.address_claims  # never rebound
        self.renewal = Renewal(config, self.counters, self.entropy, self.table, self.credentials, self.enrolment, self.members,
                               self._own_facts)  # our certificates renewed, and theirs (docs/membership.md 2.5)
        self.audit = EncryptionAudit(self.sessions.by_remote, strict=strict_audit) if (audit or strict_audit) else None

    # ================================================================== outputs
    def datagrams_to_send(self) -> list[tuple[Address, Address | None, bytes]]:
        out = self.tx.take()
        if self.audit is not None:
            out = self.audit.passed(out, self.counters)
        self.sessions.retired.clear()
        return out

    def next_event(self) -> ev.Event | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        self._peer_timers.settle()
        return self._timers.next_deadline()

    def _event(self, e: ev.Event) -> None:
        if len(self._events) >= self.cfg.max_events:
            self._events.popleft()
            self.counters.inc("events.dropped")
        self._events.append(e)

    def _perform(self, out: Outbox, now: float) -> None:
        """Do what a sub-machine asked for (core/outbox.py)."""
        for peer, frame, path, local in out.frames:
            self.tx.seal(peer, frame, path, now, local)
        for peer, data, path in out.datagrams:
            self.tx.send(peer, data, path, now)
        if out.probes:
            box = Outbox()
            for peer, addr in out.probes:
                self.links.probe(peer, addr, now, box)
            self._perform(box, now)
        for peer in out.pumps:
            self._pump(peer, now)
        for peer, name, body in out.controls:
            self._send_control(peer, name, body, now)
        for dst, local, data in out.sends:  # exact address and socket (NAT tests): no path choice, no stats
            self.tx.exact(dst, local, data, now)
        for e in out.events:
            self._event(e)
        for peer in out.rearm:
            self._arm(peer, now)

    def _run(self, now: float, fn: Callable[[Outbox], R]) -> R:
        """Call a sub-machine with a fresh Outbox, then perform what it asked for."""
        result = fn(out := Outbox())
        self._perform(out, now)
        return result
    act = _run  # the host's commands to an owned part (``mesh.act(now, lambda out: mesh.streams.open(...))``)

    # ================================================================== networks and peers (core/membership.py)
    def create_network(self, name: str, now: float, owned: bool = False) -> Network:
        """``owned``: we own it (docs/membership.md): members need a certificate, invites are signed tokens."""
        return self._joined(now, lambda out: self.members.create(name, self._own_facts, now, out, owned))

    def add_network(self, net: Network, now: float) -> None:
        self._joined(now, lambda out: self.members.add(net, self._own_facts, now, out))

    def _joined(self, now: float, fn: Callable[[Outbox], R]) -> R:
        result = self._run(now, fn)
        if self.networks and self._timers.get(Timer.GOSSIP) is None:
            self._timers.set(Timer.GOSSIP, self.gossip.first_round_at(now))
        return result

    def network(self, network_id: NetworkId) -> Network:
        return self.members.network(network_id)

    def invite(self, network_id: NetworkId, endpoints: list[Address], now: float = 0.0, opts: InviteOptions | None = None) -> str:
        """An invite; for an owned network a fresh token (``opts``: uses, expiry, name, tags), signed at ``now``."""
        return self.members.invite(network_id, endpoints, now, opts)

    def join(self, invite_text: str, now: float) -> Network:
        """Join by invite; with a version 2 invite the inviter first enrols us (Enrolled or EnrolmentRefused follows)."""
        return self._joined(now, lambda out: self.members.join(invite_text, self._own_facts, now, out, self.name))

    def leave(self, network_id: NetworkId, now: float) -> None:
        net = self._run(now, lambda out: self.members.depart(network_id, now, out))  # before its sessions close
        self._run(now, lambda out: self.members.leave(net, now, out))

    def set_credential(self, network_id: NetworkId, credential: bytes | None, now: float) -> Verdict:
        """Our credential in an owned network (handshakes, our record); the answer is members' check of it."""
        return self._run(now, lambda out: self.members.set_credential(network_id, credential, self._own_facts, now, out))

    def remove_member(self, network: NetworkId, node: NodeId, now: float) -> Revocation:
        """Remove ``node`` from an owned network (we are owner or admin): signed, spread, its sessions closed (5)."""
        return self._run(now, lambda out: self.members.remove(network, node, now, out))

    def add_peer(self, network_id: NetworkId, node: NodeId, endpoints: list[Address], now: float, wanted: bool = True) -> Peer:
        """Make a peer known (with candidate endpoints) and start talking to it."""
        return self._run(now, lambda out: self.members.add_peer(network_id, node, endpoints, now, out, wanted))

    def peers(self, network_id: NetworkId | None = None) -> list[Peer]:
        return self.table.in_network(network_id) if network_id else list(self.table)

    def find_peer(self, node: NodeId, network_id: NetworkId | None = None, now: float | None = None) -> Peer:
        """The peer ``node`` (in ``network_id``, else the one with a session); see Members.find_peer."""
        return self._run(now or 0.0, lambda out: self.members.find_peer(node, network_id, now, out))  # (no now: no out)

    # ================================================================== discovery (core/discovery/gossip.py)
    def records(self, network: NetworkId) -> list[PeerRecord]:
        return self.gossip.records(network)

    def record_of(self, network: NetworkId, node: NodeId) -> PeerRecord | None:
        return self.gossip.record_of(network, node)

    def _own_facts(self) -> OwnFacts:
        v = self.nat_verdict()
        eps = tuple(dict.fromkeys(list(v.public[:2]) + list(self.local_endpoints)))[:8]
        relay = self.relay_server.update(v).offering
        return OwnFacts(eps, relay, int(v.mapping), int(v.filtering), v.port_delta, v.mapping is not Mapping.NONE,
                        dict(self.address_claims))

    def _gossip_round(self, now: float) -> None:
        out = Outbox()
        at, connects = self.gossip.round(list(self.networks.values()), self._own_facts(), now, out)
        self._perform(out, now)
        for c in connects:
            self._run(now, lambda out: self.members.connect_record(c.network, c.record, now, out))  # noqa: B023 (called at once)
        self._timers.set(Timer.GOSSIP, at)
        self._timer(Timer.RENEW, self.renewal.deadline(), cancel=True)  # armed here: our credentials change rarely

    def local_addresses_changed(self, endpoints: list[Address], ips: frozenset[str], now: float) -> bool:
        """The host's addresses changed: advertise them at once, forget NAT observations of a family that lost one."""
        endpoints, ips = list(endpoints), frozenset(ips)
        if endpoints == self.local_endpoints and ips == self.local_ips:
            return False
        gone = {":" in ip for ip in self.local_ips - ips}  # families that lost an address (True: IPv6)
        self.local_endpoints, self.local_ips = endpoints, ips
        self.counters.inc("local.address_changes")
        if gone:  # we may have moved: what peers saw of that family's mappings is stale
            self.nat.forget(gone)
        self._nat_changed(now)  # the verdict depends on our addresses (a public one means no NAT)
        self._run(now, lambda out: self.members.readvertise(self._own_facts, now, out))
        self._run(now, lambda out: self.members.reprobe(now, out))
        return True

    # ================================================================== handshakes and timers
    def _initiate(self, peer: Peer, now: float) -> None:
        self._run(now, lambda out: self.sessions.initiate(peer, now, out))

    def _arm(self, peer: Peer, now: float) -> None:
        self._peer_timers.touch(peer, now)  # computed once per input batch, before the queue is read (core/peertimers.py)

    def handle_timer(self, now: float) -> None:
        self._last_now = now
        self._peer_timers.settle()
        for key in list(self._timers.pop_due(now)):
            if isinstance(key, PeerTimer):
                peer = self.table.get(NetworkId(key.key[0]), NodeId(key.key[1]))
                if peer is not None:
                    self._service(peer, now)
            elif isinstance(key, Timer):
                self._timer_handlers[key](now)
        self._requests_timer(now)  # every call: a request's deadline may have passed while other timers ran

    def _requests_timer(self, now: float) -> None:
        self._timer(Timer.REQUESTS, self._run(now, lambda out: self.messages.expired_requests(now, out)))

    def _timer(self, key: Timer, at: float | None, cancel: bool = False) -> None:
        self._timers.put(key, at, cancel)

    def _service(self, peer: Peer, now: float) -> None:
        out = Outbox()
        self.sessions.service(peer, now, out)  # expiry, handshake retries, rekeying
        self.messages.timeout(peer, now, out)  # retransmissions, give-up, delayed acks
        self._perform(out, now)
        self._pump(peer, now)
        # heartbeats (which also hold NAT mappings open), punch bursts, path decisions
        self._run(now, lambda out: self.links.heartbeat(peer, now, out, self._punch_ours))
        self._arm(peer, now)

    def _handshake_done(self, done: Completed, now: float) -> None:
        if done.reply is not None:  # before anything sealed in the new session
            self.tx.send(done.peer, done.reply, done.src, now)
        def completed(out: Outbox) -> None:
            self.sessions.completed(done, now, out)
            self.members.relay_connected(done.peer, now, out)  # peers naming it as their relay: a path through it
        self._run(now, completed)

    # ================================================================== receive path
    def receive_datagram(self, data: bytes, src: Address, local: Address | None, now: float) -> None:
        self.receive_datagrams((data,), src, local, now)

    def receive_datagrams(self, datagrams: Sequence[bytes], src: Address, local: Address | None, now: float) -> None:
        """Datagrams from one source to one socket: one, or a run that UDP GRO read at once."""
        self._last_now = now
        self.counters.inc("rx.datagrams", len(datagrams))
        for data in datagrams[self.seg_runs.take(datagrams, src, local, now) if len(datagrams) > 1 else 0:]:
            try:
                self._receive(data, src, local, now)
            except Exception as e:
                self._failed(e)

    def _failed(self, e: Exception) -> None:  # what a datagram's handling raised: the sender's WireError is a drop;
        if isinstance(e, WireError):  # anything else is a bug, never the sender's fault: counted, and we keep serving
            return self.counters.drop(e.reason)
        self.counters.inc("drop.internal_error")
        self.last_internal_error = repr(e)

    def _receive(self, data: bytes, src: PathId, local: Address | None, now: float) -> None:
        (self._receive_transport if data[:1] == b"\x04" else self._receive_handshake)(data, src, local, now)

    def _receive_relayed(self, data: bytes, relay: Peer, path: ViaRelay, local: Address | None, now: float) -> None:
        """A datagram from inside a RELAYED frame: received on the relay path ``path``; its drops are its own."""
        try:
            self._receive(data, path, local, now)
        except WireError as e:
            self.counters.drop(e.reason)

    def _receive_handshake(self, data: bytes, src: PathId, local: Address | None, now: float) -> None:
        got = self._run(now, lambda out: self.sessions.on_handshake(data, src, local, now, self.networks, out))
        if self.table.evicted:  # peers its admission pushed out (PeerTable); no second Outbox when there are none
            self._run(now, lambda out: self.members.evict(now, out))
        if isinstance(got, CookieReply):  # to a sender we do not know yet (relayed initiations need no cookie)
            self.tx.raw(got.dst, local, got.data)
        elif got is not None:
            self._handshake_done(got, now)

    def _receive_transport(self, data: bytes, src: PathId, local: Address | None, now: float) -> None:
        if len(data) < TRANSPORT_OVERHEAD:
            raise WireError(DropReason.TRUNCATED, "transport")
        _, ver, receiver, counter = TRANSPORT_HEADER.unpack_from(data)
        if ver != 1 or data[2] > TRANSPORT_AES or data[3]:  # (byte 2: the cipher, wire/packet.py)
            raise WireError(DropReason.BAD_RESERVED)
        hairpin = self.natside.hairpin_back(data, now)  # our own hairpin probe coming back
        if hairpin is not None:
            self._nat(now, lambda out: self.natside.step(hairpin, now, out, self._punch_ours))
            return
        peer, plain = self.sessions.decrypt(data, receiver, counter, now)
        peer.stats.bytes_in += len(data)
        peer.stats.packets_in += 1
        self._received(peer, plain, src, local, now)

    def _received(self, peer: Peer, plain: bytes, src: PathId, local: Address | None, now: float) -> None:
        """A transport frame from ``peer``, opened (also from a GRO run's fast path, core/segruns.py)."""
        t = plain[0] if plain else -1
        if t == 0x0A and peer.local == local and self.links.heard_on_current(peer, src, now):  # IPSEG: no re-arm
            if (at := self.ip.receive_seg(peer.network.id, peer.node, plain, now)) is not None:
                self._timers.set(Timer.IP_FLUSH, at)
            return
        if t == 0x09:  # NAT tests: never moves the peer's endpoint or socket
            self._nat(now, lambda out: self.natside.on_probe(peer, plain, src, local, now, out, self._punch_ours))
            return
        peer.local = local
        if t != 0x05 and not self.links.heard_on_current(peer, src, now):  # (a PONG: Links.on_pong)
            out = Outbox()
            self.links.heard(peer, src, now, out)
            self._perform(out, now)
        if plain:
            self._receive_frame(peer, plain, src, local, now)
        self._arm(peer, now)

    def _receive_frame(self, peer: Peer, frame: bytes, src: PathId, local: Address | None, now: float) -> None:
        t = frame[0]
        if t == fw.FrameType.DATA:
            self._receive_data(peer, fw.decode_data(frame), now)
            return
        if t == fw.FrameType.ACK or t == fw.FrameType.REFUSE:  # (DATA and ACK are the hot path: typed results, no Outbox)
            acked = self.messages.on_ack(peer, frame, now)
            for f in acked.resend:
                self._send_frame(peer, f, now)
            for e in acked.events:
                self._event(e)
            self._pump(peer, now)
            return
        out, nat_changed = Outbox(), False
        if t == fw.FrameType.KEEPALIVE:
            pass
        elif t == fw.FrameType.PING:
            self.links.on_ping(peer, fw.decode_probe(frame).probe_id, src, local, out)
        elif t == fw.FrameType.PONG:
            nat_changed = self.links.on_pong(peer, fw.decode_probe(frame), src, local, now, out)
        elif t == fw.FrameType.RELAY:
            dst = self.relay_server.forward(peer, frame, src, now, out)
            self.links.mark_active(dst, now)  # a relay probes whom it forwards to as often as an active peer
            out.arm(dst)
        elif t == fw.FrameType.RELAYED:
            inner, path = self.relay_client.unwrap(peer, frame, src)
            self._receive_relayed(inner, peer, path, local, now)
        elif t == fw.FrameType.IP:  # the virtual network (core/ipframes.py): queued for the driver, bounded
            self.ip.receive(peer.network.id, peer.node, frame)
        elif t == fw.FrameType.IPSEG:  # (off the current path: the hot path is in _receive_transport)
            self._timer(Timer.IP_FLUSH, self.ip.receive_seg(peer.network.id, peer.node, frame, now))
        elif t == fw.FrameType.CLOSE:
            peer.wanted = False
            self.sessions.close(peer, "peer closed the session", now, out)
        else:
            fw.frame_type(frame)  # raises UNKNOWN_FRAME for types we do not know
            self.counters.drop(DropReason.UNKNOWN_FRAME)
        self._perform(out, now)
        if nat_changed:
            self._nat_changed(now)

    def resume_receiving(self, now: float) -> None:
        """The host has room again for messages it held back (``Receivers``): offer them, acknowledge what it takes."""
        for peer in self.messages.held():
            self._receive_data(peer, None, now)

    def _receive_data(self, peer: Peer, frame: fw.DataFrame | None, now: float) -> None:
        got = self.messages.on_data(peer, frame, now) if frame is not None else self.messages.retry(peer, now)
        if got.active:
            self.links.mark_active(peer, now)
        for e in got.events:
            self._event(e)
        if got.ack is not None:
            self._send_frame(peer, got.ack, now)
        for name, body in got.controls:
            try:
                self._on_control(peer, name, body, now)
            except WireError as e:
                self.counters.drop(e.reason)

    # ================================================================== send path
    def _send_frame(self, peer: Peer, frame: bytes, now: float) -> bool:
        return self.tx.seal(peer, frame, None, now)

    def _send_control(self, peer: Peer, name: str, body: bytes, now: float) -> None:
        """A reliable control message (gossip, punching); never shown to applications."""
        header = make_header(fw.MessageKind.CONTROL, name, body, self.cfg.max_message)
        self.counters.inc("control.bytes." + name.split(".", 1)[0], len(body))
        try:
            self._enqueue(peer, header, body, now, wanted=False)
        except UsageError:
            self.counters.inc("control.queue_full")
            self._run(now, lambda out: self.messages.control_lost(peer, name, out))

    def _on_control(self, peer: Peer, name: str, body: bytes, now: float) -> None:
        if (handler := self._control_handlers.get(name)) is None:
            self.counters.drop(DropReason.UNKNOWN_FRAME)
        else:
            handler(peer, name, body, now)

    def _on_gossip(self, peer: Peer, name: str, body: bytes, now: float) -> None:
        learnt = self._run(now, lambda out: self.gossip.receive(peer, name, body, now, out))
        self._run(now, lambda out: self.members.learnt(peer.network, learnt, now, out))

    # ================================================================== paths (core/peers/links.py), NAT, punching
    def path_kind(self, peer: Peer) -> PathKind:
        return self.links.kind(peer)

    def relay_name(self, peer: Peer) -> str | None:
        return self.links.relay_name(peer)

    def _probe(self, peer: Peer, addr: PathId, now: float, user: bool = False) -> int | None:
        return self._run(now, lambda out: self.links.probe(peer, addr, now, out, user))

    def nat_verdict(self) -> NatVerdict:
        main = self.local_endpoints[0] if self.local_endpoints else None
        return self.nat.verdict(main, self.local_ips, self.probe_local)

    @property
    def probe_local(self) -> Address | None:
        """Our second UDP socket (NAT tests; the driver binds it and sets this)."""
        return self.natside.tests.probe_local

    @probe_local.setter
    def probe_local(self, addr: Address | None) -> None:
        self.natside.tests.probe_local = addr

    def _punch_ours(self) -> Ours:
        return Ours(self.nat_verdict(), tuple(self.local_endpoints), self.probe_local)

    def _nat(self, now: float, fn: Callable[[Outbox], object]) -> None:
        """Call the NAT side, perform what it asked for and re-arm its timer."""
        self._run(now, fn)
        self._timer(Timer.NAT, self.natside.deadline(), cancel=True)

    def _nat_timer(self, now: float) -> None:
        self._nat(now, lambda out: self.natside.timer(now, out, self._punch_ours))

    def _nat_changed(self, now: float) -> None:
        self._nat(now, lambda out: self.natside.changed(now, out, self._punch_ours))

    def _on_candidates(self, peer: Peer, _name: str, body: bytes, now: float) -> None:
        c = cw.decode_candidates(body)
        out = Outbox()
        relayed = peer.endpoint is None or isinstance(peer.endpoint, ViaRelay)
        self.punch.on_candidates(peer, c, relayed, self.node_id.raw, now, out, self._punch_ours)
        self.links.heartbeat(peer, now, out, self._punch_ours)
        self._perform(out, now)

    def _pump(self, peer: Peer, now: float) -> None:
        """Send what the peer's stream allows, starting a handshake if there is no session."""
        if peer.sendable_session(now) is None:
            peer.stream.cancel_ack()
            if peer.pending is None and peer.stream.queued_frames():
                self._initiate(peer, now)
            return
        for f in self.messages.frames(peer, now):
            self._send_frame(peer, f, now)

    def _enqueue(self, peer: Peer, header: fw.MessageHeader, body: bytes, now: float, wanted: bool = True) -> int:
        mid = self.messages.queue(peer, header, body, internal=not wanted)
        if wanted:
            peer.wanted = True
            self.links.mark_active(peer, now)
        self._pump(peer, now)
        self._arm(peer, now)
        return mid

    def send(self, node: NodeId, channel: str, data: bytes, now: float, network: NetworkId | None = None) -> int:
        """Queue a channel message for reliable, in-order delivery. Returns its message id."""
        peer = self.find_peer(node, network, now)
        header = make_header(fw.MessageKind.MESSAGE, channel, data, self.cfg.max_message)
        return self._enqueue(peer, header, data, now)

    def request(self, node: NodeId, channel: str, data: bytes, now: float, network: NetworkId | None = None,
                timeout: float | None = None) -> int:
        """Send a request; a ResponseReceived or RequestTimedOut event with the returned id follows."""
        peer = self.find_peer(node, network, now)
        make_header(fw.MessageKind.REQUEST, channel, data, self.cfg.max_message)
        cid = self.messages.requests.open(peer, now + (timeout or self.cfg.request_timeout))
        header = make_header(fw.MessageKind.REQUEST, channel, data, self.cfg.max_message, corr_id=cid)
        try:
            self._enqueue(peer, header, data, now)
        except UsageError:
            self.messages.requests.close(cid, peer)
            raise
        self._timers.set(Timer.REQUESTS, self.messages.requests.deadlines.next_deadline() or now)
        return cid

    def respond(self, node: NodeId, request_id: int, data: bytes, now: float, network: NetworkId | None = None, ok: bool = True) -> int:
        peer = self.find_peer(node, network, now)
        header = make_header(fw.MessageKind.RESPONSE, "response", data, self.cfg.max_message, corr_id=request_id, status=0 if ok else 1)
        return self._enqueue(peer, header, data, now)

    def ping(self, node: NodeId, now: float, network: NetworkId | None = None) -> int:
        """Send an authenticated probe on the current path; a PongReceived event carries the RTT and path."""
        peer = self.find_peer(node, network, now)
        if (pid := self._probe(peer, peer.endpoint, now, user=True) if peer.endpoint is not None else None) is None:
            raise UsageError(f"no session with {node.short()} yet; wait for it to connect")
        return pid

    def close(self, now: float) -> None:
        """Tell every connected peer we are leaving (the daemon calls this on shutdown)."""
        for peer in self.table:
            if peer.current is not None:
                self._send_frame(peer, fw.encode_close(), now)

    # ================================================================== virtual network (core/ipframes.py)
    def claim_addresses(self, network_id: NetworkId, claim: AddrClaim | None, now: float) -> None:
        """Our mesh IPs in ``network_id``, to be signed into our record (re-signed and pushed when changed)."""
        self._run(now, lambda out: self.members.claim(network_id, claim, self._own_facts, now, out))

    def send_ip(self, network_id: NetworkId, node: NodeId, packet: bytes | memoryview, now: float, vnet: bool = False) -> bool:
        """Seal an IP packet (``vnet``: a TUN read with virtio-net header, maybe a super-segment: core/ipseg.py) for ``node``,
        sent at once, never behind channel traffic. False: too large, or no session (a handshake starts; lost)."""
        if (frames := self.ip.seg_frames(packet) if vnet else self.ip.frame(packet)) is None:
            return False
        try:
            peer = self.find_peer(node, network_id, now)  # a member known by its record gets a peer, a handshake
        except UsageError:
            self.counters.inc("ip.tx_no_peer")
            return False
        if (s := peer.sendable_session(now)) is None:
            peer.wanted = True
            if peer.pending is None:
                self._initiate(peer, now)
            self.counters.inc("ip.tx_no_session")
            return False
        self.tx.burst(peer, s.encrypt_many(frames, now), now)
        self.counters.inc("ip.tx_frames" if vnet else "ip.tx_packets")
        if now - peer.last_active > 1.0:  # traffic: active heartbeats, so a dead path is noticed within seconds
            self.links.mark_active(peer, now)
            self._arm(peer, now)
        return True

    def ip_packets_to_write(self) -> list[tuple[NetworkId, NodeId, Written]]:
        """What the virtual network received since the last call, for networks the driver opened (``ip.open``)."""
        return self.ip.to_write()
