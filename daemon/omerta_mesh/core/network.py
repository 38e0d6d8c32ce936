"""Networks: a 32-byte random key is the whole admission secret.

The key is the Noise pre-shared key and keys mac1, so a node without it cannot complete a handshake with
anyone in the network, nor even make a member spend a Diffie-Hellman on it.

``owner`` (optional): the owner's node id, for an owned network (docs/membership.md), where every handshake
must also carry a valid member certificate. A network without an owner is open and works as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .entropy import Entropy
from .ids import NetworkId, NodeId
from .wire.handshake import cookie_key, mac1_key

NETWORK_KEY_LEN = 32


@dataclass(frozen=True)
class Network:
    key: bytes
    name: str = ""
    owner: NodeId | None = None
    id: NetworkId = field(init=False)

    def __post_init__(self) -> None:
        if len(self.key) != NETWORK_KEY_LEN:
            raise ValueError("a network key is 32 bytes")
        object.__setattr__(self, "id", NetworkId.from_key(self.key))

    @classmethod
    def create(cls, entropy: Entropy, name: str = "") -> "Network":
        return cls(entropy.random_bytes(NETWORK_KEY_LEN), name)

    def mac1_key(self, responder_public: bytes) -> bytes:
        return mac1_key(self.key, responder_public)

    def cookie_key(self, responder_public: bytes) -> bytes:
        return cookie_key(self.key, responder_public)
