"""Prometheus metrics: the daemon's state as text exposition, built by ``prometheus_client`` at scrape time.

``Exporter`` owns a private ``CollectorRegistry`` (never the library's global one: nothing else in the
process can add to it) holding ``DaemonCollector`` and the library's process, platform and GC collectors.
``DaemonCollector.collect`` reads the daemon's live state only through the API's views, the same ones
``status.get`` and ``peers.get`` answer with (``meshd/views.py``), and yields metric families from them;
``generate_latest`` (or the OpenMetrics encoder a scraper asks for) writes the text. Nothing is kept between
scrapes: a metric is the view's figure at that instant. ``metrics.get`` returns the text (``omertactl
metrics``); ``[metrics] listen`` serves it over HTTP (``meshd/metrics_http.py``).

What is exported (docs/architecture.md, "Metrics", has the list with examples):

* every ``status.get`` counter. Families by prefix take a label: ``drop.<reason>`` ->
  ``omerta_drops_total{reason}`` (every core ``DropReason`` present, 0 until it happens), ``handshake.<event>``
  -> ``omerta_handshakes_total{event}``, ``rx.refused.<reason>``, ``ip.tx_bad_frame.<reason>``,
  ``control.bytes.<kind>``. The rest is one family each, named from the counter (``udp.sent`` ->
  ``omerta_udp_sent_total``; a ``bytes`` word moves to the end: ``gossip.bytes_sent`` ->
  ``omerta_gossip_sent_bytes_total``); the few that are levels, not counts, are gauges (``GAUGES``);
* per peer and network (labels ``network`` (id), ``network_name``, ``peer`` (node id, short form),
  ``peer_name``): connected, path kind (``omerta_peer_path{kind}`` 1 for the kind in use, 0 for the others),
  RTT, loss, bytes and packets each way, handshakes, current session age, its message stream;
* per network: members (signed records, this node excluded), known and connected peers;
* the node: info (id, name, version), uptime, peers by state, NAT verdict, each feature enabled/active
  (every ``FeatureInfo`` of ``status.get``: relay, audit, dbus, vnet, socks, metrics), open mesh streams.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from ..core.errors import DropReason
from . import schema as s
from . import views

if TYPE_CHECKING:  # pragma: no cover
    from .api import DaemonAPI

NS = "omerta"
PEER_LABELS = ("network", "network_name", "peer", "peer_name")
NET_LABELS = ("network", "network_name")
PATH_KINDS = ("direct", "punched", "relay", "none")

# counters whose last word becomes a label: prefix -> (family, label, help, values always present)
LABELLED: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("drop.", "drops", "reason", "Remote input dropped without an answer, by reason (the core's DropReason).",
     tuple(r.value for r in DropReason)),
    ("handshake.", "handshakes", "event", "Handshake messages sent and handshakes completed (dh_performed: Diffie-Hellman "
     "operations, cookies_received: cookie replies under load).",
     ("initiations_sent", "responses_sent", "completed", "dh_performed", "cookies_received")),
    ("rx.refused.", "rx_refused", "reason", "Received messages refused with an answer to the sender, by reason.", ()),
    ("ip.tx_bad_frame.", "ip_tx_bad_frames", "reason", "Packets from a TUN device not sent into the mesh, by fault.", ()),
    ("control.bytes.", "control_sent_bytes", "kind", "Control message bytes sent (gossip, punching...), by kind.", ()),
)
# counters that are levels (they go down too)
GAUGES = {
    "inbox.channels": "Channels with an open inbox.", "inbox.messages": "Messages waiting in inboxes.",
    "state.save_pending": "State files waiting to be saved again.", "rpc.clients": "JSON-RPC connections open now.",
    "socks.clients": "SOCKS clients connected now.", "metrics.http_clients": "HTTP connections to the metrics endpoint now.",
}
HELP = {
    "udp.received": "UDP datagrams received.", "udp.sent": "UDP datagrams sent.", "udp.errors": "UDP sends that failed.",
    "rx.datagrams": "Datagrams the core received.", "relay.forwarded": "Datagrams forwarded as a relay for others.",
    "relay.bytes": "Bytes forwarded as a relay for others.", "relay.received": "Datagrams received through a relay.",
    "events.dropped": "Core events dropped because the daemon did not take them in time (its queue was full).",
    "events.published": "Events published to API subscribers.",
    "events.subscribers_cut_off": "API subscribers cut off for not reading their events.",
    "audit.violations": "Outgoing datagrams the encryption audit refused.",
    "streams.lost": "Stream control messages the peer never got (its streams were reset).",
}


def counter_metric_name(counter: str) -> str:
    """``gossip.bytes_sent`` -> ``omerta_gossip_sent_bytes``: Prometheus words, the unit last (``_total`` is added
    by the counter family)."""
    words = [w.lower() for w in re.split(r"[^A-Za-z0-9]+", counter) if w]
    if "bytes" in words:
        words.remove("bytes")
        words.append("bytes")
    return "_".join([NS, *words])


def counter_families(counters: dict[str, int]) -> Iterator[Metric]:
    """The ``status.get`` counters as metric families (pure: a dict in, families out)."""
    rest = dict(counters)
    for prefix, family, label, doc, always in LABELLED:
        fam = CounterMetricFamily(f"{NS}_{family}", doc, labels=[label])
        values = dict.fromkeys(always, 0)
        for name in [n for n in rest if n.startswith(prefix)]:
            values[name[len(prefix):]] = rest.pop(name)
        for key in sorted(values):
            fam.add_metric([key], values[key])
        yield fam
    taken = {f"{NS}_{x[1]}" for x in LABELLED}
    for name, value in sorted(rest.items()):
        metric = counter_metric_name(name)
        if metric in taken:  # two counters spelt alike: the first one wins (a name of its own would be a fix)
            continue
        taken.add(metric)
        if name in GAUGES:
            yield GaugeMetricFamily(metric, GAUGES[name], value=value)
        else:
            yield CounterMetricFamily(metric, HELP.get(name, f"omerta-meshd counter {name} (status.get counters)."), value=value)


class _Families:
    """Families keyed by name, created on first use with the given labels: ``add("x", labels, 1.0)``."""

    def __init__(self) -> None:
        self.by_name: dict[str, Any] = {}  # Counter- or GaugeMetricFamily

    def add(self, kind: type, name: str, doc: str, labels: Iterable[str], values: list[str], value: float) -> None:
        fam = self.by_name.get(name)
        if fam is None:
            fam = self.by_name[name] = kind(name, doc, labels=list(labels))
        fam.add_metric(values, value)


def peer_families(peers: Iterable[s.PeerDetail]) -> Iterator[Metric]:
    """Per peer and network, from ``peers.get``'s view of each (``views.peer_detail``)."""
    f = _Families()
    g, c = GaugeMetricFamily, CounterMetricFamily
    for p in peers:
        lv = [p.network, p.network_name, p.short_id, p.name]
        kind = p.path.split()[0] if p.path else "none"
        f.add(g, f"{NS}_peer_connected", "1 while a session with the peer is up.", PEER_LABELS, lv, float(p.connected))
        for k in PATH_KINDS:
            f.add(g, f"{NS}_peer_path", "The path to the peer: 1 for the kind in use (direct, punched, relay, none), 0 for the "
                  "others.", (*PEER_LABELS, "kind"), [*lv, k], float(k == kind))
        if p.rtt_ms is not None:
            f.add(g, f"{NS}_peer_rtt_seconds", "Round-trip time to the peer (last ping, else the path's smoothed RTT).",
                  PEER_LABELS, lv, p.rtt_ms / 1000)
        if p.loss is not None:
            f.add(g, f"{NS}_peer_loss_ratio", "Share of the last probes on the current path that went unanswered.",
                  PEER_LABELS, lv, p.loss)
        for name, doc, value in (
            ("received_bytes", "Bytes received from the peer.", p.bytes_in), ("sent_bytes", "Bytes sent to the peer.", p.bytes_out),
            ("received_packets", "Datagrams received from the peer.", p.packets_in),
            ("sent_packets", "Datagrams sent to the peer.", p.packets_out),
            ("handshakes", "Handshakes completed with the peer.", p.handshakes),
            ("stream_frames_sent", "Frames the peer's message stream sent.", p.stream.get("frames_sent", 0)),
            ("stream_retransmits", "Frames the peer's message stream sent again.", p.stream.get("retransmits", 0)),
            ("stream_give_ups", "Times the peer's message stream gave frames up (their messages failed).", p.stream.get("give_ups", 0)),
        ):
            f.add(c, f"{NS}_peer_{name}_total", doc, PEER_LABELS, lv, value)
        f.add(g, f"{NS}_peer_stream_in_flight", "Frames of the peer's message stream sent and not acknowledged yet.",
              PEER_LABELS, lv, p.stream.get("in_flight", 0))
        current = [x.age_s for x in p.sessions if x.slot == "current"]
        if current:
            f.add(g, f"{NS}_peer_session_age_seconds", "Age of the current session with the peer.", PEER_LABELS, lv, current[0])
        if p.last_handshake_s is not None:
            f.add(g, f"{NS}_peer_last_handshake_age_seconds", "Seconds since the last handshake with the peer completed.",
                  PEER_LABELS, lv, p.last_handshake_s)
    yield from f.by_name.values()


