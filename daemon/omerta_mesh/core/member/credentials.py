"""Credentials: this node's certificates and each owned network's revocations, and the check the handshake asks
(docs/membership.md, 2.4). An owned part of ``Handshakes``; pure.

The host gives it our credential per network (``set_own``), or the invite token to enrol with until we have one
(``enrol``: docs/membership.md 3.3); ``renew_at`` is when to ask for our credential's renewal (2.5); ``check``
answers whether a peer's credential admits it to an owned network now, with the wall clock ``now + wall_offset``
(the core's only use of wall time besides handshake timestamps). Open networks never reach it.
"""

from __future__ import annotations

from ..config import CoreConfig
from ..errors import WireError
from ..ids import NetworkId, NodeId
from ..network import Network
from ..wire.certs import Certificate, decode_credential
from .check import Verdict, check_credential
from .revocations import RevocationList


class Credentials:
    def __init__(self, config: CoreConfig, wall_offset: float = 0.0) -> None:
        self.skew = config.cert_clock_skew
        self.revocation_limit = config.max_revocations
        self.wall_offset = wall_offset
        self._own: dict[bytes, bytes] = {}  # network id -> our credential
        self._revocations: dict[bytes, RevocationList] = {}
        self._enrolling: dict[bytes, tuple[bytes, str]] = {}  # network id -> (invite token, requested name)
        self._retry_at: dict[bytes, float] = {}  # network id -> when to ask again for our credential's renewal
        self._rekeys: dict[bytes, bytes] = {}  # network id -> the owner's signed rotation to the key we hold (wire/rekey.py)

    def enrol(self, network: NetworkId, token: bytes | None, name: str = "") -> None:
        """Until we hold a credential for ``network``, handshakes there are enrolments presenting ``token``
        (docs/membership.md 3.3); None stops that."""
        if token:
            self._enrolling[network.raw] = (bytes(token), name)
        else:
            self._enrolling.pop(network.raw, None)

    def enrolling(self, network: NetworkId) -> tuple[bytes, str] | None:
        """The token (and requested name) to enrol with in ``network``, when we hold no credential there yet."""
        return None if network.raw in self._own else self._enrolling.get(network.raw)

    def set_own(self, network: NetworkId, credential: bytes | None) -> None:
        self._retry_at.pop(network.raw, None)
        if credential:
            self._own[network.raw] = bytes(credential)
        else:
            self._own.pop(network.raw, None)

    def own(self, network: NetworkId) -> bytes | None:
        return self._own.get(network.raw)

    def own_certificate(self, network: NetworkId) -> Certificate | None:
        """Our own certificate (the leaf of our credential) in ``network``, when we hold one."""
        own = self._own.get(network.raw)
        try:
            return decode_credential(own)[0] if own else None
        except WireError:
            return None

    def renew_at(self, network: NetworkId) -> float | None:
        """When (monotonic seconds) to ask for our credential's renewal in ``network``: once two thirds of its lifetime
        have passed (docs/membership.md 2.5), or five sixths of the admin certificate's after it (its admin renews at two
        thirds: our next credential carries the new one), whichever is first; later when we asked and wait to ask again
        (``asked``); None without one."""
        own = self._own.get(network.raw)
        try:
            chain = decode_credential(own) if own else ()
        except WireError:
            return None
        if not chain:
            return None
        leaf = chain[0]
        at = leaf.not_before + (leaf.not_after - leaf.not_before) * 2 / 3
        if len(chain) > 1 and (vouch := chain[1].not_before + (chain[1].not_after - chain[1].not_before) * 5 / 6) > leaf.not_before:
            at = min(at, vouch)  # (an admin certificate already that old when ours was issued: asking again gets no newer)
        at -= self.wall_offset
        return max(at, self._retry_at.get(network.raw, at))

    def asked(self, network: NetworkId, again_at: float) -> None:
        """We asked for a renewal (or found nobody to ask): ask again at ``again_at`` unless a new credential comes."""
        self._retry_at[network.raw] = again_at

    def set_rekey(self, network: NetworkId, blob: bytes) -> None:
        self._rekeys[network.raw] = bytes(blob)

    def rekey(self, network: NetworkId) -> bytes | None:
        """The owner's signed rotation to the network's current key, told to members at each new session; None at epoch 0."""
        return self._rekeys.get(network.raw)

    def revocations(self, net: Network) -> RevocationList:
        """The owned network's revocation list (made on first use)."""
        assert net.owner is not None, "open networks have no revocations"
        rl = self._revocations.get(net.id.raw)
        if rl is None:
            rl = self._revocations[net.id.raw] = RevocationList(net.id, net.owner, self.revocation_limit)
        return rl

    def forget(self, network: NetworkId) -> None:
        self._retry_at.pop(network.raw, None)
        self._own.pop(network.raw, None)
        self._enrolling.pop(network.raw, None)
        self._revocations.pop(network.raw, None)
        self._rekeys.pop(network.raw, None)

    def check(self, net: Network, node: NodeId, credential: bytes | None, now: float) -> Verdict:
        assert net.owner is not None, "open networks admit without a credential"
        return check_credential(credential, network=net.id, owner=net.owner, subject=node, wall=now + self.wall_offset,
                                revocations=self.revocations(net), skew=self.skew)
