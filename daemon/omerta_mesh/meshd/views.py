"""Read-only views of the running node as API result dataclasses (status, peers, networks, NAT).

Pure functions of a node snapshot (``MeshNode.snapshot()``: the core's read model, ``core/views.py``) and
the DaemonAPI's own state; they never hold a core object and never change anything. Ages are measured on
the driver's loop clock, the same monotonic clock the core's timestamps use.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any, Iterable

from ..core import events as ev
from ..core import views as core_views
from ..core.ids import NetworkId, NodeId
from ..core.nat.classify import Allocation, explain_pair
from ..core.peers.paths import PathId, ViaRelay
from ..core.views import NodeView, PathView, PeerView, StreamView
from . import schema as s
from .registry import API_REVISION, API_VERSION

if TYPE_CHECKING:
    from .api import DaemonAPI


def ep(a: PathId | None) -> str | None:
    if a is None:
        return None
    if isinstance(a, ViaRelay):  # spelt as the relay pseudo-address ("relay:<id>", 0) always was: JSON unchanged
        return f"[relay:{a.node}]:0"
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def _now(api: "DaemonAPI") -> float:
    d = api.node.driver
    return d.now() if d is not None else 0.0


def member_tags(api: "DaemonAPI") -> dict[tuple[NetworkId, NodeId], tuple[str, ...]]:
    """Members of owned networks whose verified certificate carries tags, as of now (firewall ``tag:`` rules)."""
    return core_views.member_tags(api.node.core, _now(api))


def path_of(api: "DaemonAPI", p: PeerView) -> str | None:
    """"direct", "punched", "relay via NAME", or None when there is no session."""
    if not p.connected or p.path_kind == "none":
        return None
    if p.path_kind == "relay":
        return f"relay via {api.name_of(p.relay_via)}" if p.relay_via is not None else "relay"
    return p.path_kind


def peer_info(api: "DaemonAPI", p: PeerView, cls: type = s.PeerInfo, **extra: object) -> s.PeerInfo:
    now = _now(api)
    hs = p.stats.last_handshake_at
    rtt = api.rtt.get((p.network.raw, p.node.raw))
    cur = p.current_path
    if cur is not None and cur.srtt is not None and rtt is None:
        rtt = cur.srtt
    ips = api.vnet.addresses(p.network, p.node) if api.vnet is not None else (None, None)
    result: s.PeerInfo = cls(
        name=api.name_of(p.node), node_id=str(p.node), short_id=p.node.short(), network=str(p.network),
        network_name=p.network_name, endpoint=ep(p.endpoint), path=path_of(api, p),
        rtt_ms=round(rtt * 1000, 3) if rtt is not None else None,
        last_handshake_s=round(now - hs, 3) if hs is not None else None,
        bytes_in=p.stats.bytes_in, bytes_out=p.stats.bytes_out, connected=p.connected,
        loss=round(cur.loss, 3) if cur is not None and cur.probed else None, nat=p.nat.label if p.nat else None,
        ipv4=ips[0], ipv6=ips[1], **peer_routes(api, p.network, p.node),
        role=p.cert.role if p.cert else None, tags=list(p.cert.tags) if p.cert else [],
        cert_expires=p.cert.not_after if p.cert else None, **extra,
    )
    return result


def peer_routes(api: "DaemonAPI", network: NetworkId, node: NodeId) -> dict[str, Any]:
    """A peer's subnet routes (advertised by its record, accepted here, in force) and exit node (offered, used)."""
    rec = api.node.core.record_of(network, node)
    sub, x = api.subnets, api.exits
    accepted = {p for n, p in sub.accepted | sub.configured if n == node} if sub is not None else set()
    active = {p for p, w in sub.settled.winners.items() if w == (network, node)} if sub is not None else set()
    return {"routes": _prefixes(rec.routes if rec is not None else ()), "routes_accepted": _prefixes(accepted),
            "routes_active": _prefixes(active), "exit_offered": x is not None and x.offers(network, node),
            "exit_used": x is not None and x.using == (network, node)}


def _prefixes(ps: Iterable[Any]) -> list[str]:
    return [str(p) for p in sorted(ps, key=lambda p: (p.version, p))]


def exit_info(api: "DaemonAPI", x: Any) -> s.ExitResult:
    """Exit nodes (``x``: the ExitNodes): whether we offer one, the one we use and its state, who offers one."""
    node = x.using[1] if x.using is not None else None
    return s.ExitResult(x.offering, str(node) if node else None, x.state(), [
        {"node_id": str(n), "name": api.name_of(n), "network": str(net)} for net, n in x.offered()], x.error or api.vnet.reason,
        api.name_of(node) if node else None, x.family_names(), x.allow_lan, [str(p) for p in x.lan])


def peer_infos(api: "DaemonAPI", network: NetworkId | None) -> list[s.PeerInfo]:
    view = api.node.snapshot()
    api.directory(view=view)  # names as of this snapshot
    peers = view.peers_in(network)
    peers.sort(key=lambda p: (api.name_of(p.node), p.network.raw))
    return [peer_info(api, p) for p in peers]


