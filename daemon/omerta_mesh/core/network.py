"""Networks: a 32-byte random key is the whole admission secret.

The key is the Noise pre-shared key and keys mac1, so a node without it cannot complete a handshake with
anyone in the network, nor even make a member spend a Diffie-Hellman on it.

``owner`` (optional): the owner's node id, for an owned network (docs/membership.md), where every handshake
must also carry a valid member certificate. A network without an owner is open and works as before.

An owned network's key can be rotated (docs/membership.md, section 6): its id stays the hash of its first key
(``fixed_id``) and ``epoch`` counts the rotations. An open network's id is always the hash of its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .entropy import Entropy
from .ids import NetworkId, NodeId
from .wire.handshake import cookie_key, mac1_key
from .wire.invite import Invite

NETWORK_KEY_LEN = 32


@dataclass(frozen=True)
class Network:
    key: bytes
    name: str = ""
    owner: NodeId | None = None
    fixed_id: NetworkId | None = None  # an owned network's id once its key has been rotated (the first key's hash)
    epoch: int = 0  # the key's: 0 the first, one more at each rotation
    id: NetworkId = field(init=False)

    def __post_init__(self) -> None:
        if len(self.key) != NETWORK_KEY_LEN:
            raise ValueError("a network key is 32 bytes")
        if (self.fixed_id is not None or self.epoch) and self.owner is None:
            raise ValueError("only an owned network's key is rotated (an open network is its key)")
        if not 0 <= self.epoch < 1 << 32:
            raise ValueError(f"key epoch {self.epoch!r} is not 0 to 2^32 - 1")
        object.__setattr__(self, "id", self.fixed_id or NetworkId.from_key(self.key))

    @classmethod
    def of_invite(cls, inv: Invite) -> "Network":
        """The network an invite is to: an owned one past its first key keeps the id the invite names."""
        rotated = inv.token is not None and inv.epoch > 0
        return cls(inv.network_key, inv.name, inv.owner, inv.network_id if rotated else None, inv.epoch if rotated else 0)

    def rotated(self, key: bytes, epoch: int) -> "Network":
        """This owned network under its next key (same id, owner and name)."""
        return replace(self, key=key, fixed_id=self.id, epoch=epoch)

    @classmethod
    def create(cls, entropy: Entropy, name: str = "") -> "Network":
        return cls(entropy.random_bytes(NETWORK_KEY_LEN), name)

    def mac1_key(self, responder_public: bytes) -> bytes:
        return mac1_key(self.key, responder_public)

    def cookie_key(self, responder_public: bytes) -> bytes:
        return cookie_key(self.key, responder_public)
