"""Log lines an admin can read: the core's events and the daemon's refusal counters, one line each.

The core does no I/O and so never logs; it reports events (``core/events.py``) and counts every piece of
remote input it drops (``drop.<reason>``). This module turns both into lines of the ``omerta_mesh.meshd.log``
logger, with structured fields journald keeps (``meshd/systemd.py`` maps upper-case ``extra`` keys to
journal fields, and appends them as ``KEY=value`` on stderr):

    PEER       the peer's name as the daemon shows it (its short node id when it has none)
    PEER_ID    the peer's full node id
    NETWORK    the network's name (its id when it has none); NETWORK_ID its id
    PATH       how the peer is reached: direct, punched, relay or none
    ENDPOINT   the address (host:port, or "relay NAME")
    REASON     why (a disconnect, a path change, a failed handshake, a refused enrolment or renewal); FIX what to do
    BY, BY_ID  who signed a removal (its name, its node id)
    USES, EPOCH, EXPIRES  an invite's uses so far, a rotated key's epoch, a renewed certificate's expiry (UTC)

At info: networks joined and left, peers connected, disconnected, restarted and leaving, path changes
(relay changes among them), hole punches that succeeded, NAT verdict changes, handshakes that failed, the
membership of owned networks (this node enrolled, an invite redeemed here, a member removed, the network key
rotated, our certificate renewed), and at most once a minute a summary of what was refused (handshakes
refused, datagrams dropped, local clients refused). At warning: an enrolment or a renewal an admin refused.
At debug: rekeys, pongs, punches that failed, members discovered, messages that failed, and each tick's new
drops. Every kind of line has its own token bucket, so a flood of events (a peer flapping, a
stranger spraying handshakes) costs a bounded number of lines; what a bucket held back is counted and
said in the next line of that kind (``SUPPRESSED``).

One function per event kind makes (level, message, fields); ``EventLog`` dispatches, rate-limits and
writes. RPC refusals (permission denied, connection limits) are logged where they happen
(``meshd/rpc_server.py``); SOCKS refusals of who the client is in ``meshd/socks.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..core import events as ev
from ..core.errors import UsageError
from ..core.ids import NetworkId, NodeId
from ..core.peers.paths import PathId, ViaRelay
from .views import all_counters, ep

if TYPE_CHECKING:
    from .api import DaemonAPI

log = logging.getLogger("omerta_mesh.meshd.log")

INFO, DEBUG, WARNING = logging.INFO, logging.DEBUG, logging.WARNING
SUMMARY_EVERY = 60.0  # seconds: at most one summary line per group in this long
TICK = 2.0  # seconds between looks at the counters
# drop reasons that refuse a handshake (core/session/handshakes.py): summarised as "refused N handshakes"
HANDSHAKE_DROPS = frozenset({
    "bad_mac1", "cookie_required", "bad_cookie_reply", "rate_limited", "bad_identity", "dh_budget",
    "handshake_failed", "handshake_replay", "unknown_peer", "self",
})
BENIGN_DROPS = frozenset({"handshake_tie_break"})  # both sides initiated at once: normal, not worth a line
LEFT = "left the network"  # the reason core/membership.py gives a disconnect that a departure caused
SOCKS_NOT_REFUSALS = frozenset({"socks.clients", "socks.accepted", "socks.connected"})


class Names(Protocol):
    def peer(self, node: NodeId) -> str: ...
    def network(self, network: NetworkId) -> str: ...
    def is_self(self, node: NodeId) -> bool: ...


Line = tuple[int, str, dict[str, str]]


# ---------------------------------------------------------------------- the lines, one function per kind
def _by(names: Names, node: NodeId) -> str:
    """'bob (3f2a9c01d4e5)', or the short id alone when that is all the name there is."""
    name = names.peer(node)
    return name if name == node.short() else f"{name} ({node.short()})"


def _net(names: Names, network: NetworkId) -> dict[str, str]:
    return {"NETWORK": names.network(network), "NETWORK_ID": str(network)}


def _peer(names: Names, network: NetworkId, node: NodeId) -> tuple[str, dict[str, str]]:
    """'bob (3f2a9c01d4e5) in home' and its fields."""
    f = _net(names, network)
    return f"{_by(names, node)} in {f['NETWORK']}", {"PEER": names.peer(node), "PEER_ID": str(node), **f}


def where(names: Names, p: PathId | None) -> str:
    if p is None:
        return "nowhere"
    if isinstance(p, ViaRelay):  # (its node is the relay's id as text)
        try:
            return f"relay {names.peer(NodeId.parse(p.node))}"
        except UsageError:
            return f"relay {p.node[:12]}"
    return ep(p) or ""


def network_joined(e: ev.NetworkJoined, names: Names) -> Line:
    f = _net(names, e.network)
    return INFO, f"member of network {f['NETWORK']} ({e.network})", f


def network_left(e: ev.NetworkLeft, names: Names) -> Line:
    f = _net(names, e.network)
    return INFO, f"left network {f['NETWORK']} ({e.network})", f


def peer_connected(e: ev.PeerConnected, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    kind = "relay" if isinstance(e.endpoint, ViaRelay) else "direct"
    side = "we initiated" if e.initiator else "it initiated"
    return INFO, f"peer {who} connected via {where(names, e.endpoint)} ({kind}; {side})", {
        **f, "PATH": kind, "ENDPOINT": where(names, e.endpoint)}


def peer_disconnected(e: ev.PeerDisconnected, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    level = DEBUG if e.reason == LEFT else INFO  # (its PeerLeft says so at info: one line, not two)
    return level, f"peer {who} disconnected: {e.reason}", {**f, "PATH": "none", "REASON": e.reason}


def peer_left(e: ev.PeerLeft, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    return INFO, f"peer {who} left the network", f


def peer_restarted(e: ev.PeerRestarted, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    return INFO, f"peer {who} restarted (messages not yet delivered to it failed)", f


def path_changed(e: ev.PathChanged, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    relay = isinstance(e.new, ViaRelay) or isinstance(e.old, ViaRelay)
    what = "relay change" if relay else "path change"
    return INFO, f"{what} for {who}: {where(names, e.old)} -> {where(names, e.new)} ({e.kind}; {e.reason})", {
        **f, "PATH": e.kind, "ENDPOINT": where(names, e.new), "REASON": e.reason}


def punch_finished(e: ev.PunchFinished, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    if e.ok:
        return INFO, f"hole punched to {who}: direct {ep(e.endpoint)} after {e.elapsed:.1f} s (attempt {e.attempt})", {
            **f, "PATH": "punched", "ENDPOINT": ep(e.endpoint) or ""}
    retry = f"; next attempt in {e.retry_in:.0f} s" if e.retry_in is not None else ""
    return DEBUG, f"hole punch to {who} failed (attempt {e.attempt}, {e.elapsed:.1f} s): still relayed{retry}", {
        **f, "PATH": "relay"}


def nat_changed(e: ev.NatChanged, names: Names) -> Line:
    return INFO, f"NAT verdict: {e.label}", {"NAT": e.label}


def handshake_failed(e: ev.HandshakeFailed, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    return INFO, f"handshake with {who} failed: {e.reason}", {**f, "PATH": "none", "REASON": e.reason}


def session_rekeyed(e: ev.SessionRekeyed, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    return DEBUG, f"session with {who} rekeyed", f


def peer_discovered(e: ev.PeerDiscovered, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    return DEBUG, f"member {who} discovered through gossip", f


def pong_received(e: ev.PongReceived, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    return DEBUG, f"pong from {who} via {where(names, e.endpoint)}: {e.rtt * 1000:.1f} ms", {
        **f, "ENDPOINT": where(names, e.endpoint)}


def message_failed(e: ev.MessageFailed, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    return DEBUG, f"message {e.message_id} to {who} failed: {e.reason}", {**f, "REASON": e.reason}


# ---- owned networks (docs/membership.md)
def _refused(names: Names, e: ev.EnrolmentRefused | ev.RenewalRefused) -> tuple[str, dict[str, str]]:
    _, f = _peer(names, e.network, e.peer)
    return f"{e.reason} (fix: {e.fix})", {**f, "REASON": e.reason, "FIX": e.fix}


def enrolled(e: ev.Enrolled, names: Names) -> Line:
    _, f = _peer(names, e.network, e.peer)
    return INFO, f"this node enrolled in network {f['NETWORK']} by {_by(names, e.peer)}: it holds a member certificate now", f


def enrolment_refused(e: ev.EnrolmentRefused, names: Names) -> Line:
    why, f = _refused(names, e)
    return WARNING, f"enrolment in network {f['NETWORK']} refused by {_by(names, e.peer)}: {why}", f


def invite_redeemed(e: ev.InviteRedeemed, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    uses = f"{e.uses} use{'' if e.uses == 1 else 's'}"
    return INFO, f"enrolled {who} with an invite ({uses} of it so far)", {**f, "USES": str(e.uses)}


def invite_offered(e: ev.InviteOffered, names: Names) -> Line:
    who, f = _peer(names, e.network, e.peer)
    net = e.invited_name or str(e.invited)
    return INFO, f"{who} offers an invite to network {net}: take it with `omertactl network accept {e.offer}`", {
        **f, "INVITED": net, "INVITED_ID": str(e.invited), "OFFER": e.offer}


def member_removed(e: ev.MemberRemoved, names: Names) -> Line:
    by, net = {"BY": names.peer(e.by), "BY_ID": str(e.by)}, _net(names, e.network)
    if e.peer is None:
        return INFO, f"a certificate or an invite of network {net['NETWORK']} revoked by {_by(names, e.by)}", {**net, **by}
    if names.is_self(e.peer):
        return INFO, (f"this node was removed from network {net['NETWORK']} by {_by(names, e.by)}: its members refuse it "
                      "from now on"), {**net, **by}
    who, f = _peer(names, e.network, e.peer)
    return INFO, f"member {who} removed by {_by(names, e.by)}: its sessions closed, refused from now on", {**f, **by}


def network_rekeyed(e: ev.NetworkRekeyed, names: Names) -> Line:
    f = _net(names, e.network)
    return INFO, f"key of network {f['NETWORK']} rotated (epoch {e.epoch}): the previous key is accepted until its grace ends", {
        **f, "EPOCH": str(e.epoch)}


def owner_claimed(e: ev.OwnerClaimed, names: Names) -> Line:
    (_, f), who = _peer(names, e.network, e.owner), _by(names, e.owner)
    net, at = f["NETWORK"], time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.enforce_at)) + "Z"
    fields = {**f, "ENFORCE_AT": at}
    if not e.adopted:
        other = "; this node follows another claim or saw one first" if e.conflict else ""
        return WARNING, (f"{who} claims to own network {net} (owned from {at}){other}; if it created the network, run "
                         f"`omertactl network accept-owner {net} {e.owner}`"), fields
    if names.is_self(e.owner):
        return INFO, (f"this node claims network {net}: members that follow get its certificate, and it is owned from "
                      f"{at}"), fields
    cert = "with its certificate for this node" if e.certified else "waiting for its certificate"
    return INFO, f"network {net} follows {who} as its owner ({cert}); owned from {at}", fields


def network_owned(e: ev.NetworkOwned, names: Names) -> Line:
    (_, f), who = _peer(names, e.network, e.owner), _by(names, e.owner)
    if e.certified:
        return INFO, f"network {f['NETWORK']} is owned by {who} from now on: members need its certificate", f
    return WARNING, (f"network {f['NETWORK']} is owned by {who} from now on, and this node has no certificate from it: "
                     f"members refuse it; ask {who} for an invite"), f


def credential_renewed(e: ev.CredentialRenewed, names: Names) -> Line:
    _, f = _peer(names, e.network, e.peer)
    by = "by this node (the owner signs its own)" if names.is_self(e.peer) else f"by {_by(names, e.peer)}"
    until = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.not_after)) + "Z"
    return INFO, f"certificate in network {f['NETWORK']} renewed {by}, valid until {until}", {**f, "EXPIRES": until}


def renewal_refused(e: ev.RenewalRefused, names: Names) -> Line:
    why, f = _refused(names, e)
    return WARNING, f"renewal of the certificate in network {f['NETWORK']} refused by {_by(names, e.peer)}: {why}", f


LINES: dict[type, Callable[[Any, Names], Line]] = {
    ev.NetworkJoined: network_joined, ev.NetworkLeft: network_left, ev.PeerConnected: peer_connected,
    ev.PeerDisconnected: peer_disconnected, ev.PeerLeft: peer_left, ev.PeerRestarted: peer_restarted,
    ev.PathChanged: path_changed, ev.PunchFinished: punch_finished, ev.NatChanged: nat_changed,
    ev.HandshakeFailed: handshake_failed, ev.SessionRekeyed: session_rekeyed, ev.PeerDiscovered: peer_discovered,
    ev.PongReceived: pong_received, ev.MessageFailed: message_failed, ev.Enrolled: enrolled,
    ev.EnrolmentRefused: enrolment_refused, ev.InviteRedeemed: invite_redeemed, ev.MemberRemoved: member_removed,
    ev.InviteOffered: invite_offered,
    ev.NetworkRekeyed: network_rekeyed, ev.CredentialRenewed: credential_renewed, ev.RenewalRefused: renewal_refused,
    ev.OwnerClaimed: owner_claimed, ev.NetworkOwned: network_owned,
}


# ---------------------------------------------------------------------- the refusal summaries
def summary_group(counter: str) -> str | None:
    """Which summary a counter belongs to: "handshakes", "datagrams", "clients", or None (not a refusal)."""
    if counter.startswith("drop."):
        reason = counter[5:]
        if reason in BENIGN_DROPS:
            return None
        return "handshakes" if reason in HANDSHAKE_DROPS else "datagrams"
    if counter.startswith("rx.refused.") or counter == "tx.refused" or (
            counter.startswith("socks.") and counter not in SOCKS_NOT_REFUSALS):
        return "clients"
    return None


SUMMARY_TEXT = {"handshakes": "refused {n} handshakes", "datagrams": "dropped {n} datagrams",
                "clients": "refused {n} local clients and messages"}


def summary_line(group: str, delta: dict[str, int], seconds: float) -> Line:
    """"dropped 1,234 datagrams in the last 60 s: replayed 1,200, decrypt_failed 34" (largest first)."""
    parts = sorted(delta.items(), key=lambda kv: (-kv[1], kv[0]))
    detail = ", ".join(f"{k.removeprefix('drop.')} {v:,}" for k, v in parts)
    head = SUMMARY_TEXT[group].format(n=f"{sum(delta.values()):,}")
    return INFO, f"{head} in the last {max(1, round(seconds))} s: {detail}", {
        "REFUSED": group, "COUNT": str(sum(delta.values()))}


@dataclass
class _Summary:
    """One group's state: the counters at its last summary, when it last said one, when it was last quiet."""

    base: dict[str, int] = field(default_factory=dict)
    said_at: float | None = None
    quiet_at: float = 0.0


