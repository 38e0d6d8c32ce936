"""The core's read model: immutable snapshots of peers, their paths and sessions, members and the NAT verdict.

Readers outside the core (``MeshNode``, the daemon's API views, the TUI through them) see the mesh only
through these frozen dataclasses; they never hold a ``Peer`` or read its fields. This module is the ONE
place that knows where those facts live (``Mesh``'s public methods ``peers()``, ``records()``,
``record_of()``, ``nat_verdict()``, ``path_kind()``, ``relay_name()``, and ``Peer``'s fields): when a
sub-machine takes a field over, only this module changes.

Every builder is pure and takes ``now``; looking a peer up here never opens a session or changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import ipseg
from .errors import UsageError
from .ids import NetworkId, NodeId
from .member.check import Accepted
from .nat.classify import NatVerdict, verdict_from_record
from .peers.paths import ViaRelay, path_key, path_state
from .wire.packet import TRANSPORT_OVERHEAD

if TYPE_CHECKING:
    from .mesh import Mesh
    from .network import Network
    from .peers.peer import Peer

Address = tuple[str, int]
NatView = NatVerdict  # already an immutable value: the verdict, its evidence and confidence


@dataclass(frozen=True, slots=True)
class PathView:
    """One way to reach a peer: a direct address, or a relay (``relay_via`` names it)."""

    address: Address | None  # the direct address; None for a relay path
    relay_via: NodeId | None  # the relay's node id; None for a direct path
    state: str  # "up", "degraded", "down", "unknown" (core.peers.paths.PathState)
    current: bool  # the path the peer's traffic goes on now
    srtt: float | None  # smoothed RTT in seconds, from probes
    loss: float  # share of the last probes that went unanswered
    probed: bool  # at least one probe on it has been answered or lost (loss means something)
    last_answer_at: float | None  # when a probe on it was last answered
    mtu: int | None = None  # the largest datagram it carries, when measured (a relay path: end to end; core/peers/pmtu.py)

    @property
    def relay(self) -> bool:
        return self.relay_via is not None


@dataclass(frozen=True, slots=True)
class SessionView:
    slot: str  # "current", "previous" or "next"
    age: float  # seconds
    initiator: bool
    packets_sent: int


@dataclass(frozen=True, slots=True)
class PeerStatsView:
    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    handshakes: int
    last_handshake_at: float | None


@dataclass(frozen=True, slots=True)
class StreamView:
    """The peer's reliable message stream (our sending side, and what we received)."""

    waiting: int  # frames queued behind the window
    in_flight: int  # frames sent, not acknowledged yet
    held_for: float | None  # seconds the stream has held (no live path, or a relay not proven yet); None: not held
    rto: float  # the retransmission timeout now, in seconds
    frames_sent: int
    retransmits: int
    give_ups: int  # times frames went unacknowledged for too long (their messages failed)
    frames_received: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class CertView:
    """A member's certificate in an owned network, from the credential in its signed record, as checked now
    (``Credentials.check``: chain, signatures, expiry, revocations); only an accepted one is shown."""

    role: str  # "member", "admin" or "owner"
    name: str  # the name the certificate gives it ("" : its own)
    tags: tuple[str, ...]
    issuer: NodeId
    not_after: int  # wall-clock seconds (Unix time) when it expires


