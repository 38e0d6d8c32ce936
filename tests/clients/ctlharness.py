"""Helpers for the client tests: real daemons with chosen identities and names, omertactl as a subprocess
(with only ``clients/`` on its path: the clients must not need the daemon package), and a checker that a
JSON value matches the API schema's result dataclass exactly."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

from meshd.harness import DaemonProc
from omerta_mesh.core.keys import Identity, encode_identity
from omerta_mesh.meshd.api import DaemonAPI
from omerta_mesh.meshd.events import EVENT_TYPES
from omerta_mesh.meshd.registry import spec_map

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ENV = {**os.environ, "PYTHONPATH": str(ROOT / "clients"), "COLUMNS": "200", "PYTHONWARNINGS": "error"}
CLIENT_ENV.pop("OMERTA_SOCKET", None)
SPECS = spec_map(DaemonAPI)
SHARED = 4  # bob's and carol's node ids share (at least) this many leading characters


# ---------------------------------------------------------------------- running omertactl
@dataclass
class Run:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(x) for x in self.out.splitlines() if x.strip()]


def ctl_cmd(sock: str | Path | None, *args: str) -> list[str]:
    cmd = [sys.executable, "-m", "omerta_clients.ctl.main"]
    if sock is not None:
        cmd += ["--socket", str(sock)]
    return cmd + list(args)


# When the interpreter is not reachable for another user (e.g. pyenv under a 0700 /root), omertactl starts as
# root, loads its modules and renders once (rich imports some modules lazily), then drops to the user
# before it parses its arguments or connects: the daemon sees only that user's credentials.
AS_USER = """\
import io, os, pwd, sys
from rich.console import Console
from omerta_clients import output
from omerta_clients.ctl import main as m
from omerta_clients.tui import app as _app
m.build_parser().format_help()
from omerta_clients.errors import show, ClientError
c = Console(file=io.StringIO(), width=100)
c.print(output.ping_probe_line({"ok": True, "seq": 1, "rtt_ms": 1.0, "path": "direct", "endpoint": "h:1"}, "p"))
c.print(output.ping_summary({"peer": "p", "sent": 1, "received": 1, "loss": 0.0,
                             "rtt_min_ms": 1.0, "rtt_avg_ms": 1.0, "rtt_max_ms": 1.0, "probes": []}))
c.print(output.peers_table([{"name": "p", "node_id": "x", "connected": True, "path": "direct"}]))
show(ClientError("warm-up", "fix"), "omertactl", io.StringIO())
pw = pwd.getpwnam(sys.argv[1])
os.setgroups([]); os.setgid(pw.pw_gid); os.setuid(pw.pw_uid); os.chdir("/")
sys.argv = ["omertactl", *sys.argv[2:]]
sys.exit(m.main())
"""
_direct_ok: dict[str, bool] = {}


def _can_exec_as(user: str) -> bool:
    if user not in _direct_ok:
        try:
            r = subprocess.run([sys.executable, "-c", "import rich, omerta_clients"], user=user, group="nogroup",
                               extra_groups=[], cwd="/", env=CLIENT_ENV, capture_output=True)
            _direct_ok[user] = r.returncode == 0
        except OSError:
            _direct_ok[user] = False
    return _direct_ok[user]


def ctl(sock: str | Path | None, *args: str, user: str | None = None, env: dict | None = None, timeout: float = 60,
        stdin: str | None = None) -> Run:
    """Run omertactl (as ``user`` if given) and collect its exit code and output."""
    cmd, kw = ctl_cmd(sock, *args), {}
    if user is not None and _can_exec_as(user):
        kw = {"user": user, "group": "nogroup", "extra_groups": [], "cwd": "/"}
    elif user is not None:
        cmd = [sys.executable, "-c", AS_USER, user, *cmd[3:]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or CLIENT_ENV, input=stdin, **kw)
    return Run(r.returncode, r.stdout, r.stderr)


@contextlib.contextmanager
def ctl_popen(sock: str | Path | None, *args: str) -> Iterator[subprocess.Popen]:
    """omertactl running in the background (pipes for stdout and stderr); killed and reaped at the end."""
    p = subprocess.Popen(ctl_cmd(sock, *args), env=CLIENT_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        time.sleep(0.05)  # let line-reader threads see the end of the streams
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]


def peer_json(sock: str | Path, node: str) -> dict | None:
    """``node``'s entry in ``omertactl peers --json`` of the daemon at ``sock`` (None: not listed)."""
    return next((p for p in ctl(sock, "peers", "--json").json()["peers"] if p["node_id"] == node), None)


