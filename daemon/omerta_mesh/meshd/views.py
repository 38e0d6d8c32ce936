"""Read-only views of the running node as API result dataclasses (status, peers, networks, NAT).

Pure functions of the DaemonAPI's state; they never change anything. "now" for ages is the driver's loop
clock, the same monotonic clock the core's timestamps use.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING

from ..core import events as ev
from ..core.errors import UsageError
from ..core.ids import NodeId
from ..core.nat.classify import NatVerdict, explain_pair, verdict_from_record
from ..core.peers.paths import is_relay, path_state
from ..core.peers.peer import Peer
from . import schema as s
from .registry import API_REVISION, API_VERSION

if TYPE_CHECKING:
    from ..core.ids import NetworkId
    from .api import DaemonAPI


def ep(a: tuple[str, int] | None) -> str | None:
    if a is None:
        return None
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def _now(api: "DaemonAPI") -> float:
    d = api.node.driver
    return d.now() if d is not None else 0.0


def path_of(api: "DaemonAPI", peer: Peer) -> str | None:
    """"direct", "punched", "relay via NAME", or None when there is no session."""
    if not peer.connected:
        return None
    mesh = api.node.core
    kind = mesh.path_kind(peer)
    if kind == "relay":
        relay = mesh.relay_name(peer)
        try:
            return f"relay via {api.name_of(NodeId.parse(relay))}" if relay else "relay"
        except UsageError:
            return "relay"
    return None if kind == "none" else kind


def their_nat(api: "DaemonAPI", p: Peer) -> NatVerdict | None:
    """The peer's NAT as its signed record states it; None without a record."""
    rec = api.node.core.record_of(p.network.id, p.node)
    return verdict_from_record(rec.mapping, rec.filtering, rec.port_delta) if rec else None


def peer_info(api: "DaemonAPI", p: Peer, cls: type = s.PeerInfo, **extra: object) -> s.PeerInfo:
    now = _now(api)
    hs = p.stats.last_handshake_at
    rtt = api.rtt.get(p.key)
    cur = p.paths.get(p.endpoint) if p.endpoint is not None else None
    if cur is not None and cur.srtt is not None and rtt is None:
        rtt = cur.srtt
    theirs = their_nat(api, p)
    return cls(
        name=api.name_of(p.node), node_id=str(p.node), short_id=p.node.short(), network=str(p.network.id),
        network_name=p.network.name, endpoint=ep(p.endpoint) if p.endpoint and not is_relay(p.endpoint) else None,
        path=path_of(api, p),
        rtt_ms=round(rtt * 1000, 3) if rtt is not None else None,
        last_handshake_s=round(now - hs, 3) if hs is not None else None,
        bytes_in=p.stats.bytes_in, bytes_out=p.stats.bytes_out, connected=p.connected,
        loss=round(cur.loss, 3) if cur is not None and cur.outcomes else None, nat=theirs.label if theirs else None, **extra,
    )


def peer_infos(api: "DaemonAPI", network: "NetworkId | None") -> list[s.PeerInfo]:
    peers = api.node.core.peers(network)
    peers.sort(key=lambda p: (api.name_of(p.node), p.network.id.raw))
    return [peer_info(api, p) for p in peers]


def _paths(p: Peer, now: float) -> list[dict]:
    out = []
    for addr, path in sorted(p.paths.items()):
        out.append({
            "path": addr[0] if path.relay else ep(addr),
            "kind": "relay" if path.relay else "direct",
            "state": path_state(path, now, 0.0).value,
            "current": addr == p.endpoint,
            "rtt_ms": round(path.srtt * 1000, 3) if path.srtt is not None else None,
            "loss": round(path.loss, 3),
            "last_answer_s": round(now - path.last_pong, 3) if path.last_pong is not None else None,
        })
    return out


def peer_detail(api: "DaemonAPI", p: Peer) -> s.PeerDetail:
    now = _now(api)
    own = api.node.core.nat_verdict()
    theirs = their_nat(api, p)
    sessions = [
        s.SessionInfo(slot, round(sess.age(now), 3), sess.initiator, sess.send_counter)
        for slot, sess in (("current", p.current), ("previous", p.previous), ("next", p.next)) if sess is not None
    ]
    return peer_info(  # type: ignore[return-value]
        api, p, s.PeerDetail,
        path_reason=p.path_reason, why=explain_pair(own, theirs) if theirs else "no signed record from this peer yet",
        own_nat=own.to_dict(), peer_nat=theirs.to_dict() if theirs else {}, paths=_paths(p, now),
        endpoints=[ep(e) or "" for e in p.endpoints], packets_in=p.stats.packets_in, packets_out=p.stats.packets_out,
        handshakes=p.stats.handshakes, handshake_in_progress=p.pending is not None, sessions=sessions,
    )


