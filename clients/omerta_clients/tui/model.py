"""The monitor's screen state, folded from the daemon's event stream. Pure: no I/O, no clock, no rich.

Inputs, in the order the monitor gets them:

* ``apply_subscribe(result)``: the ``events.subscribe`` result; its snapshot replaces everything and its
  ``seq`` is the point after which events are new;
* ``apply_event(event)``: one ``events.event`` delta; events at or below the current ``seq`` are
  ignored (they are already in the snapshot), so folding is idempotent;
* ``apply_peers(peers, now)``: a ``peers.list`` poll (counters the events do not carry); byte counters
  turn into throughput between two polls, ``now`` being the caller's monotonic clock;
* ``apply_status(status)``, ``apply_ping(key, result)``: the status and the monitor's own pings (loss);
* ``apply_streams(result)``: a ``streams.list`` poll (open mesh streams and port forwards, shown as they are);
* ``key(name)``: a key from ``parse_keys``; returns False when the user asked to quit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

Json = dict[str, Any]
Key = tuple[str, str]  # (node id, network id): a peer in two networks is two rows

HISTORY = 60  # samples kept per sparkline
LOG_LINES = 200  # events kept for the log
QUIET = {"peer.pong"}  # folded into the RTT column, kept out of the log (the monitor's own pings make them)


@dataclass
class PeerRow:
    node_id: str
    network: str
    name: str = ""
    short_id: str = ""
    network_name: str = ""
    endpoint: str | None = None
    path: str | None = None
    connected: bool = False
    rtt_ms: float | None = None
    last_handshake_s: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    rate_in: float | None = None  # bytes per second between the last two polls
    rate_out: float | None = None
    rtts: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    rates: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # in + out, bytes per second
    pings_sent: int = 0
    pings_answered: int = 0
    api_loss: float | None = None  # the daemon's loss on the current path (PeerInfo.loss)
    nat: str | None = None  # the peer's NAT type from its signed record (PeerInfo.nat)
    ipv4: str | None = None  # the peer's mesh IPs (PeerInfo.ipv4/ipv6)
    ipv6: str | None = None
    routes: list = field(default_factory=list)  # subnet routes it advertises, we accepted, in force (PeerInfo.routes*)
    routes_accepted: list = field(default_factory=list)
    routes_active: list = field(default_factory=list)
    exit_offered: bool = False  # it offers an exit node; we use it (PeerInfo.exit_offered/exit_used)
    exit_used: bool = False
    role: str | None = None  # owned networks: "owner", "admin" or "member" from its verified certificate (PeerInfo.role)
    tags: list = field(default_factory=list)  # and the certificate's tags and expiry (PeerInfo.tags/cert_expires)
    cert_expires: float | None = None
    why: str | None = None  # peers.get: both NAT verdicts in words
    own_nat: Json | None = None  # peers.get: this node's verdict
    path_reason: str | None = None
    last_error: str | None = None
    polled_at: float | None = None

    @property
    def key(self) -> Key:
        return (self.node_id, self.network)

    @property
    def label(self) -> str:
        return self.name or self.short_id or self.node_id[:12]

    @property
    def ping_loss(self) -> float | None:
        """Fraction of the monitor's pings that went unanswered (None before the first one)."""
        if not self.pings_sent:
            return None
        return 1 - self.pings_answered / self.pings_sent

    @property
    def loss(self) -> float | None:
        """The daemon's measure when it gives one, else what the monitor's own pings saw."""
        return self.api_loss if self.api_loss is not None else self.ping_loss

    def update_info(self, p: Json) -> None:
        """Take the fields of a PeerInfo (snapshot or poll)."""
        for f in ("name", "short_id", "network_name", "endpoint", "path", "connected", "last_handshake_s", "nat", "ipv4", "ipv6",
                  "routes", "routes_accepted", "routes_active", "exit_offered", "exit_used", "role", "tags", "cert_expires"):
            if f in p:
                setattr(self, f, p[f])
        if "loss" in p:
            self.api_loss = p["loss"]
        if p.get("rtt_ms") is not None and self.rtt_ms is None:
            self.rtt_ms = p["rtt_ms"]
            self.rtts.append(p["rtt_ms"])


def row_from(p: Json) -> PeerRow:
    row = PeerRow(str(p.get("node_id", "")), str(p.get("network", "")))
    row.update_info(p)
    row.bytes_in, row.bytes_out = int(p.get("bytes_in") or 0), int(p.get("bytes_out") or 0)
    return row


