"""omerta-meshd: parse arguments, build the daemon's objects, run until told to stop.

Start-up order: configuration and logging; the state directory (locked) and runtime directory; the mesh
node (UDP sockets, identity, networks and peer cache restored); the virtual network (stale devices removed,
a TUN per network, or TUN off and why: ``meshd/vnet.py``); the JSON-RPC socket, the stream socket and
the port forwards (``meshd/forward.py``), the SOCKS gateway and the metrics endpoint when configured
(``meshd/socks.py``, ``meshd/metrics_http.py``); D-Bus (a bus that is
not there yet is retried in the background, as is one that goes away later); then ``READY=1``. SIGHUP
reloads the configuration (as ``daemon.reload`` does); SIGTERM and SIGINT stop gracefully: subscribers
are told, peers are told (close frames, even when the state cannot be saved), the peer cache is saved (a
failure, e.g. a full disk, is logged), sockets removed.
The daemon always runs in the foreground (systemd or the user supervises it); ``--foreground`` is
accepted so that scripts can say so.

Exit status: 0 after a clean stop, 1 when the daemon could not start or run (a damaged state file, a
missing identity file while the state has networks: see ``--new-identity``), 2 for a bad configuration
or command line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import socket
import sys
from importlib import metadata
from typing import Any

from ..core.config import DEFAULT_CONFIG
from ..core.errors import UsageError
from ..io.store import StateError
from ..io.udp import BindError
from ..node import MeshNode
from . import config as config_mod
from . import paths as paths_mod
from . import systemd, views
from .api import DaemonAPI
from .auth import group_id
from .config import ConfigError, DaemonConfig
from .dns import MeshDns
from .errors import ApiError, Code
from .events import EventHub
from .exitnode import ExitNodes
from .firewall import Firewall
from .forward import Forwards
from .meshtcp import Gate
from .metrics_http import MetricsServer
from .routeconfig import RouteAllowlist
from .rpc_server import RpcServer
from .schema import ReloadResult
from .serve import ExposedPorts
from .socks import SocksGateway
from .sshkeys import read_host_keys
from .state import StateDirError, prepare_runtime, prepare_state
from .streams import StreamServer, stream_socket_path
from .subnetroutes import SubnetRoutes
from .vnet import VirtualNetworks

log = logging.getLogger("omerta_mesh.meshd")
STATUS_REFRESH = 10.0


def version() -> str:
    try:
        return metadata.version("omerta-mesh")
    except metadata.PackageNotFoundError:
        return "0.1.0+src"


def build_parser() -> argparse.ArgumentParser:
    """omerta-meshd's command line (the man page, packaging/man/genman.py, is generated from it)."""
    p = argparse.ArgumentParser(prog="omerta-meshd", description="omerta-mesh daemon: the mesh, its JSON-RPC socket and D-Bus service.")
    p.add_argument("--foreground", action="store_true", help="run in the foreground (the only mode; accepted for clarity)")
    p.add_argument("--config", help="configuration file (default /etc/omerta/meshd.toml, else the embedded default)")
    p.add_argument("--state-dir", help="state directory (default $STATE_DIRECTORY or /var/lib/omerta)")
    p.add_argument("--runtime-dir", help="runtime directory (default $RUNTIME_DIRECTORY or /run/omerta)")
    p.add_argument("--socket", help="JSON-RPC socket path (default <runtime dir>/meshd.sock)")
    p.add_argument("--listen", help="UDP address to bind (node.listen)")
    p.add_argument("--port", type=int, help="UDP port, 0 for any (node.port)")
    p.add_argument("--bootstrap", action="append", default=[], metavar="ID@HOST:PORT",
                   help="a peer to contact in every network (repeatable)")
    p.add_argument("--relay", action="store_const", const="on", dest="relay_mode",
                   help="offer to relay for others whenever others can reach us (node.relay = \"on\")")
    p.add_argument("--relay-mode", choices=("auto", "on", "off"), dest="relay_mode",
                   help="relaying for others: auto (public or endpoint-independent NAT, modest quota), on, off (node.relay)")
    p.add_argument("--audit-encryption", action="store_true", help="check every outgoing datagram is encrypted (node.audit_encryption)")
    p.add_argument("--log-level", choices=config_mod.LEVELS, help="log level (log.level)")
    p.add_argument("--no-dbus", action="store_true", help="do not offer the D-Bus service")
    p.add_argument("--dbus-address", help="a D-Bus address to use instead of the system bus")
    p.add_argument("--no-vnet", action="store_true", help="no TUN devices: the virtual network off (vnet.enabled = false)")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop: uvloop when installed (auto), or the given one")
    p.add_argument("--new-identity", action="store_true",
                   help="make a new node identity (a new node id) when the identity file in the state directory is "
                        "damaged, or missing while the state has networks; without this flag the daemon refuses to "
                        "start then (its peers would meet a stranger). A valid identity file is kept; the change is "
                        "logged as a warning")
    p.add_argument("--print-default-config", action="store_true", help="print the embedded default configuration and exit")
    p.add_argument("--version", action="version", version=f"omerta-meshd {version()}")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def apply_flags(cfg: DaemonConfig, a: argparse.Namespace) -> DaemonConfig:
    node: dict[str, Any] = {}
    if a.listen is not None:
        node["listen"] = a.listen
    if a.port is not None:
        node["port"] = a.port
    if a.bootstrap:
        node["bootstrap"] = [*cfg.node.bootstrap, *a.bootstrap]
    if a.relay_mode:
        node["relay"] = a.relay_mode
    if a.audit_encryption:
        node["audit_encryption"] = True
    if node:
        cfg = cfg.with_("node", **node)
    if a.log_level:
        cfg = cfg.with_("log", level=a.log_level)
    if a.no_dbus:
        cfg = cfg.with_("dbus", enabled=False)
    if a.dbus_address:
        cfg = cfg.with_("dbus", enabled=True, address=a.dbus_address)
    if getattr(a, "no_vnet", False):
        cfg = cfg.with_("vnet", enabled=False)
    config_mod._validate(cfg, lambda m: ConfigError(f"command line: {m}"))
    return cfg


