"""Enrolment, the admin's side (docs/membership.md, 3.1, 3.3, 3.4): invite tokens this node issued, the uses it
accepted and the use marks of other admins, and the answer to a presented token. An owned part of
``Handshakes``; pure: the wall clock is an argument, randomness the injected ``Entropy``.

``redeem`` checks a token, in this order, and answers a certificate or the first refusal (``EnrolStatus``):

1. this node is an admin (or the owner) of the network, with a certificate valid now        NOT_ADMIN
2. the token parses                                                                         INVALID
3. it names this network                                                                    WRONG_NETWORK
4. its issuer is the owner, this node, or an admin whose certificate this node has seen,
   and its signature verifies                                                               NOT_ADMIN_SIGNED
5. it has not expired (``not after`` is later than the clock), nor claims more than
   MAX_TOKEN_LIFETIME ahead                                                                 EXPIRED / INVALID
6. neither the token nor the joiner is revoked                                              REVOKED
7. the same joiner enrolled with this token here before: the same credential again, no use spent
8. uses left: this node's own count plus, over the other admins, each one's highest use mark  USED

then issues a member certificate (the token's name, else the requested one; the token's tags and lifetime;
``not before`` = the clock), signed by this node, with this node's admin certificate after it when it is an admin,
records the use and signs a use mark (3.4) for the caller to spread. Everything it keeps is bounded by
``max_token_marks`` and forgotten at the token's ``not after``; ``export``/``restore`` are what the host keeps of it
in ``<state>/members/<network id>.json`` (io/memberstate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..config import CoreConfig
from ..entropy import Entropy
from ..errors import DropReason, UsageError, WireError
from ..ids import NetworkId, NodeId
from ..keys import Identity
from ..network import Network
from ..wire.certs import MAX_NAME, Certificate, Role, decode_credential, encode_credential, sign_certificate
from ..wire.enrol import EnrolStatus
from ..wire.frames import label_bytes
from ..wire.tokens import MAX_TOKEN_LIFETIME, TOKEN_ID_LEN, Token, UseMark, decode_mark, decode_token, sign_mark, sign_token
from .revocations import RevocationList


@dataclass(frozen=True, slots=True)
class Issued:
    credential: bytes
    mark: UseMark | None  # to spread to the other admins; None when the same joiner asked again


@dataclass(frozen=True, slots=True)
class Declined:
    status: EnrolStatus
    detail: str


Answer = Issued | Declined


@dataclass(slots=True)
class _Redeemed:
    """One token as this node knows it: whom it enrolled with it here (and the credential each got), and the
    highest use mark of every admin."""

    network: bytes
    not_after: int
    enrolled: dict[bytes, bytes]  # joiner node id -> the credential it was issued (bounded by the token's uses)
    marks: dict[bytes, UseMark]  # admin node id -> its highest mark


class Enrolment:
    def __init__(self, identity: Identity, config: CoreConfig, entropy: Entropy) -> None:
        self.identity = identity
        self.entropy = entropy
        self.limit = config.max_token_marks
        self.skew = config.cert_clock_skew
        self._issued: dict[bytes, Token] = {}  # token id -> the tokens this node signed
        self._redeemed: dict[bytes, _Redeemed] = {}  # token id -> uses and marks
        self._admins: dict[bytes, Certificate] = {}  # admin node id -> its admin certificate, as seen in handshakes

    # ------------------------------------------------------------------ issuing
    def owner_credential(self, net: Network, wall: float, lifetime: int) -> bytes:
        """Our self-signed owner certificate for ``net`` (we must be its owner)."""
        return self.certify(net, self.identity.node_id, wall, lifetime, Role.OWNER)

    def certify(self, net: Network, subject: NodeId, wall: float, lifetime: int, role: Role = Role.MEMBER, name: str = "") -> bytes:
        """A credential of ``role`` for ``subject`` signed by us, the owner of ``net``: our own owner certificate, or a
        member's when an open network becomes ours (docs/membership.md 7)."""
        if net.owner != self.identity.node_id:
            raise UsageError(f"only the owner of network {net.name or net.id} signs certificates without an invite")
        cert = Certificate(role, net.id, subject, self.identity.node_id, self._serial(), int(wall), int(wall) + lifetime, name)
        return encode_credential([sign_certificate(self.identity, cert)])

    def issue(self, net: Network, own_credential: bytes | None, wall: float, *, uses: int = 1, expires: float = 86400,
              name: str = "", tags: tuple[str, ...] = (), lifetime: int = 30 * 86400) -> Token:
        """A new token signed by this node (it must be an admin or the owner of ``net``). UsageError says why not."""
        if self.admin_chain(net, own_credential, wall) is None:
            raise UsageError(f"only an admin of network {net.name or net.id} makes invites; ask an admin for one")
        self.prune(wall)
        if len(self._issued) >= self.limit:
            raise UsageError(f"{self.limit} invites are open; revoke some or wait until they expire")
        token = Token(net.id, self.entropy.random_bytes(TOKEN_ID_LEN), self.identity.node_id,
                      int(wall + min(expires, MAX_TOKEN_LIFETIME)), uses, lifetime, name, tuple(tags))
        token = sign_token(self.identity, token, wall)
        self._issued[token.token_id] = token
        return token

    def issued(self, network: NetworkId, wall: float) -> list[Token]:
        """Tokens this node issued for ``network`` that are neither expired nor used up here."""
        return [t for t in self._issued.values() if t.network == network and wall < t.not_after
                and self._uses(t.token_id) < t.uses]

    def uses(self, token_id: bytes) -> int:
        """How many uses of a token this node counts: its own enrolments plus each other admin's highest mark."""
        return self._uses(token_id)

    def note_admin(self, cert: Certificate) -> None:
        """An admin certificate that checked out in a handshake: tokens and marks it signed are an admin's."""
        if cert.role is Role.ADMIN and (len(self._admins) < self.limit or cert.subject.raw in self._admins):
            self._admins[cert.subject.raw] = cert

    # ------------------------------------------------------------------ redeeming
    def redeem(self, net: Network, own_credential: bytes | None, revocations: RevocationList, joiner: NodeId,
               token_bytes: bytes, requested_name: str, wall: float) -> Answer:
        chain = self.admin_chain(net, own_credential, wall)
        if chain is None:
            return Declined(EnrolStatus.NOT_ADMIN, "this node holds no valid admin certificate for the network")
        try:
            token = decode_token(token_bytes)
        except WireError as e:
            return Declined(EnrolStatus.INVALID, e.detail)
        if token.network != net.id:
            return Declined(EnrolStatus.WRONG_NETWORK, f"token of network {token.network}")
        if not self.is_admin(net, token.issuer, wall) or not token.signature_ok():
            return Declined(EnrolStatus.NOT_ADMIN_SIGNED, f"token signed by {token.issuer.short()}")
        if wall >= token.not_after:
            return Declined(EnrolStatus.EXPIRED, f"the invite expired at {token.not_after}, the clock says {int(wall)}")
        if token.not_after > wall + MAX_TOKEN_LIFETIME + self.skew:
            return Declined(EnrolStatus.INVALID, "the token claims to live longer than an invite may")
        if revocations.token_revoked(token.token_id, wall) or revocations.node(joiner, wall):
            return Declined(EnrolStatus.REVOKED, "the invite or the joining node was revoked")
        seen = self._redeemed.get(token.token_id)
        if seen is not None and joiner.raw in seen.enrolled:
            return Issued(seen.enrolled[joiner.raw], None)
        if self._uses(token.token_id) >= token.uses:
            return Declined(EnrolStatus.USED, f"all {token.uses} uses of the invite are spent")
        if seen is None:
            self.prune(wall)
            if len(self._redeemed) >= self.limit:  # (only admins' tokens get here: a full table is a flood by one)
                return Declined(EnrolStatus.USED, "this admin holds as many redeemed invites as it may")
            seen = self._redeemed[token.token_id] = _Redeemed(net.id.raw, token.not_after, {}, {})
        name = token.name or (requested_name if certificate_name_ok(requested_name) else "")
        cert = Certificate(Role.MEMBER, net.id, joiner, self.identity.node_id, self._serial(), int(wall),
                           int(wall) + token.cert_lifetime, name, token.tags)
        vouch = [chain[0]] if chain[0].role is Role.ADMIN else []  # an admin's certificate follows what it issued
        credential = encode_credential([sign_certificate(self.identity, cert), *vouch])
        seen.enrolled[joiner.raw] = credential
        mark = sign_mark(self.identity, UseMark(net.id, token.token_id, self.identity.node_id, len(seen.enrolled), joiner,
                                                token.not_after))
        seen.marks[self.identity.node_id.raw] = mark
        return Issued(credential, mark)

    def reissue(self, net: Network, own_credential: bytes | None, cert: Certificate, wall: float, role: Role | None = None) -> Answer:
        """Renewal (docs/membership.md 2.5): a new certificate like ``cert`` (already checked valid now for the node that
        asked): same role (or ``role``: the owner names an admin), name, tags and lifetime, a new serial, ``not before`` =
        the clock, signed by this node, which must be an admin (a member's) or the owner (an admin's too)."""
        chain = self.admin_chain(net, own_credential, wall)
        role = role or cert.role
        if chain is None or role is Role.OWNER or role is Role.ADMIN and chain[0].role is not Role.OWNER:
            return Declined(EnrolStatus.NOT_ADMIN, "this node may not renew that certificate")
        new = Certificate(role, net.id, cert.subject, self.identity.node_id, self._serial(), int(wall),
                          int(wall) + cert.not_after - cert.not_before, cert.name, cert.tags)
        vouch = [chain[0]] if chain[0].role is Role.ADMIN else []
        return Issued(encode_credential([sign_certificate(self.identity, new), *vouch]), None)

    def receive_mark(self, net: Network, data: bytes, wall: float) -> DropReason | None:
        """Another admin's use mark; the refusal's reason (for the caller to count), or None when taken or known."""
        taken = self.take_mark(net, data, wall)
        return taken if isinstance(taken, DropReason) else None

    def take_mark(self, net: Network, data: bytes, wall: float) -> DropReason | UseMark | None:
        """``receive_mark``, telling a mark that changed what we hold (to pass on) apart: the mark, the refusal's reason,
        or None (known, ours, or its token is over)."""
        try:
            mark = decode_mark(data)
        except WireError as e:
            return e.reason
        if mark.network != net.id or not self.is_admin(net, mark.issuer, wall) or not mark.signature_ok():
            return DropReason.TOKEN_MARK_INVALID
        if wall >= mark.token_not_after:
            return None  # the token is over: nothing to count
        if mark.token_not_after > wall + MAX_TOKEN_LIFETIME + self.skew:
            return DropReason.TOKEN_MARK_INVALID
        seen = self._redeemed.get(mark.token_id)
        if seen is None:
            self.prune(wall)
            if len(self._redeemed) >= self.limit:
                return DropReason.TOKEN_MARK_LIMIT
            seen = self._redeemed[mark.token_id] = _Redeemed(net.id.raw, mark.token_not_after, {}, {})
        if mark.issuer == self.identity.node_id:
            return None  # our own, back to us: our count is what we enrolled
        old = seen.marks.get(mark.issuer.raw)
        if old is None or old.uses < mark.uses:
            seen.marks[mark.issuer.raw] = mark
            return mark
        return None

    def marks(self, network: NetworkId) -> list[UseMark]:
        """Every highest mark held for ``network`` (ours and other admins'), e.g. to spread them."""
        return [m for r in self._redeemed.values() if r.network == network.raw for m in r.marks.values()]

    def prune(self, wall: float) -> None:
        """Forget tokens (issued, redeemed, their marks) whose ``not after`` has passed."""
        for tid in [k for k, t in self._issued.items() if wall >= t.not_after]:
            del self._issued[tid]
        for tid in [k for k, r in self._redeemed.items() if wall >= r.not_after]:
            del self._redeemed[tid]

    def forget(self, network: NetworkId) -> None:
        for tid in [k for k, t in self._issued.items() if t.network == network]:
            del self._issued[tid]
        for tid in [k for k, r in self._redeemed.items() if r.network == network.raw]:
            del self._redeemed[tid]

    # ------------------------------------------------------------------ serialisation
    def export(self, network: NetworkId) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[tuple[bytes, NodeId, bytes], ...]]:
        """What to persist for ``network`` (``<state>/members/<id>.json``, io/memberstate.py): every mark held (signed
        bytes), the tokens we issued (signed bytes), and (token id, node, credential) for each node we enrolled."""
        return (tuple(m.encode() for m in self.marks(network)),
                tuple(t.encode() for t in self._issued.values() if t.network == network),
                tuple((tid, NodeId(n), c) for tid, r in self._redeemed.items() if r.network == network.raw
                      for n, c in r.enrolled.items()))

    def restore(self, net: Network, marks: Iterable[bytes], tokens: Iterable[bytes],
                enrolled: Iterable[tuple[bytes, NodeId, bytes]], wall: float) -> int:
        """Take back what ``export`` gave (after a restart); entries that no longer parse, are not ours to keep or have
        expired are left out. Returns how many were left out."""
        left = 0
        for raw in tokens:
            try:
                t = decode_token(raw)
            except WireError:
                left += 1
                continue
            if t.network == net.id and t.issuer == self.identity.node_id and wall < t.not_after and t.signature_ok():
                self._issued[t.token_id] = t
            else:
                left += 1
        for raw in marks:
            try:
                m = decode_mark(raw)
            except WireError:
                left += 1
                continue
            if m.network == net.id and wall < m.token_not_after and m.signature_ok() and len(self._redeemed) < self.limit:
                r = self._redeemed.setdefault(m.token_id, _Redeemed(net.id.raw, m.token_not_after, {}, {}))
                r.marks[m.issuer.raw] = m
            else:
                left += 1
        for tid, node, credential in enrolled:  # (each of ours made a mark, restored just above)
            if (known := self._redeemed.get(tid)) is not None:
                known.enrolled[node.raw] = credential
            else:
                left += 1
        return left

    # ------------------------------------------------------------------ helpers
    def _uses(self, token_id: bytes) -> int:
        r = self._redeemed.get(token_id)
        if r is None:
            return 0
        others = sum(m.uses for a, m in r.marks.items() if a != self.identity.node_id.raw)
        return len(r.enrolled) + others

    def admin_chain(self, net: Network, own_credential: bytes | None, wall: float) -> tuple[Certificate, ...] | None:
        """Our own chain when it makes us owner or admin of ``net`` now, else None."""
        if net.owner is None or not own_credential:
            return None
        try:
            chain = decode_credential(own_credential)
        except WireError:
            return None
        leaf = chain[0]
        if leaf.subject != self.identity.node_id or leaf.network != net.id or leaf.role is Role.MEMBER:
            return None
        if not leaf.not_before - self.skew <= wall < leaf.not_after + self.skew:
            return None
        return chain

    def is_admin(self, net: Network, node: NodeId, wall: float) -> bool:
        """``node`` is the owner, us, or an admin whose certificate we saw valid (and still is)."""
        if node == net.owner or node == self.identity.node_id:
            return True
        cert = self._admins.get(node.raw)
        return cert is not None and cert.network == net.id and wall < cert.not_after + self.skew

    def _serial(self) -> int:
        return int.from_bytes(self.entropy.random_bytes(8), "little")


def certificate_name_ok(name: str) -> bool:
    """Whether ``name`` may be a certificate's name (what a joiner asks for is dropped otherwise)."""
    try:
        label_bytes(name, "name", MAX_NAME)
    except ValueError:
        return False
    return True

