"""Links: a peer's paths, probes, heartbeat and path choice (an owned sub-machine; ``mesh.links``).

* Every peer has paths (``peers/paths.py``): direct addresses and relays. The session is path-agnostic,
  so switching paths is only a matter of where the next datagram goes.
* Heartbeat probes (PING/PONG) on the current path every ``heartbeat_active`` seconds while traffic
  flows, ``heartbeat_idle`` otherwise; they measure RTT, jitter and loss and keep NAT mappings open. A
  PONG tells us the address our PING came from: that is how NAT mappings are observed.
* After every piece of evidence the pure policy ``paths.choose`` picks the path. A direct path whose probe
  goes unanswered (DOWN) loses to a relay; a relayed peer keeps trying to go direct.
* Relaying lives in ``core/relay/`` (client: relay paths and wrapping; server: forwarding and quotas). A relay
  path is probed end to end like any path. When no path answers (every path DOWN and nothing heard for
  the probe timeout), the peer is UNREACHABLE (``PeerState``): PeerDisconnected, its reliable stream holds (no
  give-up, no retransmissions) and all its paths keep being probed; the first answer brings it back
  (CONNECTED, PeerConnected, the stream resends).
* Hole punching is its own sub-machine (``core/nat/punch.py``); Links feeds it path changes and heartbeat
  timers, with the same ``Outbox``.

Like every sub-machine, ``Links`` never holds the ``Mesh``: its methods take inputs and ``now`` and put what
should happen into the ``Outbox`` the caller passes (sealed probe and resend frames, datagrams via a relay,
events, peers to re-arm or to pump), and return small results (a probe id; whether our NAT view changed).
"""

from __future__ import annotations

from .. import events as ev
from ..config import CoreConfig
from ..counters import Counters
from ..nat.classify import NatObserver, Observation
from ..nat.punch import OursFn, Puncher
from ..outbox import Outbox
from ..relay.client import RelayClient
from ..wire import frames as fw
from ..wire.packet import TRANSPORT_OVERHEAD
from .paths import FRESHNESS, Address, Path, PathId, PathKind, PathState, ViaRelay, choose, evidence, path_key, path_state
from .peer import Peer, PeerState
from .pmtu import PathMtu, padding

OUTAGE = 3  # probes lost in a row that make an outage (not loss) of a path


