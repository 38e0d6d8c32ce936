"""Rotation of an owned network's key (docs/membership.md, section 6), both sides. An owned part (``mesh.rotation``);
pure: the clock is an argument, randomness the injected ``Entropy``.

* The owner rotates after it takes a node's removal (its own or an admin's: ``after_removal``), or when asked
  (``rotate``): a new random key, epoch + 1, signed (core/wire/rekey.py) with ``key_grace`` in it. The removed node
  is gone from the peer table by then, so it is never told.
* Every member that takes a newer rotation from a session's peer (``receive``: of this network, signed by its owner,
  a higher epoch) uses the new key for its own initiations from then on, accepts the previous one until the grace
  ends (issued + grace, on the wall clock, so every member ends it together; ``KeyRing``), passes the rotation on to
  its other connected members, and emits ``NetworkRekeyed`` for the host to save it. Both sides of a new session send
  the rotation they hold (core/session/lifecycle.py), so a member that was away learns the key in its first session,
  made under the previous key while the grace lasts. Sessions up at the rotation go on: their keys do not depend on
  the network key, so members keep talking through it.
* A removed node keeps the old key and its old invite: its handshakes are refused by the credential check
  (``cert_revoked``) during the grace, and by mac1 (no Diffie-Hellman) after it; its invite's token is revoked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import events as ev
from ..config import CoreConfig
from ..counters import Counters
from ..entropy import Entropy
from ..errors import DropReason, UsageError, WireError
from ..ids import NetworkId
from ..keys import Identity
from ..network import NETWORK_KEY_LEN, Network
from ..outbox import Outbox
from ..peers.peer import Peer
from ..peers.table import PeerTable
from ..session.handshakes import Handshakes
from ..wire.rekey import MAX_GRACE, REKEY, Rekey, decode_rekey, sign_rekey
from .credentials import Credentials

if TYPE_CHECKING:
    from ..membership import Members



class Rotation:
    def __init__(self, config: CoreConfig, counters: Counters, entropy: Entropy, identity: Identity, table: PeerTable,
                 hs: Handshakes, credentials: Credentials, members: "Members") -> None:
        self.cfg = config
        self.counters = counters
        self.entropy = entropy
        self.identity = identity
        self.table = table
        self.hs = hs
        self.credentials = credentials
        self.members = members  # the networks we hold (replaced by the rotated one)

    def rotate(self, network_id: NetworkId, now: float, out: Outbox) -> Network:
        """A new key for the owned network we own (epoch + 1), taken here and sent to every connected member."""
        net = self.members.network(network_id)
        name = net.name or str(net.id)
        if net.owner is None:
            raise UsageError(f"network {name} is open: its key is its invite and cannot be rotated; create an owned network "
                             "(omertactl network create NAME) to remove members and rotate keys")
        if net.owner != self.identity.node_id:
            raise UsageError(f"only the owner of network {name} ({net.owner.short()}) rotates its key; ask the owner")
        wall = int(now + self.credentials.wall_offset)
        rk = sign_rekey(self.identity, Rekey(net.id, net.epoch + 1, self.entropy.random_bytes(NETWORK_KEY_LEN),
                                             min(max(0, int(self.cfg.key_grace)), MAX_GRACE), wall, self.identity.node_id))
        return self._take(net, rk, rk.encode(), None, now, out)

    def after_removal(self, net: Network, now: float, out: Outbox) -> None:
        """A node's removal was taken in ``net``: its owner rotates the key (the removed node holds the old one)."""
        if net.owner == self.identity.node_id:
            self.rotate(net.id, now, out)

    def receive(self, peer: Peer, body: bytes, now: float, out: Outbox) -> None:
        """``net.rekey`` from a member: taken when it is newer than our key and its owner signed it; an older or the
        same one is ignored (counted: ``rekey.stale``), anything else dropped and counted (``rekey_invalid``)."""
        net = peer.network
        try:
            rk = decode_rekey(body)
            if (net.owner is None and rk.network == net.id and rk.signature_ok()
                    and (owned := self.members.migration.enforce_early(net, rk.issuer, now, out)) is not None):
                net = owned  # the first rotation of a network that became owned (signed by the claim's owner): enforce now (7)
            if net.owner is None or rk.network != net.id or rk.issuer != net.owner or not rk.signature_ok():
                raise WireError(DropReason.REKEY_INVALID, "not a rotation of this network signed by its owner")
        except WireError as e:
            self.counters.drop(e.reason)
            return
        if rk.epoch <= net.epoch:
            self.counters.inc("rekey.stale")
            return
        self._take(net, rk, bytes(body), peer, now, out)

    def restore(self, network_id: NetworkId, blob: bytes | None, previous: list[tuple[bytes, float]], now: float) -> None:
        """What the host saved at the last rotation: the signed rotation (told to members at new sessions) and the
        previous keys with the wall-clock end of their grace."""
        if blob:
            self.credentials.set_rekey(network_id, blob)
        offset = self.credentials.wall_offset
        self.hs.keys.restore(network_id.raw, [(k, until - offset) for k, until in previous], now)

    def previous(self, network_id: NetworkId, now: float) -> list[tuple[bytes, float]]:
        """The previous keys still accepted, each with the wall-clock end of its grace (what the host saves)."""
        offset = self.credentials.wall_offset
        return [(k, until + offset) for k, until in self.hs.keys.previous(network_id.raw, now)]

    def _take(self, net: Network, rk: Rekey, blob: bytes, sender: Peer | None, now: float, out: Outbox) -> Network:
        new = net.rotated(rk.key, rk.epoch)
        self.members.replace(new)
        self.hs.keys.rotate(net.id.raw, rk.key, net.key, rk.issued + rk.grace - self.credentials.wall_offset, now)
        self.credentials.set_rekey(net.id, blob)
        for p in self.table.in_network(net.id):
            if p.connected and p is not sender:
                out.control(p, REKEY, blob)
        self.counters.inc("rekey.taken")
        out.event(ev.NetworkRekeyed(net.id, rk.epoch))
        return new