def _path_dict(api: "DaemonAPI", path: PathView, now: float) -> dict:
    return {
        "path": f"via {api.name_of(path.relay_via)}" if path.relay_via is not None else ep(path.address),
        "kind": "relay" if path.relay else "direct",
        "state": path.state,
        "current": path.current,
        "rtt_ms": round(path.srtt * 1000, 3) if path.srtt is not None else None,
        "loss": round(path.loss, 3),
        "last_answer_s": round(now - path.last_answer_at, 3) if path.last_answer_at is not None else None,
        "mtu": path.mtu,
    }


def _stream_dict(x: StreamView) -> dict:
    return {
        "waiting": x.waiting, "in_flight": x.in_flight, "held_s": None if x.held_for is None else round(x.held_for, 3),
        "rto_ms": round(x.rto * 1000, 1), "frames_sent": x.frames_sent, "retransmits": x.retransmits,
        "give_ups": x.give_ups, "frames_received": x.frames_received, "duplicates": x.duplicates,
    }


def peer_detail(api: "DaemonAPI", p: PeerView, view: NodeView) -> s.PeerDetail:
    now = _now(api)
    own = view.nat
    sessions = [s.SessionInfo(x.slot, round(x.age, 3), x.initiator, x.packets_sent) for x in p.sessions]
    detail = peer_info(
        api, p, s.PeerDetail,
        path_reason=p.path_reason, why=explain_pair(own, p.nat) if p.nat else "no signed record from this peer yet",
        own_nat=own.to_dict(), peer_nat=p.nat.to_dict() if p.nat else {}, paths=[_path_dict(api, x, now) for x in p.paths],
        endpoints=[ep(e) or "" for e in p.endpoints], packets_in=p.stats.packets_in, packets_out=p.stats.packets_out,
        handshakes=p.stats.handshakes, handshake_in_progress=p.handshake_in_progress, sessions=sessions,
        stream=_stream_dict(p.stream),
    )
    assert isinstance(detail, s.PeerDetail)
    return detail


def networks(view: NodeView, vnet: Any = None) -> list[s.NetworkInfo]:
    out = []
    for net in view.networks:
        peers = view.peers_in(net.id)
        v4, v6 = vnet.addresses(net.id, view.node_id) if vnet is not None else (None, None)
        out.append(s.NetworkInfo(str(net.id), net.name, len(peers), sum(1 for p in peers if p.connected), v4, v6,
                                 vnet.device_of(net.id) if vnet is not None else None,
                                 str(net.owner) if net.owner is not None else None, net.epoch,
                                 str(net.claim_owner) if net.claim_owner is not None else None,
                                 float(net.owned_from) if net.owned_from is not None else None,
                                 [str(o) for o in net.claims_waiting]))
    return sorted(out, key=lambda n: (n.name, n.network))


def peer_counts(api: "DaemonAPI", view: NodeView | None = None) -> s.PeerCounts:
    if view is None:  # counted in the core: no snapshot (this runs at every status push, as peers come and go)
        total, connected_n, direct_n = core_views.peer_counts(api.node.core)
        return s.PeerCounts(total, connected_n, direct_n, connected_n - direct_n)
    peers = view.peers
    connected = [p for p in peers if p.connected]
    direct = sum(1 for p in connected if p.path_kind in ("direct", "punched"))
    return s.PeerCounts(len(peers), len(connected), direct, len(connected) - direct)


def status_text(api: "DaemonAPI", view: NodeView | None = None) -> str:
    if api.stopping:
        return "stopping: telling peers and saving state"
    nets = len(view.networks) if view is not None else len(api.node.core.networks)
    if nets == 0:
        return "no networks: create one with `omertactl network create` or join with an invite"
    c = peer_counts(api, view)
    text = f"{c.connected} peer{'s' if c.connected != 1 else ''}: {c.direct} direct, {c.relayed} relayed"
    waiting = c.total - c.connected
    if waiting:
        text += f", {waiting} connecting"
    return text + f" ({nets} network{'s' if nets != 1 else ''})"


def nat_verdict(api: "DaemonAPI", view: NodeView | None = None) -> s.NatVerdict:
    view = view or api.node.snapshot()
    v = view.nat
    d = v.to_dict()
    if not v.public:
        status, reason = "unknown", "no peer has reported our address yet: connect to at least two peers"
    else:
        status, reason = "classified", f"{d['type']} (confidence {d['confidence']})"
    return s.NatVerdict(
        status=status, reason=reason, mapping=d["mapping"], filtering=d["filtering"],
        port_delta=v.port_delta if v.allocation is Allocation.SEQUENTIAL else None, hairpinning=v.hairpin,
        public_endpoints=d["public_endpoints"], local_endpoints=api.endpoint_strings(), evidence=d["evidence"],
        relays=relay_latencies(api, view),
        relay_mode=view.relay_mode, relaying=view.relaying, relay_reason=view.relay_reason,
    )


