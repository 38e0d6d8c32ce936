"""The daemon's configuration: a TOML file (``/etc/omerta/meshd.toml``) over an embedded default.

``DEFAULT_TOML`` below *is* the default configuration and its documentation; with no file at all the
daemon runs on it. A file only needs the keys it changes. Unknown sections or keys, and values of the wrong
type, are refused with the file, the key and what was expected, so a typo never silently does nothing.

On SIGHUP (or ``daemon.reload``) the file is read again. Settings marked *live* below take effect at once;
the others are reported as needing a restart.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import DEFAULT_CONFIG
from ..core.errors import UsageError
from ..core.ids import NodeId
from ..core.wire.rekey import MAX_GRACE
from ..vnet.fwrules import Rule, RuleError, parse_rules
from ..vnet.subnets import PrefixError, parse_prefix

MAX_OWNER_TRANSITION = DEFAULT_CONFIG.cert_lifetime * 2 // 3  # an owner claim's transition: within members' certificates

DEFAULT_TOML = """\
# omerta-meshd configuration. Every key is optional; the values shown are the defaults.

[node]
name = ""                 # this node's name in status ("" = the host name)
listen = "0.0.0.0"        # UDP address to bind
port = 51888              # UDP port (0 = any free port)
ipv6 = false              # also bind the IPv6 wildcard on the same port
advertise = []            # endpoints put in invites, "host:port"; empty = this host's addresses
bootstrap = []            # "NODEID@HOST:PORT": peers to contact in every network at start
relay = "auto"            # relay end-to-end encrypted traffic for members that cannot meet directly: "auto" (when
                          # public or behind an endpoint-independent NAT, modest quota), "on" (true), "off" (false)
audit_encryption = false  # check each outgoing datagram is a well-formed encrypted packet
strict_audit = false      # stop the daemon on an audit violation
key_grace = 604800        # owned networks this node owns: seconds the key a removal rotated out stays accepted, so
                          # members that were away (a week by default) get in and learn the new one (60 to 2592000)
owner_transition = 1209600  # an open network this node claims (created by an earlier version, or `network own`):
                          # seconds until it is owned and members without this node's certificate are left out
                          # (14 days by default; 1 to 1728000, 20 days: the certificates it gives members
                          # at the claim must still be valid then)

[api]
socket = ""               # JSON-RPC socket ("" = <runtime directory>/meshd.sock)
group = "omerta"          # live: members may call write methods (root always may)
max_connections = 64      # live: concurrent JSON-RPC clients
max_per_user = 16         # live: connections one non-root user may hold (the rest stay open to others)
idle_timeout = 300        # live: seconds a connection may sit idle (no request, no subscription) before it is closed
max_frame = 4194304       # live: bytes per JSON-RPC frame
max_inflight = 32         # live: requests in flight (read, not yet answered; each item of a batch counts) per connection
max_inflight_per_user = 64  # live: requests in flight from one non-root user across its connections
max_inflight_total = 256  # live: requests in flight from everyone (root and the group may have 64 more)
max_batch = 64            # live: requests per JSON-RPC batch
reply_buffer = 262144     # live (new connections): unsent reply bytes a client may leave unread; past it its requests are
                          # neither read nor started until it reads, and the connection is closed past 4 times it
slow_reader_timeout = 10  # live: seconds a client may stay over reply_buffer before its connection is closed
subscriber_queue = 1024   # live: events queued per subscriber before it is cut off

[dbus]
enabled = "auto"          # true, false, or "auto" (use the system bus whenever it is there; retried)
address = ""              # a bus address to use instead of the system bus
signal_rate = 20          # live: Events signals per second at most (events are coalesced into them)
signal_batch = 256        # live: events per Events signal at most

[log]
level = "info"            # live: debug, info, warning, error

[vnet]
enabled = "auto"          # a TUN device per network (the mesh IPs): true, false, or "auto" (whenever the daemon
                          # has CAP_NET_ADMIN and /dev/net/tun; without them it runs with TUN off and says why)
mtu = 1340                # the devices' MTU (at most 1351: a packet plus its IPSEG and relay headers in one datagram)
devices = []              # "NETWORK=DEVICE": a device name other than om-NETWORK (at most 15 characters)
static = []               # "NETWORK=ADDRESS": a static mesh IPv4 or IPv6 address (wins unless another member's
                          # static claim wants the same one; the lower node id keeps it then)