def node_families(st: s.StatusResult, members: dict[str, int], streams: dict[str, int]) -> Iterator[Metric]:
    """The node, its networks and features, from ``status.get``'s result."""
    yield InfoMetricFamily(NS, "This node.", value={"node_id": st.node_id, "name": st.name, "version": st.version,
                                                    "api_revision": str(st.api_revision)})
    yield GaugeMetricFamily(f"{NS}_uptime_seconds", "Seconds since the daemon started.", value=st.uptime_s)
    pc = st.peers
    peers = GaugeMetricFamily(f"{NS}_peers", "Peers by state: connected directly or through a relay, or connecting.", labels=["state"])
    for state, count in (("direct", pc.direct), ("relayed", pc.relayed), ("connecting", pc.total - pc.connected)):
        peers.add_metric([state], count)
    yield peers
    nat = st.nat
    yield InfoMetricFamily(f"{NS}_nat", "This node's NAT verdict (netcheck).",
                           value={"status": nat.status, "mapping": nat.mapping, "filtering": nat.filtering})
    enabled = GaugeMetricFamily(f"{NS}_feature_enabled", "1 when a feature is configured on.", labels=["feature"])
    active = GaugeMetricFamily(f"{NS}_feature_active", "1 when a feature is working now (status.get says why not).", labels=["feature"])
    for field in dataclasses.fields(st):
        feature = getattr(st, field.name)
        if isinstance(feature, s.FeatureInfo):
            enabled.add_metric([field.name], float(feature.enabled))
            active.add_metric([field.name], float(feature.active))
    yield enabled
    yield active
    net_members = GaugeMetricFamily(f"{NS}_network_members", "Members of the network known by their signed records "
                                    "(this node excluded).", labels=NET_LABELS)
    net_peers = GaugeMetricFamily(f"{NS}_network_peers", "Peers of the network this node knows of.", labels=NET_LABELS)
    net_connected = GaugeMetricFamily(f"{NS}_network_connected_peers", "Peers of the network with a session up.", labels=NET_LABELS)
    for n in st.networks:
        net_members.add_metric([n.network, n.name], members.get(n.network, 0))
        net_peers.add_metric([n.network, n.name], n.peers)
        net_connected.add_metric([n.network, n.name], n.connected)
    yield from (net_members, net_peers, net_connected)
    open_streams = GaugeMetricFamily(f"{NS}_streams_open", "Mesh streams open now (out: opened here).", labels=["direction"])
    for direction in ("in", "out"):
        open_streams.add_metric([direction], streams.get(direction, 0))
    yield open_streams


