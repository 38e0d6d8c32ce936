"""Sessions: each peer's session lifecycle (an owned sub-machine; ``mesh.sessions``).

Initiate a handshake (and retry it every ``rekey_timeout``, on the current path, the candidate endpoints
and every relay path; give up after ``rekey_attempt_time``: HandshakeFailed), install what a completed
handshake hands over (``Handshakes`` returns ``Completed``: the peer becomes CONNECTED, PeerConnected or
SessionRekeyed), rekey before ``rekey_after_time``, expire sessions after ``reject_after_time`` (no session
left: DISCONNECTED, PeerDisconnected), and keep the index of live sessions by their remote index (the
encryption audit's view). Each peer's next deadline is computed here (``deadline``) from its sessions,
its stream and its links.

It never holds the ``Mesh``: initiations to send, frames, events, peers to pump and re-arm go into the
``Outbox`` the caller passes. Peer lifecycle moves go through ``Peer.move`` (``PeerState``).
"""

from __future__ import annotations

from typing import Callable, Mapping

from .. import events as ev
from ..config import CoreConfig
from ..discovery.gossip import Gossip
from ..errors import DropReason, WireError
from ..network import Network
from ..outbox import Outbox
from ..peers.links import Links
from ..peers.paths import Address, PathId, ViaRelay
from ..peers.peer import Peer, PeerState
from ..peers.table import PeerTable
from ..wire import frames as fw
from ..wire.enrol import EnrolStatus
from ..wire.packet import PacketType, packet_type
from ..wire.rekey import REKEY
from ..wire.revocations import encode_revocations
from ..wire.tokens import decode_token
from .handshakes import Completed, CookieReply, EnrolAnswer, EnrolReply, Handshakes, TieBreakResend
from .messages import Messages
from .session import Session


