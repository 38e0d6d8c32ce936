"""Links: paths, probes, relaying and hole punching (a mixin of ``Mesh``).

* Every peer has paths (``peers/paths.py``): direct addresses and relays. The session is path-agnostic,
  so switching paths is only a matter of where the next datagram goes.
* Heartbeat probes (PING/PONG) on the current path every ``heartbeat_active`` seconds while traffic
  flows, ``heartbeat_idle`` otherwise; they measure RTT, jitter and loss and keep NAT mappings open. A
  PONG tells us the address our PING came from: that is how NAT mappings are observed.
* After every piece of evidence the pure policy ``paths.choose`` picks the path. A direct path that stops
  answering for the trust window loses to a relay; a relayed peer keeps trying to go direct.
* Relaying lives in ``core/relay/`` (client: relay paths and wrapping; server: forwarding and quotas). A relay
  path is probed end to end like any path. When no path answers (every path DOWN and nothing heard for
  the probe timeout), the peer counts as unreachable: PeerDisconnected, its reliable stream holds (no
  give-up, no retransmissions) and all its paths keep being probed; the first answer brings it back
  (PeerConnected, the stream resends).
* Hole punching is its own sub-machine (``core/nat/punch.py``, ``mesh.punch``, lifecycle written down
  there); this mixin only feeds it (path changes, timers, candidates, fresh observations) and performs the
  ``Outbox`` it fills (``_perform``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import events as ev
from .nat.classify import Observation
from .nat.punch import Ours
from .outbox import Outbox
from .peers.paths import FRESHNESS, Address, Path, PathState, choose, evidence, is_relay, path_state, relay_node_text
from .peers.peer import Peer
from .wire import control as cw
from .wire import frames as fw

if TYPE_CHECKING:  # pragma: no cover
    from .mesh import Mesh

OUTAGE = 3  # probes lost in a row that make an outage (not loss) of a path


class LinkMixin:
    # ------------------------------------------------------------------ paths
    def _path(self: "Mesh", peer: Peer, addr: Address, now: float) -> Path:
        p = peer.paths.get(addr)
        if p is None:
            if len(peer.paths) >= self.cfg.max_paths_per_peer:
                victims = [q for q in peer.paths.values() if q.addr != peer.endpoint]
                oldest = min(victims, key=lambda q: (max(q.last_rx or 0, q.last_pong or 0, q.created_at), q.addr))
                del peer.paths[oldest.addr]
            p = peer.paths[addr] = Path(addr, now)
        return p

    def _heard(self: "Mesh", peer: Peer, src: Address, now: float) -> None:
        """An authenticated packet from the peer arrived via ``src``."""
        p = peer.paths.get(src)
        new = p is None
        # a full path table evicts a path for this one: probing it at once would feed a storm when more
        # paths than the table holds answer (two sequential NATs punched in lock step open dozens)
        full = new and len(peer.paths) >= self.cfg.max_paths_per_peer
        p = self._path(peer, src, now)
        p.last_rx = now
        stale = src != peer.endpoint and (p.last_pong is None or now >= p.last_pong + self.cfg.heartbeat_active)
        if not full and (new or stale):
            self._probe(peer, src, now)  # confirm the new path at once (roaming, punching)
        if peer.endpoint is None:
            self._switch(peer, src, "first path heard from", now)
        elif src != peer.endpoint:
            # (a packet on the current path only makes it fresher: it cannot lose the choice, so the
            # per-packet path skips the decision; the heartbeat timer decides on that path's silence)
            self._reselect(peer, now)
            cur = peer.paths.get(peer.endpoint)
            if cur is not None and not is_relay(src) and peer.probe_at is not None:
                # the peer's traffic comes another way (roaming): decide again the moment the current path
                # stops counting as fresh, not at whatever heartbeat or retransmission comes next
                at = evidence(cur) + FRESHNESS
                if now < at < peer.probe_at:
                    peer.probe_at = at

    def _reselect(self: "Mesh", peer: Peer, now: float) -> None:
        c = choose(peer.paths, peer.endpoint, now, self.cfg.trust_window, self.relay_client.relay_up(peer, now))
        reason = c.reason
        old = peer.paths.get(peer.endpoint) if peer.endpoint is not None else None
        if old is not None and old.relay and path_state(old, now, self.cfg.trust_window) is PathState.DOWN:
            reason = f"relay {relay_node_text(old.addr)[:8]} stopped answering; {reason}"
        if c.addr is not None and c.addr != peer.endpoint:
            self._switch(peer, c.addr, reason, now)
        else:
            peer.path_reason = reason
        self._reachability(peer, c.live, peer.paths.get(c.addr) if c.addr is not None else None, reason, now)

    def _reachability(self: "Mesh", peer: Peer, live: bool, chosen: Path | None, reason: str, now: float) -> None:
        """No path answers: the peer is unreachable until one does (see the module docstring). One lost
        probe makes a path DOWN; the peer counts as unreachable after a second one (sent at once)."""
        if not live and peer.connected and peer.sendable_session(now) is not None:
            if chosen is not None and chosen.lost_since_pong < 2:
                if not chosen.pending and peer.probe_at is not None and peer.probe_at > now:
                    peer.probe_at = now  # confirm at once rather than at the next (idle) heartbeat
                return
            newest = max((evidence(p) for p in peer.paths.values()), default=float("-inf"))
            if newest > now - self.cfg.probe_timeout:
                return  # its traffic still arrives (a lossy path, not a dead one)
            peer.connected = False
            peer.unreachable_since = now
            peer.stream.hold(now)
            peer.probe_at = now  # from now on every path is probed at the active heartbeat (_heartbeat)
            self.counters.inc("peers.unreachable")
            self._event(ev.PeerDisconnected(peer.network.id, peer.node, f"no path answers ({reason})"))
        elif live and not peer.connected and peer.unreachable_since is not None and peer.endpoint is not None \
                and peer.sendable_session(now) is not None:
            peer.connected = True
            self._reachable_again(peer, now)
            s = peer.current or peer.next
            self._event(ev.PeerConnected(peer.network.id, peer.node, peer.endpoint, bool(s and s.initiator)))

    def _reachable_again(self: "Mesh", peer: Peer, now: float) -> None:
        if peer.unreachable_since is None:
            return
        peer.unreachable_since = None
        peer.stream.release(now)
        for f in peer.stream.resend_all(now):
            self._send_frame(peer, f, now)
        self._pump(peer, now)

    def _switch(self: "Mesh", peer: Peer, addr: Address, reason: str, now: float) -> None:
        old = peer.endpoint
        peer.endpoint = addr
        peer.path_reason = reason
        if not is_relay(addr):
            peer.add_endpoint(addr)
        self._event(ev.PathChanged(peer.network.id, peer.node, old, addr, self.path_kind(peer), reason))
        gone = peer.paths.get(old) if old is not None else None
        new = peer.paths.get(addr)
        if gone is not None and (path_state(gone, now, self.cfg.trust_window) is PathState.DOWN
                                 or evidence(gone) < now - self.cfg.heartbeat_active) and (
                new is None or not new.relay or new.last_pong is not None):
            # failover or roaming: frames in flight went into the dead path; resend them now on this one
            # rather than after a retransmission timer backed off on the dead path (a relay path only once
            # it has answered: a relay that cannot reach the peer must not be handed the whole window)
            for f in peer.stream.resend_all(now):
                self._send_frame(peer, f, now)
        if not is_relay(addr) or peer.current is not None:  # hole punching (core/nat/punch.py) follows the path
            box = Outbox()
            self.punch.path_changed(peer, old, addr, gone is not None and gone.last_pong is not None, now, box)
            self._perform(box, now)

    def path_kind(self: "Mesh", peer: Peer) -> str:
        """"direct", "punched" (direct after a punch), "relay", or "none"."""
        if peer.endpoint is None:
            return "none"
        if is_relay(peer.endpoint):
            return "relay"
        return "punched" if self.punch.is_target(peer, peer.endpoint) else "direct"

    def relay_name(self: "Mesh", peer: Peer) -> str | None:
        return relay_node_text(peer.endpoint) if is_relay(peer.endpoint) else None

    # ------------------------------------------------------------------ probes
    def _probe(self: "Mesh", peer: Peer, addr: Address, now: float, user: bool = False, local: Address | None = None) -> int | None:
        s = peer.sendable_session(now)
        if s is None:
            return None
        pid = self._next_probe
        self._next_probe = (self._next_probe % 0xFFFFFFFF) + 1
        if len(self._probes) >= self.cfg.max_probes_in_flight:
            self._probes.pop(next(iter(self._probes)))
        self._probes[pid] = (peer, now, addr, user)
        p = self._path(peer, addr, now) if addr in peer.paths or not self.punch.is_target(peer, addr) else None
        if p is not None:
            p.pending[pid] = now
            p.last_ping = now
        self._send_raw(peer, s.encrypt(fw.encode_probe(pid), now), addr, now, local)
        return pid

    def _on_ping(self: "Mesh", peer: Peer, pid: int, src: Address, local: Address | None, now: float) -> None:
        s = peer.sendable_session(now)
        if s is not None:
            self._send_raw(peer, s.encrypt(fw.encode_probe(pid, pong=True, observed=src), now), src, now, local)

    def _on_pong(self: "Mesh", peer: Peer, probe: fw.ProbeFrame, src: Address, local: Address | None, now: float) -> None:
        sent = self._probes.pop(probe.probe_id, None)
        if sent is None or sent[0] is not peer:
            self.counters.inc("rx.unmatched_pongs")
            return
        _, sent_at, addr, user = sent
        rtt = now - sent_at
        p = self._path(peer, src, now)
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
        if was_down and p.relay and src == peer.endpoint and peer.unreachable_since is None:
            for f in peer.stream.resend_all(now):  # the relay path we moved to answers: what is in flight goes now
                self._send_frame(peer, f, now)
        if probe.observed is not None and not is_relay(src) and local is not None:
            o = Observation(local, src, probe.observed, peer.node.short(), now)
            if self.nat.observe(o):
                self._nat_changed(now)
        if user:
            self._event(ev.PongReceived(peer.network.id, peer.node, probe.probe_id, rtt, src))
        self._reselect(peer, now)

    def _heartbeat(self: "Mesh", peer: Peer, now: float) -> None:
        """Due probes for one peer: the heartbeat on the current path, punch bursts, upgrade attempts."""
        cfg = self.cfg
        for path in peer.paths.values():
            path.expire_probes(now, cfg.probe_timeout)
        if peer.sendable_session(now) is None:
            peer.probe_at = None
            self.punch.session_lost(peer)
            return
        if peer.probe_at is not None and now >= peer.probe_at and peer.endpoint is not None:
            self._probe(peer, peer.endpoint, now)
            lost = peer.unreachable_since is not None
            active = lost or now < peer.last_active + cfg.active_window or peer.stream.queued_frames() > 0
            # while traffic flows (or no path answers), keep the other paths measured too, for fast failover
            if active:
                for addr, path in list(peer.paths.items()):
                    if addr != peer.endpoint and not is_relay(addr) and (path.last_pong is not None or lost):
                        self._probe(peer, addr, now)
                if lost or is_relay(peer.endpoint):  # relayed: keep the other relays measured (RTT, failover)
                    for addr in self.relay_client.standby(peer, now):
                        self._probe(peer, addr, now)
                for r, addr in self.relay_client.dead_relays(peer, now):
                    self._probe(r, addr, now)
                    self._arm(r, now)
            peer.probe_at = now + (cfg.heartbeat_active if active else cfg.heartbeat_idle)
        if peer.probe_at is None:
            peer.probe_at = now + cfg.heartbeat_active
        box = Outbox()  # hole punching: bursts, attempts, rechecks of the last direct paths
        self.punch.handle_timer(peer, is_relay(peer.endpoint), now, box, self._punch_ours)
        self._perform(box, now)
        self._reselect(peer, now)

    def _mark_active(self: "Mesh", peer: Peer, now: float) -> None:
        """Application traffic: heartbeats speed up so a dead path is noticed within seconds."""
        peer.last_active = now
        soon = now + self.cfg.heartbeat_active
        if peer.probe_at is not None and peer.probe_at > soon:
            peer.probe_at = soon

    def _link_deadline(self: "Mesh", peer: Peer) -> list[float]:
        out = []
        if peer.probe_at is not None:
            out.append(peer.probe_at)
        out += self.punch.deadlines(peer)
        for path in peer.paths.values():  # re-decide when a probe goes unanswered
            exp = path.next_expiry(self.cfg.probe_timeout)
            if exp is not None:
                out.append(exp)
        return out

    # ------------------------------------------------------------------ relays (core/relay/client.py)
    def _offer_relays(self: "Mesh", peer: Peer, relays: tuple[bytes, ...], now: float) -> None:
        """Add relay paths to ``peer`` through relays we have sessions with."""
        for addr in self.relay_client.offered(peer, relays, self.node_id.raw):
            self._path(peer, addr, now)
            if peer.pending is not None and peer.current is None:
                # the initiation already sent direct (a NAT may drop it) goes via the relay too
                self._send_raw(peer, peer.pending.datagram, addr, now)

    # ------------------------------------------------------------------ hole punching (core/nat/punch.py)
    def _note_destination(self: "Mesh", dst: Address, now: float) -> None:
        self.punch.note_destination(dst, now)

    def _punch_ours(self: "Mesh") -> Ours:
        return Ours(self.nat_verdict(), tuple(self.local_endpoints), self.probe_local)

    def _on_candidates(self: "Mesh", peer: Peer, body: bytes, now: float) -> None:
        c = cw.decode_candidates(body)
        box = Outbox()
        self.punch.on_candidates(peer, c, peer.endpoint is None or is_relay(peer.endpoint), self.node_id.raw, now, box, self._punch_ours)
        self._perform(box, now)
        self._heartbeat(peer, now)

    def _punch_bound(self: "Mesh", peer: Peer, nonce: int, observed: Address, src: Address, local: Address, now: float) -> None:
        """The answer to hole punching's fresh mapping observation (a BIND from our second socket)."""
        new = self.nat.observe(Observation(local, src, observed, peer.node.short(), now))
        box = Outbox()
        self.punch.on_bound(nonce, observed, new, now, box, self._punch_ours)
        self._perform(box, now)
        if new:
            self._nat_changed(now)
