"""A NAT lab of real network namespaces and real nftables NAT routers, for tests that run real nodes.

Topology (IPv4)::

    public host ─┐                          ┌─ host  10.N.0.10
    public host ─┤  <prefix>inet: bridge br0 │
                 ├── wan0 203.0.113.x  [NAT router ns: nftables] lan0 (bridge) 10.N.0.1/24
                 └── ...                     └─ host  10.N.0.11

* ``<prefix>inet`` is the "internet": a bridge for 203.0.113.0/24 (TEST-NET-3) plus 203.0.113.1, a
  gateway that silently drops everything routed through it, so no packet leaves the namespaces we made.
  A bridge-family nft set there implements ``block``/``unblock``.
* Every NAT router is a namespace with ``wan0`` on the bridge and a LAN bridge ``lan0``; its nftables
  ruleset (``nat_ruleset``) implements one RFC 4787 category, and its input chain drops unsolicited
  packets to the router itself (a confirmed conntrack entry there would steal the mapping a host needs).
* All namespaces are called ``om-<pid>-<n>-<name>``; veth pairs are created directly inside them, so the
  root namespace's links, routes and firewall are never touched. ``close`` (and ``sweep``) remove
  everything, and processes started with ``run`` carry ``OMERTA_LAB=<prefix>`` in their environment.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netns.labnat import INET_RULESET, KINDS, MAPPING_TIMEOUT, SEQ_BASE, SEQ_SIZE, NatVerificationError, nat_ruleset
from netns.labns import (
    _NS_INIT,
    ENV_MARK,
    NETNS_DIR,
    PUBLIC_GW,
    PUBLIC_NET,
    Host,
    LabError,
    Nat,
    Node,
    _kill,
    _sh,
    destroy_namespaces,
    lab_namespaces,
    marked_processes,
    requirements_missing,
    run_prefix,
    sweep,
    sweep_stale,
)

__all__ = [
    "ENV_MARK", "INET_RULESET", "KINDS", "MAPPING_TIMEOUT", "NETNS_DIR", "PROBE_PORTS", "PUBLIC_GW", "PUBLIC_NET",
    "SEQ_BASE", "SEQ_SIZE", "Host", "Lab", "LabError", "Nat", "NatVerificationError", "Node", "destroy_namespaces",
    "lab_namespaces", "marked_processes", "nat_ruleset", "requirements_missing", "run_prefix", "sweep", "sweep_stale",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROBE = HERE / "probe.py"
LINKEMU = HERE / "linkemu.py"
PROBE_PORTS = (3478, 3479)

_COUNTER = itertools.count(1)
_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,31}$")


def _mac() -> str:
    """A random locally administered unicast MAC (bridges get one so it stays put when ports change)."""
    return "02:" + ":".join(f"{random.randrange(256):02x}" for _ in range(5))



# -------------------------------------------------------------------------------------------- lab
class Lab:
    """Namespaces, links and NAT routers; see the module docstring. Use as a context manager or call
    ``close``; the ``lab`` pytest fixture does that for you."""

    def __init__(self, workdir: str | Path | None = None) -> None:
        why = requirements_missing()
        if why:
            raise LabError(why)
        self.prefix = f"{run_prefix()}{next(_COUNTER)}-"
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=self.prefix))
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.nodes: dict[str, Node] = {}
        self.closed = False
        self._ports = itertools.count(1)
        self._used: dict[str, set[str]] = {"": {PUBLIC_GW}}  # per segment: "" public, else the NAT name
        self._lan_index = itertools.count(1)
        self._emu: dict[str, tuple[subprocess.Popen, str, str]] = {}
        self._servers: tuple[Host, Host] | None = None
        self._netem_tc: bool | None = None
        self._logs = itertools.count(1)
        try:
            self.inet = self._new_ns("inet")
            self._nsh(self.inet, f"ip link add br0 address {_mac()} type bridge\nip addr add {PUBLIC_GW}/24 dev br0\nip link set br0 up")
            self._nft(self.inet, INET_RULESET)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- plumbing
    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _new_ns(self, label: str) -> str:
        ns = self.prefix + label
        _sh(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        self._nsh(ns, _NS_INIT)
        return ns

    def _nsh(self, ns: str, script: str) -> None:
        _sh(["ip", "netns", "exec", ns, "sh", "-ec", script])

    def _nft(self, ns: str, ruleset: str) -> None:
        _sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset)

    def _alloc(self, segment: str, net: ipaddress.IPv4Network, ip: str | None = None) -> str:
        used = self._used.setdefault(segment, set())
        if ip is None:
            ip = next((str(a) for a in itertools.islice(net.hosts(), 9, None) if str(a) not in used), None)
            if ip is None:
                raise LabError(f"no free address left in {net}")
        elif ipaddress.IPv4Address(ip) not in net or ip in used:
            raise LabError(f"{ip} is not a free address in {net}")
        used.add(ip)
        return ip

    def _check_name(self, name: str) -> None:
        if not _NAME.match(name) or name in self.nodes or name == "inet":
            raise ValueError(f"bad or duplicate node name {name!r}")
        if self.closed:
            raise LabError("lab is closed")

    def _plug(self, node_ns: str, iface: str, switch_ns: str, master: str) -> str:
        port = f"p{next(self._ports)}"
        _sh(["ip", "-n", node_ns, "link", "add", iface, "type", "veth", "peer", "name", port, "netns", switch_ns])
        _sh(["ip", "-n", switch_ns, "link", "set", port, "master", master, "up"])
        return port

    @staticmethod
    def _ns_of(node: Node | str) -> str:
        return node if isinstance(node, str) else node.ns

    # ---------------------------------------------------------------- topology
    def add_public_host(self, name: str, ip: str | None = None) -> Host:
        self._check_name(name)
        ip = self._alloc("", PUBLIC_NET, ip)
        h = Host(name, self._new_ns(name), ip, None, switch_ns=self.inet, master="br0")
        h.port = self._plug(h.ns, h.iface, self.inet, "br0")
        self._nsh(h.ns, f"ip addr add {ip}/24 dev eth0\nip link set eth0 up\nip route add default via {PUBLIC_GW}")
        self.nodes[name] = h
        return h

    def add_nat(self, name: str, kind: str, *, lan: str | None = None, wan_ip: str | None = None) -> Nat:
        self._check_name(name)
        if kind not in KINDS:
            raise ValueError(f"unknown NAT kind {kind!r}; one of {sorted(KINDS)}")
        net = ipaddress.IPv4Network(lan or f"10.{next(self._lan_index)}.0.0/24")
        wan_ip = self._alloc("", PUBLIC_NET, wan_ip)
        lan_ip = str(next(net.hosts()))
        self._used[name] = {lan_ip}
        n = Nat(name, self._new_ns(name), kind, wan_ip, net, lan_ip, switch_ns=self.inet)
        n.port = self._plug(n.ns, "wan0", self.inet, "br0")
        self._nsh(n.ns, "\n".join([
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
            f"ip addr add {wan_ip}/24 dev wan0", "ip link set wan0 up",
            f"ip link add lan0 address {_mac()} type bridge",  # fixed MAC: ports may come and go
            f"ip addr add {lan_ip}/{net.prefixlen} dev lan0", "ip link set lan0 up",
            f"ip route add default via {PUBLIC_GW}",
        ]))
        self._nft(n.ns, nat_ruleset(kind, wan_ip))
        self.nodes[name] = n
        return n

    def add_host(self, name: str, behind: Nat, ip: str | None = None) -> Host:
        self._check_name(name)
        ip = self._alloc(behind.name, behind.lan, ip)
        h = Host(name, self._new_ns(name), ip, behind, switch_ns=behind.ns, master="lan0")
        h.port = self._plug(h.ns, h.iface, behind.ns, "lan0")
        self._nsh(h.ns, f"ip addr add {ip}/{behind.lan.prefixlen} dev eth0\nip link set eth0 up\n"
                        f"ip route add default via {behind.lan_ip}")
        behind.hosts.append(h)
        self.nodes[name] = h
        return h

    def add_lan_host(self, name: str, router: Host, subnet: str, subnet6: str | None = None) -> Host:
        """A host on a link of its own behind ``router``, a host that forwards for it (IPv4 forwarding is
        turned on there; any NAT or filtering is the caller's): ``subnet``'s first address is the router's,
        the second the host's, whose default route goes through the router. MTU 1500 on both ends.
        ``subnet6``: IPv6 on that link too, the same way (``Host.ip6``; IPv6 forwarding is the router's
        business: the lab leaves it as it is)."""
        self._check_name(name)
        net = ipaddress.IPv4Network(subnet)
        gw, ip = (str(a) for a in itertools.islice(net.hosts(), 2))
        h = Host(name, self._new_ns(name), ip, None, switch_ns=router.ns)
        h.port = f"lan{next(self._ports)}"
        _sh(["ip", "-n", h.ns, "link", "add", h.iface, "type", "veth", "peer", "name", h.port, "netns", router.ns])
        router6 = host6 = ""
        if subnet6:
            net6 = ipaddress.IPv6Network(subnet6)
            gw6, h.ip6 = (str(a) for a in itertools.islice(net6.hosts(), 2))
            v6 = "echo 0 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6\nip addr add {a}/%d dev {dev} nodad\n" % net6.prefixlen
            router6 = v6.format(dev=h.port, a=gw6)
            host6 = v6.format(dev=h.iface, a=h.ip6) + f"ip -6 route add default via {gw6}\n"
        self._nsh(router.ns, f"{router6}ip addr add {gw}/{net.prefixlen} dev {h.port}\nip link set {h.port} up\n"
                             "echo 1 > /proc/sys/net/ipv4/ip_forward")
        self._nsh(h.ns, f"ip addr add {ip}/{net.prefixlen} dev {h.iface}\nip link set {h.iface} up\n"
                        f"ip route add default via {gw}\n{host6}")
        self.nodes[name] = h
        return h

    # ---------------------------------------------------------------- processes
    def _env(self, env: dict | None) -> dict:
        e = dict(os.environ if env is None else env)
        paths = [str(REPO / "daemon"), str(REPO / "clients")]
        if e.get("PYTHONPATH"):
            paths.append(e["PYTHONPATH"])
        e["PYTHONPATH"] = os.pathsep.join(paths)
        e[ENV_MARK] = self.prefix
        return e

    def run(self, node: Node | str, argv: list[str], *, env: dict | None = None, **popen_kw) -> subprocess.Popen:
        """Start ``argv`` inside the node's namespace (its own session; killed at teardown). Output goes
        to ``proc.log_path`` under the workdir unless ``stdout`` is given."""
        if self.closed:
            raise LabError("lab is closed")
        ns = self._ns_of(node)
        log = None
        if "stdout" not in popen_kw:
            (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
            log = self.workdir / "logs" / f"{ns.removeprefix(self.prefix)}-{next(self._logs)}.log"
            popen_kw["stdout"] = log.open("wb")
            popen_kw.setdefault("stderr", subprocess.STDOUT)
        try:
            p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, argv)], env=self._env(env),
                                 start_new_session=True, **popen_kw)
        finally:
            if log is not None:
                popen_kw["stdout"].close()
        p.log_path = log  # type: ignore[attr-defined]
        p._lab_buf = b""  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def exec(self, node: Node | str, argv: list[str], *, timeout: float = 30, check: bool = False,
             input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the node's namespace to completion; text output captured."""
        if self.closed:
            raise LabError("lab is closed")
        r = subprocess.run(["ip", "netns", "exec", self._ns_of(node), *map(str, argv)], env=self._env(env),
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"{argv} in {node} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def probe_argv(self, *args) -> list[str]:
        return [sys.executable, "-I", "-S", str(PROBE), *map(str, args)]

    def probe(self, node: Node | str, *args, timeout: float = 30) -> list[dict]:
        """Run probe.py in the node; its JSON lines."""
        r = self.exec(node, self.probe_argv(*args), timeout=timeout)
        if r.returncode not in (0, 1):
            raise LabError(f"probe {args} in {node} failed: {r.stderr.strip() or r.stdout.strip()}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    @staticmethod
    def read_json(proc: subprocess.Popen, timeout: float = 10.0) -> dict:
        """Next JSON line from a process started with ``stdout=subprocess.PIPE``."""
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        while b"\n" not in proc._lab_buf:  # type: ignore[attr-defined]
            left = deadline - time.monotonic()
            r, _, _ = select.select([fd], [], [], max(0.0, left))
            if not r:
                raise TimeoutError(f"no output from {proc.args} within {timeout}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise LabError(f"{proc.args} exited ({proc.wait()}) without output")
            proc._lab_buf += chunk  # type: ignore[attr-defined]
        line, _, proc._lab_buf = proc._lab_buf.partition(b"\n")  # type: ignore[attr-defined]
        return json.loads(line)

    def start_probe_server(self, node: Node, ports=PROBE_PORTS) -> subprocess.Popen:
        p = self.run(node, self.probe_argv("server", "--ports", ",".join(map(str, ports))),
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.read_json(p)  # {"event": "ready"}
        return p

    def _stop(self, procs: list[subprocess.Popen], grace: float = 1.5) -> None:
        live = [p for p in procs if p.poll() is None]
        for p in live:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                p.wait()
            for s in (p.stdin, p.stdout, p.stderr):
                if s:
                    s.close()

    def stop(self, proc: subprocess.Popen) -> int:
        """Terminate one process started with ``run``; its exit code."""
        self._stop([proc])
        return proc.returncode

    # ---------------------------------------------------------------- link conditions
    def _tc_netem_works(self) -> bool:
        if self._netem_tc is None:
            force = os.environ.get("OMERTA_LAB_NETEM", "")
            if force in ("tc", "userspace"):
                self._netem_tc = force == "tc"
            else:
                r = _sh(["tc", "-n", self.inet, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                        check=False) if shutil.which("tc") else None
                self._netem_tc = bool(r and r.returncode == 0)
                if self._netem_tc:
                    _sh(["tc", "-n", self.inet, "qdisc", "del", "dev", "lo", "root"], check=False)
        return self._netem_tc

    @property
    def netem_backend(self) -> str:
        return "tc" if self._tc_netem_works() else "userspace"

    def netem(self, node: Node, delay_ms: float = 0, jitter_ms: float = 0, loss_pct: float = 0,
              *, both: bool = False) -> None:
        """Delay/jitter/loss on the node's uplink, node -> network (like ``tc netem`` on the node's
        interface: ping RTT grows by ``delay_ms``); ``both=True`` also applies it network -> node.
        All zero removes it. Uses tc netem, or linkemu.py when the kernel has no sch_netem."""
        off = not (delay_ms or jitter_ms or loss_pct)
        spec = f"{delay_ms},{jitter_ms},{loss_pct}"
        if self._tc_netem_works():
            args = ["delay", f"{delay_ms}ms", *([f"{jitter_ms}ms"] if jitter_ms else []), "loss", f"{loss_pct}%"]
            sides = [(node.ns, node.iface, True), (node.switch_ns, node.port, both)]
            for ns, dev, on in sides:
                if off or not on:
                    _sh(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], check=False)
                else:
                    _sh(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "netem", *args])
            return
        sw, old = node.switch_ns, self._emu.pop(node.name, None)
        if old:
            self._stop([old[0]])
            self.procs.remove(old[0])
        if off:
            if old:
                _sh(["ip", "-n", sw, "link", "del", old[1]], check=False)
                _sh(["ip", "-n", sw, "link", "set", node.port, "promisc", "off", "master", node.master])
            return
        if old:
            a, b = old[1], old[2]
        else:
            k = next(self._ports)
            a, b = f"e{k}a", f"e{k}b"
            _sh(["ip", "-n", sw, "link", "add", a, "type", "veth", "peer", "name", b])
            _sh(["ip", "-n", sw, "link", "set", a, "promisc", "on", "up"])
            _sh(["ip", "-n", sw, "link", "set", b, "up"])
        p = self.run(sw, [sys.executable, "-I", "-S", str(LINKEMU), "--node-side", node.port, "--net-side", a,
                          "--up", spec, "--down", spec if both else "0,0,0",
                          "--seed", str(random.randrange(1 << 30))], stdout=subprocess.PIPE)
        self.read_json(p)
        self._emu[node.name] = (p, a, b)
        if not old:  # splice it in: port leaves the bridge, the emulator's veth joins it
            _sh(["ip", "-n", sw, "link", "set", node.port, "nomaster"])
            _sh(["ip", "-n", sw, "link", "set", node.port, "promisc", "on"])
            _sh(["ip", "-n", sw, "link", "set", b, "master", node.master])

    def clear_netem(self, node: Node) -> None:
        self.netem(node)

    def block(self, a: Node | str, b: Node | str) -> None:
        """Drop all traffic between two public addresses on the internet bridge (both directions).
        A host behind a NAT stands for its NAT's public address."""
        self._blockop("add", a, b)

    def unblock(self, a: Node | str, b: Node | str) -> None:
        self._blockop("delete", a, b)

    def _blockop(self, op: str, a, b) -> None:
        x, y = (v if isinstance(v, str) else v.public_ip for v in (a, b))
        _sh(["ip", "netns", "exec", self.inet, "nft", op, "element", "bridge", "omlab", "blocked",
             f"{{ {x} . {y}, {y} . {x} }}"])

    # ---------------------------------------------------------------- roaming, rebinding
    def set_address(self, node: Node, new_ip: str | None = None) -> str:
        """Give a host a new address in its network (a public host a new public IP, a host behind a NAT
        a new LAN address), or a NAT router a new WAN address (its mappings are forgotten). Returns it."""
        segment = node.nat.name if isinstance(node, Host) and node.nat else ""
        new_ip = self._alloc(segment, node.net, new_ip)
        old = node.ip
        self._nsh(node.ns, f"ip addr flush dev {node.iface}\nip addr add {new_ip}/{node.net.prefixlen} dev {node.iface}\n"
                           f"ip route replace default via {node.gateway if isinstance(node, Host) else PUBLIC_GW}")
        self._used[segment].discard(old)
        if isinstance(node, Nat):
            node.wan_ip = new_ip
            self.rebind(node)
        else:
            node.ip = new_ip
        return new_ip

    def rebind(self, nat: Nat) -> None:
        """Forget every mapping of the NAT (conntrack table and the ruleset's dynamic sets), as a
        router reboot would."""
        self._nft(nat.ns, nat_ruleset(nat.kind, nat.wan_ip))
        r = self.exec(nat, [sys.executable, "-c", "from pyroute2 import Conntrack; Conntrack().flush()"])
        if r.returncode != 0:
            raise LabError(f"conntrack flush failed: {r.stderr.strip()}")

    # ---------------------------------------------------------------- verification
    def probe_servers(self) -> tuple[Host, Host]:
        """Two public hosts running probe servers on PROBE_PORTS (made on first use)."""
        if self._servers is None:
            s1, s2 = self.add_public_host("_stun1"), self.add_public_host("_stun2")
            self.start_probe_server(s1)
            self.start_probe_server(s2)
            self._servers = (s1, s2)
        return self._servers

    def classify(self, host: Host, local_port: int | None = None) -> dict:
        """Run the probe's RFC 4787 classification from ``host``; the observations."""
        s1, s2 = self.probe_servers()
        port = local_port or random.randrange(41000, 48999)
        res = self.probe(host, "classify", "--servers", f"{s1.ip},{s2.ip}",
                         "--ports", ",".join(map(str, PROBE_PORTS)), "--local-port", port)
        if not res or "error" in res[-1]:
            raise NatVerificationError(f"classification from {host} failed: {res}")
        return res[-1]

    def knock(self, src: Node, dst_ip: str, port: int) -> str:
        """'silent', 'refused' or 'reply' for one unsolicited UDP datagram from src to dst_ip:port."""
        return self.probe(src, "knock", "--to", f"{dst_ip}:{port}")[-1]["result"]

    def verify(self, nat: Nat) -> dict:
        """Check that the router behaves as its kind claims, from a probe host behind it; returns the
        observations. Also checks that its WAN address drops unsolicited packets."""
        host = self.nodes.get(f"_probe-{nat.name}") or self.add_host(f"_probe-{nat.name}", behind=nat)
        obs = self.classify(host)
        got = (obs["mapping"], obs["filtering"], obs["allocation"])
        obs["wan_knock"] = self.knock(self.probe_servers()[1], nat.wan_ip, random.randrange(30000, 39999))
        if got != KINDS[nat.kind] or obs["wan_knock"] != "silent":
            raise NatVerificationError(f"{nat.name} claims {nat.kind} {KINDS[nat.kind]} but behaves as {got}, "
                                       f"WAN knock {obs['wan_knock']}: {json.dumps(obs)}")
        return obs

    def udp_punch(self, a: Host, b: Host, *, duration: float = 2.0, port_a: int = 0, port_b: int = 0) -> dict:
        """Plain UDP hole punch: both register with a rendezvous server, learn each other's public
        endpoint, then send simultaneously. Returns {a.name: result, b.name: result, "ok": bool}."""
        s1, _ = self.probe_servers()
        tag = f"{random.randrange(1 << 30):x}"
        procs = {}
        for me, peer, port in ((a, b, port_a), (b, a, port_b)):
            procs[me.name] = self.run(me, self.probe_argv(
                "punch", "--server", f"{s1.ip}:{PROBE_PORTS[0]}", "--id", f"{me.name}-{tag}",
                "--peer", f"{peer.name}-{tag}", "--local-port", port or random.randrange(41000, 48999),
                "--duration", duration), stdout=subprocess.PIPE)
        out = {name: self.read_json(p, timeout=duration + 10) for name, p in procs.items()}
        self._stop(list(procs.values()))
        out["ok"] = all(out[n].get("received_from") for n in (a.name, b.name))
        return out

    # ---------------------------------------------------------------- teardown
    def close(self) -> None:
        """Stop every process, delete every namespace (with its veths and bridges). Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self._stop(self.procs)
        finally:
            destroy_namespaces(self.namespaces)
            _kill(marked_processes(self.prefix))
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
