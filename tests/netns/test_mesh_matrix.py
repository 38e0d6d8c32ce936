"""Connectivity on real kernels: omerta-meshd daemons in the netns NAT lab (issue 3, the real-netns part).

The simulator proves the design (tests/sim/test_connectivity.py); these tests run the real daemon
(``python -m omerta_mesh.meshd.main``) in network namespaces behind real nftables NAT routers, and drive
it through its JSON-RPC socket only, as a user would:

* the NAT matrix: every pair of {public, full-cone, restricted, port-restricted, symmetric-sequential,
  symmetric-random}; both directions deliver, the first message within 5 s, and the path is direct (or
  punched) wherever the design says a direct path is possible, relayed otherwise;
* failover: a direct path that dies moves to the relay within 5 s, and back when it heals; a relay that
  dies is replaced by another relay-capable member;
* roaming: a peer whose address changes mid-stream is followed within 2 s, without user action;
* restart: a daemon restarted on the same state directory reconnects from its peer cache, no invite.

Every daemon runs with ``--log-level warning`` in its own state and runtime directory under tmp_path; the
lab stops every process it started and removes its namespaces, even when a test fails.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshd.harness import open_dirs
from meshd.rpcclient import RpcClient, RpcError
from netns.lab import Host, Lab

pytestmark = pytest.mark.root

PORT = 51888
KINDS = ["public", "full-cone", "restricted", "port-restricted", "symmetric-sequential", "symmetric-random"]
DIRECT = ("direct", "punched")


def design(a: str, b: str) -> str:
    """What the design predicts for a pair: "direct" (possibly after a punch) or "relay". The same table as
    tests/sim/test_connectivity.py::design."""
    pair = {a, b}
    if pair & {"public", "full-cone"}:
        return "direct"
    sym = {k for k in pair if k.startswith("symmetric")}
    if not sym:
        return "direct"  # restricted / port-restricted cones punch
    if a.startswith("symmetric") and b.startswith("symmetric"):
        return "relay"
    other = (pair - sym).pop()
    if other == "restricted":
        return "direct"  # address-dependent filtering opens for any port of the symmetric side
    return "direct" if sym == {"symmetric-sequential"} else "relay"  # port prediction, or nothing


def expected_nat(kind: str) -> str:
    """The daemon's own NAT verdict (netcheck ``mapping``) for a host behind ``kind``."""
    return {"public": "none", "full-cone": "eim", "restricted": "eim", "port-restricted": "eim"}.get(kind, "apdm")


def path_class(path: str | None) -> str:
    if path in DIRECT:
        return "direct"
    if path and path.startswith("relay"):
        return "relay"
    return "none"