[dns]
enabled = "auto"          # mesh DNS: NAME.NETWORK.mesh answered on each device's mesh IPs, port 53, registered with
                          # systemd-resolved when it runs: true, false, or "auto" (on whenever TUN is; `omertactl dns`)

[routes]
accept = []               # live: members' subnet routes to accept, as `omertactl routes accept PEER PREFIX` does
                          # (docs/vnet.md "Subnet routes"), e.g. [{ peer = "bravo", prefix = "10.1.0.0/24" }]; peer: a
                          # name, node id or unique id prefix. Refused ones (default routes, overlaps) are listed with
                          # the reason by `omertactl routes`; `routes unaccept` cannot remove these (edit the file)

[serve]
ports = []                # local TCP ports peers may open mesh streams to (127.0.0.1 or ::1): `omertactl connect`,
                          # `omerta-ssh`; none by default. `omertactl serve add|remove` changes the set live and keeps
                          # the change in the state directory (serve.json)

[ssh]
host_keys = ["/etc/ssh/ssh_host_*_key.pub"]  # this host's sshd public keys (paths or glob patterns), published in
                          # our signed records so peers' `omerta-ssh` checks them strictly (those that fit: Ed25519,
                          # ECDSA P-256; RSA keys are too big for a record); [] publishes none

[socks]                   # a SOCKS5 gateway into the mesh (RFC 1928): `curl --socks5-hostname 127.0.0.1:1080 http://bravo:8080/`
listen = ""               # "ADDRESS:PORT" to listen on, e.g. "127.0.0.1:1080" (port 0: any free port); "" = off
users = []                # "USER:PASSWORD" pairs: with any, clients must log in (RFC 1929); a listen address that is not
                          # loopback needs them (else the gateway is not started). Keep this file 0600 then. With none,
                          # only local users who may write (root, the daemon's user, [api] group) are served
max_clients = 64          # SOCKS clients at once (handshaking or connected); more are closed at once
handshake_timeout = 10    # seconds a client has to send its greeting and request
connect_timeout = 15      # seconds to wait for the peer to answer the stream (then: host unreachable)

[metrics]                 # Prometheus metrics over HTTP (GET /metrics); `omertactl metrics` prints them either way
listen = ""               # "ADDRESS:PORT", e.g. "127.0.0.1:9464" (port 0: any free port; status shows it); "" = off
allow_remote = false      # serve on an address that is not loopback (LAN, mesh IP, 0.0.0.0): anyone who reaches it
                          # reads this node's peers and traffic; without it such an address is refused

[names]                   # live: local names for peers, name = "<node id>"

# [[forward]]             # repeatable: a local TCP port forwarded to a port a peer exposes (`omertactl forward`);
# local = 8022            #   the local port (1-65535)
# peer = "bravo"          #   a peer name, node id, unique id prefix or mesh IP
# port = 22               #   the port on the peer (exposed there: `omertactl serve add 22`)
# bind = "127.0.0.1"      #   the local address to listen on (IPv4 or IPv6; the default is 127.0.0.1)
# network = ""            #   the network, when the peer is in several

# [[rules]]               # repeatable, live: firewall rules on the mesh devices (docs/vnet.md "Firewall rules";
# network = "home"        #   `omertactl rules`). A network any rule applies to is default-deny for new inbound traffic
# from = "bravo"          #   (answers and ping still pass); others are not filtered. The first match wins. from: a peer,
# to = "22/tcp"           #   "tag:NAME" (matches nobody yet) or "any"; to: "PORT/tcp", "LO-HI/udp", "any/tcp", "icmp",
# action = "allow"        #   "any"; action: "allow" or "deny"; network: a name or id ("" or omitted: every network)
"""

LIVE = {
    "api.group", "api.max_connections", "api.max_per_user", "api.idle_timeout", "api.max_frame", "api.max_inflight", "api.max_batch",
    "api.max_inflight_per_user", "api.max_inflight_total", "api.reply_buffer", "api.slow_reader_timeout", "api.subscriber_queue",
    "dbus.signal_rate", "dbus.signal_batch", "log.level", "names", "rules", "routes.accept",
}
LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """The configuration is unusable; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    listen: str
    port: int
    ipv6: bool
    advertise: list[str]
    bootstrap: list[str]
    relay: bool | str  # "auto", "on", "off" (true/false: "on"/"off")
    audit_encryption: bool
    strict_audit: bool
    key_grace: int
    owner_transition: int