def wait_until(pred, timeout: float = 15.0, what: str = "condition", step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------- TCP servers for streams and forwards
class Echo(socketserver.BaseRequestHandler):
    """Sends back what it reads; half-closes after the client's EOF."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)
        self.request.shutdown(socket.SHUT_WR)


class TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` just now (bound and released: another process may take it before you do)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_tcp(handler: type, host: str = "127.0.0.1") -> TcpServer:
    """A real TCP server for ``handler`` on a free port of ``host``, serving in a thread (``shutdown()`` it)."""
    if ":" in host:
        cls: type[TcpServer] = type("TcpServer6", (TcpServer,), {"address_family": socket.AF_INET6})
    else:
        cls = TcpServer
    s = cls((host, 0), handler)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


# ---------------------------------------------------------------------- the API schema
def conforms(value: Any, tp: Any, where: str = "$") -> None:
    """Assert ``value`` (parsed JSON) is exactly what ``tp`` (a schema type) describes; no extra keys."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return
    if dataclasses.is_dataclass(tp):
        assert isinstance(value, dict), f"{where}: expected an object for {tp.__name__}, got {value!r}"
        hints = typing.get_type_hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        assert sorted(value) == sorted(names), f"{where}: keys {sorted(value)} != {tp.__name__} fields {sorted(names)}"
        for n in names:
            conforms(value[n], hints[n], f"{where}.{n}")
        return
    if origin in (Union, types.UnionType):
        errors = []
        for alt in typing.get_args(tp):
            try:
                conforms(value, alt, where)
                return
            except AssertionError as e:
                errors.append(str(e))
        raise AssertionError(f"{where}: {value!r} matches none of {tp}: {errors}")
    if origin is list:
        assert isinstance(value, list), f"{where}: expected a list, got {value!r}"
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            conforms(v, item, f"{where}[{i}]")
        return
    if origin is dict:
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        _, vt = typing.get_args(tp)
        for k, v in value.items():
            assert isinstance(k, str)
            conforms(v, vt, f"{where}.{k}")
        return
    if tp is dict or tp is list:  # an open object or list (e.g. PeerDetail.own_nat, paths)
        assert isinstance(value, tp), f"{where}: expected {tp.__name__}, got {value!r}"
    elif tp is type(None):
        assert value is None, f"{where}: expected null, got {value!r}"
    elif tp is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: expected a number, got {value!r}"
    elif tp is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: expected an integer, got {value!r}"
    elif tp in (str, bool):
        assert isinstance(value, tp), f"{where}: expected {tp.__name__}, got {value!r}"
    else:
        raise AssertionError(f"{where}: no rule for {tp!r}")


def check_result(method: str, value: Any) -> Any:
    """``value`` is a valid result of ``method`` per the daemon's registry; returns it for chaining."""
    conforms(value, SPECS[method].result, method)
    return value


def check_event(e: Any) -> Any:
    assert isinstance(e, dict) and e["type"] in EVENT_TYPES and isinstance(e["seq"], int) and isinstance(e["time"], (int, float)), e
    return e


# ---------------------------------------------------------------------- daemons with chosen ids
def seeds_sharing_prefix(n: int = SHARED) -> tuple[bytes, bytes, bytes]:
    """Deterministic seeds (a, b, c): b's and c's node ids share their first ``n`` characters, a's does not."""
    seen: dict[str, bytes] = {}
    i = 0
    while True:
        seed = hashlib.sha256(b"omerta-client-test-%d" % i).digest()
        prefix = Identity.from_seed(seed).node_id.text()[:n]
        if prefix in seen:
            b, c = seen[prefix], seed
            a = next(s for p, s in seen.items() if p != prefix)
            return a, b, c
        seen[prefix] = seed
        i += 1


def node_id(seed: bytes) -> str:
    return Identity.from_seed(seed).node_id.text()


def prepare(base: Path, name: str, seed: bytes, names: dict[str, str]) -> DaemonProc:
    """A daemon dir with this identity and a config naming this node and its peers."""
    d = DaemonProc(base, name)
    d.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    (d.state / "identity").write_bytes(encode_identity(Identity.from_seed(seed)))
    os.chmod(d.state / "identity", 0o600)
    conf = d.dir / "meshd.toml"
    conf.write_text(f'[node]\nname = "{name}"\n\n[names]\n' + "".join(f'{k} = "{v}"\n' for k, v in names.items()))
    d.extra = ["--config", str(conf)]
    return d


def start_all(daemons: list[DaemonProc]) -> None:
    for d in daemons:
        d.start(wait=False)
    for d in daemons:
        try:
            d.notify.wait_for("READY=1")  # type: ignore[union-attr]
        except AssertionError:
            raise AssertionError(f"daemon {d.dir.name} did not become ready:\n{d.log_text()}") from None
        os.chmod(d.run, 0o755)


@contextlib.contextmanager
def started(base: Path, *names: str) -> Iterator[list[DaemonProc]]:
    """Fresh daemons ``names`` (no network yet), ready; closed at the end."""
    ds = [DaemonProc(base, n) for n in names]
    try:
        start_all(ds)
        yield ds
    finally:
        for d in ds:
            d.close()


class Mesh3:
    """alice, bob and carol on loopback in one network "home"; bob's and carol's ids share a prefix."""

    def __init__(self, base: Path) -> None:
        seeds = dict(zip(("alice", "bob", "carol"), seeds_sharing_prefix()))
        self.ids = {n: node_id(s) for n, s in seeds.items()}
        self.nodes = {n: prepare(base, n, s, self.ids) for n, s in seeds.items()}
        self.network: dict[str, Any] = {}

    @property
    def alice(self) -> DaemonProc:
        return self.nodes["alice"]

    def sock(self, name: str) -> Path:
        return self.nodes[name].socket

    def start(self) -> "Mesh3":
        start_all(list(self.nodes.values()))
        self.network = self.alice.call("network.create", name="home")  # type: ignore[assignment]
        for n in ("bob", "carol"):
            res = self.nodes[n].call("network.join", invite=self.network["invite"], wait=10)
            assert res["connected"], self.nodes[n].log_text()  # type: ignore[index]

        def connected(name: str) -> int:
            return sum(p["connected"] for p in self.nodes[name].call("peers.list")["peers"])  # type: ignore[index]

        wait_until(lambda: connected("alice") == 2, what="alice to see bob and carol connected")
        return self

    def close(self) -> None:
        for d in self.nodes.values():
            d.close()


class Lines:
    """Lines of a subprocess stream, read by a thread so a test can wait for one with a timeout."""

    def __init__(self, stream: Any) -> None:
        import queue
        import threading

        self.q: "queue.Queue[str]" = queue.Queue()
        self.seen: list[str] = []
        self.t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.t.start()

    def _pump(self, stream: Any) -> None:
        try:
            for line in stream:
                self.q.put(line)
        except (ValueError, OSError):  # closed under us at the end of a test
            pass
        self.q.put("")  # end of stream

    def next(self, timeout: float = 15.0) -> str:
        import queue

        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s; so far: {self.seen}") from None
        self.seen.append(line)
        return line

    def until(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if needle in line:
                return line
            if line == "":
                raise AssertionError(f"stream ended without {needle!r}: {self.seen}")

    def rest(self, timeout: float = 20.0) -> str:
        self.t.join(timeout)
        while not self.q.empty():
            self.seen.append(self.q.get())
        return "".join(self.seen)