# ------------------------------------------------------------------------------------------ daemons
class Meshd:
    """One omerta-meshd in a lab host, with its own state and runtime directories, driven over JSON-RPC."""

    def __init__(self, lab: Lab, host: Host, base: Path, name: str, *, relay: bool = False, port: int = PORT) -> None:
        self.lab, self.host, self.name, self.relay, self.port = lab, host, name, relay, port
        self.dir = base / f"meshd-{name}"
        self.state, self.run = self.dir / "state", self.dir / "run"
        self.dir.mkdir(parents=True, exist_ok=True)
        open_dirs(self.dir)
        self.config = self.dir / "meshd.toml"
        self.config.write_text(f'[node]\nname = "{name}"\n')
        self.socket = self.run / "meshd.sock"
        self.proc = None
        self.id = ""
        self.mail: dict[str, list[dict]] = {}

    def __repr__(self) -> str:
        return f"<meshd {self.name} in {self.host.name}>"

    def start(self) -> "Meshd":
        if self.socket.exists():
            self.socket.unlink()
        argv = [sys.executable, "-m", "omerta_mesh.meshd.main", "--foreground", "--config", self.config,
                "--state-dir", self.state, "--runtime-dir", self.run, "--port", self.port, "--no-dbus",
                "--log-level", "warning", *(["--relay"] if self.relay else [])]
        self.proc = self.lab.run(self.host, argv)
        self.mail = {}
        return self

    def wait_ready(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self} exited with {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists():
                try:
                    st = self.call("status.get")
                except (OSError, RpcError):
                    pass
                else:
                    os.chmod(self.run, 0o755)  # as the harness does: the socket is reachable by anyone
                    self.id = st["node_id"]
                    return st
            time.sleep(0.05)
        raise AssertionError(f"{self} not ready within {timeout} s:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM (a graceful stop: peers told, peer cache saved); the exit code."""
        return self.lab.stop(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int = 3000) -> str:
        try:
            return self.proc.log_path.read_text(errors="replace")[-tail:]
        except (AttributeError, OSError):
            return ""

    def call(self, method: str, timeout: float = 15.0, **params: Any) -> Any:
        with RpcClient(str(self.socket), timeout) as c:
            return c.call(method, **params)

    # ---- messages
    def listen(self, *channels: str) -> None:
        """Open the daemon's inboxes (messages are kept from the first channel.receive on)."""
        for ch in channels:
            self.mail.setdefault(ch, [])
            self.mail[ch] += self.call("channel.receive", channel=ch)["messages"]

    def send(self, to: "Meshd", channel: str, data: str) -> None:
        self.call("channel.send", peer=to.id, channel=channel, data=data)

    def wait_message(self, channel: str, match: Callable[[dict], bool], timeout: float) -> dict | None:
        """The first buffered or arriving message on ``channel`` that ``match``es (event-driven: the daemon
        answers channel.receive as soon as a message arrives)."""
        box = self.mail.setdefault(channel, [])
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(box):
                if match(m):
                    return box.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            box += self.call("channel.receive", channel=channel, timeout=min(left, 1.0))["messages"]

    def drain(self, channel: str) -> list[dict]:
        box = self.mail.setdefault(channel, [])
        box += self.call("channel.receive", channel=channel, max=1000)["messages"]
        out, box[:] = list(box), []
        return out

    # ---- peers
    def peer(self, other: "Meshd") -> dict | None:
        for p in self.call("peers.list")["peers"]:
            if p["node_id"] == other.id:
                return p
        return None

    def path_to(self, other: "Meshd") -> str | None:
        p = self.peer(other)
        return p["path"] if p else None


def start_all(daemons: list[Meshd]) -> None:
    for d in daemons:
        d.start()
    for d in daemons:
        d.wait_ready()


def form_network(owner: Meshd, members: list[Meshd]) -> str:
    """``owner`` creates a network; every member joins with the owner's invite (which carries the owner's
    public endpoint). Returns the network id."""
    net = owner.call("network.create", name="lab")["network"]
    invite = owner.call("network.invite", network=net)
    assert any(e.startswith(owner.host.public_ip + ":") for e in invite["endpoints"]), invite
    for m in members:
        r = m.call("network.join", invite=invite["invite"], wait=10)
        assert r["connected"], f"{m} could not reach {owner} with the invite:\n{m.log()}"
    return net


def wait_for(cond: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``cond`` until it returns something true; that value, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def host_of(lab: Lab, name: str, kind: str) -> Host:
    """A public host, or a host behind a NAT router of its own of ``kind``."""
    if kind == "public":
        return lab.add_public_host(name)
    return lab.add_host(name, behind=lab.add_nat(f"{name}-nat", kind))


def wait_classified(daemons: dict[Meshd, str], timeout: float) -> dict[str, str]:
    """Wait until each daemon's NAT verdict has the mapping its kind implies; the verdicts seen."""
    seen: dict[str, str] = {}

    def done() -> bool:
        ok = True
        for d, kind in daemons.items():
            v = d.call("netcheck.run")
            seen[d.name] = f"{v['mapping']}/{v.get('reason', '')}"
            ok &= v["mapping"] == expected_nat(kind)
        return ok

    wait_for(done, timeout, 0.5)
    return seen


# ------------------------------------------------------------------------------------------ matrix
@pytest.mark.slow
def test_nat_matrix_direct_wherever_possible_relayed_otherwise(lab: Lab, tmp_path: Path, capsys) -> None:
    """All 36 ordered pairs in one network: a relay R and a second public observer S, and for every kind
    one sender A and one receiver B, each behind a NAT router of its own."""
    t_start = time.monotonic()
    R = Meshd(lab, lab.add_public_host("r"), tmp_path, "R", relay=True)
    S = Meshd(lab, lab.add_public_host("s"), tmp_path, "S")
    A = {k: Meshd(lab, host_of(lab, f"a{i}", k), tmp_path, f"A{i}") for i, k in enumerate(KINDS)}
    B = {k: Meshd(lab, host_of(lab, f"b{i}", k), tmp_path, f"B{i}") for i, k in enumerate(KINDS)}
    everyone = [R, S, *A.values(), *B.values()]
    start_all(everyone)
    for d in everyone:
        d.listen("m")
    form_network(R, everyone[1:])
    kind_of = {R: "public", S: "public", **{d: k for k, d in A.items()}, **{d: k for k, d in B.items()}}
    verdicts = wait_classified(kind_of, 20)
    setup = time.monotonic() - t_start

    results: dict[tuple[str, str], dict] = {}
    for ka in KINDS:
        for kb in KINDS:
            a, b = A[ka], B[kb]
            tag = f"{ka}>{kb}"
            t0 = time.monotonic()
            a.send(b, "m", tag)
            got = b.wait_message("m", lambda m, a=a, tag=tag: m["data"] == tag and m["node_id"] == a.id, 10)
            first = time.monotonic() - t0 if got else None
            t1 = time.monotonic()
            b.send(a, "m", "re:" + tag)
            back = a.wait_message("m", lambda m, b=b, tag=tag: m["data"] == "re:" + tag and m["node_id"] == b.id, 10)
            results[(ka, kb)] = {"first": first, "back": time.monotonic() - t1 if back else None, "at": time.monotonic()}

    # paths settle: punching (schedule up to 5 s) and upgrade attempts; read each pair ~10 s after its start
    last = max(r["at"] for r in results.values())
    while time.monotonic() < last + 10:
        time.sleep(0.2)
    paths = {d: {p["node_id"]: p["path"] for p in d.call("peers.list")["peers"]} for d in everyone}
    rows, wrong = [], []
    for (ka, kb), r in results.items():
        a, b = A[ka], B[kb]
        ab, ba = paths[a].get(b.id), paths[b].get(a.id)
        want = design(ka, kb)
        first = "-" if r["first"] is None else f"{r['first']:.2f}s"
        backs = "-" if r["back"] is None else f"{r['back']:.2f}s"
        row = f"{ka:21} {kb:21} {want:7} {ab or '-':18} {ba or '-':18} {first:>7} {backs:>7}"
        rows.append(row)
        if r["first"] is None or r["first"] > 5.0 or r["back"] is None or path_class(ab) != want or path_class(ba) != want:
            wrong.append(row)
    total = time.monotonic() - t_start
    with capsys.disabled():
        print(f"\nNAT matrix on real kernels (setup {setup:.1f} s, total {total:.1f} s); verdicts: "
              + ", ".join(f"{d.name}={kind_of[d]}:{verdicts.get(d.name, '?').split('/')[0]}" for d in everyone))
        print(f"{'A':21} {'B':21} {'design':7} {'A->B path':18} {'B->A path':18} {'first':>7} {'reply':>7}")
        print("\n".join(rows))
    for d in everyone:
        assert d.alive(), f"{d} died:\n{d.log()}"
        assert d.call("status.get")["counters"].get("drop.internal_error", 0) == 0, d
    assert wrong == [], "pairs not as designed:\n" + "\n".join(wrong) + "\nverdicts: " + str(verdicts)
