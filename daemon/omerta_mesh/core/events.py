"""Events the core reports to its driver: frozen dataclasses named in the past tense.

Each names the network and the peer it concerns. ``Mesh.next_event()`` pops them in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ids import NetworkId, NodeId
from .peers.paths import Address, PathId


@dataclass(frozen=True, slots=True)
class Event:
    pass


@dataclass(frozen=True, slots=True)
class NetworkJoined(Event):
    network: NetworkId
    name: str


@dataclass(frozen=True, slots=True)
class NetworkLeft(Event):
    network: NetworkId


@dataclass(frozen=True, slots=True)
class PeerConnected(Event):
    """A first session with this peer was established (or re-established after it was lost)."""

    network: NetworkId
    peer: NodeId
    endpoint: PathId
    initiator: bool


@dataclass(frozen=True, slots=True)
class SessionRekeyed(Event):
    network: NetworkId
    peer: NodeId


@dataclass(frozen=True, slots=True)
class PeerRestarted(Event):
    """The peer's incarnation changed: it restarted, and undelivered messages to it were failed."""

    network: NetworkId
    peer: NodeId


@dataclass(frozen=True, slots=True)
class PeerDisconnected(Event):
    network: NetworkId
    peer: NodeId
    reason: str


@dataclass(frozen=True, slots=True)
class PeerLeft(Event):
    """The peer left the network (its signed departure record): it is no longer listed."""

    network: NetworkId
    peer: NodeId


@dataclass(frozen=True, slots=True)
class HandshakeFailed(Event):
    network: NetworkId
    peer: NodeId
    reason: str


@dataclass(frozen=True, slots=True)
class Enrolled(Event):
    """An admin (``peer``) redeemed our invite token: we hold a member certificate of the owned ``network`` now."""

    network: NetworkId
    peer: NodeId


@dataclass(frozen=True, slots=True)
class InviteRedeemed(Event):
    """We (an admin of the owned ``network``) enrolled ``peer`` with one of the network's invite tokens: ``uses`` of
    it are spent here so far. The host saves what the enrolment keeps (``Mesh.enrolment.export``)."""

    network: NetworkId
    peer: NodeId
    uses: int


@dataclass(frozen=True, slots=True)
class MemberRemoved(Event):
    """A revocation of the owned ``network`` was taken here (``Mesh.remove_member``'s, or one a member spread), signed
    by ``by``: ``peer`` is the node it removes (None: it revokes a certificate serial or a token). Its sessions are
    closed and it is no longer listed (a ``PeerLeft`` came first). The host saves the network's revocations."""

    network: NetworkId
    peer: NodeId | None
    by: NodeId


@dataclass(frozen=True, slots=True)
class InviteOffered(Event):
    """``peer``, met in ``network``, sent us an invite to ``invited`` (named ``invited_name``) in-band (docs/membership.md
    3.5): kept as ``offer`` until the user takes it (``omertactl network accept OFFER``) or it expires. Nothing is joined
    before."""

    network: NetworkId
    peer: NodeId
    invited: NetworkId
    invited_name: str
    offer: str


@dataclass(frozen=True, slots=True)
class OwnerClaimed(Event):
    """An owner claim for the open ``network`` (docs/membership.md 7): ``owner`` says it owns it and the network is owned
    from ``enforce_at`` (wall-clock seconds) on. ``adopted``: we follow it (the host saves it), and ``certified``: we hold
    the owner's certificate for us (told again when it comes later); else it waits for our user (``omertactl network
    accept-owner``), and ``conflict`` says another claim was adopted or seen first."""

    network: NetworkId
    owner: NodeId
    enforce_at: int
    adopted: bool
    certified: bool = False
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class NetworkOwned(Event):
    """The claim we adopted is enforced: the network is owned by ``owner`` now (members need its certificate; the host
    saves the network as owned, with ``credential``, ours, or None when the owner never gave us one)."""

    network: NetworkId
    owner: NodeId
    certified: bool


@dataclass(frozen=True, slots=True)
class NetworkRekeyed(Event):
    """The owned ``network``'s key was rotated (by its owner: ours, or one a member passed on): it is now at
    ``epoch``; the previous key is accepted until its grace ends. The host saves the network (key, epoch, rotation)."""

    network: NetworkId
    epoch: int