def merge_live(old: DaemonConfig, new: DaemonConfig, live: list[str]) -> DaemonConfig:
    """``old`` with the live-changeable settings taken from ``new`` (the rest waits for a restart)."""
    out = old
    for key in live:
        if key == "names":
            out = dataclasses.replace(out, names=dict(new.names))
        elif key == "rules":  # (meshd/firewall.py applies them at its next refresh)
            out = dataclasses.replace(out, rules=list(new.rules))
        else:
            sec, k = key.split(".")
            out = out.with_(sec, **{k: getattr(getattr(new, sec), k)})
    return dataclasses.replace(out, source=new.source)


class Daemon:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.paths = paths_mod.resolve(args.config, args.state_dir, args.runtime_dir, args.socket)
        self.config = apply_flags(config_mod.load(self.paths.config), args)
        self.notifier = systemd.Notifier()
        self.stop_event = asyncio.Event()
        self.write_gid: int | None = None
        self.dbus: Any = None
        self.server: RpcServer | None = None
        self.streams: StreamServer | None = None  # the stream socket (meshd/streams.py)
        self.gate: Gate | None = None  # the stream gate: streams as kernel TCP on the mesh (meshd/meshtcp.py)
        self.socks: SocksGateway | None = None  # the SOCKS5 gateway (meshd/socks.py), off unless [socks] listen
        self.metrics: MetricsServer | None = None  # GET /metrics (meshd/metrics_http.py), off unless [metrics] listen
        self.forwards: Forwards | None = None  # port forwards (meshd/forward.py)
        self.node: MeshNode | None = None
        self.vnet: VirtualNetworks | None = None
        self.exits: ExitNodes | None = None  # exit nodes (meshd/exitnode.py)
        self.subnets: SubnetRoutes | None = None  # subnet routes (meshd/subnetroutes.py)
        self.dns: MeshDns | None = None  # mesh DNS on the devices (meshd/dns.py)
        self.firewall: Firewall | None = None  # [[rules]] on the devices (meshd/firewall.py)
        self.lock: Any = None
        self.tasks: list[asyncio.Task] = []
        self._status_due = False

    def endpoints(self) -> list[tuple[str, int]]:
        """Endpoints for invites: ``node.advertise``, else the node's own (kept current by its address monitor)."""
        if self.config.node.advertise:
            return [config_mod.parse_endpoint(e) for e in self.config.node.advertise]
        return self.node.endpoints if self.node is not None else []

    async def start(self) -> None:
        cfg = self.config
        self.lock = prepare_state(self.paths.state)
        prepare_runtime(self.paths.runtime)
        self.write_gid = group_id(cfg.api.group)
        name = cfg.node.name or socket.gethostname()
        self.node = node = MeshNode(
            host=cfg.node.listen, port=cfg.node.port, ipv6=cfg.node.ipv6, audit=cfg.node.audit_encryption,
            strict_audit=cfg.node.strict_audit, state_dir=str(self.paths.state),
            config=DEFAULT_CONFIG.with_(relay=cfg.node.relay, key_grace=cfg.node.key_grace,
                                        owner_transition=cfg.node.owner_transition), name=name[:32],
            new_identity=getattr(self.args, "new_identity", False),
            host_keys=read_host_keys(cfg.ssh.host_keys),
        )
        self.hub = EventHub(cfg.api.subscriber_queue)
        self.api = DaemonAPI(node, cfg, self.hub, name=name, version=version(), endpoints=self.endpoints)
        self.api.hooks.reload = self.reload
        self.api.hooks.shutdown = self.stop
        self.api.hooks.status_changed.append(self._status_changed)
        self.api.counter_sources.append(lambda: {"systemd.notify_dropped": self.notifier.dropped})
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self.api.pump_events()))
        self.tasks.append(loop.create_task(self.api.eventlog.run()))  # refusal summaries (meshd/eventlog.py)
        await asyncio.sleep(0)  # the pump is subscribed before the node reports its first events
        await node.start()
        self.vnet = VirtualNetworks(node, cfg.vnet)
        self.api.vnet = self.vnet
        await self.vnet.start()
        self.api.exits = self.exits = ExitNodes(node, self.vnet)
        await self.exits.start()
        allow = RouteAllowlist(lambda: self.api.config.routes.accept, self.api.resolve_peer)  # [routes] accept, live
        self.api.subnets = self.subnets = SubnetRoutes(node, self.vnet, allow)
        await self.subnets.start()
        self.api.firewall = self.firewall = Firewall(self.api, self.vnet)
        await self.firewall.start()
        self.dns = MeshDns(self.api, self.vnet, cfg.dns)
        self.api.dns = self.dns
        await self.dns.start()
        self._bootstrap()
        self.server = server = RpcServer(self.api, self.paths.socket(cfg.api.socket), lambda: self.write_gid)
        await server.start()
        self.api.exposed = ExposedPorts(cfg.serve.ports, self.paths.state, name)  # the ports peers' streams may reach
        node.streams.policy = self.api.exposed.policy
        limits = node.core.cfg.max_streams_per_peer, node.core.cfg.max_streams
        self.api.gate = self.gate = Gate(self.vnet, self.api.exposed.policy, lambda: name, limits)  # kernel TCP path
        await self.gate.start()
        self.streams = StreamServer(self.api, stream_socket_path(server.path), lambda: self.write_gid, self.gate)
        await self.streams.start()
        self.api.forwards = self.forwards = Forwards(self.api, cfg.forwards, self.paths.state)
        await self.forwards.start()
        self.api.socks = self.socks = SocksGateway(self.api, cfg.socks, lambda: self.write_gid)
        self.api.counter_sources.append(self.socks.counters)
        await self.socks.start()
        self.api.metrics.server = self.metrics = MetricsServer(self.api, cfg.metrics)
        self.api.counter_sources.append(self.metrics.counters)
        await self.metrics.start()
        await self._start_dbus()
        udp = node.driver.udp.addresses if node.driver is not None else []
        log.info("omerta-meshd %s: node %s on UDP %s, API on %s", version(), node.node_id.short(),
                 ", ".join(views.ep(a) or "" for a in udp), server.path, extra={"NODE_ID": str(node.node_id)})
        self.notifier.ready(views.status_text(self.api))
        if self.notifier.watchdog_interval:
            self.tasks.append(loop.create_task(self._watchdog(self.notifier.watchdog_interval)))
        self.tasks.append(loop.create_task(self._refresh_status()))

    def _bootstrap(self) -> None:
        for text in self.config.node.bootstrap:
            node, ep = config_mod.parse_bootstrap(text)
            assert self.node is not None, "bootstrap runs after the node started"
            for net in self.node.snapshot().networks:
                try:
                    self.node.add_peer(net.id, node, [ep])
                except UsageError as e:
                    log.warning("bootstrap %s in network %s: %s", text, net.id, e)

    async def _start_dbus(self) -> None:
        """Offer the D-Bus face unless ``dbus.enabled = false``. A bus that is not there (yet) is retried in
        the background, so the daemon starts without it; only a bus that refuses the name to a required
        face (``dbus.enabled = true``) stops the start."""
        cfg = self.config.dbus
        if cfg.enabled is False:
            return
        from .dbus_service import DbusService, NameRefused

        svc = DbusService(self.api, cfg.address, required=cfg.enabled is True)
        try:
            await svc.start()
        except NameRefused as e:
            await svc.close()
            raise RuntimeError(f"D-Bus service failed to start: {e}; "
                               "install packaging/dbus/org.omerta.Mesh1.conf or set dbus.enabled = false") from None
        self.dbus = svc

    # ---- status, watchdog
    def _status_changed(self) -> None:
        if not self._status_due:
            self._status_due = True
            asyncio.get_running_loop().call_later(0.2, self._push_status)

    def _push_status(self) -> None:
        self._status_due = False
        self.notifier.status(views.status_text(self.api))

    async def _refresh_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_REFRESH)
            self._push_status()

    async def _watchdog(self, interval: float) -> None:
        while True:
            if self.node is not None and self.node.driver is not None and not self.node.driver.closed:
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    # ---- reload, stop
    async def reload(self) -> ReloadResult:
        self.notifier.reloading()
        a = self.args
        self.paths = paths_mod.resolve(a.config, a.state_dir, a.runtime_dir, a.socket)  # a config file may have appeared
        try:
            new = apply_flags(config_mod.load(self.paths.config), self.args)
        except ConfigError as e:
            log.error("reload refused: %s", e)
            self.notifier.reloaded(views.status_text(self.api))
            raise ApiError(Code.CONFIG_INVALID, str(e)) from None
        live, restart = config_mod.diff(self.config, new)
        self.config = merge_live(self.config, new, live)
        self.api.apply_config(self.config)
        systemd.set_level(self.config.log.level)
        self.write_gid = group_id(self.config.api.group)
        self.hub.publish("daemon.reloaded", changed=live, restart_required=restart)
        log.info("configuration reloaded from %s: changed %s%s", self.config.source, ", ".join(live) or "nothing",
                 f"; needs a restart: {', '.join(restart)}" if restart else "")
        self.notifier.reloaded(views.status_text(self.api))
        return ReloadResult(live, restart)

    def _on_sighup(self) -> None:
        async def go() -> None:
            try:
                await self.reload()
            except ApiError:
                pass  # logged; the previous configuration stays

        self.tasks.append(asyncio.get_running_loop().create_task(go()))

    def stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        try:
            await self.start()
        except BaseException:
            await self._abort_start()
            raise
        await self.stop_event.wait()
        await self.shutdown()
        return 0

    async def _abort_start(self) -> None:
        """A start that failed half-way: close what it opened (sockets, tasks, the lock) so the process
        exits with the error instead of lingering with an open API socket."""
        await self._close_parts(failing=True)

    async def shutdown(self) -> None:
        log.info("stopping: telling peers and saving state")
        self.api.stopping = True
        self.notifier.stopping()
        self.hub.publish("daemon.stopping")
        self.hub.close_all("daemon stopping")
        await asyncio.sleep(0.05)  # let forwarders hand out the last events
        await self._close_parts(failing=False)

    async def _close_parts(self, failing: bool) -> None:
        """Close what is open, in order: the sockets, D-Bus, the devices (before the node: no packet is read
        without a core to take it), the node; then the tasks and the lock. A part that fails to close is logged
        and the rest still close, so the node's goodbye to its peers (CLOSE) is never skipped. ``failing``: a
        start that failed half-way is already reporting its own error, so these are only debug lines."""
        for part in (self.server, self.metrics, self.socks, self.streams, self.gate, self.forwards, self.dbus, self.dns, self.firewall,
                     self.exits, self.subnets, self.vnet, self.node):
            if part is None:
                continue
            try:
                await part.close()
            except Exception as e:
                if failing:
                    log.debug("closing %s after a failed start: %s", type(part).__name__, e)
                else:
                    log.exception("stopping: closing %s failed", type(part).__name__)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.lock is not None:
            self.lock.release()
        self.notifier.close()


async def amain(args: argparse.Namespace) -> int:
    try:
        d = Daemon(args)
    except ConfigError as e:
        print(f"omerta-meshd: {e}", file=sys.stderr)
        return 2
    systemd.setup_logging(d.config.log.level)
    try:
        return await d.run()
    except (StateDirError, StateError, BindError, OSError, RuntimeError) as e:
        log.error("cannot start: %s", e)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_default_config:
        print(config_mod.DEFAULT_TOML, end="")
        return 0
    if args.loop != "asyncio":
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError:
            if args.loop == "uvloop":
                print("omerta-meshd: --loop uvloop: uvloop is not installed (pip install 'omerta-mesh[speed]')", file=sys.stderr)
                return 2
        else:
            return uvloop.run(amain(args))
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
