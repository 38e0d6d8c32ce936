"""The results of the owned-network methods (docs/membership.md): part of the one API schema (``schema.py``, which
takes them in), kept apart to keep that module small. Plain dataclasses, as every request and result is."""

from __future__ import annotations

from dataclasses import dataclass

from .schema_codec import arg


@dataclass
class NetworkRemoveResult:
    network: str
    peer: str
    removed: bool
    epoch: int = 0  # the network key's epoch after the removal: one more when this node is the owner (it rotated the key)


@dataclass
class NetworkOwnResult:
    network: str
    owner: str  # the owner whose claim this node follows now (this node, for network.own)
    owned_from: float  # when the network is owned (wall-clock seconds): members without its certificate are left out then
    certified: bool  # this node holds the owner's certificate for it (the owner: always)


@dataclass
class NetworkRekeyResult:
    network: str
    epoch: int  # the new key's epoch
    grace: int  # seconds the previous key is still accepted (members that were away get in and learn the new one)


@dataclass
class InviteInfo:
    token: str  # the token id (hex): what network.revoke_invite takes
    uses: int  # how many nodes the invite admits in all
    uses_left: int  # uses not spent yet, as this node counts them (its own and other admins' use marks)
    expires: float  # wall-clock seconds
    name: str  # the name its certificate gives the joiner ("": the joiner's own)
    tags: list[str]


@dataclass
class NetworkInvitesResult:
    network: str
    invites: list[InviteInfo]  # the open invites this node made: neither expired, used up nor revoked


@dataclass
class NetworkRevokeInviteResult:
    network: str
    token: str
    revoked: bool


@dataclass
class OfferInfo:
    offer: str  # its id: what network.accept takes
    sender: str  # the node that sent it (its node id)
    sender_name: str | None  # and its name here, when it has one
    network: str  # the network it invites to (id)
    name: str  # and its name
    owned: bool
    expires: float  # wall-clock seconds: forgotten then


@dataclass
class NetworkOffersResult:
    offers: list[OfferInfo]  # invites other nodes sent this node in-band, oldest first


@dataclass
class NetworkAdminResult:
    network: str
    peer: str  # the member's node id
    role: str  # "admin": its new certificate's role (sent to it; it takes it as a renewal)


# requests
@dataclass
class NetworkRemoveRequest:
    network: str = arg(doc="network id or name (an owned network)")
    peer: str = arg(doc="the member to remove: its name, node id or a unique prefix")


@dataclass
class NetworkAdminRequest:
    network: str = arg(doc="network id or name (an owned network this node owns)")
    peer: str = arg(doc="the member to name an admin: its name, node id or a unique prefix (connected now)")


@dataclass
class NetworkAcceptOwnerRequest:
    network: str = arg(doc="network id or name (an open network)")
    owner: str = arg(doc="the node whose owner claim to follow: its node id or a unique prefix (network.list claims_waiting)")


@dataclass
class NetworkRevokeInviteRequest:
    network: str = arg(doc="network id or name (an owned network)")
    token: str = arg(doc="the invite's token id, as network.invites lists it, or a unique prefix of it", max_len=64)