class Sessions:
    def __init__(self, config: CoreConfig, hs: Handshakes, table: PeerTable, links: Links, messages: Messages,
                 gossip: Gossip, wall_offset: float, audit: bool) -> None:
        self.cfg = config
        self.hs = hs
        self.table = table
        self.links = links
        self.messages = messages
        self.gossip = gossip
        self.wall_offset = wall_offset
        self.audit = audit
        self._remote: dict[int, list[Session]] = {}  # remote index -> live sessions under it
        self._remote_of: dict[int, int] = {}  # local index -> its session's remote index (forget in O(1))
        # sessions forgotten since the driver last took datagrams: packets already queued under them (a CLOSE
        # sent by leave(), say) must still pass the audit (kept only with the audit on)
        self.retired: list[Session] = []
        self.greet_open: Callable[[Peer, float, Outbox], None] = lambda _p, _now, _out: None  # an open network's first
        # session: Members' migration tells an owner claim (docs/membership.md 7)

    def by_remote(self, remote_index: int) -> list[Session]:
        live = self._remote.get(remote_index, [])
        if not self.retired:
            return live
        return live + [s for s in self.retired if s.remote_index == remote_index]

    def live_count(self) -> int:
        return sum(len(v) for v in self._remote.values())

    def initiate(self, peer: Peer, now: float, out: Outbox) -> None:
        if not peer.endpoints and peer.endpoint is None:
            return
        if peer.state in (PeerState.NEW, PeerState.DISCONNECTED):
            peer.move(PeerState.HANDSHAKING, now)
        if peer.handshake_started_at is None:
            peer.handshake_started_at = now
            peer.handshake_attempts = 0
        peer.handshake_attempts += 1
        dgram = self.hs.initiate(peer, now, now + self.wall_offset)
        targets = [peer.endpoint] if peer.endpoint and peer.handshake_attempts % 3 else []
        targets += [e for e in peer.endpoints if e not in targets]
        targets += [a for a in peer.paths if isinstance(a, ViaRelay) and a not in targets]
        for ep in targets:
            out.datagram(peer, dgram, ep)
        out.arm(peer)

    def deadline(self, peer: Peer) -> float | None:
        cfg = self.cfg
        cands = [peer.pending.sent_at + cfg.rekey_timeout if peer.pending is not None else None,
                 peer.stream.next_deadline()]
        cur = peer.current
        if cur is not None:
            limit = cfg.rekey_after_time if cur.initiator else cfg.reject_after_time - 2 * cfg.rekey_timeout
            if peer.pending is None:
                cands.append(cur.created_at + limit)
                if self._lost_under_session(peer):
                    cands.append(cur.created_at + cfg.rekey_timeout)
            cands.append(cur.created_at + cfg.reject_after_time)
        cands += self.links.deadlines(peer)
        for s in (peer.previous, peer.next):
            if s is not None:
                cands.append(s.created_at + cfg.reject_after_time)
        live = [c for c in cands if c is not None]
        return min(live) if live else None

    def service(self, peer: Peer, now: float, out: Outbox) -> None:
        """The peer's timer, session part: expire old sessions, retry or give up a handshake, rekey."""
        cfg = self.cfg
        expired = [s for s in peer.sessions() if s.older_than(cfg.reject_after_time, now)]
        if expired:
            for s in expired:
                if peer.current is s:
                    peer.current = None
                elif peer.previous is s:
                    peer.previous = None
                else:
                    peer.next = None
            self.forget(peer, [s.local_index for s in expired])
            if peer.current is None and peer.next is None and peer.connected:
                peer.move(PeerState.DISCONNECTED, now)
                out.event(ev.PeerDisconnected(peer.network.id, peer.node, "session expired"))
        # handshake retransmission / give up
        if peer.pending is not None and now >= peer.pending.sent_at + cfg.rekey_timeout:
            started = peer.handshake_started_at or now
            if now >= started + cfg.rekey_attempt_time:
                self.hs.abandon(peer)
                peer.handshake_started_at = None
                if peer.state is PeerState.HANDSHAKING:
                    peer.move(PeerState.DISCONNECTED, now)
                out.event(ev.HandshakeFailed(peer.network.id, peer.node, "no answer to handshake initiations"))
                self.messages.failed(peer, peer.stream.reset(), "peer unreachable", out)
            else:
                self.initiate(peer, now, out)
        # rekey
        cur = peer.current
        if cur is not None and peer.pending is None:
            limit = cfg.rekey_after_time if cur.initiator else cfg.reject_after_time - 2 * cfg.rekey_timeout
            if cur.older_than(limit, now):
                self.initiate(peer, now, out)
            elif self._lost_under_session(peer) and cur.older_than(cfg.rekey_timeout, now):
                self.initiate(peer, now, out)  # no path answers under a live session: the peer may have restarted
        elif cur is None and peer.pending is None and (peer.wanted or peer.stream.queued_frames() and peer.proven):
            # (never towards an unproven peer we did not ask for: a fresh identity that sent one initiation, from
            # an address that may be spoofed, gets no handshakes from us: core/peers/table.py)
            if peer.handshake_started_at is None or now - peer.handshake_started_at < cfg.rekey_attempt_time:
                self.initiate(peer, now, out)

    @staticmethod
    def _lost_under_session(peer: Peer) -> bool:
        """A peer we want, with a session, that no path answers (a restarted peer drops our session's packets
        as unknown; WireGuard starts a new handshake after REKEY_TIMEOUT without an answer, so do we)."""
        return not peer.connected and bool(peer.wanted or peer.stream.queued_frames()) and bool(peer.endpoints or peer.endpoint)

    def decrypt(self, data: bytes, receiver: int, counter: int, now: float) -> tuple[Peer, bytes]:
        """A transport packet for our session ``receiver``: the peer and the plaintext (a packet under a
        responder's ``next`` session confirms it). Raises WireError (a counted drop) otherwise."""
        found = self.table.lookup(receiver)
        peer, session = found if found is not None else (None, None)
        if peer is None or session is None:
            raise WireError(DropReason.UNKNOWN_RECEIVER)
        if session.older_than(self.cfg.reject_after_time, now):
            raise WireError(DropReason.SESSION_EXPIRED)
        plain = session.decrypt(data, counter, now)
        if isinstance(plain, DropReason):
            raise WireError(plain)
        if session is peer.next:
            self.forget(peer, peer.confirm_next())
        if not peer.proven:  # its first transport frame: no longer evicted first, and worth persisting,
            if self.hs.x25519_of(peer.node.raw) is None:  # if its node id is a valid key (the handshake checked
                raise WireError(DropReason.BAD_IDENTITY)  # only that it binds the Noise key: keys.binds_x25519)
            self.table.prove(peer)
        return peer, plain

    def close(self, peer: Peer, reason: str, now: float, out: Outbox) -> None:
        """End every session with the peer (it closed them, or it is being dropped): its stream fails."""
        self.forget(peer, peer.clear_sessions())
        self.hs.abandon(peer)
        self.messages.failed(peer, peer.stream.reset(), reason, out)
        peer.assembler.reset()
        if peer.connected:
            peer.move(PeerState.DISCONNECTED, now)
            out.event(ev.PeerDisconnected(peer.network.id, peer.node, reason))

    def forget(self, peer: Peer, indexes: list[int]) -> None:
        """Sessions (by local index) that are gone: their indexes are free, the audit stops expecting them."""
        self.table.release(*indexes)
        for idx in indexes:
            remote = self._remote_of.pop(idx, None)
            if remote is None or (lst := self._remote.get(remote)) is None:
                continue
            if self.audit:
                self.retired += [s for s in lst if s.local_index == idx]
            lst[:] = [s for s in lst if s.local_index != idx]
            if not lst:
                del self._remote[remote]

    def on_handshake(self, data: bytes, src: PathId, local: Address | None, now: float, networks: Mapping[bytes, Network],
                     out: Outbox) -> Completed | CookieReply | None:
        """A handshake packet. A tie-break resend goes into ``out``; a cookie reply (to a sender we do not know
        yet) and a completed handshake are returned: the caller sends the cookie reply exactly to its sender,
        and a completed handshake's reply before anything sealed in the new session, then calls ``completed``."""
        t = packet_type(data)
        if t is PacketType.HANDSHAKE_INIT:
            match self.hs.on_initiation(data, src, now, networks):
                case CookieReply() as cookie:
                    return cookie
                case TieBreakResend(peer, dst, init):
                    if not isinstance(dst, ViaRelay):
                        peer.add_endpoint(dst)
                    out.datagram(peer, init, dst)
                    return None
                case EnrolReply() as reply:  # no session, no peer: the answer goes back where the question came from
                    out.send(reply.dst, local, reply.data)
                    if reply.mark is not None:  # a use of a token: every connected member hears it (3.4)
                        out.event(ev.InviteRedeemed(reply.network.id, reply.mark.enrolled, reply.mark.uses))
                        for p in self.table.in_network(reply.network.id):
                            if p.connected:
                                out.control(p, "member.marks", reply.mark.encode())
                    return None
                case done:
                    pass
        elif t is PacketType.HANDSHAKE_RESP:
            match self.hs.on_response(data, src, now):
                case EnrolAnswer() as answer:
                    self._enrol_answered(answer, now, out)
                    return None
                case done:
                    pass
        elif t is PacketType.COOKIE_REPLY:
            if (again := self.hs.on_cookie_reply(data, now)) is not None:
                self.initiate(again, now, out)  # with the cookie's mac2 this time
            return None
        else:
            raise WireError(DropReason.UNKNOWN_TYPE, t.name)
        if done is not None:
            done.peer.local = local
            done.peer.stats.bytes_in += len(data)
        return done

    def _marks(self, peer: Peer) -> bytes:
        return b"".join(m.encode() for m in self.hs.enrolment.marks(peer.network.id))

    def on_marks(self, peer: Peer, name: str, body: bytes, now: float, out: Outbox) -> None:
        """Use marks from a member: ``member.marks`` pushed after a redemption, ``member.marks.sync`` (maybe empty) the
        initiator's when a session first comes up, answered with ours (over the session: a reliable message, so a
        spoofed source gets no more than the stream's window). Marks new here are passed on to our other connected
        members, so a mark spreads to every member reachable through sessions (3.4), not only the redeemer's peers."""
        if body and (fresh := self.hs.receive_mark(peer.network, body, now)):
            for p in self.table.in_network(peer.network.id):
                if p.connected and p is not peer:
                    out.control(p, "member.marks", fresh)
        if name == "member.marks.sync" and peer.network.owner is not None and (ours := self._marks(peer)):
            out.control(peer, "member.marks", ours)

    def _enrol_answered(self, answer: EnrolAnswer, now: float, out: Outbox) -> None:
        """An admin answered our enrolment: with a credential, start a real handshake at once; refused, stop and say
        why (``EnrolmentRefused`` names the refusal: used, expired, revoked, ...)."""
        peer, status = answer.peer, answer.status
        peer.handshake_started_at = None
        if status is EnrolStatus.ISSUED:
            out.event(ev.Enrolled(peer.network.id, peer.node))
            self.initiate(peer, now, out)
            return
        peer.wanted = False  # nothing to talk about without a certificate
        if peer.state is PeerState.HANDSHAKING:
            peer.move(PeerState.DISCONNECTED, now)
        asking = self.hs.credentials.enrolling(peer.network.id)
        inviter = decode_token(asking[0]).issuer if asking is not None else None
        if status in (EnrolStatus.NOT_ADMIN, EnrolStatus.NOT_ADMIN_SIGNED) and inviter is not None and peer.node != inviter:
            self.hs.counters.inc("enrol.declined_by_other")  # another admin the invite named (it may not know the
            return  # inviter as an admin yet): not the inviter's word; the inviter or another may still enrol us
        if status is not EnrolStatus.NOT_ADMIN:  # (another admin may still take the token; for the rest it is final)
            self.hs.credentials.enrol(peer.network.id, None)
        out.event(ev.EnrolmentRefused(peer.network.id, peer.node, status.word, status.fix))

    def completed(self, done: Completed, now: float, out: Outbox) -> None:
        """A handshake completed (the caller already sent its reply, which must go before anything sealed)."""
        peer, session = done.peer, done.session
        if done.dropped:
            self.forget(peer, [s.local_index for s in done.dropped])
        self._remote.setdefault(session.remote_index, []).append(session)
        self._remote_of[session.local_index] = session.remote_index
        peer.handshake_started_at = None
        if (rec := self.gossip.record_of(peer.network.id, peer.node)) is not None and rec.features != peer.features:
            peer.set_features(rec.features)  # (its record came before the session: AES-256-GCM towards it)
        self.links.heard(peer, done.src, now, out)
        if peer.probe_at is None:
            peer.probe_at = now + self.cfg.heartbeat_active
        if done.restarted:
            self.messages.failed(peer, peer.stream.reset(), "peer restarted", out)
            peer.assembler.reset()
            out.event(ev.PeerRestarted(peer.network.id, peer.node))
        if not peer.connected:
            self.links.connected(peer, now, out)
            out.event(ev.PeerConnected(peer.network.id, peer.node, done.src, session.initiator))
            if peer.proven or session.initiator:  # a newcomer learns the network at once; not an unproven
                self.gossip.greet(peer, out)  # initiator (a spoofed source would get our records): its own sync
            if session.initiator and peer.network.owner is not None:  # token uses each side may lack (3.4)
                out.control(peer, "member.marks.sync", self._marks(peer))
            if peer.network.owner is not None and (revs := list(self.hs.credentials.revocations(peer.network))):
                out.control(peer, "member.revoked", encode_revocations([r.encode() for r in revs]))  # both sides (5)
            if peer.network.owner is not None and (rekey := self.hs.credentials.rekey(peer.network.id)) is not None:
                out.control(peer, REKEY, rekey)  # the key after a rotation, to a member that was away (6)
            if peer.network.owner is None:
                self.greet_open(peer, now, out)
        else:
            out.event(ev.SessionRekeyed(peer.network.id, peer.node))
        if session.initiator:
            # confirm the session to the responder at once (it may not send until it hears from us)
            out.frame(peer, fw.KEEPALIVE_FRAME)
        # either side may have messages queued while there was no session: send them now, not at the next timer
        out.pump(peer)
        out.arm(peer)