@dataclass(frozen=True, slots=True)
class EnrolmentRefused(Event):
    """An admin refused our invite token: ``reason`` is the refusal's word ("used", "expired", "revoked", ...),
    ``fix`` what to do about it."""

    network: NetworkId
    peer: NodeId
    reason: str
    fix: str


@dataclass(frozen=True, slots=True)
class CredentialRenewed(Event):
    """Our credential in the owned ``network`` was renewed (by the admin ``peer``; the owner: by ourselves), valid until
    ``not_after`` (wall seconds); it is set, in our handshakes and record. The host saves it (``Mesh.credentials.own``)."""

    network: NetworkId
    peer: NodeId
    not_after: int


@dataclass(frozen=True, slots=True)
class RenewalRefused(Event):
    """The admin ``peer`` refused to renew our credential: ``reason`` in a word ("revoked", "expired", ...) and ``fix``."""

    network: NetworkId
    peer: NodeId
    reason: str
    fix: str


@dataclass(frozen=True, slots=True)
class ChannelMessage(Event):
    network: NetworkId
    peer: NodeId
    channel: str
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    network: NetworkId
    peer: NodeId
    channel: str
    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    network: NetworkId
    peer: NodeId
    request_id: int
    ok: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestTimedOut(Event):
    network: NetworkId
    peer: NodeId
    request_id: int


@dataclass(frozen=True, slots=True)
class MessageDelivered(Event):
    network: NetworkId
    peer: NodeId
    message_id: int


@dataclass(frozen=True, slots=True)
class MessageFailed(Event):
    network: NetworkId
    peer: NodeId
    message_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class PongReceived(Event):
    network: NetworkId
    peer: NodeId
    probe_id: int
    rtt: float
    endpoint: PathId


@dataclass(frozen=True, slots=True)
class PathChanged(Event):
    """The peer is now reached another way: ``kind`` is direct, punched, relay or none."""

    network: NetworkId
    peer: NodeId
    old: PathId | None
    new: PathId | None
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class PunchFinished(Event):
    """A hole-punching attempt with a relayed peer ended: ``ok`` with the direct ``endpoint`` it opened, or
    not (the peer stays relayed and the next attempt comes in ``retry_in`` seconds, backing off)."""

    network: NetworkId
    peer: NodeId
    ok: bool
    endpoint: Address | None
    attempt: int
    elapsed: float
    retry_in: float | None


@dataclass(frozen=True, slots=True)
class PeerDiscovered(Event):
    """Gossip brought a new member's signed record."""

    network: NetworkId
    peer: NodeId
    name: str


@dataclass(frozen=True, slots=True)
class NatChanged(Event):
    """Our NAT verdict changed (see ``Mesh.nat_verdict()`` for the evidence)."""

    label: str


@dataclass(frozen=True, slots=True)
class StreamEvent(Event):
    """Something about a byte stream (``core/streams.py``); the host's stream layer takes these, not subscribers."""

    network: NetworkId
    peer: NodeId
    stream: int


@dataclass(frozen=True, slots=True)
class StreamRequested(StreamEvent):
    """The peer asks to open a stream to our local ``port``: the host answers ``Streams.accept`` or ``reset``."""

    port: int


@dataclass(frozen=True, slots=True)
class StreamAccepted(StreamEvent):
    """The peer accepted a stream we opened: data may flow."""


@dataclass(frozen=True, slots=True)
class StreamData(StreamEvent):
    """Bytes in order; the host calls ``Streams.consumed`` once it has passed them on (that grants credit)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StreamCredit(StreamEvent):
    """The peer granted credit: ``available`` bytes may be sent now."""

    available: int


@dataclass(frozen=True, slots=True)
class StreamEnded(StreamEvent):
    """The peer will send no more (half-close); we may still send until we close."""


@dataclass(frozen=True, slots=True)
class StreamReset(StreamEvent):
    """The stream is gone both ways: refused, reset by either side, or its peer went away."""

    reason: str