@dataclass(frozen=True)
class ApiConfig:
    socket: str
    group: str
    max_connections: int
    max_per_user: int
    idle_timeout: int
    max_frame: int
    max_inflight: int
    max_inflight_per_user: int
    max_inflight_total: int
    max_batch: int
    reply_buffer: int
    slow_reader_timeout: int
    subscriber_queue: int


@dataclass(frozen=True)
class DbusConfig:
    enabled: bool | str
    address: str
    signal_rate: int
    signal_batch: int


@dataclass(frozen=True)
class LogConfig:
    level: str


@dataclass(frozen=True)
class VnetConfig:
    enabled: bool | str  # True, False, "auto"
    mtu: int
    devices: list[str]  # "NETWORK=DEVICE"
    static: list[str]  # "NETWORK=ADDRESS"

    def device_for(self, network: str) -> str | None:
        return _pairs(self.devices).get(network)

    def static_for(self, network: str) -> tuple[str | None, str | None]:
        """(IPv4, IPv6) configured for ``network``."""
        v4 = v6 = None
        for k, v in _items(self.static):
            if k == network:
                if ":" in v:
                    v6 = v
                else:
                    v4 = v
        return v4, v6


def _items(entries: list[str]) -> list[tuple[str, str]]:
    out = []
    for e in entries:
        k, sep, v = e.partition("=")
        if sep and k.strip() and v.strip():
            out.append((k.strip(), v.strip()))
    return out


def _pairs(entries: list[str]) -> dict[str, str]:
    return dict(_items(entries))


@dataclass(frozen=True)
class DnsConfig:
    enabled: bool | str  # True, False, "auto" (meshd/dns.py)


@dataclass(frozen=True)
class RouteAccept:
    """One ``[routes] accept`` entry: a member's advertised prefix to route to it (meshd/routeconfig.py)."""

    peer: str  # as the admin wrote it: a name, node id or id prefix (resolved at every refresh)
    prefix: str  # normalised (vnet/subnets.parse_prefix)


@dataclass(frozen=True)
class RoutesConfig:
    accept: list[RouteAccept]


def _route_accepts(doc: list[Any], bad: Any) -> list[RouteAccept]:
    out: list[RouteAccept] = []
    for i, t in enumerate(doc, 1):
        where = f"routes.accept #{i}"
        if not isinstance(t, dict) or set(t) != {"peer", "prefix"} or not all(isinstance(v, str) for v in t.values()) \
                or not t["peer"].strip():
            raise bad(f'{where}: {t!r} is not {{ peer = "NAME", prefix = "ADDRESS/LENGTH" }} (two non-empty strings)')
        try:
            entry = RouteAccept(t["peer"].strip(), str(parse_prefix(t["prefix"])))
        except PrefixError as e:
            raise bad(f"{where}: {e}") from None
        if entry in out:
            raise bad(f"{where}: {entry.prefix} from {entry.peer} is listed twice; keep one")
        out.append(entry)
    return out


@dataclass(frozen=True)
class ServeConfig:
    ports: list[int]  # local TCP ports exposed to peers' streams (meshd/serve.py)


@dataclass(frozen=True)
class SshConfig:
    host_keys: list[str]  # paths or glob patterns of OpenSSH public key files


@dataclass(frozen=True)
class ForwardConfig:
    """One ``[[forward]]`` table: connections to bind:local become streams to peer:port (meshd/forward.py)."""

    local: int
    peer: str  # as the admin typed it: a name, node id, id prefix or mesh IP (resolved for each connection)
    port: int
    bind: str = "127.0.0.1"
    network: str = ""


FORWARD_KEYS = {"local": int, "peer": str, "port": int, "bind": str, "network": str}