class DaemonCollector(Collector):
    """Yields the daemon's metric families from its live state at each scrape (on the daemon's event loop)."""

    def __init__(self, api: "DaemonAPI") -> None:
        self.api = api

    def collect(self) -> Iterable[Metric]:
        api = self.api
        st = views.status(api)
        view = api.node.snapshot()
        api.directory(view=view)  # names as of this snapshot
        members: dict[str, int] = {}
        for m in view.members:
            members[str(m.network)] = members.get(str(m.network), 0) + 1
        streams = {"in": 0, "out": 0}
        for x in api.node.streams.streams.values():
            streams["out" if x.outgoing else "in"] += 1
        yield from node_families(st, members, streams)
        yield from counter_families(st.counters)
        yield from peer_families(views.peer_detail(api, p, view) for p in view.peers)


class Exporter:
    """The daemon's private registry and its text; ``server`` is the HTTP endpoint when ``[metrics] listen`` is set."""

    def __init__(self, api: "DaemonAPI") -> None:
        self.registry = CollectorRegistry()
        self.registry.register(DaemonCollector(api))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.server: Any = None  # metrics_http.MetricsServer

    def text(self) -> str:
        """The Prometheus text exposition format (0.0.4)."""
        return generate_latest(self.registry).decode()

    def encode(self, accept: str) -> tuple[bytes, str]:
        """The body and content type for an HTTP ``Accept`` header (OpenMetrics when the scraper asks for it)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def feature(self) -> s.FeatureInfo:
        if self.server is None:
            return s.FeatureInfo(False, False, "off")
        feature: s.FeatureInfo = self.server.feature()
        return feature