@dataclass
class Bucket:
    """A token bucket: ``burst`` lines at once, then ``rate`` a second; what it refuses is counted."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0
    held: int = 0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.held += 1
        return False


BUCKETS = {WARNING: (20.0, 200.0), INFO: (20.0, 200.0), DEBUG: (2.0, 20.0)}  # (rate per second, burst) for each kind of line


class EventLog:
    """Writes the lines. ``on_event`` for each core event; ``tick`` every ``TICK`` seconds for the summaries."""

    def __init__(self, names: Names, counters: Callable[[], dict[str, int]],
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger = log) -> None:
        self.names, self.counters, self.clock, self.log = names, counters, clock, logger
        self.buckets: dict[str, Bucket] = {}
        self.lines = 0  # lines written (a counter: eventlog.lines)
        self.suppressed = 0  # lines the buckets held back (eventlog.suppressed)
        self._last: dict[str, int] = {}
        start = clock()
        self.summaries = {g: _Summary({}, None, start) for g in SUMMARY_TEXT}  # from zero: everything since start

    def on_event(self, e: ev.Event) -> None:
        make = LINES.get(type(e))
        if make is None:
            return
        level, text, fields = make(e, self.names)
        if self.log.isEnabledFor(level):
            self.write(type(e).__name__, level, text, fields)

    def write(self, kind: str, level: int, text: str, fields: dict[str, str]) -> None:
        b = self.buckets.get(kind)
        if b is None:
            b = self.buckets[kind] = Bucket(*BUCKETS.get(level, BUCKETS[DEBUG]))
        if not b.take(self.clock()):
            self.suppressed += 1
            return
        if b.held:
            text += f" ({b.held} similar lines suppressed)"
            fields = {**fields, "SUPPRESSED": str(b.held)}
            b.held = 0
        self.lines += 1
        self.log.log(level, "%s", text, extra=fields)

    def tick(self) -> None:
        """Look at the counters: a summary per group that refused something (at most one a minute each), and
        at debug the drops new since the last tick."""
        now = self.clock()
        groups: dict[str, dict[str, int]] = {g: {} for g in self.summaries}  # each counter classified once a tick
        for k, v in self.counters().items():
            if (g := summary_group(k)) is not None:
                groups[g][k] = v
        refused = {k: v for group in groups.values() for k, v in group.items()}
        last, self._last = self._last, refused
        if self.log.isEnabledFor(DEBUG):
            new = {k: v - last.get(k, 0) for k, v in refused.items() if v > last.get(k, 0)}
            if new:
                self.write("drops", DEBUG, "new refusals: " + ", ".join(f"{k} +{v}" for k, v in sorted(new.items())),
                           {"COUNT": str(sum(new.values()))})
        for g, st in self.summaries.items():
            delta = {k: v - st.base.get(k, 0) for k, v in groups[g].items() if v > st.base.get(k, 0)}
            if not delta:
                st.quiet_at = now
            elif st.said_at is None or now - st.said_at >= SUMMARY_EVERY:
                level, text, fields = summary_line(g, delta, now - st.quiet_at)
                self.lines += 1
                self.log.log(level, "%s", text, extra=fields)
                st.base = groups[g]
                st.said_at = st.quiet_at = now

    def stats(self) -> dict[str, int]:
        return {"eventlog.lines": self.lines, "eventlog.suppressed": self.suppressed}

    async def run(self) -> None:
        """Tick for the daemon's lifetime (a failing look is logged and the next one still comes)."""
        while True:
            await asyncio.sleep(TICK)
            try:
                self.tick()
            except Exception:
                self.log.exception("summarising refusals failed")


class DaemonNames:
    """Names as the daemon's views show them: peers through its directory, networks by their names."""

    def __init__(self, api: "DaemonAPI") -> None:
        self.api = api
        self.known: dict[bytes, str] = {}  # network names seen (a network just left is still named)

    def peer(self, node: NodeId) -> str:
        return self.api.name_of(node)

    def is_self(self, node: NodeId) -> bool:
        return node == self.api.node.node_id

    def network(self, network: NetworkId) -> str:
        net = self.api.node.core.networks.get(network.raw) if self.api.node.mesh is not None else None
        if net is not None:
            self.known[network.raw] = net.name or str(network)
        return self.known.get(network.raw, str(network))


def for_daemon(api: "DaemonAPI") -> EventLog:
    """The daemon's EventLog: its names, and every counter it reports (``views.all_counters``, as status.get)."""
    return EventLog(DaemonNames(api), lambda: all_counters(
        api, api.node.core.counters.snapshot() if api.node.mesh is not None else {}))
