"""The one API schema: a request and a result dataclass per DaemonAPI method, and their JSON form.

Request fields may be ``str``, ``int``, ``float``, ``bool``, ``str | None`` or ``list[str]``; each carries a
doc string and optional bounds in its metadata (``arg(...)``). ``decode_request`` checks a JSON-RPC params
value against a request class (``schema_codec.py``) and raises ``ApiError(INVALID_PARAMS)`` saying which parameter is wrong
and what was expected. Every string passes ``check_text`` before any method runs: well-formed Unicode (JSON
can carry a lone surrogate such as ``\\ud800``, UTF-8 cannot), its length, and for names the wire's own
rule (``check=``: core.wire's ``check_channel`` and ``check_network_name``). Results are plain
dataclasses; ``to_json`` turns them into JSON-ready dicts.
``docs/api.md`` is generated from these classes (``docs/gen_api.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.config import DEFAULT_CONFIG
from ..core.ids import MIN_PREFIX
from ..core.wire.frames import MAX_CHANNEL, check_channel
from ..core.wire.invite import MAX_NAME as MAX_NETWORK_NAME
from ..core.wire.invite import check_network_name
from .schema_codec import MAX_STR, arg, check_text, decode_request, request_fields, to_json, type_name  # noqa: F401 (the codec)
from .schema_owned import (  # noqa: F401 (owned networks' requests and results, in their own module)
    InviteInfo,
    NetworkAcceptOwnerRequest,
    NetworkAdminRequest,
    NetworkAdminResult,
    NetworkInvitesResult,
    NetworkOffersResult,
    NetworkOwnResult,
    NetworkRekeyResult,
    NetworkRemoveRequest,
    NetworkRemoveResult,
    NetworkRevokeInviteRequest,
    NetworkRevokeInviteResult,
    OfferInfo,
)

PEER_DOC = f"peer name (as peers.list shows it), full node id or unique id prefix ({MIN_PREFIX}+ characters)"
CHANNEL_DOC = f"channel name: 1 to {MAX_CHANNEL} bytes of UTF-8, no control characters"


# ====================================================================== requests
@dataclass
class Empty:
    """No parameters."""


@dataclass
class PeersListRequest:
    network: str | None = arg(None, doc="only peers of this network (id)")


@dataclass
class PeerRequest:
    peer: str = arg(doc=PEER_DOC)
    network: str | None = arg(None, doc="the network, when the peer is in several")


@dataclass
class IpRequest:
    peer: str | None = arg(None, doc="whose mesh IPs: a peer (" + "name, id or id prefix" + "); null for this node's own")
    network: str | None = arg(None, doc="only this network (name or id)")


@dataclass
class ExitUseRequest:
    peer: str | None = arg(None, doc="the exit node: a member that offers one (" + "name, id or id prefix" + "); null: stop using one")
    network: str | None = arg(None, doc="the network, when the peer is in several")
    allow_lan: bool = arg(False, doc="true: the LAN this host is attached to stays reachable directly; false: its "
                          "prefixes go through the exit node as well")


@dataclass
class ExitOfferRequest:
    offer: bool = arg(True, doc="true: offer this node as an exit node (IPv4, and IPv6 when it can forward it); false: stop offering")


@dataclass
class RoutePrefixRequest:
    prefix: str = arg(doc="an IPv4 prefix this node reaches and forwards to for members, e.g. 10.0.0.0/24")


@dataclass
class RouteAcceptRequest:
    peer: str = arg(doc="the member that advertises the prefix (" + "name, id or id prefix" + ")")
    prefix: str = arg(doc="the prefix, exactly as it advertises it (see routes.list)")


@dataclass
class ServeRequest:
    port: int = arg(doc="a local TCP port", lo=1, hi=65535)


@dataclass
class ForwardAddRequest:
    local: int = arg(doc="the local TCP port to listen on (0: any free port, reported back; not with persist)", lo=0, hi=65535)
    peer: str = arg(doc=PEER_DOC + ", or one of its mesh IPs")
    port: int = arg(doc="the TCP port on the peer (it must expose it: `omertactl serve add PORT` there)", lo=1, hi=65535)
    bind: str = arg("127.0.0.1", doc="the local address to listen on: an IPv4 or IPv6 address (anyone who can connect to it "
                                     "uses the forward)", max_len=64)
    network: str | None = arg(None, doc="the network, when the peer is in several")
    persist: bool = arg(False, doc="keep the forward across restarts (in the state directory, forwards.json)")


@dataclass
class ForwardRemoveRequest:
    local: int = arg(doc="the forward's local port", lo=1, hi=65535)
    bind: str | None = arg(None, doc="the forward's local address, when two forwards share the port", max_len=64)


@dataclass
class SshKnownHostsRequest:
    peer: str = arg(doc=PEER_DOC + ", or one of its mesh IPs")


@dataclass
class PingRequest:
    peer: str = arg(doc=PEER_DOC)
    count: int = arg(1, doc="number of probes", lo=1, hi=100)
    interval: float = arg(1.0, doc="seconds between probes", lo=0.01, hi=60)
    timeout: float = arg(5.0, doc="seconds to wait for each answer", lo=0.05, hi=60)
    network: str | None = arg(None, doc="the network, when the peer is in several")
    progress: str | None = arg(None, doc="JSON-RPC only: a token; each probe's result is sent as a `progress` notification carrying it",
                          jsonrpc_only=True)


@dataclass
class NetworkCreateRequest:
    name: str = arg("", doc=f"a name for people (carried in invites): at most {MAX_NETWORK_NAME} bytes of UTF-8, no control characters",
                    max_len=MAX_NETWORK_NAME, check=check_network_name)
    owned: bool = arg(False, doc="owned (docs/membership.md): this node owns it, each member holds a certificate, and "
                                 "every invite is a fresh signed token with uses and an expiry; false: open (the invite is the key)")


@dataclass
class NetworkJoinRequest:
    invite: str = arg(doc="the invite string (omerta1-... or, for an owned network, omerta2-... or omerta3-...)")
    wait: float = arg(10.0, doc="seconds to wait for the inviter to answer (0: do not wait)", lo=0, hi=120)


@dataclass
class NetworkRequest:
    network: str = arg(doc="network id")


@dataclass
class NetworkInviteRequest:
    network: str = arg(doc="network id")
    uses: int = arg(0, doc="owned networks: how many nodes the invite admits (0: one)", lo=0, hi=1000)
    expires: float = arg(0.0, doc="owned networks: seconds until the invite expires (0: 24 hours; at most 30 days)",
                         lo=0, hi=30 * 86400)
    name: str = arg("", doc="owned networks: the name the joiner's certificate gives it (\"\": the joiner's own)", max_len=64)
    tags: list[str] = arg([], doc="owned networks: tags the joiner's certificate carries (firewall rules' tag:NAME)")
    to: str | None = arg(None, doc="send the invite in-band to this node (" + "name, id or id prefix" + "), which this node "
                                   "has a session with in another network: its user takes it with network.accept")


@dataclass
class NetworkAcceptRequest:
    offer: str = arg(doc="the offered invite's id, as network.offers lists it, or a unique prefix (4+ characters)", max_len=64)
    wait: float = arg(10.0, doc="seconds to wait for the inviter to answer (0: do not wait)", lo=0, hi=120)


@dataclass
class ChannelSendRequest:
    peer: str = arg(doc=PEER_DOC)
    channel: str = arg(doc=CHANNEL_DOC, max_len=MAX_CHANNEL, check=check_channel)
    data: str = arg(doc="the message, as text or base64 (see encoding)", max_len=1_500_000,
                    too_long=f"a message is at most {DEFAULT_CONFIG.max_message} bytes (as base64, 1500000 characters): "
                             "split larger data into several messages")
    encoding: str = arg("utf-8", doc="`utf-8` or `base64`")
    network: str | None = arg(None, doc="the network, when the peer is in several")
    wait: bool = arg(False, doc="wait until the peer acknowledged the message")
    timeout: float = arg(10.0, doc="seconds to wait for room and acknowledgement", lo=0.05, hi=120)


@dataclass
class ChannelReceiveRequest:
    channel: str = arg(doc=CHANNEL_DOC, max_len=MAX_CHANNEL, check=check_channel)
    timeout: float = arg(0.0, doc="seconds to wait for a first message (0: return at once)", lo=0, hi=60)
    max: int = arg(100, doc="at most this many messages", lo=1, hi=1000)
    encoding: str = arg("utf-8", doc="`utf-8` (undecodable bytes replaced) or `base64`")


@dataclass
class SubscriptionRequest:
    subscription: int = arg(doc="the id events.subscribe returned", lo=0, hi=2**53)


# ====================================================================== results
@dataclass
class NetworkInfo:
    network: str
    name: str
    peers: int
    connected: int
    ipv4: str | None = None  # our mesh IPs in this network (assigned; see docs/vnet.md)
    ipv6: str | None = None
    device: str | None = None  # its TUN device, null while TUN is off (status.vnet says why)
    owner: str | None = None  # owned networks: the owner's node id; null: open (the invite is the key)
    epoch: int = 0  # owned networks: the key's epoch (one more at each rotation: docs/membership.md 6)
    claim_owner: str | None = None  # an open network becoming owned (docs/membership.md 7): the owner whose claim it follows
    owned_from: float | None = None  # when that claim is enforced (wall-clock seconds)
    claims_waiting: list[str] = field(default_factory=list)  # owners whose claims came but are not followed (accept_owner)


@dataclass
class PeerCounts:
    total: int
    connected: int
    direct: int
    relayed: int


@dataclass
class NatVerdict:
    status: str  # "classified" once peers reported our address (mapping from two, filtering from NAT tests); else "unknown"
    reason: str
    mapping: str = "unknown"
    filtering: str = "unknown"  # "none", "eif", "adf", "apdf" (measured with unsolicited probes)
    port_delta: int | None = None
    hairpinning: bool | None = None  # None: not measured (no NAT, or a dependent mapping)
    public_endpoints: list[str] = field(default_factory=list)
    local_endpoints: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    relays: list[dict] = field(default_factory=list)  # relay-capable members: name, node_id, rtt_ms, connected
    relay_mode: str = "auto"  # node.relay: "auto", "on" or "off"
    relaying: bool = False  # this node offers to relay for others now (announced in its signed records)
    relay_reason: str = ""  # why it does or does not


@dataclass
class FeatureInfo:
    enabled: bool
    active: bool
    detail: str


@dataclass
class StatusResult:
    node_id: str
    name: str
    version: str
    api_version: int
    api_revision: int
    uptime_s: float
    listen: list[str]
    endpoints: list[str]
    networks: list[NetworkInfo]
    peers: PeerCounts
    nat: NatVerdict
    relay: FeatureInfo
    audit: FeatureInfo
    dbus: FeatureInfo  # active while the D-Bus face is connected; otherwise detail says why and when it retries
    vnet: FeatureInfo  # the virtual network: active with a TUN per network; otherwise detail says why and the fix
    socks: FeatureInfo  # the SOCKS5 gateway ([socks] listen): active with its address; otherwise off, or why it did not start
    metrics: FeatureInfo  # the HTTP metrics endpoint ([metrics] listen): active with its URL; otherwise off, or why not
    dns: FeatureInfo  # mesh DNS (NAME.NETWORK.mesh): active with its listeners and systemd-resolved's state; else why not
    write_group: str  # [api] group: its members may call write methods (root always may)
    counters: dict[str, int]
    status_text: str
    exit: ExitResult | None = None  # exit nodes, as exit.status (null until that part has started)
    routes: RoutesResult | None = None  # subnet routes, as routes.list (null until that part has started)
    dns_resolved: str = ""  # mesh DNS: "registered" (systemd-resolved sends .mesh names here) or why not (dns.get)
    dns_servers: list[DnsServer] = field(default_factory=list)  # where mesh DNS answers, per device (dns.get)


@dataclass
class PeerInfo:
    name: str
    node_id: str
    short_id: str
    network: str
    network_name: str
    endpoint: str | None
    path: str | None  # "direct", "punched", "relay via <name>", or null without a session
    rtt_ms: float | None
    last_handshake_s: float | None  # seconds since the last completed handshake
    bytes_in: int
    bytes_out: int
    connected: bool
    loss: float | None = None  # share of the last probes on the current path that went unanswered
    nat: str | None = None  # the peer's NAT type, as its signed record states it
    ipv4: str | None = None  # the peer's mesh IPs in this network (the address assignment)
    ipv6: str | None = None
    routes: list[str] = field(default_factory=list)  # subnet routes its signed record advertises in this network
    routes_accepted: list[str] = field(default_factory=list)  # prefixes this node accepted from it (command or config)
    routes_active: list[str] = field(default_factory=list)  # accepted prefixes routed to it now, in this network
    exit_offered: bool = False  # its signed record offers an exit node
    exit_used: bool = False  # this node sends its Internet traffic through it (exit.use; exit.status says the state)
    role: str | None = None  # owned networks: "member", "admin" or "owner" from its verified certificate; null: none
    tags: list[str] = field(default_factory=list)  # owned networks: the tags its verified certificate carries
    cert_expires: int | None = None  # owned networks: when its certificate expires (Unix time, seconds); null: none


@dataclass
class PeersListResult:
    peers: list[PeerInfo]


@dataclass
class SessionInfo:
    slot: str
    age_s: float
    initiator: bool
    packets_sent: int


@dataclass
class PeerDetail(PeerInfo):
    path_reason: str = ""
    why: str = ""  # both NAT verdicts in words: why the path is what it is
    own_nat: dict = field(default_factory=dict)
    peer_nat: dict = field(default_factory=dict)
    paths: list[dict] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    packets_in: int = 0
    packets_out: int = 0
    handshakes: int = 0
    handshake_in_progress: bool = False
    sessions: list[SessionInfo] = field(default_factory=list)
    # our message stream to it: waiting, in_flight (frames), held_s (null: not held), rto_ms, frames_sent,
    # retransmits, give_ups, frames_received, duplicates
    stream: dict = field(default_factory=dict)


@dataclass
class ServeListResult:
    ports: list[int]  # the ports peers may open streams to now
    configured: list[int]  # [serve] ports in the config (serve.add/remove change the set on top of it)


@dataclass
class StreamInfo:
    peer: str  # node id
    name: str
    port: int  # the port on the far side (out) or here (in)
    stream: int | None  # the stream id (even: opened by the node with the smaller id); null: kernel TCP (via "tcp")
    direction: str  # "out": opened from here (omertactl connect); "in": a peer's stream to a port exposed here
    bytes_in: int
    bytes_out: int
    age_s: float
    forward: str | None = None  # "ADDRESS:PORT" of the forward whose connection opened it (out streams only)
    via: str = "stream"  # "stream": a mesh stream; "tcp": a peer's kernel TCP through our stream gate (in only: the
    # connections this node opens that way are handed to their clients and not seen here; meshd/meshtcp.py)


@dataclass
class ForwardInfo:
    bind: str  # the local address listened on
    local: int  # the local port
    peer: str  # the peer as given (a name, node id, id prefix or mesh IP: resolved for each connection)
    node_id: str | None  # the node it resolved to last (null: not yet)
    name: str  # that node's name now (else the peer as given)
    port: int  # the port on the peer
    network: str | None
    kept_in: str | None  # "config" ([[forward]] in meshd.toml), "state" (persist: forwards.json), null (until the daemon stops)
    listening: bool  # false: the listener could not be opened at start (last_error says why)
    connections: int  # open now
    connections_total: int  # accepted since the forward was made
    bytes_in: int  # from the peer to local clients
    bytes_out: int  # from local clients to the peer
    age_s: float
    errors: int  # connections closed without a stream (the peer unreachable, the port not exposed there, limits)
    last_error: str | None  # the last of those reasons, e.g. "port 22 not exposed on bravo"


@dataclass
class ForwardListResult:
    forwards: list[ForwardInfo]


@dataclass
class StreamsListResult:
    streams: list[StreamInfo]
    forwards: list[ForwardInfo] = field(default_factory=list)  # the port forwards (forward.list)


@dataclass
class ServeChangeResult:
    port: int
    changed: bool  # false: it was already exposed (add), or was not (remove)
    ports: list[int]  # the ports exposed now


@dataclass
class SshKnownHostsResult:
    node_id: str  # the peer's node id: the HostKeyAlias omerta-ssh gives ssh, and the alias of every line
    name: str
    lines: list[str]  # known_hosts lines "<node id> <key type> <base64 key>": the keys its signed records publish


@dataclass
class PeerGetResult:
    node_id: str
    name: str
    networks: list[PeerDetail]


@dataclass
class IpAddresses:
    network: str
    network_name: str
    ipv4: str | None  # null: none assigned (the subnet is full, or the member is not known in this network)
    ipv6: str | None
    device: str | None  # this node's TUN for the network (own addresses only), null while TUN is off
    subnet4: str  # the network's IPv4 subnet and IPv6 ULA prefix
    subnet6: str


@dataclass
class IpResult:
    node_id: str
    name: str
    addresses: list[IpAddresses]
    vnet: FeatureInfo  # this node's virtual network: a TUN per network, or why not


@dataclass
class DnsServer:
    network: str
    network_name: str
    device: str
    domain: str  # NETWORK.mesh: the search domain
    addresses: list[str]  # this node's mesh IPs the responder listens on (port 53, UDP and TCP)
    error: str | None  # why it does not listen on some of them (port taken, no privilege)


@dataclass
class DnsResult:
    dns: FeatureInfo
    resolved: str  # "registered" (systemd-resolved sends .mesh names here), or why not
    servers: list[DnsServer]  # one per device
    configure: list[str]  # what to configure by hand when systemd-resolved was not told (else empty)


@dataclass
class PingProbe:
    seq: int
    ok: bool
    rtt_ms: float | None
    endpoint: str | None
    path: str | None
    error: str | None


@dataclass
class PingResult:
    peer: str
    node_id: str
    network: str
    sent: int
    received: int
    loss: float
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    probes: list[PingProbe]


@dataclass
class NetworkCreateResult:
    network: str
    name: str
    invite: str


@dataclass
class NetworkJoinResult:
    network: str
    name: str
    inviter: str
    connected: bool  # to the inviter, or to the admin that enrolled this node (enrolled_by)
    enrolled_by: str | None = None  # owned networks: the admin that enrolled this node (another one when the inviter was away)


@dataclass
class NetworkLeaveResult:
    network: str
    left: bool


@dataclass
class NetworkListResult:
    networks: list[NetworkInfo]


@dataclass
class NetworkInviteResult:
    network: str
    invite: str
    endpoints: list[str]
    sent_to: str | None = None  # the node it was sent to in-band (network.invite to); null: not sent
    offer: str | None = None  # the offer's id there (what network.accept takes)


@dataclass
class ChannelSendResult:
    message_id: int
    bytes: int
    delivered: bool | None  # None when not waited for


@dataclass
class ChannelMessageInfo:
    peer: str
    node_id: str
    network: str
    channel: str
    data: str
    encoding: str
    size: int


@dataclass
class ChannelReceiveResult:
    messages: list[ChannelMessageInfo]
    dropped: int  # always 0 now: a full inbox holds messages back at their senders (kept for older clients)


@dataclass
class SubscribeResult:
    subscription: int
    seq: int  # the snapshot is as of this event sequence number; deltas follow with larger ones
    snapshot: dict[str, Any]


@dataclass
class MetricsResult:
    text: str  # the Prometheus text exposition format 0.0.4 (what GET /metrics serves by default)


@dataclass
class ExitResult:
    offering: bool  # this node is an exit node (its records say so; table inet omerta forwards for members)
    using: str | None  # the exit node we send Internet traffic to (node id), null: none
    state: str  # "" (none), "active", or why its traffic is refused now ("lost: ...")
    offered_by: list[dict]  # members whose signed records offer an exit node: node_id, name, network
    error: str | None  # why exit nodes cannot work here (no TUN, no SO_MARK), else null
    using_name: str | None = None  # the name of the exit node we use
    families: list[str] = field(default_factory=list)  # what this node offers: ["ipv4", "ipv6"]; ["ipv4"]: no IPv6 forwarding
    allow_lan: bool = False  # with an exit in use: the LAN stays reachable directly (exit.use allow_lan)
    lan: list[str] = field(default_factory=list)  # with an exit in use, without allow_lan: the LAN's prefixes, sent by the exit too


@dataclass
class RulesResult:
    active: bool  # some device is filtered now (a [[rules]] table applies to one of our networks)
    rules: list[dict]  # every [[rules]] table: index, network, from, to, action, sources (mesh IPs), packets, bytes, note
    filtered: list[dict]  # per filtered device: device, network, network_name, rules (indexes), dropped_packets, dropped_bytes
    error: str | None  # why the rules are not in force (TUN off, no nft, nft refused), else null


@dataclass
class RoutesResult:
    advertised: list[str]  # prefixes this node advertises (signed into its records; it forwards to them)
    # accepted (peer, prefix) pairs: node_id (null: a config entry whose peer is not known), name, prefix, state ("active"
    # or why not), installed, source ("command": routes.accept; "config": [routes] accept in meshd.toml; or both)
    accepted: list[dict]
    offered: list[dict]  # members' advertisements: node_id, name, network, prefixes
    error: str | None  # why subnet routes cannot work here (TUN off), else null


@dataclass
class OkResult:
    ok: bool


@dataclass
class ReloadResult:
    changed: list[str]
    restart_required: list[str]