def networks(api: "DaemonAPI") -> list[s.NetworkInfo]:
    mesh = api.node.core
    out = []
    for net in mesh.networks.values():
        peers = mesh.peers(net.id)
        out.append(s.NetworkInfo(str(net.id), net.name, len(peers), sum(1 for p in peers if p.connected)))
    return sorted(out, key=lambda n: (n.name, n.network))


def peer_counts(api: "DaemonAPI") -> s.PeerCounts:
    peers = list(api.node.core.table)
    connected = [p for p in peers if p.connected]
    direct = sum(1 for p in connected if api.node.core.path_kind(p) in ("direct", "punched"))
    return s.PeerCounts(len(peers), len(connected), direct, len(connected) - direct)


def status_text(api: "DaemonAPI") -> str:
    if api.stopping:
        return "stopping: telling peers and saving state"
    nets = len(api.node.core.networks)
    if nets == 0:
        return "no networks: create one with `omertactl network create` or join with an invite"
    c = peer_counts(api)
    text = f"{c.connected} peer{'s' if c.connected != 1 else ''}: {c.direct} direct, {c.relayed} relayed"
    waiting = c.total - c.connected
    if waiting:
        text += f", {waiting} connecting"
    return text + f" ({nets} network{'s' if nets != 1 else ''})"


def nat_verdict(api: "DaemonAPI") -> s.NatVerdict:
    v = api.node.core.nat_verdict()
    d = v.to_dict()
    if not v.public:
        status, reason = "unknown", "no peer has reported our address yet: connect to at least two peers"
    else:
        status, reason = "classified", f"{d['type']} (confidence {d['confidence']})"
    return s.NatVerdict(
        status=status, reason=reason, mapping=d["mapping"], filtering=d["filtering"],
        port_delta=v.port_delta if d["allocation"] == "sequential" else None, hairpinning=v.hairpin,
        public_endpoints=d["public_endpoints"], local_endpoints=api.endpoint_strings(), evidence=d["evidence"],
        relays=relay_latencies(api),
    )


def relay_latencies(api: "DaemonAPI") -> list[dict]:
    """Relay-capable members (by their signed records) and the RTT of our path to each."""
    mesh = api.node.core
    out = []
    for net in mesh.networks.values():
        for rec in mesh.records(net.id):
            if not rec.relay or rec.node == mesh.node_id:
                continue
            p = mesh.table.get(net.id, rec.node)
            cur = p.paths.get(p.endpoint) if p is not None and p.endpoint is not None else None
            out.append({
                "name": api.name_of(rec.node), "node_id": str(rec.node), "network": str(net.id),
                "connected": bool(p and p.connected),
                "rtt_ms": round(cur.srtt * 1000, 3) if cur is not None and cur.srtt is not None else None,
            })
    return sorted(out, key=lambda r: (r["rtt_ms"] is None, r["rtt_ms"] or 0.0, r["name"]))


def dbus_feature(api: "DaemonAPI") -> s.FeatureInfo:
    """The D-Bus face: up, or why not and when it tries again; off when ``dbus.enabled = false``."""
    face = api.dbus_face
    return face.feature(time.monotonic()) if face is not None else s.FeatureInfo(False, False, "off")


def status(api: "DaemonAPI") -> s.StatusResult:
    node = api.node
    cfg = api.config.node
    audit = node.core.audit
    counters = node.core.counters.snapshot()
    if node.driver is not None:
        st = node.driver.udp.stats
        counters.update({"udp.received": st.received, "udp.sent": st.sent, "udp.errors": st.send_errors})
    counters.update({"events.published": api.hub.published, "events.subscribers_cut_off": api.hub.cut_off})
    for source in api.counter_sources:
        counters.update(source())
    return s.StatusResult(
        node_id=str(node.node_id), name=api.name, version=api.version, api_version=API_VERSION, api_revision=API_REVISION,
        uptime_s=round(time.monotonic() - api.started, 3),
        listen=[ep(a) or "" for a in (node.driver.udp.addresses if node.driver else [])],
        endpoints=api.endpoint_strings(), networks=networks(api), peers=peer_counts(api), nat=nat_verdict(api),
        relay=s.FeatureInfo(cfg.relay, node.core.cfg.relay, f"{counters.get('relay.forwarded', 0)} datagrams forwarded" if node.core.cfg.relay else "off"),
        audit=s.FeatureInfo(audit is not None, audit is not None, f"{counters.get('audit.violations', 0)} violations" if audit is not None else "off"),
        dbus=dbus_feature(api),
        counters=counters, status_text=status_text(api),
    )


def channel_message(api: "DaemonAPI", m: ev.ChannelMessage, encoding: str) -> s.ChannelMessageInfo:
    data = base64.b64encode(m.data).decode() if encoding == "base64" else m.data.decode("utf-8", "replace")
    return s.ChannelMessageInfo(api.name_of(m.peer), str(m.peer), str(m.network), m.channel, data, encoding, len(m.data))
