"""The handshake engine: builds and answers Noise_IKpsk2 handshakes wrapped in mac1/mac2.

It decides nothing about *when* to handshake (that is the mesh's timer logic) and never raises on remote
input: each refusal is counted under a ``DropReason`` and ``None`` is returned.

Responder order of checks, cheapest first: length and header; mac1 under each of our networks' keys, then
under the previous keys of a network whose key was rotated, while their grace lasts (``KeyRing``: the handshake
goes on under the key that matched; a non-member fails here, before any Diffie-Hellman); cookie (mac2) when
under load (not through a relay: a relay path has no address to prove, and its relay is a member we hold a session with); the per-source (or
per-relay) rate limit when under load; the global DH budget (``handshake_dh_per_second``: when it runs dry
the responder is under load for everyone), with a reserve (``handshake_dh_reserved_per_second``) that only an
initiation from the address of a peer proven by authenticated traffic may spend, so a flood of fresh
identities cannot starve the rekeys of peers we talk to; then Noise (two DH); the claimed identity against
the static key Noise authenticated (``keys.binds_x25519``: two multiplications; whether the node id is a
valid key at all costs ~1.5 ms, so ``Sessions.decrypt`` checks it once, when the peer first proves itself);
the timestamp against the greatest seen from that peer (replay); and the simultaneous-initiation tie-break.

Owned networks (docs/membership.md, 2.4) add two checks: right after mac1, an initiation without the
credential flag is dropped (``cert_missing``) before any DH; after Noise and the identity, the credential is
checked (``Credentials.check``: a ``cert_*`` reason) before the peer table, the replay check or anything else
keeps state. The initiator checks the responder's credential before it installs the session. Open networks
send and accept exactly what they did before.

Enrolment (docs/membership.md 3.3): a joiner holding an invite token but no credential sends an initiation flagged
``ENROL`` (1,024 bytes). The responder drops it before any DH unless it is an admin of the network
(``enrol_not_admin``) and the enrolment budget, global and per source, allows it (``enrol_rate``); then the DH
budget and Noise as for any initiation; then ``Enrolment.redeem`` answers in message 2 (a credential, or the
refusal's status). Neither side installs a session and the responder keeps no per-peer state. The joiner checks
the credential it got before it keeps it.
"""

from __future__ import annotations

import hmac
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

from ..channels import ReassemblyBudget
from ..config import CoreConfig
from ..counters import Counters
from ..entropy import Entropy
from ..errors import DropReason, UsageError, WireError
from ..ids import NodeId
from ..keys import Identity, binds_x25519, ed25519_public_to_x25519
from ..member.check import Accepted, Refused
from ..member.credentials import Credentials
from ..member.enrolment import Enrolment, Issued
from ..network import Network
from ..noise.cookie import CookieJar, RateLimiter, TokenBucket, open_cookie
from ..noise.handshake import InitiatorHandshake, ResponderHandshake
from ..noise.symmetric import NoiseError
from ..peers.paths import Address, PathId, ViaRelay, path_key
from ..peers.peer import Peer, PendingInitiation
from ..peers.table import PeerTable
from ..wire import enrol as ew
from ..wire import handshake as hw
from ..wire.enrol import EnrolStatus
from ..wire.tokens import MARK_LEN, UseMark
from .keyring import KeyRing
from .session import Session

PROLOGUE = b"omerta-mesh/1"
_INC = struct.Struct("<Q")


@dataclass(slots=True)
class Completed:
    """A handshake finished: ``session`` is installed on ``peer``; ``reply`` (if any) goes to ``src``."""

    peer: Peer
    session: Session
    reply: bytes | None
    src: PathId
    restarted: bool  # the peer's incarnation changed since we last knew it
    first: bool  # the peer had no session before
    dropped: list[Session]  # sessions this handshake pushed out of the peer's slots (the caller forgets them)


@dataclass(frozen=True, slots=True)
class CookieReply:
    """Under load: send ``data`` (a cookie reply) to ``dst``, a sender we do not know yet (never a relay path:
    relayed initiations need no cookie)."""

    dst: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class TieBreakResend:
    """Both sides initiated and we stay initiator: send our initiation ``data`` to ``peer`` at ``dst`` (where
    its initiation came from: our own may be going to an address it no longer has)."""

    peer: Peer
    dst: PathId
    data: bytes