# ---------------------------------------------------------------------- keys
_SEQUENCES = {
    b"\x1b[A": "up", b"\x1bOA": "up", b"\x1b[B": "down", b"\x1bOB": "down",
    b"\x1b[5~": "pageup", b"\x1b[6~": "pagedown", b"\x1b[H": "home", b"\x1b[F": "end",
}
_SINGLE = {b"k": "up", b"j": "down", b"q": "quit", b"Q": "quit", b"\x03": "quit", b"\x04": "quit", b"g": "home", b"G": "end"}


def parse_keys(data: bytes) -> list[str]:
    """Key names in a chunk read from a raw terminal; unknown bytes and sequences are skipped."""
    out, i = [], 0
    while i < len(data):
        for seq, name in _SEQUENCES.items():
            if data.startswith(seq, i):
                out.append(name)
                i += len(seq)
                break
        else:
            one = data[i:i + 1]
            if one == b"\x1b" and data[i + 1:i + 2] in (b"[", b"O"):  # an unknown CSI/SS3 sequence: skip it
                j = i + 2
                while j < len(data) and not (0x40 <= data[j] <= 0x7E):
                    j += 1
                i = j + 1
                continue
            if one in _SINGLE:
                out.append(_SINGLE[one])
            i += 1
    return out


# ---------------------------------------------------------------------- the model
class Model:
    def __init__(self) -> None:
        self.seq = 0
        self.status: Json = {}
        self.peers: dict[Key, PeerRow] = {}
        self.log: deque[Json] = deque(maxlen=LOG_LINES)
        self.selected: Key | None = None
        self.nat_label: str | None = None
        self.error: str | None = None  # the link to the daemon, when it is down
        self.snapshots = 0
        self.streams: list[Json] = []  # streams.list: open mesh streams (StreamInfo)
        self.forwards: list[Json] = []  # and port forwards (ForwardInfo)

    # ---- ordering and selection
    def rows(self) -> list[PeerRow]:
        return sorted(self.peers.values(), key=lambda r: (not r.connected, r.label, r.network))

    def selected_row(self) -> PeerRow | None:
        rows = self.rows()
        if not rows:
            return None
        if self.selected not in self.peers:
            self.selected = rows[0].key
        return self.peers[self.selected]  # type: ignore[index]

    def key(self, name: str) -> bool:
        """Apply a key press; False means quit."""
        if name == "quit":
            return False
        rows = self.rows()
        if not rows:
            return True
        keys = [r.key for r in rows]
        cur = keys.index(self.selected) if self.selected in keys else 0
        step = {"up": -1, "down": 1, "pageup": -10, "pagedown": 10, "home": -len(keys), "end": len(keys)}.get(name, 0)
        self.selected = keys[max(0, min(len(keys) - 1, cur + step))]
        return True

    # ---- inputs
    def apply_subscribe(self, result: Json) -> None:
        snap = result.get("snapshot") or {}
        self.seq = int(result.get("seq") or 0)
        self.status = dict(snap.get("status") or {})
        old = self.peers
        self.peers = {}
        for p in snap.get("peers") or []:
            row = row_from(p)
            prev = old.get(row.key)
            if prev is not None:  # a re-subscription keeps the history already drawn
                row.rtts, row.rates, row.rtt_ms = prev.rtts, prev.rates, row.rtt_ms or prev.rtt_ms
                row.pings_sent, row.pings_answered = prev.pings_sent, prev.pings_answered
            self.peers[row.key] = row
        self.error = None
        self.snapshots += 1

    def apply_event(self, e: Json) -> bool:
        """Fold one event; False if it was already in the snapshot (or seen)."""
        seq = int(e.get("seq") or 0)
        if seq and seq <= self.seq:
            return False
        self.seq = max(self.seq, seq)
        kind = e.get("type")
        if kind not in QUIET:
            self.log.append(e)
        handler = getattr(self, "_on_" + str(kind).replace(".", "_"), None)
        if handler is not None:
            handler(e)
        return True

    def apply_peers(self, peers: Iterable[Json], now: float) -> None:
        seen = set()
        for p in peers:
            row = self._row(p)
            seen.add(row.key)
            row.update_info(p)
            bi, bo = int(p.get("bytes_in") or 0), int(p.get("bytes_out") or 0)
            if row.polled_at is not None and now > row.polled_at:
                dt = now - row.polled_at
                row.rate_in = max(0, bi - row.bytes_in) / dt
                row.rate_out = max(0, bo - row.bytes_out) / dt
                row.rates.append(row.rate_in + row.rate_out)
            row.bytes_in, row.bytes_out, row.polled_at = bi, bo, now
        for k in [k for k in self.peers if k not in seen]:  # gone from the daemon's table
            del self.peers[k]

    def apply_status(self, st: Json) -> None:
        self.status = dict(st)

    def apply_streams(self, result: Json) -> None:
        self.streams = list(result.get("streams") or [])
        self.forwards = list(result.get("forwards") or [])

    def apply_ping(self, key: Key, result: Json | None, error: str | None = None) -> None:
        """The monitor's own ping of one peer: counts towards loss. RTT samples come from peer.pong."""
        row = self.peers.get(key)
        if row is None:
            return
        if result is not None:
            row.pings_sent += int(result.get("sent") or 0)
            row.pings_answered += int(result.get("received") or 0)
            row.last_error = None
        else:
            row.last_error = error

    def apply_detail(self, key: Key, d: Json) -> None:
        """One network entry of a ``peers.get`` result for the selected peer: why its path is what it is."""
        row = self.peers.get(key)
        if row is None:
            return
        row.update_info(d)
        row.why = d.get("why") or None
        row.path_reason = d.get("path_reason") or row.path_reason
        row.own_nat = d.get("own_nat") or None

    # ---- event handlers
    def _row(self, e: Json) -> PeerRow:
        key = (str(e.get("node_id", "")), str(e.get("network", "")))
        row = self.peers.get(key)
        if row is None:
            row = self.peers[key] = PeerRow(*key, name=str(e.get("name") or ""), short_id=key[0][:12])
            for n in self.status.get("networks") or []:
                if n.get("network") == key[1]:
                    row.network_name = n.get("name", "")
        return row

    def _on_network_joined(self, e: Json) -> None:
        nets = self.status.setdefault("networks", [])
        if not any(n.get("network") == e.get("network") for n in nets):
            nets.append({"network": e.get("network"), "name": e.get("name", ""), "peers": 0, "connected": 0})

    def _on_network_left(self, e: Json) -> None:
        net = e.get("network")
        self.status["networks"] = [n for n in self.status.get("networks") or [] if n.get("network") != net]
        for k in [k for k in self.peers if k[1] == net]:
            del self.peers[k]

    def _on_peer_discovered(self, e: Json) -> None:
        self._row(e)

    def _on_peer_connected(self, e: Json) -> None:
        row = self._row(e)
        row.connected = True
        row.endpoint = e.get("endpoint") or row.endpoint
        row.last_handshake_s = 0.0

    def _on_peer_disconnected(self, e: Json) -> None:
        row = self._row(e)
        row.connected, row.path, row.rate_in, row.rate_out = False, None, None, None
        row.path_reason = e.get("reason") or row.path_reason

    def _on_peer_restarted(self, e: Json) -> None:
        self._row(e).last_handshake_s = 0.0

    _on_peer_rekeyed = _on_peer_restarted

    def _on_peer_left(self, e: Json) -> None:  # it left the network (its signed departure): no longer listed
        self.peers.pop((str(e.get("node_id", "")), str(e.get("network", ""))), None)

    def _on_member_removed(self, e: Json) -> None:  # removed from an owned network: refused from now on, not listed
        if e.get("node_id"):
            self._on_peer_left(e)

    def _on_peer_path_changed(self, e: Json) -> None:
        row = self._row(e)
        kind = e.get("kind")
        if kind == "relay":  # the event names no relay; keep "relay via NAME" from the last poll if it has one
            row.path = row.path if (row.path or "").startswith("relay") else "relay"
        elif kind in ("direct", "punched"):
            row.path = kind
            row.endpoint = e.get("new") or row.endpoint
        row.path_reason = e.get("reason") or row.path_reason

    def _on_peer_pong(self, e: Json) -> None:
        row = self._row(e)
        rtt = e.get("rtt_ms")
        if isinstance(rtt, (int, float)):
            row.rtt_ms = float(rtt)
            row.rtts.append(float(rtt))

    def _on_nat_changed(self, e: Json) -> None:
        self.nat_label = e.get("label")

    def _on_daemon_stopping(self, e: Json) -> None:
        self.error = "the daemon is stopping"