def forward_problem(f: ForwardConfig) -> str | None:
    """What is wrong with a forward's fields (None: nothing); the one check of the config and of forward.add."""
    if not 0 < f.port < 65536:
        return f"port = {f.port} is not a TCP port (1-65535)"
    if not 0 <= f.local < 65536:
        return f"local = {f.local} is not a TCP port (1-65535)"
    if not f.peer.strip():
        return "peer is empty: name the peer (a name, node id, id prefix or mesh IP)"
    try:
        ipaddress.ip_address(f.bind)
    except ValueError:
        return f"bind = {f.bind!r} is not an IP address: use 127.0.0.1 (the default), ::1, or an address of this host"
    return None


def _forwards(doc: Any, bad: Any) -> list[ForwardConfig]:
    if not isinstance(doc, list) or not all(isinstance(t, dict) for t in doc):
        raise bad("forward must be an array of tables: [[forward]] with local, peer, port (and bind, network)")
    out: list[ForwardConfig] = []
    for i, t in enumerate(doc, 1):
        where = f"[[forward]] #{i}"
        for k, v in t.items():
            if k not in FORWARD_KEYS:
                raise bad(f"{where}: unknown key {k!r}; known keys: {', '.join(FORWARD_KEYS)}")
            if not isinstance(v, FORWARD_KEYS[k]) or isinstance(v, bool):
                raise bad(f"{where}: {k} = {v!r} has the wrong type; it is {'a number' if FORWARD_KEYS[k] is int else 'a string'}")
        missing = [k for k in ("local", "peer", "port") if k not in t]
        if missing:
            raise bad(f"{where}: {', '.join(missing)} missing; a forward needs local, peer and port")
        f = ForwardConfig(**t)
        if f.local == 0:
            raise bad(f"{where}: local = 0: a forward in the config needs a fixed local port (1-65535)")
        if (why := forward_problem(f)) is not None:
            raise bad(f"{where}: {why}")
        if any((g.bind, g.local) == (f.bind, f.local) for g in out):
            raise bad(f"{where}: {f.bind} port {f.local} is forwarded twice; give each forward its own local port")
        out.append(f)
    return out


@dataclass(frozen=True)
class SocksConfig:
    listen: str  # "ADDRESS:PORT" or "" (off): the SOCKS5 gateway (meshd/socks.py)
    users: list[str]  # "USER:PASSWORD"
    max_clients: int
    handshake_timeout: int
    connect_timeout: int