class Links:
    def __init__(self, config: CoreConfig, counters: Counters, relay_client: RelayClient, punch: Puncher,
                 nat: NatObserver) -> None:
        self.cfg = config
        self.counters = counters
        self.relay_client = relay_client
        self.punch = punch
        self.nat = nat
        self._next_probe = 1
        # probe id -> (peer key, sent at, path, user): the key, not the Peer, so a peer dropped from the table is
        # not kept in memory by its probes (a flood of evicted fresh identities held thousands)
        self._probes: dict[int, tuple[tuple[bytes, bytes], float, PathId, bool]] = {}

    # ------------------------------------------------------------------ paths
    def path(self, peer: Peer, addr: PathId, now: float) -> Path:
        """The path ``addr`` to ``peer``, made if new (evicting the stalest one from a full table)."""
        p = peer.paths.get(addr)
        if p is None:
            if len(peer.paths) >= self.cfg.max_paths_per_peer:
                victims = [q for q in peer.paths.values() if q.addr != peer.endpoint]
                oldest = min(victims, key=lambda q: (max(q.last_rx or 0, q.last_pong or 0, q.created_at), path_key(q.addr)))
                del peer.paths[oldest.addr]
            p = peer.paths[addr] = Path(addr, now)
        return p

    def heard_on_current(self, peer: Peer, src: PathId, now: float) -> bool:
        """The per-packet fast path of ``heard``: a packet on the current path only makes it fresher (True);
        False: call ``heard``."""
        p = peer.paths.get(src) if src == peer.endpoint else None
        if p is None:
            return False
        p.last_rx = now
        return True

    def heard(self, peer: Peer, src: PathId, now: float, out: Outbox) -> None:
        """An authenticated packet from the peer arrived via ``src``."""
        p = peer.paths.get(src)
        new = p is None
        # a full path table evicts a path for this one: probing it at once would feed a storm when more
        # paths than the table holds answer (two sequential NATs punched in lock step open dozens)
        full = new and len(peer.paths) >= self.cfg.max_paths_per_peer
        p = self.path(peer, src, now)
        p.last_rx = now
        stale = src != peer.endpoint and (p.last_pong is None or now >= p.last_pong + self.cfg.heartbeat_active)
        if not full and (new or stale):
            self.probe(peer, src, now, out)  # confirm the new path at once (roaming, punching)
        if peer.endpoint is None:
            self._switch(peer, src, "first path heard from", now, out)
        elif src != peer.endpoint:
            # (a packet on the current path only makes it fresher: it cannot lose the choice, so the
            # per-packet path skips the decision; the heartbeat timer decides on that path's silence)
            self.reselect(peer, now, out)
            cur = peer.paths.get(peer.endpoint)
            if cur is not None and not isinstance(src, ViaRelay) and peer.probe_at is not None:
                # the peer's traffic comes another way (roaming): decide again the moment the current path
                # stops counting as fresh, not at whatever heartbeat or retransmission comes next
                at = evidence(cur) + FRESHNESS
                if now < at < peer.probe_at:
                    peer.probe_at = at

    def reselect(self, peer: Peer, now: float, out: Outbox) -> None:
        c = choose(peer.paths, peer.endpoint, now, self.relay_client.relay_up(peer, now))
        reason = c.reason
        old = peer.paths.get(peer.endpoint) if peer.endpoint is not None else None
        if old is not None and isinstance(old.addr, ViaRelay) and path_state(old, now) is PathState.DOWN:
            reason = f"relay {old.addr.node[:8]} stopped answering; {reason}"
        if c.addr is not None and c.addr != peer.endpoint:
            self._switch(peer, c.addr, reason, now, out)
        else:
            peer.path_reason = reason
        self._reachability(peer, c.live, peer.paths.get(c.addr) if c.addr is not None else None, reason, now, out)

    def _reachability(self, peer: Peer, live: bool, chosen: Path | None, reason: str, now: float, out: Outbox) -> None:
        """No path answers: the peer is UNREACHABLE until one does (see the module docstring). One lost
        probe makes a path DOWN; the peer counts as unreachable after a second one (sent at once)."""
        if not live and peer.state is PeerState.CONNECTED and peer.sendable_session(now) is not None:
            if chosen is not None and chosen.lost_since_pong < 2:
                if not chosen.pending and peer.probe_at is not None and peer.probe_at > now:
                    peer.probe_at = now  # confirm at once rather than at the next (idle) heartbeat
                return
            newest = max((evidence(p) for p in peer.paths.values()), default=float("-inf"))
            if newest > now - self.cfg.probe_timeout:
                return  # its traffic still arrives (a lossy path, not a dead one)
            peer.move(PeerState.UNREACHABLE, now)
            peer.stream.hold(now)
            peer.probe_at = now  # from now on every path is probed at the active heartbeat (heartbeat)
            self.counters.inc("peers.unreachable")
            out.event(ev.PeerDisconnected(peer.network.id, peer.node, f"no path answers ({reason})"))
        elif live and peer.state is PeerState.UNREACHABLE and peer.endpoint is not None \
                and peer.sendable_session(now) is not None:
            self.connected(peer, now, out)
            s = peer.current or peer.next
            out.event(ev.PeerConnected(peer.network.id, peer.node, peer.endpoint, bool(s and s.initiator)))

    def connected(self, peer: Peer, now: float, out: Outbox) -> None:
        """The peer is CONNECTED (a handshake completed, or a path answers again); coming back from
        UNREACHABLE, its held stream resends everything in flight and sends what queued."""
        if peer.move(PeerState.CONNECTED, now) is PeerState.UNREACHABLE or peer.resend_after is not None:
            peer.resend_after = None  # (a handshake through the relay we were waiting on proves it too)
            peer.stream.release(now)
            for f in peer.stream.resend_all(now):
                out.frame(peer, f)
            out.pump(peer)

    def _switch(self, peer: Peer, addr: PathId, reason: str, now: float, out: Outbox) -> None:
        old = peer.endpoint
        peer.endpoint = addr
        peer.path_reason = reason
        if not isinstance(addr, ViaRelay):
            peer.add_endpoint(addr)
        out.event(ev.PathChanged(peer.network.id, peer.node, old, addr, self.kind(peer), reason))
        gone = peer.paths.get(old) if old is not None else None
        new = peer.paths.get(addr)
        if peer.resend_after is not None:  # we held the stream for a relay that has not answered yet: not now
            peer.resend_after = None
            if peer.state is not PeerState.UNREACHABLE:
                peer.stream.release(now)
                out.pump(peer)
        if gone is not None and (path_state(gone, now) is PathState.DOWN
                                 or evidence(gone) < now - self.cfg.heartbeat_active):
            # failover or roaming: frames in flight went into the dead path; resend them on this one rather
            # than after a retransmission timer backed off on the dead path. On a direct path at once; on a
            # relay path only once it answers a probe sent now, and until then the stream holds (sends no new
            # frames either): an answer from before the failover proves nothing, and a relay that has lost
            # the peer too must not be handed the window (the peer may have died: two survivors relayed ~60 KB
            # for it to each other)
            if new is not None and new.relay:
                peer.resend_after = now
                peer.stream.hold(now)
                self.probe(peer, addr, now, out)
            else:
                for f in peer.stream.resend_all(now):
                    out.frame(peer, f)
        if not isinstance(addr, ViaRelay) or peer.current is not None:  # hole punching (core/nat/punch.py) follows the path
            self.punch.path_changed(peer, old, addr, gone is not None and gone.last_pong is not None, now, out)

    def kind(self, peer: Peer) -> PathKind:
        if peer.endpoint is None:
            return PathKind.NONE
        if isinstance(peer.endpoint, ViaRelay):
            return PathKind.RELAY
        return PathKind.PUNCHED if self.punch.is_target(peer, peer.endpoint) else PathKind.DIRECT

    def relay_name(self, peer: Peer) -> str | None:
        """The node id text of the relay the peer's current path goes through (None: not relayed)."""
        return peer.endpoint.node if peer.endpoint is not None and isinstance(peer.endpoint, ViaRelay) else None

    # ------------------------------------------------------------------ probes
    def probe(self, peer: Peer, addr: PathId, now: float, out: Outbox, user: bool = False,
              local: Address | None = None, pad: int = 0) -> int | None:
        """An authenticated PING on the path ``addr``; its id (None: no session to seal it in). A padded one
        (``pad``: path MTU, core/peers/pmtu.py) never counts as loss when unanswered."""
        if peer.sendable_session(now) is None:
            return None
        pid = self._next_probe
        self._next_probe = (self._next_probe % 0xFFFFFFFF) + 1
        if len(self._probes) >= self.cfg.max_probes_in_flight:
            self._probes.pop(next(iter(self._probes)))
        self._probes[pid] = (peer.key, now, addr, user)
        p = self.path(peer, addr, now) if addr in peer.paths or not self.punch.is_target(peer, addr) else None
        if p is not None and not pad:
            p.pending[pid] = now
            p.last_ping = now
        out.frame(peer, fw.encode_probe(pid, pad=pad), addr, local)
        return pid

    def path_mtu(self, peer: Peer) -> int | None:
        """The largest datagram the peer's current path carries, when measured (a relay path: the end-to-end
        datagram, inside the relay's frames)."""
        p = peer.paths.get(peer.endpoint) if peer.endpoint is not None else None
        return p.pmtu.mtu if p is not None and p.pmtu is not None else None

    def _probe_mtu(self, peer: Peer, now: float, out: Outbox, probed: bool) -> None:
        """The current path's MTU, direct or relayed: one padded probe at a time (core/peers/pmtu.py), each
        with an ordinary probe beside it (``probed``: the heartbeat just sent one), so that its loss can be told
        from the path's; the next size goes as soon as one is found too large, not at the next heartbeat."""
        ep = peer.endpoint
        p = peer.paths.get(ep) if ep is not None else None
        if p is None or p.last_pong is None:
            return
        if p.pmtu is None:
            p.pmtu = PathMtu(relay=p.relay)
        p.pmtu.expire(now, p.last_pong)
        size = p.pmtu.due(now)
        if size is not None and ep is not None:
            if not probed:
                self.probe(peer, ep, now, out)
            pid = self.probe(peer, ep, now, out, pad=padding(size, TRANSPORT_OVERHEAD))
            if pid is not None:
                p.pmtu.sent(pid, size, now)

    def on_ping(self, peer: Peer, pid: int, src: PathId, local: Address | None, out: Outbox) -> None:
        observed = None if isinstance(src, ViaRelay) else src  # a relay path has no address to report
        out.frame(peer, fw.encode_probe(pid, pong=True, observed=observed), src, local)

    def on_pong(self, peer: Peer, probe: fw.ProbeFrame, src: PathId, local: Address | None, now: float,
                out: Outbox) -> bool:
        """A PONG: path evidence (RTT, loss, outage over), maybe a NAT mapping observed (returns whether our
        NAT observer's view changed), and a new path decision."""
        sent = self._probes.pop(probe.probe_id, None)
        if sent is None or sent[0] != peer.key:
            self.counters.inc("rx.unmatched_pongs")
            return False
        _, sent_at, addr, user = sent
        rtt = now - sent_at
        p = self.path(peer, src, now)
        if p.pmtu is not None:
            p.pmtu.answered(probe.probe_id, now)
        p.pending.pop(probe.probe_id, None)
        p.outcomes.append(True)
        p.rtt_sample(rtt)
        was_down = p.lost_since_pong > 0 or p.last_pong is None
        if p.lost_since_pong >= OUTAGE:
            # it answers again after an outage: the probes lost while it was cut say nothing of its loss
            # rate now (else it would stay DEGRADED, and unchosen, for a dozen more probes)
            p.outcomes.clear()
            p.outcomes.append(True)
            # ... nor do the probes still pending from the cut: sent before this one, they expire later and
            # would read as fresh loss (DEGRADED: the pair went back to the relay for a moment)
            p.pending = {pid: at for pid, at in p.pending.items() if at >= sent_at}
        p.last_pong = now
        p.lost_since_pong = 0
        fresh = peer.resend_after is not None and sent_at >= peer.resend_after
        if (was_down or fresh) and p.relay and src == peer.endpoint and peer.state is not PeerState.UNREACHABLE:
            peer.resend_after = None
            peer.stream.release(now)
            for f in peer.stream.resend_all(now):  # the relay path we moved to answers: what is in flight goes now
                out.frame(peer, f)
            out.pump(peer)
        nat_changed = False
        if probe.observed is not None and not isinstance(src, ViaRelay) and local is not None:
            nat_changed = self.nat.observe(Observation(local, src, probe.observed, peer.node.short(), now,
                                                       self.punch.mapping_order(src)))
        if user:
            out.event(ev.PongReceived(peer.network.id, peer.node, probe.probe_id, rtt, src))
        self.reselect(peer, now, out)
        return nat_changed

    def heartbeat(self, peer: Peer, now: float, out: Outbox, ours: OursFn) -> None:
        """Due probes for one peer: the heartbeat on the current path, punch bursts, upgrade attempts."""
        cfg = self.cfg
        for path in peer.paths.values():
            path.expire_probes(now, cfg.probe_timeout)
        if peer.sendable_session(now) is None:
            peer.probe_at = None
            self.punch.session_lost(peer)
            return
        ep = peer.endpoint
        beat = ep is not None and peer.probe_at is not None and now >= peer.probe_at
        if beat and ep is not None:
            self.probe(peer, ep, now, out)
        self._probe_mtu(peer, now, out, beat)  # (also between heartbeats, while a search runs)
        if beat:
            lost = peer.state is PeerState.UNREACHABLE
            active = lost or now < peer.last_active + cfg.active_window or peer.stream.queued_frames() > 0
            # while traffic flows (or no path answers), keep the other paths measured too, for fast failover
            if active:
                for addr, path in list(peer.paths.items()):
                    if addr != peer.endpoint and not isinstance(addr, ViaRelay) and (path.last_pong is not None or lost):
                        self.probe(peer, addr, now, out)
                if lost or isinstance(peer.endpoint, ViaRelay):  # relayed: keep the other relays measured (RTT, failover)
                    for addr in self.relay_client.standby(peer, now):
                        self.probe(peer, addr, now, out)
                for r, addr in self.relay_client.dead_relays(peer, now):
                    self.probe(r, addr, now, out)
                    out.arm(r)
            peer.probe_at = now + (cfg.heartbeat_active if active else cfg.heartbeat_idle)
        if peer.probe_at is None:
            peer.probe_at = now + cfg.heartbeat_active
        # hole punching: bursts, attempts, rechecks of the last direct paths
        self.punch.handle_timer(peer, peer.endpoint is not None and isinstance(peer.endpoint, ViaRelay), now, out, ours)
        self.reselect(peer, now, out)

    def mark_active(self, peer: Peer, now: float) -> None:
        """Application traffic: heartbeats speed up so a dead path is noticed within seconds."""
        peer.last_active = now
        soon = now + self.cfg.heartbeat_active
        if peer.probe_at is not None and peer.probe_at > soon:
            peer.probe_at = soon

    def deadlines(self, peer: Peer) -> list[float]:
        out = []
        if peer.probe_at is not None:  # the heartbeat runs (a session to probe in), and so may the MTU search
            out.append(peer.probe_at)
            cur = peer.paths.get(peer.endpoint) if peer.endpoint is not None else None
            if cur is not None and cur.pmtu is not None:  # a padded probe to judge, or the next one
                out.append(cur.pmtu.wake_at())
        out += self.punch.deadlines(peer)
        for path in peer.paths.values():  # re-decide when a probe goes unanswered
            exp = path.next_expiry(self.cfg.probe_timeout)
            if exp is not None:
                out.append(exp)
        return out

    # ------------------------------------------------------------------ relays (core/relay/client.py)
    def offer_relays(self, peer: Peer, relays: tuple[bytes, ...], own: bytes, now: float, out: Outbox) -> None:
        """Add relay paths to ``peer`` through relays we have sessions with."""
        for addr in self.relay_client.offered(peer, relays, own):
            self.path(peer, addr, now)
            if peer.pending is not None and peer.current is None:
                # the initiation already sent direct (a NAT may drop it) goes via the relay too
                out.datagram(peer, peer.pending.datagram, addr)
