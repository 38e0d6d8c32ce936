"""RevocationList: the revocations one owned network holds (docs/membership.md, section 5). Pure and bounded.

A revocation is taken only if it names this network, verifies under its issuer, and its issuer may revoke that
target: the owner may revoke anyone but itself; an admin may revoke members, certificate serials and tokens,
never an admin or the owner. Who is an admin is the caller's knowledge (``is_admin``: valid admin credentials
it has seen), asked at the moment a revocation arrives. Entries are forgotten at their ``until`` (``prune``);
at most ``limit`` are held: beyond that a new one is refused (REVOCATION_LIMIT) rather than an old one dropped,
since dropping one would let a removed node back in. Only a compromised admin can send that many.
"""

from __future__ import annotations

from typing import Callable, Iterator

from ..errors import DropReason
from ..ids import NetworkId, NodeId
from ..wire.revocations import Revocation, RevocationKind, serial_target

IsAdmin = Callable[[NodeId], bool]


class RevocationList:
    def __init__(self, network: NetworkId, owner: NodeId, limit: int = 4096) -> None:
        self.network = network
        self.owner = owner
        self.limit = limit
        self._by_target: dict[tuple[RevocationKind, bytes], list[Revocation]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Revocation]:
        for revs in self._by_target.values():
            yield from revs

    def add(self, rev: Revocation, is_admin: IsAdmin, wall: float) -> DropReason | None:
        """Take ``rev``; None when taken (or already held, or already past its ``until``: nothing to stop), else
        the reason it is refused, for the caller to count."""
        if rev.network != self.network or not self._may_revoke(rev, is_admin) or not rev.signature_ok():
            return DropReason.REVOCATION_INVALID
        if rev.until <= wall:
            return None
        key = (rev.kind, rev.target)
        if self.holds(rev):
            return None
        if self._count >= self.limit and not self.prune(wall):
            return DropReason.REVOCATION_LIMIT
        self._by_target.setdefault(key, []).append(rev)
        self._count += 1
        return None

    def holds(self, rev: Revocation) -> bool:
        """Whether ``rev`` (these very signed bytes) is held already."""
        return any(r.signature == rev.signature for r in self._by_target.get((rev.kind, rev.target), ()))

    def _may_revoke(self, rev: Revocation, is_admin: IsAdmin) -> bool:
        if rev.kind is RevocationKind.NODE and rev.target == self.owner.raw:
            return False  # the owner cannot be revoked: it is the network
        if rev.issuer == self.owner:
            return True
        if not is_admin(rev.issuer):
            return False
        return not (rev.kind is RevocationKind.NODE and is_admin(NodeId(rev.target)))

    def prune(self, wall: float) -> int:
        """Forget revocations past their ``until``; how many went."""
        gone = 0
        for key in list(self._by_target):
            keep = [r for r in self._by_target[key] if r.until > wall]
            gone += len(self._by_target[key]) - len(keep)
            if keep:
                self._by_target[key] = keep
            else:
                del self._by_target[key]
        self._count -= gone
        return gone

    def node(self, node: NodeId, wall: float) -> list[Revocation]:
        """The revocations of ``node`` in force at ``wall`` (from the moment they are held: an issuer's clock ahead
        of ours must not delay a removal)."""
        return [r for r in self._by_target.get((RevocationKind.NODE, node.raw), ()) if wall < r.until]

    def serial_revoked(self, serial: int, wall: float, owner_only: bool = False) -> bool:
        """Whether the certificate ``serial`` is revoked; ``owner_only``: count only the owner's revocations (an
        admin certificate's serial, which another admin may not revoke: the list cannot tell a serial's role)."""
        return any(wall < r.until and (not owner_only or r.issuer == self.owner)
                   for r in self._by_target.get((RevocationKind.SERIAL, serial_target(serial)), ()))

    def token_revoked(self, token_id: bytes, wall: float) -> bool:
        return any(wall < r.until for r in self._by_target.get((RevocationKind.TOKEN, bytes(token_id)), ()))
