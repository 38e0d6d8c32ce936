"""A peer within one network: its sessions, endpoints, handshake progress and message stream.

Sessions rotate WireGuard-style through three slots:

* ``next``: a session we completed as *responder*, not yet confirmed by a packet from the initiator;
* ``current``: the one we send on;
* ``previous``: the one before, kept so packets still in flight under it are not lost across a rekey.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..channels import Assembler, ReassemblyBudget
from ..config import CoreConfig
from ..errors import UsageError
from ..ids import NodeId
from ..network import Network
from ..session.reliable import ReliableStream
from ..session.session import Session
from ..wire.records import FEATURE_AES
from .paths import Path, PathId

Address = tuple[str, int]


class PeerState(enum.Enum):
    """The lifecycle of a peer (one transition function: ``Peer.move``).

    ::

        NEW ──initiate──> HANDSHAKING ──handshake done──> CONNECTED <──path answers── UNREACHABLE
         │                   │  (no answer in time)          │  │ ──no path answers──────^  │
         │                   v                               │  v                           │
         └──handshake done──> DISCONNECTED <──expired/closed─┘  (any state) ──left──> REMOVED
                              │ ──initiate──> HANDSHAKING, ──handshake done──> CONNECTED

    CONNECTED: a session and a path that answers (PeerConnected was published). UNREACHABLE: a session but no
    path answers (PeerDisconnected was published; the stream holds; a handshake or an answering path brings it
    back). DISCONNECTED: no session (it expired, the peer closed it, or our initiations went unanswered).
    REMOVED: out of the peer table (it left, or we did); final.
    """

    NEW = "new"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    DISCONNECTED = "disconnected"
    REMOVED = "removed"


LEGAL: dict[PeerState, frozenset[PeerState]] = {
    PeerState.NEW: frozenset({PeerState.HANDSHAKING, PeerState.CONNECTED, PeerState.REMOVED}),
    PeerState.HANDSHAKING: frozenset({PeerState.CONNECTED, PeerState.DISCONNECTED, PeerState.REMOVED}),
    PeerState.CONNECTED: frozenset({PeerState.UNREACHABLE, PeerState.DISCONNECTED, PeerState.REMOVED}),
    PeerState.UNREACHABLE: frozenset({PeerState.CONNECTED, PeerState.DISCONNECTED, PeerState.REMOVED}),
    PeerState.DISCONNECTED: frozenset({PeerState.HANDSHAKING, PeerState.CONNECTED, PeerState.REMOVED}),
    PeerState.REMOVED: frozenset(),
}


@dataclass(slots=True)
class PendingInitiation:
    """Our outgoing handshake: the Noise state and what we need to match the response."""

    local_index: int
    noise: object  # InitiatorHandshake
    datagram: bytes
    mac1: bytes
    sent_at: float


@dataclass(slots=True)
class PeerStats:
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    handshakes: int = 0
    last_handshake_at: float | None = None


@dataclass(eq=False)
class Peer:
    network: Network
    node: NodeId
    static_x25519: bytes
    config: CoreConfig
    budget: ReassemblyBudget
    endpoints: list[Address] = field(default_factory=list)  # candidates, most recent first
    endpoint: PathId | None = None  # where authenticated packets last came from
    local: Address | None = None  # our socket that talks to it
    previous: Session | None = None
    current: Session | None = None
    next: Session | None = None
    pending: PendingInitiation | None = None
    handshake_started_at: float | None = None
    handshake_attempts: int = 0
    greatest_timestamp: bytes = b""
    remote_incarnation: int | None = None
    cookie: bytes | None = None
    cookie_at: float = float("-inf")
    state: PeerState = PeerState.NEW  # the lifecycle (PeerState); change it only with move()
    wanted: bool = False  # someone asked to talk to it: keep the session up
    proven: bool = False  # a transport frame from it decrypted, or we added it ourselves (PeerTable.prove)
    features: int = 0  # FEATURE_* bits of its signed record (core/wire/records.py): AES-256-GCM towards it
    stats: PeerStats = field(default_factory=PeerStats)
    # --- paths and link health (core/links.py)
    paths: dict[PathId, Path] = field(default_factory=dict)
    path_reason: str = ""
    probe_at: float | None = None  # next heartbeat probe
    last_active: float = float("-inf")  # last application traffic either way
    relays: tuple[bytes, ...] = ()  # node ids of the relays this peer says it is reachable through
    unreachable_since: float | None = None  # set while UNREACHABLE: since when no path answered
    # failover to a relay: frames in flight go onto it once it answers a probe sent at or after this time
    resend_after: float | None = None
    nat_seen: Address | None = None  # where its last NAT BIND came from (its second socket's mapping)
    name: str = ""
    stream: ReliableStream = field(init=False)
    assembler: Assembler = field(init=False)

    def __post_init__(self) -> None:
        self.stream = ReliableStream(self.config)
        self.assembler = Assembler(self.budget, self.config.max_message)

    @property
    def connected(self) -> bool:
        return self.state is PeerState.CONNECTED

    def move(self, to: PeerState, now: float) -> PeerState:
        """The one transition function of the peer lifecycle (``PeerState``). Returns the state left.
        Raises ``UsageError`` on a move the lifecycle does not have (a bug in the caller)."""
        was = self.state
        if to not in LEGAL[was]:
            raise UsageError(f"a peer cannot go from {was.value} to {to.value}; "
                             "this is a bug in the caller (see PeerState in core/peers/peer.py)")
        self.state = to
        self.unreachable_since = now if to is PeerState.UNREACHABLE else None
        return was

    @property
    def key(self) -> tuple[bytes, bytes]:
        return (self.network.id.raw, self.node.raw)

    def add_endpoint(self, ep: Address) -> None:
        if ep in self.endpoints:
            self.endpoints.remove(ep)
        self.endpoints.insert(0, ep)
        del self.endpoints[self.config.max_endpoints_per_peer :]

    def sendable_session(self, now: float) -> Session | None:
        # A responder whose first session is not yet confirmed may use it: the initiator installed the
        # same keys when it read our response (if that was lost, the packet is simply dropped there).
        s = self.current or self.next
        if s is None or s.older_than(self.config.reject_after_time, now):
            return None
        if s.send_counter >= self.config.reject_after_messages:
            return None
        return s

    def sessions(self) -> list[Session]:
        return [s for s in (self.current, self.previous, self.next) if s is not None]

    def set_features(self, features: int) -> None:
        """What its signed record says it accepts (``PeerRecord.features``), applied to its sessions."""
        self.features = features
        for s in self.sessions():
            s.use_aes(bool(features & FEATURE_AES))

    def install(self, session: Session) -> list[int]:
        """Put a fresh session in place. Returns the local indexes of sessions that were dropped."""
        session.use_aes(bool(self.features & FEATURE_AES))
        dropped: list[int] = []
        if session.initiator:
            if self.next is not None:
                dropped.append(self.next.local_index)
                self.next = None
            if self.previous is not None:
                dropped.append(self.previous.local_index)
            self.previous = self.current
            self.current = session
        else:
            if self.next is not None:
                dropped.append(self.next.local_index)
            self.next = session
        return dropped

    def confirm_next(self) -> list[int]:
        """The initiator used our ``next`` session: it becomes current."""
        dropped: list[int] = []
        if self.previous is not None:
            dropped.append(self.previous.local_index)
        self.previous = self.current
        self.current = self.next
        self.next = None
        return dropped

    def clear_sessions(self) -> list[int]:
        idx = [s.local_index for s in self.sessions()]
        self.previous = self.current = self.next = None
        return idx