@dataclass(frozen=True, slots=True)
class PeerView:
    """A peer in one network, as of one instant."""

    network: NetworkId
    network_name: str
    node: NodeId
    name: str  # the name it gives itself in its signed record ("" when it has none, or no record yet)
    connected: bool
    path_kind: str  # "direct", "punched", "relay" or "none"
    relay_via: NodeId | None  # the relay carrying it, when relayed
    endpoint: Address | None  # the direct address in use (None when relayed or without a path)
    path_reason: str
    paths: tuple[PathView, ...]
    endpoints: tuple[Address, ...]  # candidate direct endpoints, most recent first
    stats: PeerStatsView
    handshake_in_progress: bool
    sessions: tuple[SessionView, ...]
    nat: NatVerdict | None  # its NAT as its signed record states it; None without a record
    stream: StreamView
    cert: CertView | None = None  # owned networks: its verified certificate (None: open network, none yet, or refused)

    @property
    def current_path(self) -> PathView | None:
        return next((p for p in self.paths if p.current), None)


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member of a network known by its signed record (we may have no session with it)."""

    network: NetworkId
    node: NodeId
    name: str
    relay: bool  # it offers to relay for others


@dataclass(frozen=True, slots=True)
class NetworkView:
    id: NetworkId
    name: str
    owner: NodeId | None = None  # owned networks (docs/membership.md): the owner; None: open
    epoch: int = 0  # owned networks: the key's epoch (docs/membership.md 6)
    claim_owner: NodeId | None = None  # an open network's owner claim we follow (docs/membership.md 7): its owner
    owned_from: int | None = None  # and when it is enforced (wall-clock seconds)
    claims_waiting: tuple[NodeId, ...] = ()  # owners whose claims reached us but are not followed (network.accept_owner)


@dataclass(frozen=True)
class NodeView:
    """This node and everything it knows, as of one instant."""

    node_id: NodeId
    name: str
    networks: tuple[NetworkView, ...]
    peers: tuple[PeerView, ...]
    members: tuple[MemberView, ...]  # from signed records, ourselves excluded
    nat: NatVerdict
    relay: object  # the core's relay setting as configured
    audit: bool  # the encryption audit runs
    max_message: int  # the largest channel message, in bytes
    counters: tuple[tuple[str, int], ...]
    relay_mode: str = "off"  # "auto", "on" or "off" (core/relay/server.py)
    relaying: bool = False  # we offer to relay now (announced in our records)
    relay_reason: str = ""  # why we do or do not

    def peers_in(self, network: NetworkId | None) -> list[PeerView]:
        return [p for p in self.peers if network is None or p.network == network]


# ====================================================================== builders (the one place)
def _relay_node(mesh: "Mesh", peer: "Peer") -> NodeId | None:
    text = mesh.relay_name(peer)
    if not text:
        return None
    try:
        return NodeId.parse(text)
    except UsageError:
        return None


def _path_views(peer: "Peer", now: float) -> tuple[PathView, ...]:
    out = []
    for addr, path in sorted(peer.paths.items(), key=lambda kv: path_key(kv[0])):
        via = None
        if isinstance(addr, ViaRelay):
            try:
                via = NodeId.parse(addr.node)
            except UsageError:
                continue
        out.append(PathView(
            address=None if isinstance(addr, ViaRelay) else addr, relay_via=via, state=path_state(path, now).value,
            current=addr == peer.endpoint, srtt=path.srtt, loss=path.loss, probed=bool(path.outcomes),
            last_answer_at=path.last_pong, mtu=path.pmtu.mtu if path.pmtu is not None else None,
        ))
    return tuple(out)


def peer_view(mesh: "Mesh", peer: "Peer", now: float) -> PeerView:
    rec = mesh.record_of(peer.network.id, peer.node)
    kind = mesh.path_kind(peer)
    s = peer.stats
    sessions = tuple(
        SessionView(slot, sess.age(now), sess.initiator, sess.send_counter)
        for slot, sess in (("current", peer.current), ("previous", peer.previous), ("next", peer.next)) if sess is not None
    )
    return PeerView(
        network=peer.network.id, network_name=peer.network.name, node=peer.node,
        name=(rec.name if rec is not None and rec.name else peer.name), connected=peer.connected, path_kind=kind,
        relay_via=_relay_node(mesh, peer) if kind == "relay" else None,
        endpoint=peer.endpoint if kind in ("direct", "punched") and not isinstance(peer.endpoint, ViaRelay) else None,
        path_reason=peer.path_reason,
        paths=_path_views(peer, now), endpoints=tuple(peer.endpoints),
        stats=PeerStatsView(s.bytes_in, s.bytes_out, s.packets_in, s.packets_out, s.handshakes, s.last_handshake_at),
        handshake_in_progress=peer.pending is not None, sessions=sessions,
        nat=verdict_from_record(rec.mapping, rec.filtering, rec.port_delta) if rec is not None else None,
        stream=_stream_view(peer, now), cert=cert_view(mesh, peer.network.id, peer.node, now),
    )


def _stream_view(peer: "Peer", now: float) -> StreamView:
    st = peer.stream
    waiting, in_flight = st.counts()
    x = st.stats
    return StreamView(waiting, in_flight, None if st.held_at is None else now - st.held_at, st.rto, x.frames_sent,
                      x.retransmits, x.give_ups, x.frames_received, x.duplicates)


def peer_views(mesh: "Mesh", now: float, network: NetworkId | None = None) -> list[PeerView]:
    return [peer_view(mesh, p, now) for p in mesh.peers(network)]


def find_peer_view(mesh: "Mesh", node: NodeId, now: float, network: NetworkId | None = None) -> PeerView | None:
    """The peer ``node`` (in ``network``, else the one with a session, else the first network): a pure
    lookup; a member known only by gossip has no peer yet and gives None."""
    cands = [p for p in mesh.peers(network) if p.node == node]
    if not cands:
        return None
    cands.sort(key=lambda p: (p.current is None, p.network.id.raw))
    return peer_view(mesh, cands[0], now)


def members(mesh: "Mesh") -> tuple[MemberView, ...]:
    out = []
    for net in mesh.networks.values():
        for rec in mesh.records(net.id):
            if rec.node != mesh.node_id:
                out.append(MemberView(net.id, rec.node, rec.name, rec.relay))
    return tuple(out)


def cert_view(mesh: "Mesh", network: NetworkId, node: NodeId, now: float) -> CertView | None:
    """``node``'s certificate in an owned ``network`` when the credential in its signed record passes the check now;
    None for open networks, without a record or credential, or when the check refuses it."""
    net = mesh.networks.get(network.raw)
    rec = mesh.record_of(network, node) if net is not None and net.owner is not None else None
    if net is None or rec is None or not rec.credential:
        return None
    verdict = mesh.credentials.check(net, node, rec.credential, now)
    if not isinstance(verdict, Accepted):
        return None
    c = verdict.cert
    return CertView(c.role.name.lower(), c.name, tuple(c.tags), c.issuer, c.not_after)


def member_tags(mesh: "Mesh", now: float) -> dict[tuple[NetworkId, NodeId], tuple[str, ...]]:
    """Every member of an owned network whose verified certificate carries tags -> those tags (firewall ``tag:``
    sources); open networks carry none."""
    out = {}
    for net in mesh.networks.values():
        if net.owner is None:
            continue
        for rec in mesh.records(net.id):
            cert = cert_view(mesh, net.id, rec.node, now) if rec.node != mesh.node_id else None
            if cert is not None and cert.tags:
                out[(net.id, rec.node)] = cert.tags
    return out


def names(mesh: "Mesh") -> list[tuple[NodeId, str]]:
    """(node, the name it gives itself): every member known by its record, then every peer (its record's name
    first, as ``PeerView.name``): what a name directory needs, without the cost of full peer views (it is
    rebuilt as peers come and go)."""
    return [(m.node, m.name) for m in members(mesh)] + [(p.node, p.name) for p in mesh.table]


def peer_counts(mesh: "Mesh") -> tuple[int, int, int]:
    """(peers, connected ones, connected on a direct or punched path), without building peer views."""
    total = connected = direct = 0
    for p in mesh.table:
        total += 1
        if p.connected:
            connected += 1
            direct += mesh.path_kind(p) in ("direct", "punched")
    return total, connected, direct


def network_view(mesh: "Mesh", n: "Network") -> NetworkView:
    mig = mesh.members.migration
    claim = mig.claim(n.id)
    return NetworkView(n.id, n.name, n.owner, n.epoch, claim.issuer if claim else None, claim.enforce_at if claim else None,
                       tuple(c.issuer for c in mig.waiting(n.id)))


def node_view(mesh: "Mesh", now: float) -> NodeView:
    return NodeView(
        node_id=mesh.node_id, name=mesh.name,
        networks=tuple(network_view(mesh, n) for n in mesh.networks.values()),
        peers=tuple(peer_views(mesh, now)), members=members(mesh), nat=mesh.nat_verdict(),
        relay=mesh.cfg.relay, relay_mode=mesh.relay_server.offer.mode, relaying=mesh.relay_server.offer.offering,
        relay_reason=mesh.relay_server.offer.why, audit=mesh.audit is not None, max_message=mesh.cfg.max_message,
        counters=tuple(mesh.counters.snapshot().items()),
    )


def ip_mtu(mesh: "Mesh", network: NetworkId, node: NodeId) -> int | None:
    """The largest IP packet one IPSEG fragment carries on the peer's current path, when its path MTU was
    measured (core/peers/pmtu.py; a relay path too: its MTU is the end-to-end datagram); None: not measured."""
    peer = mesh.table.get(network, node)
    udp = mesh.links.path_mtu(peer) if peer is not None else None
    return None if udp is None else udp - TRANSPORT_OVERHEAD - ipseg.OVERHEAD
