"""Test harness for omerta-meshd: the daemon as a real subprocess in temp dirs, with a fake NOTIFY_SOCKET."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from meshd.rpcclient import RpcClient

ROOT = Path(__file__).resolve().parents[2]


def open_dirs(path: Path) -> None:
    """Make every directory from / down to ``path`` traversable (a non-root client must reach the socket)."""
    # Only directories this user owns are widened: the system temp dir (sticky, root's) and other users'
    # directories are left alone; as an ordinary user the clients run as that same user anyway.
    me = os.geteuid()
    p = path
    while p != p.parent:
        if p.exists() and str(p).startswith(("/tmp", os.environ.get("TMPDIR", "/tmp"))):
            st = os.stat(p)
            if st.st_uid == me and st.st_mode & 0o755 != 0o755:
                os.chmod(p, st.st_mode | 0o755)
        p = p.parent


class NotifySocket:
    """A fake systemd notify socket: collects every datagram the daemon sends."""

    def __init__(self, path: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"omerta-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.sock.bind(str(path))
            self.env = str(path)
        self.messages: list[str] = []

    def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        for m in self.messages:
            if needle in m:
                return m
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536).decode()
            except socket.timeout:
                break
            self.messages.append(data)
            if needle in data:
                return data
        raise AssertionError(f"no {needle!r} from the daemon within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()



def cpu_seconds(pid: int) -> float:
    """Process ``pid``'s CPU seconds so far (user + system, /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DaemonProc:
    def __init__(
        self, base: Path, name: str = "d", extra: list[str] | None = None, env: dict[str, str] | None = None,
        abstract_notify: bool = False,
    ) -> None:
        self.base = base
        self.dir = base / name
        self.state = self.dir / "state"
        self.run = self.dir / "run"
        self.dir.mkdir(parents=True, exist_ok=True)
        open_dirs(self.dir)
        self.socket = self.run / "meshd.sock"
        self.extra = extra or []
        self.env_extra = env or {}
        self.abstract_notify = abstract_notify
        self.proc: subprocess.Popen | None = None
        self.notify: NotifySocket | None = None
        self.log = self.dir / "daemon.log"

    def start(self, wait: bool = True) -> "DaemonProc":
        if self.notify is not None:
            self.notify.close()
        npath = self.dir / f"notify-{time.monotonic_ns()}"
        self.notify = NotifySocket(npath, self.abstract_notify)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon"), "NOTIFY_SOCKET": self.notify.env, **self.env_extra}
        env.pop("STATE_DIRECTORY", None)
        env.pop("RUNTIME_DIRECTORY", None)
        cmd = [sys.executable, "-W", "error", "-m", "omerta_mesh.meshd.main", "--foreground", "--state-dir", str(self.state),
               "--runtime-dir", str(self.run), "--port", "0", "--listen", "127.0.0.1", "--log-level", "debug"]
        if not any(a.startswith("--dbus-address") for a in self.extra):
            cmd.append("--no-dbus")
        cmd.append("--no-vnet")  # no TUN devices in the host's namespace from tests (tests/netns has the vnet tests)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd + self.extra, env=env, stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            try:
                self.notify.wait_for("READY=1")
            except AssertionError:
                self.kill()
                raise AssertionError(f"daemon did not become ready:\n{self.log.read_text()}") from None
            os.chmod(self.run, 0o755)
        return self

    def client(self, timeout: float = 10.0) -> RpcClient:
        return RpcClient(str(self.socket), timeout)

    def call(self, method: str, **params: object) -> object:
        with self.client() as c:
            return c.call(method, **params)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.logf.close()
        self.proc = None

    def close(self) -> None:
        self.kill()
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        """The running daemon's resident memory (VmRSS), in KiB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {self.proc.pid}")

    def cpu_s(self) -> float:
        """The running daemon's CPU seconds so far (user + system, /proc/PID/stat)."""
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_connected(d: DaemonProc, node_id: str, timeout: float = 15.0) -> dict:
    """``node_id`` as d's peers.list shows it once connected (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in d.call("peers.list")["peers"]:  # type: ignore[index]
            if p["node_id"] == node_id and p["connected"]:
                return p
        time.sleep(0.1)
    raise AssertionError(f"{node_id[:12]} did not connect; peers: {d.call('peers.list')}")


def wait_peer_cached(d: DaemonProc, node_id: str, timeout: float = 15.0) -> None:
    """Until d's peer cache (peers.json, written atomically) holds ``node_id``: what survives a kill -9. The cache
    is written in a thread some time after a peer connects, so a kill at once may find it without the peer."""
    cache = d.state / "peers.json"
    deadline = time.monotonic() + timeout
    while not (cache.exists() and any(p["node"] == node_id for p in json.loads(cache.read_text())["peers"])):
        assert time.monotonic() < deadline, f"{node_id[:12]} not in {cache} within {timeout} s"
        time.sleep(0.1)


def join(a: DaemonProc, b: DaemonProc, name: str = "n") -> tuple[dict, str, str]:
    """``b`` joins a network ``a`` creates (and connects to a at once); returns network.create's result and both
    node ids once ``a`` sees ``b`` connected too."""
    net: dict = a.call("network.create", name=name)  # type: ignore[assignment]
    assert b.call("network.join", invite=net["invite"], wait=10)["connected"]  # type: ignore[index]
    a_id, b_id = a.call("status.get")["node_id"], b.call("status.get")["node_id"]  # type: ignore[index]
    wait_connected(a, b_id)
    return net, a_id, b_id


def refused(d: DaemonProc) -> tuple[int, str]:
    """Start a daemon expected to refuse: its exit code and log."""
    d.start(wait=False)
    assert d.proc is not None
    rc = d.proc.wait(20)
    d.stop()
    return rc, d.log_text()