@dataclass(frozen=True, slots=True)
class EnrolReply:
    """We answered an enrolment: send ``data`` to ``dst``; ``mark`` (a token use) is for the other admins."""

    network: Network
    dst: Address
    data: bytes
    mark: UseMark | None


@dataclass(frozen=True, slots=True)
class EnrolAnswer:
    """An admin answered our enrolment (the pending initiation is abandoned, no session): ``status`` ISSUED means
    our credential for the network is set."""

    peer: Peer
    status: EnrolStatus


InitiationResult = Completed | CookieReply | TieBreakResend | EnrolReply | None


class Handshakes:
    def __init__(
        self,
        identity: Identity,
        config: CoreConfig,
        entropy: Entropy,
        counters: Counters,
        table: PeerTable,
        incarnation: int,
        budget: ReassemblyBudget | None = None,
        wall_offset: float = 0.0,
        credentials: Credentials | None = None,
    ) -> None:
        self.identity = identity
        self.budget = budget or ReassemblyBudget(config.reassembly_per_peer_bytes, config.reassembly_total_bytes)
        self.cfg = config
        self.entropy = entropy
        self.counters = counters
        self.table = table
        self.incarnation = incarnation
        self.cookies = CookieJar(config, entropy)
        self.limiter = RateLimiter(config.handshake_rate_per_source, config.handshake_burst_per_source, config.rate_limit_table_size)
        self.dh_budget = TokenBucket(config.handshake_dh_per_second, config.handshake_dh_burst)
        self.dh_reserve = TokenBucket(config.handshake_dh_reserved_per_second, config.handshake_dh_reserved_per_second)
        self._sources: OrderedDict[tuple[str, int], tuple[bytes, bytes]] = OrderedDict()  # address -> peer key, bounded
        self._x_cache: dict[bytes, bytes] = {}
        self._s_priv = identity.x25519_private
        self.keys = KeyRing(identity.public)  # per network: the current key, and previous ones during a rotation's grace
        self.credentials = credentials or Credentials(config, wall_offset)  # owned networks: ours, and the check of theirs
        self.enrolment = Enrolment(identity, config, entropy)  # admins: invite tokens issued and redeemed
        self.enrol_budget = TokenBucket(config.enrol_per_second, config.enrol_burst)
        self.enrol_limiter = RateLimiter(config.enrol_per_source, 2, config.rate_limit_table_size)

    def add_network(self, net: Network) -> None:
        self.keys.set(net.id.raw, net.key)

    def remove_network(self, net: Network) -> None:
        self.keys.remove(net.id.raw)

    def x25519_of(self, ed_public: bytes) -> bytes | None:
        """The X25519 form of a valid Ed25519 key, None for a key no honest node has (both remembered: the
        check is ~1.5 ms of pure-Python curve arithmetic)."""
        x = self._x_cache.get(ed_public)
        if x is None:
            try:
                x = ed25519_public_to_x25519(ed_public)
            except ValueError:
                x = b""
            if len(self._x_cache) > 8192:
                self._x_cache.clear()
            self._x_cache[ed_public] = x
        return x or None

    def admit(self, net: Network, node: NodeId, x25519: bytes, proven: bool = False) -> Peer:
        """The peer (network, node), added to the table if new (``proven``: we add it ourselves; the table may
        evict others to make room: core/peers/table.py). Raises UsageError when the network is full."""
        peer = self.table.get(net.id, node)
        if peer is None:
            peer = self.table.add(Peer(net, node, x25519, self.cfg, self.budget, proven=proven))
        elif proven:
            self.table.prove(peer)
        return peer

    # ------------------------------------------------------------------ initiator
    def initiate(self, peer: Peer, now: float, wall: float) -> bytes:
        """Start (or restart) our handshake with ``peer``; returns the initiation datagram."""
        if peer.pending is not None:
            self.table.release(peer.pending.local_index)
        noise = InitiatorHandshake(self._s_priv, peer.static_x25519, peer.network.key, PROLOGUE, self.entropy.random_bytes(32))
        payload, flags = self._with_ours(peer.network, self.identity.public + hw.encode_timestamp(wall) + _INC.pack(self.incarnation))
        msg1 = noise.write_message_1(payload)
        idx = self.table.new_index(peer)
        cookie = peer.cookie if now - peer.cookie_at < self.cfg.cookie_secret_lifetime else None
        dgram, mac1 = hw.encode_init(idx, msg1, peer.network.mac1_key(peer.node.raw), cookie, flags)
        peer.pending = PendingInitiation(idx, noise, dgram, mac1, now)
        self.counters.inc("handshake.initiations_sent")
        return dgram

    def abandon(self, peer: Peer) -> None:
        if peer.pending is not None:
            self.table.release(peer.pending.local_index)
            peer.pending = None

    def on_response(self, data: bytes, src: PathId, now: float) -> Completed | EnrolAnswer | None:
        try:
            resp = hw.decode_resp(data)
        except WireError as e:
            self.counters.drop(e.reason)
            return None
        found = self.table.lookup(resp.receiver)
        if found is None or found[1] is not None or found[0].pending is None:
            self.counters.drop(DropReason.UNKNOWN_RECEIVER)
            return None
        peer = found[0]
        pending = peer.pending
        assert pending is not None
        if not any(hw.mac_ok(a.mac1, resp.mac1_input, resp.mac1) for a in self.keys.of(peer.network.id.raw, now)):
            self.counters.drop(DropReason.BAD_MAC1)
            return None
        enrolling = bool(pending.datagram[2] & hw.FLAG_ENROL)
        if enrolling != bool(resp.flags & hw.FLAG_ENROL):  # an enrolment is answered as one, and nothing else is
            self.counters.drop(DropReason.BAD_RESERVED)
            return None
        if not enrolling and self._flags_refused(peer.network, resp.flags):
            return None
        noise: InitiatorHandshake = pending.noise  # type: ignore[assignment]
        try:
            payload = noise.read_message_2(resp.noise)
        except NoiseError:
            self.counters.drop(DropReason.HANDSHAKE_FAILED)
            self.abandon(peer)  # a failed Noise state cannot be reused
            return None
        if enrolling:
            return self._enrol_answer(peer, payload[hw.RESP_PAYLOAD_LEN :], now)
        if not self._admitted(peer.network, peer.node, payload, hw.RESP_PAYLOAD_LEN, resp.flags, now):
            self.abandon(peer)  # (the Noise state is spent)
            return None
        (incarnation,) = _INC.unpack(payload[: hw.INCARNATION_LEN])
        send_key, recv_key = noise.split()
        peer.pending = None
        session = Session(
            local_index=pending.local_index,
            remote_index=resp.sender,
            send_key=send_key,
            recv_key=recv_key,
            initiator=True,
            created_at=now,
            replay_window=self.cfg.replay_window,
        )
        return self._complete(peer, session, None, src, incarnation, now)

    def on_cookie_reply(self, data: bytes, now: float) -> Peer | None:
        """Keep the cookie; the peer to initiate again at once when its pending initiation carried no mac2 (so
        a cookie costs one round trip, not a retransmit timeout, and a peer never resends twice for cookies)."""
        try:
            reply = hw.decode_cookie_reply(data)
        except WireError as e:
            self.counters.drop(e.reason)
            return None
        found = self.table.lookup(reply.receiver)
        if found is None or found[0].pending is None or found[1] is not None:
            self.counters.drop(DropReason.UNKNOWN_RECEIVER)
            return None
        peer, pending = found[0], found[0].pending
        assert pending is not None
        cookie = open_cookie(peer.network.cookie_key(peer.node.raw), reply.nonce, reply.encrypted_cookie, pending.mac1)
        if cookie is None:
            self.counters.drop(DropReason.BAD_COOKIE_REPLY)
            return None
        peer.cookie, peer.cookie_at = cookie, now
        self.counters.inc("handshake.cookies_received")
        return peer if pending.datagram[-hw.MAC_LEN :] == bytes(hw.MAC_LEN) else None

    # ------------------------------------------------------------------ responder
    def on_initiation(
        self,
        data: bytes,
        src: PathId,
        now: float,
        networks: Mapping[bytes, Network],
    ) -> InitiationResult:
        """An initiation from ``src``: the completed session (its response to send back), a cookie reply or a
        tie-break resend for the caller to send, or None (dropped and counted)."""
        try:
            init = hw.decode_init(data)
        except WireError as e:
            self.counters.drop(e.reason)
            return None
        mac1_input = init.mac1_input
        net, psk = None, b""
        for nid, a in self.keys.accepted(now):  # the current keys, then previous ones in a rotation's grace
            if hw.mac_ok(a.mac1, mac1_input, init.mac1):
                net, psk = networks.get(nid), a.key
                break
        if net is None:
            self.counters.drop(DropReason.BAD_MAC1)
            return None
        if psk != net.key:
            self.counters.inc("handshake.previous_key")
        if init.flags & hw.FLAG_ENROL and net.owner is not None:
            return self._enrol(init, net, psk, src, now)
        if self._flags_refused(net, init.flags):  # an owned network's initiation without a credential: no DH
            return None
        cj = self.cookies
        cj.note_initiation(now)
        if cj.under_load(now):
            cookie = cj.cookie(path_key(src), now)
            if not isinstance(src, ViaRelay) and not hmac.compare_digest(hw.mac(cookie, init.mac2_input), init.mac2):
                nonce, sealed = cj.seal(hw.cookie_key(psk, self.identity.public), cookie, init.mac1)
                self.counters.drop(DropReason.COOKIE_REQUIRED)
                return CookieReply(src, hw.encode_cookie_reply(init.sender, nonce, sealed))
            if not self.limiter.allow(path_key(src)[0], now):
                self.counters.drop(DropReason.RATE_LIMITED)
                return None
        if not self.dh_budget.take(now) and not (self._proven_source(src) and self.dh_reserve.take(now)):
            cj.mark_load(now)  # however many sources: cookies for everyone, and no DH this moment
            self.counters.drop(DropReason.DH_BUDGET)
            return None
        self.counters.inc("handshake.dh_performed")  # from here on the initiation costs Diffie-Hellman
        noise = ResponderHandshake(self._s_priv, psk, PROLOGUE, self.entropy.random_bytes(32))
        try:
            payload = noise.read_message_1(init.noise)
        except NoiseError:
            self.counters.drop(DropReason.HANDSHAKE_FAILED)
            return None
        ed_pub = payload[:32]
        timestamp = payload[32 : 32 + hw.TIMESTAMP_LEN]
        (incarnation,) = _INC.unpack(payload[32 + hw.TIMESTAMP_LEN : hw.INIT_PAYLOAD_LEN])
        x = noise.remote_static
        if not binds_x25519(ed_pub, x):  # the key's validity is checked once the peer proves itself (Sessions)
            self.counters.drop(DropReason.HANDSHAKE_FAILED)
            return None
        node = NodeId(ed_pub)
        if node == self.identity.node_id:
            self.counters.drop(DropReason.SELF)
            return None
        if not self._admitted(net, node, payload, hw.INIT_PAYLOAD_LEN, init.flags, now):  # before any per-peer state
            return None
        try:
            peer = self.admit(net, node, x)
        except UsageError:  # the network is full
            self.counters.drop(DropReason.UNKNOWN_PEER)
            return None
        if timestamp <= peer.greatest_timestamp:
            self.counters.drop(DropReason.HANDSHAKE_REPLAY)
            return None
        if peer.pending is not None:
            # Both sides initiated at once. The larger node id stays initiator; the smaller answers. Unless the peer's
            # came under a previous key: it does not know the current one, and could never answer ours.
            if self.identity.public > node.raw and psk == net.key:
                # Our initiation may be going to an address the peer no longer has (it restarted on
                # another port, say): send it to where the peer's came from too, so the race resolves.
                self.counters.drop(DropReason.HANDSHAKE_TIE_BREAK)
                return TieBreakResend(peer, src, peer.pending.datagram)
            self.abandon(peer)
        peer.greatest_timestamp = timestamp
        resp_payload, resp_flags = self._with_ours(net, _INC.pack(self.incarnation))
        msg2 = noise.write_message_2(resp_payload)
        send_key, recv_key = noise.split()
        idx = self.table.new_index(peer)
        session = Session(
            local_index=idx,
            remote_index=init.sender,
            send_key=send_key,
            recv_key=recv_key,
            initiator=False,
            created_at=now,
            replay_window=self.cfg.replay_window,
        )
        ours = peer.cookie if now - peer.cookie_at < self.cfg.cookie_secret_lifetime else None
        reply, _ = hw.encode_resp(idx, init.sender, msg2, hw.mac1_key(psk, node.raw), ours, resp_flags)
        self.counters.inc("handshake.responses_sent")
        return self._complete(peer, session, reply, src, incarnation, now)

    # ------------------------------------------------------------------ owned networks (docs/membership.md)
    def _with_ours(self, net: Network, payload: bytes) -> tuple[bytes, int]:
        """``payload`` with our credential for ``net`` when it is owned and we hold one, and the header flags; with
        the enrolment request instead when we hold none but an invite token (only initiations ask for that)."""
        if net.owner is None:
            return payload, 0
        ours = self.credentials.own(net.id)
        if ours:
            return hw.with_credential(payload, ours), hw.FLAG_CRED
        asking = self.credentials.enrolling(net.id) if len(payload) == hw.INIT_PAYLOAD_LEN else None
        if asking is not None:
            return payload + ew.encode_request(asking[0], asking[1], hw.ENROL_REQUEST_LEN), hw.FLAG_ENROL
        return payload, 0

    def _enrol(self, init: hw.HandshakeInit, net: Network, psk: bytes, src: PathId, now: float) -> EnrolReply | None:
        """An enrolment initiation (mac1 checked): refused before any DH unless we are an admin of ``net`` and the
        enrolment and DH budgets allow it; answered with a credential or a refusal's status, no session kept."""
        wall = now + self.credentials.wall_offset
        own = self.credentials.own(net.id)
        if self.enrolment.admin_chain(net, own, wall) is None:
            self.counters.drop(DropReason.ENROL_NOT_ADMIN)
            return None
        if isinstance(src, ViaRelay):  # a joiner has no session with any relay: not an enrolment of ours to answer
            self.counters.drop(DropReason.ENROL_NOT_ADMIN)
            return None
        if not self.enrol_limiter.allow(path_key(src)[0], now) or not self.enrol_budget.take(now):
            self.counters.drop(DropReason.ENROL_RATE)
            return None
        if not self.dh_budget.take(now):
            self.cookies.mark_load(now)
            self.counters.drop(DropReason.DH_BUDGET)
            return None
        self.counters.inc("handshake.dh_performed")
        noise = ResponderHandshake(self._s_priv, psk, PROLOGUE, self.entropy.random_bytes(32))
        try:
            payload = noise.read_message_1(init.noise)
            token, name = ew.decode_request(payload[hw.INIT_PAYLOAD_LEN :])
        except NoiseError:
            self.counters.drop(DropReason.HANDSHAKE_FAILED)
            return None
        except WireError as e:
            self.counters.drop(e.reason)
            return None
        node = NodeId(payload[:32])
        if not binds_x25519(node.raw, noise.remote_static) or node == self.identity.node_id:
            self.counters.drop(DropReason.HANDSHAKE_FAILED)
            return None
        answer = self.enrolment.redeem(net, own, self.credentials.revocations(net), node, token, name, wall)
        if isinstance(answer, Issued):
            body, mark = ew.encode_answer(EnrolStatus.ISSUED, answer.credential), answer.mark
        else:
            body, mark = ew.encode_answer(answer.status), None
        self.counters.inc("enrol.issued" if isinstance(answer, Issued) else "enrol.refused." + answer.status.word.replace(" ", "_"))
        msg2 = noise.write_message_2(_INC.pack(self.incarnation) + body)  # (the keys it would split into are dropped)
        reply, _ = hw.encode_resp(0, init.sender, msg2, hw.mac1_key(psk, node.raw), None, hw.FLAG_ENROL)
        return EnrolReply(net, src, reply, mark)

    def receive_mark(self, net: Network, body: bytes, now: float) -> bytes:
        """Use marks (``member.marks``: one or more, MARK_LEN bytes each) from a member of ``net``: each kept when an
        admin signed it, else counted. Returns the marks that were new here (to pass on), encoded as they came."""
        if net.owner is None or not body or len(body) % MARK_LEN or len(body) > MARK_LEN * self.cfg.max_token_marks:
            self.counters.drop(DropReason.TOKEN_MARK_INVALID)
            return b""
        fresh = []
        for at in range(0, len(body), MARK_LEN):
            taken = self.enrolment.take_mark(net, body[at : at + MARK_LEN], now + self.credentials.wall_offset)
            if isinstance(taken, DropReason):
                self.counters.drop(taken)
            elif taken is not None:
                fresh.append(body[at : at + MARK_LEN])
        return b"".join(fresh)

    def _enrol_answer(self, peer: Peer, answer: bytes, now: float) -> EnrolAnswer | None:
        """The admin's answer to our enrolment: keep a credential that checks out, or say why it was refused."""
        self.abandon(peer)  # no session follows an enrolment
        try:
            status, credential = ew.decode_answer(answer)
        except WireError as e:
            self.counters.drop(e.reason)
            return None
        net = peer.network
        if status is EnrolStatus.ISSUED:
            verdict = self.credentials.check(net, self.identity.node_id, credential, now)
            if isinstance(verdict, Refused):
                self.counters.drop(verdict.reason)
                return None
            self.credentials.set_own(net.id, credential)
            self.credentials.enrol(net.id, None)
        self.counters.inc(f"enrol.answers.{status.word.replace(' ', '_')}")
        return EnrolAnswer(peer, status)

    def _flags_refused(self, net: Network, flags: int) -> bool:
        """Counted refusal of a handshake whose flags do not fit the network: open networks take none, owned ones
        need the credential."""
        if net.owner is None and flags:
            self.counters.drop(DropReason.BAD_RESERVED)
            return True
        if net.owner is not None and not flags & hw.FLAG_CRED:
            self.counters.drop(DropReason.CERT_MISSING)
            return True
        return False

    def _admitted(self, net: Network, node: NodeId, payload: bytes, base: int, flags: int, now: float) -> bool:
        """Whether ``node``'s credential (after ``base`` bytes of ``payload``) admits it to ``net``; a refusal is
        counted. Open networks admit everyone who holds the key, as before."""
        if net.owner is None:
            return True
        try:
            _, credential = hw.split_credential(payload, base)
        except WireError as e:
            self.counters.drop(e.reason)
            return False
        verdict = self.credentials.check(net, node, credential, now)
        if isinstance(verdict, Refused):
            self.counters.drop(verdict.reason)
            return False
        if isinstance(verdict, Accepted):  # an admin's certificate, seen valid: tokens and marks it signs count
            self.enrolment.note_admin(verdict.issuer_cert or verdict.cert)
        return True

    def _proven_source(self, src: PathId) -> bool:
        """``src`` is where a handshake of a peer still in the table came from, and that peer has since sent
        authenticated transport traffic (a rekey of someone we talk to, not a fresh identity)."""
        key = self._sources.get(path_key(src))
        peer = self.table.by_key(key) if key is not None else None
        return peer is not None and peer.stats.packets_in > 0  # (only a decrypted transport frame counts there)

    def _complete(self, peer: Peer, session: Session, reply: bytes | None, src: PathId, incarnation: int, now: float) -> Completed:
        key = path_key(src)
        self._sources.pop(key, None)
        self._sources[key] = peer.key  # (a key, not the peer: an evicted peer must not stay in memory here)
        if len(self._sources) > self.cfg.rate_limit_table_size:
            self._sources.popitem(last=False)
        restarted = peer.remote_incarnation is not None and peer.remote_incarnation != incarnation
        first = peer.current is None and peer.next is None
        before = peer.sessions()
        if restarted:
            self.table.release(*peer.clear_sessions())
        peer.remote_incarnation = incarnation
        self.table.release(*peer.install(session))
        self.table.bind_index(session.local_index, peer, session)
        peer.stats.handshakes += 1
        peer.stats.last_handshake_at = now
        self.counters.inc("handshake.completed")
        live = peer.sessions()
        dropped = [s for s in before if all(s is not x for x in live)]
        return Completed(peer, session, reply, src, restarted, first or restarted, dropped)
