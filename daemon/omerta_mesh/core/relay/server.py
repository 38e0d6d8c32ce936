"""The relay server: forwarding datagrams between two members that cannot reach each other directly.

Whether this node relays is ``relay_mode``: "off" never, "on" whenever our mapping allows others to reach us
(not behind an address-dependent mapping), "auto" (the default) when we are public or behind a NAT with
endpoint-independent mapping AND filtering, with the smaller ``relay_auto_*`` quota. The decision is
announced in our signed record (the relay flag), so members choose relays from records.

Forwarding rules (each refusal is a counted DropReason, never an exception out of the core):

* a RELAY frame must arrive on a direct path (a frame that came through a relay is never relayed again)
  and with hops >= 1 (``relay_loop``);
* the destination must be a member we have a session with (``relay_unknown``), reached on a DIRECT path
  that is not down (``relay_no_direct_path``): a relay never hands a datagram to another relay, so a dead
  member cannot be bounced between two relays that each route it via the other;
* per client: at most ``relay_max_pairs`` destinations and a byte rate (``relay_quota``).

The forwarded RELAYED frame goes out on the destination's direct path with hops - 1.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..config import CoreConfig
from ..counters import Counters
from ..errors import DropReason, WireError
from ..ids import NodeId
from ..nat.classify import Filtering, Mapping, NatVerdict
from ..noise.cookie import RateLimiter
from ..outbox import Outbox
from ..peers.paths import PathId, PathState, ViaRelay, path_state
from ..peers.peer import Peer
from ..peers.table import PeerTable
from ..wire import frames as fw

MODES = ("auto", "on", "off")


def relay_mode(value: object) -> str:
    """The relay mode of a config value: "auto", "on" or "off" (True/False are the old "on"/"off")."""
    if value is True:
        return "on"
    if value is False or value is None:
        return "off"
    v = str(value).strip().lower()
    if v in ("true", "yes", "1"):
        return "on"
    if v in ("false", "no", "0"):
        return "off"
    if v not in MODES:
        raise ValueError(f"relay = {value!r}: use \"auto\", \"on\" or \"off\"")
    return v


@dataclass(frozen=True, slots=True)
class RelayOffer:
    mode: str
    offering: bool
    why: str
    rate: float  # bytes per second per client
    max_pairs: int


def decide(mode: str, v: NatVerdict, cfg: CoreConfig) -> RelayOffer:
    """Whether we offer relaying, given the mode and what we know of our NAT."""
    if mode == "off":
        return RelayOffer(mode, False, "relay = off", 0.0, 0)
    if mode == "on":
        ok = v.mapping in (Mapping.NONE, Mapping.EIM, Mapping.UNKNOWN)
        why = "relay = on" if ok else f"relay = on, but our NAT maps per destination ({v.label}): others cannot reach us"
        return RelayOffer(mode, ok, why, cfg.relay_rate, cfg.relay_max_pairs)
    if v.mapping is Mapping.NONE:
        return RelayOffer(mode, True, "auto: public address", cfg.relay_auto_rate, cfg.relay_auto_max_pairs)
    if v.mapping is Mapping.EIM and v.filtering in (Filtering.EIF, Filtering.NONE):
        why = "auto: NAT with endpoint-independent mapping and filtering"
        return RelayOffer(mode, True, why, cfg.relay_auto_rate, cfg.relay_auto_max_pairs)
    if v.mapping is Mapping.UNKNOWN or (v.mapping is Mapping.EIM and v.filtering is Filtering.UNKNOWN):
        return RelayOffer(mode, False, "auto: NAT not classified yet", 0.0, 0)
    return RelayOffer(mode, False, f"auto: behind a NAT others cannot reach unasked ({v.label})", 0.0, 0)


class RelayServer:
    def __init__(self, config: CoreConfig, counters: Counters, table: PeerTable) -> None:
        self.cfg = config
        self.counters = counters
        self.table = table
        self.mode = relay_mode(config.relay)
        self.offer = RelayOffer(self.mode, False, "NAT not classified yet" if self.mode != "off" else "relay = off", 0.0, 0)
        self._pairs: OrderedDict[tuple[bytes, bytes], set[tuple[bytes, bytes]]] = OrderedDict()
        self._limiter = RateLimiter(config.relay_rate, int(config.relay_burst), config.relay_clients)  # bytes per client

    def update(self, verdict: NatVerdict) -> RelayOffer:
        """Decide again from our NAT verdict (called whenever our record is refreshed)."""
        o = decide(self.mode, verdict, self.cfg)
        if (o.rate, o.max_pairs) != (self.offer.rate, self.offer.max_pairs) and o.rate > 0:
            burst = self.cfg.relay_burst if o.rate == self.cfg.relay_rate else 2 * o.rate
            self._limiter = RateLimiter(o.rate, int(burst), self.cfg.relay_clients)
        self.offer = o
        return o

    def forward(self, client: Peer, frame: bytes, src: PathId, now: float, out: Outbox) -> Peer:
        """``client`` asks us (in a RELAY frame that arrived from ``src``) to forward a datagram. Puts the
        RELAYED frame into ``out`` and returns the destination peer, or raises WireError (counted)."""
        f = fw.decode_relay(frame)
        if not self.offer.offering:
            raise WireError(DropReason.RELAY_UNKNOWN, "this node does not relay")
        if f.relayed or f.hops < 1 or isinstance(src, ViaRelay):
            raise WireError(DropReason.RELAY_LOOP, "a relayed frame is never relayed again")
        dst = self.table.get(client.network.id, NodeId(f.node))
        if dst is None or dst is client or dst.sendable_session(now) is None:
            raise WireError(DropReason.RELAY_UNKNOWN, "no session with the destination")
        ep = dst.endpoint
        p = dst.paths.get(ep) if ep is not None else None
        if ep is None or isinstance(ep, ViaRelay) or (p is not None and path_state(p, now) is PathState.DOWN):
            raise WireError(DropReason.RELAY_NO_DIRECT_PATH, "the destination is not reached on a direct path")
        pairs = self._pairs.get(client.key)
        if pairs is None:
            pairs = self._pairs[client.key] = set()
            if len(self._pairs) > self.cfg.relay_clients:
                self._pairs.popitem(last=False)
        if dst.key not in pairs:
            if len(pairs) >= self.offer.max_pairs:
                raise WireError(DropReason.RELAY_QUOTA, "too many destinations")
            pairs.add(dst.key)
        if not self._limiter.allow(client.node.text(), now, len(f.datagram)):
            raise WireError(DropReason.RELAY_QUOTA, "over the byte rate")
        self.counters.inc("relay.forwarded")
        self.counters.inc("relay.bytes", len(f.datagram))
        out.frame(dst, fw.encode_relay(client.node.raw, f.datagram, relayed=True, hops=f.hops - 1), ep)
        return dst