def parse_listen(text: str, example: str = "127.0.0.1:1080") -> tuple[str, int]:
    """``ADDRESS:PORT`` or ``[V6]:PORT`` with an IP address and a port (0: any) -> (address, port) ([socks] and
    [metrics] listen)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not ADDRESS:PORT with an IP address (e.g. {example})") from None
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not ADDRESS:PORT with a port 0-65535 (e.g. {example})")
    return host, int(port)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str  # "ADDRESS:PORT" or "" (off): the HTTP endpoint (meshd/metrics_http.py)
    allow_remote: bool  # a listen address that is not loopback is refused without it


@dataclass(frozen=True)
class DaemonConfig:
    node: NodeConfig
    api: ApiConfig
    dbus: DbusConfig
    log: LogConfig
    vnet: VnetConfig
    serve: ServeConfig
    ssh: SshConfig
    socks: SocksConfig
    metrics: MetricsConfig
    dns: DnsConfig  # (every section's values come from DEFAULT_TOML and the file, through build())
    routes: RoutesConfig
    names: dict[str, str] = field(default_factory=dict)
    forwards: list[ForwardConfig] = field(default_factory=list)  # [[forward]] (meshd/forward.py)
    rules: list[Rule] = field(default_factory=list)  # [[rules]] (vnet/fwrules.py, meshd/firewall.py)
    source: str = "<embedded default>"

    def flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for sec in _SECTIONS:
            for k, v in dataclasses.asdict(getattr(self, sec)).items():
                out[f"{sec}.{k}"] = v
        out["names"] = dict(self.names)
        out["forward"] = [dataclasses.astuple(f) for f in self.forwards]
        out["rules"] = list(self.rules)
        return out

    def with_(self, section: str, **changes: Any) -> "DaemonConfig":
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})

    def name_map(self) -> dict[str, NodeId]:
        return {k: NodeId.parse(v) for k, v in self.names.items()}


_SECTIONS = {"node": NodeConfig, "api": ApiConfig, "dbus": DbusConfig, "log": LogConfig, "vnet": VnetConfig, "ssh": SshConfig,
             "serve": ServeConfig, "socks": SocksConfig, "metrics": MetricsConfig, "dns": DnsConfig, "routes": RoutesConfig}
_DEFAULTS: dict[str, Any] = tomllib.loads(DEFAULT_TOML)


def _type_ok(default: Any, value: Any, key: str) -> bool:
    if key in ("dbus.enabled", "vnet.enabled", "dns.enabled"):
        return isinstance(value, bool) or value == "auto"
    if key == "node.relay":
        return isinstance(value, bool) or value in ("auto", "on", "off")
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if key == "routes.accept":  # (each table checked by _route_accepts)
        return isinstance(value, list)
    if key == "serve.ports":  # (checked as ports in _validate)
        return isinstance(value, list) and all(isinstance(v, int) for v in value)
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def parse_endpoint(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError with what was expected."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def parse_bootstrap(text: str) -> tuple[NodeId, tuple[str, int]]:
    node, sep, ep = text.partition("@")
    if not sep:
        raise ValueError(f"{text!r} is not NODEID@HOST:PORT")
    try:
        return NodeId.parse(node), parse_endpoint(ep)
    except UsageError as e:
        raise ValueError(str(e)) from None


def build(doc: dict[str, Any], source: str) -> DaemonConfig:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{source}: {msg}")

    sections: dict[str, Any] = {}
    for sec, cls in _SECTIONS.items():
        merged = dict(_DEFAULTS[sec])
        given = doc.get(sec, {})
        if not isinstance(given, dict):
            raise bad(f"[{sec}] must be a table")
        for k, v in given.items():
            key = f"{sec}.{k}"
            if k not in merged:
                raise bad(f"unknown key {key!r}; known keys in [{sec}]: {', '.join(sorted(merged))}")
            if not _type_ok(merged[k], v, key):
                raise bad(f"{key} = {v!r} has the wrong type; the default is {merged[k]!r}")
            merged[k] = v
        sections[sec] = cls(**merged)
    sections["routes"] = RoutesConfig(_route_accepts(sections["routes"].accept, bad))
    for sec in doc:
        if sec not in _SECTIONS and sec not in ("names", "forward", "rules"):
            raise bad(f"unknown section [{sec}]; known: {', '.join([*_SECTIONS, 'names', 'forward', 'rules'])}")
    names = doc.get("names", {})
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise bad('[names] maps names to node ids: alice = "<node id>"')
    try:
        rules = parse_rules(doc.get("rules", []))
    except RuleError as e:
        raise bad(str(e)) from None
    cfg = DaemonConfig(names=dict(names), forwards=_forwards(doc.get("forward", []), bad), rules=rules, source=source, **sections)
    _validate(cfg, bad)
    return cfg


def _validate(cfg: DaemonConfig, bad: Any) -> None:
    if cfg.node.port > 65535:
        raise bad(f"node.port = {cfg.node.port} is not a UDP port (0-65535)")
    if not 60 <= cfg.node.key_grace <= MAX_GRACE:
        raise bad(f"node.key_grace = {cfg.node.key_grace} is not 60 to {MAX_GRACE} seconds (30 days)")
    if not 1 <= cfg.node.owner_transition <= MAX_OWNER_TRANSITION:
        raise bad(f"node.owner_transition = {cfg.node.owner_transition} is not 1 to {MAX_OWNER_TRANSITION} seconds (20 days: "
                  "the certificates members get at the claim must still be valid when it is enforced)")
    if cfg.log.level not in LEVELS:
        raise bad(f"log.level = {cfg.log.level!r}; use one of {', '.join(LEVELS)}")
    for key, lo in (("max_connections", 1), ("max_per_user", 1), ("idle_timeout", 1), ("max_frame", 1024), ("max_inflight", 1),
                    ("max_inflight_per_user", 1), ("max_inflight_total", 1), ("max_batch", 1), ("reply_buffer", 4096),
                    ("slow_reader_timeout", 1), ("subscriber_queue", 8)):
        if getattr(cfg.api, key) < lo:
            raise bad(f"api.{key} must be at least {lo}")
    if cfg.dbus.signal_rate < 1 or cfg.dbus.signal_batch < 1:
        raise bad("dbus.signal_rate and dbus.signal_batch must be at least 1")
    for ep in cfg.node.advertise:
        try:
            parse_endpoint(ep)
        except ValueError as e:
            raise bad(f"node.advertise: {e}") from None
    for b in cfg.node.bootstrap:
        try:
            parse_bootstrap(b)
        except ValueError as e:
            raise bad(f"node.bootstrap: {e}") from None
    if not 1280 <= cfg.vnet.mtu <= 1351:
        raise bad(f"vnet.mtu = {cfg.vnet.mtu}: use 1280 (the IPv6 minimum) to 1351 "
                  "(a packet with its IPSEG and relay headers in one 1472-byte datagram)")
    for entry in cfg.vnet.devices:
        k, sep, v = entry.partition("=")
        v = v.strip()
        if not sep or not k.strip() or not 1 <= len(v) <= 15 or any(c in v for c in "/: \t"):
            raise bad(f"vnet.devices: {entry!r} is not NETWORK=DEVICE (a device name of 1-15 characters without '/', ':' or spaces)")
    for entry in cfg.vnet.static:
        k, sep, v = entry.partition("=")
        try:
            if not sep or not k.strip():
                raise ValueError
            ipaddress.ip_address(v.strip())
        except ValueError:
            raise bad(f"vnet.static: {entry!r} is not NETWORK=ADDRESS (an IPv4 or IPv6 address)") from None
    for port in cfg.serve.ports:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise bad(f"serve.ports: {port!r} is not a TCP port (1-65535)")
    _validate_socks(cfg.socks, bad)
    _validate_metrics(cfg.metrics, bad)
    for name, nid in cfg.names.items():
        try:
            NodeId.parse(nid)
        except UsageError:
            raise bad(f"names.{name} = {nid!r} is not a node id (52 base32 characters)") from None


def _validate_socks(c: SocksConfig, bad: Any) -> None:
    if c.listen:
        try:
            parse_listen(c.listen)
        except ValueError as e:
            raise bad(f"socks.listen: {e}; or \"\" to leave the gateway off") from None
    for entry in c.users:
        user, sep, password = entry.partition(":")
        if not sep or not user or not password or len(user.encode()) > 255 or len(password.encode()) > 255:
            raise bad("socks.users: each entry is \"USER:PASSWORD\", both non-empty and at most 255 bytes (RFC 1929)")
    for key in ("max_clients", "handshake_timeout", "connect_timeout"):
        if getattr(c, key) < 1:
            raise bad(f"socks.{key} must be at least 1")


def _validate_metrics(c: MetricsConfig, bad: Any) -> None:
    if not c.listen:
        return
    try:
        host, _ = parse_listen(c.listen, "127.0.0.1:9464")
    except ValueError as e:
        raise bad(f"metrics.listen: {e}; or \"\" to leave the endpoint off") from None
    if not ipaddress.ip_address(host).is_loopback and not c.allow_remote:
        raise bad(f"metrics.listen = \"{c.listen}\" is not a loopback address: anyone who reaches it (the LAN, the mesh) could "
                  "read this node's peers and traffic; listen on 127.0.0.1 or ::1, or add allow_remote = true to [metrics] "
                  "to serve there on purpose")


def default() -> DaemonConfig:
    return build({}, "<embedded default>")


def load(path: Path | None) -> DaemonConfig:
    """The configuration from ``path`` over the defaults; the embedded default when ``path`` is None."""
    if path is None:
        return default()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; create it (every key is optional) or drop --config to use the defaults") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it ({e})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return build(doc, str(path))


def diff(old: DaemonConfig, new: DaemonConfig) -> tuple[list[str], list[str]]:
    """(changed keys applied live, changed keys needing a restart)."""
    a, b = old.flat(), new.flat()
    changed = sorted(k for k in b if a.get(k) != b[k])
    return [k for k in changed if k in LIVE], [k for k in changed if k not in LIVE]