def relay_latencies(api: "DaemonAPI", view: NodeView) -> list[dict]:
    """Relay-capable members (by their signed records) and the RTT of our path to each."""
    peers = {(p.network, p.node): p for p in view.peers}
    out = []
    for m in view.members:
        if not m.relay:
            continue
        p = peers.get((m.network, m.node))
        cur = p.current_path if p is not None else None
        out.append({
            "name": api.name_of(m.node), "node_id": str(m.node), "network": str(m.network),
            "connected": bool(p and p.connected),
            "rtt_ms": round(cur.srtt * 1000, 3) if cur is not None and cur.srtt is not None else None,
        })
    return sorted(out, key=lambda r: (r["rtt_ms"] is None, r["rtt_ms"] or 0.0, r["name"]))


def relay_detail(view: NodeView, counters: dict[str, int]) -> str:
    """Why we relay or not (mode and NAT), and what we forwarded."""
    if not view.relaying:
        return view.relay_reason
    return f"{view.relay_reason}; {counters.get('relay.forwarded', 0)} datagrams forwarded"


def dbus_feature(api: "DaemonAPI") -> s.FeatureInfo:
    """The D-Bus face: up, or why not and when it tries again; off when ``dbus.enabled = false``."""
    face = api.dbus_face
    feature: s.FeatureInfo = face.feature(time.monotonic()) if face is not None else s.FeatureInfo(False, False, "off")
    return feature


def vnet_feature(api: "DaemonAPI") -> s.FeatureInfo:
    """The virtual network: a TUN per network, or why not and how to fix it."""
    v = api.vnet
    if v is None:
        return s.FeatureInfo(False, False, "not started")
    enabled = api.config.vnet.enabled is not False
    if v.reason is not None:
        return s.FeatureInfo(enabled, False, v.reason)
    devs = [f"{n.device} ({n.v4}, {n.v6})" if n.tun is not None else f"{n.device}: {n.error}" for n in v.nets.values()]
    return s.FeatureInfo(enabled, True, "; ".join(devs) if devs else "on: no networks yet")


def all_counters(api: "DaemonAPI", core: dict[str, int]) -> dict[str, int]:
    """Every counter the daemon reports (status.get's): the core's (``core``), the UDP driver's, the event hub's
    and each face's (``api.counter_sources``). The event log's refusal summaries read the same."""
    node, out = api.node, dict(core)
    if node.driver is not None:
        st = node.driver.udp.stats
        out.update({"udp.received": st.received, "udp.sent": st.sent, "udp.errors": st.send_errors,
                    "udp.blocked_mesh_destination": node.driver.blocked_sends})
    out.update({"events.published": api.hub.published, "events.subscribers_cut_off": api.hub.cut_off})
    for source in api.counter_sources:
        out.update(source())
    return out


def status(api: "DaemonAPI") -> s.StatusResult:
    node = api.node
    view = node.snapshot()
    api.directory(view=view)
    counters = all_counters(api, dict(view.counters))
    relaying = view.relaying
    mesh_dns = api.dns.info() if api.dns is not None else None
    return s.StatusResult(
        node_id=str(view.node_id), name=api.name, version=api.version, api_version=API_VERSION, api_revision=API_REVISION,
        uptime_s=round(time.monotonic() - api.started, 3),
        listen=[ep(a) or "" for a in (node.driver.udp.addresses if node.driver else [])],
        endpoints=api.endpoint_strings(), networks=networks(view, api.vnet), peers=peer_counts(api, view), nat=nat_verdict(api, view),
        relay=s.FeatureInfo(view.relay_mode != "off", relaying, relay_detail(view, counters)),
        audit=s.FeatureInfo(view.audit, view.audit, f"{counters.get('audit.violations', 0)} violations" if view.audit else "off"),
        dbus=dbus_feature(api), vnet=vnet_feature(api),
        socks=api.socks.feature() if api.socks is not None else s.FeatureInfo(False, False, "off"), metrics=api.metrics.feature(),
        dns=mesh_dns.dns if mesh_dns is not None else s.FeatureInfo(False, False, "not started"),
        write_group=api.config.api.group, counters=counters, status_text=status_text(api, view),
        exit=exit_info(api, api.exits) if api.exits is not None else None,
        routes=s.RoutesResult(**api.subnets.listing(api.name_of)) if api.subnets is not None else None,
        dns_resolved=mesh_dns.resolved if mesh_dns is not None else "", dns_servers=mesh_dns.servers if mesh_dns is not None else [],
    )


def channel_message(api: "DaemonAPI", m: ev.ChannelMessage, encoding: str) -> s.ChannelMessageInfo:
    data = base64.b64encode(m.data).decode() if encoding == "base64" else m.data.decode("utf-8", "replace")
    return s.ChannelMessageInfo(api.name_of(m.peer), str(m.peer), str(m.network), m.channel, data, encoding, len(m.data))
