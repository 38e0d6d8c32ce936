"""omertactl doctor [PEER]: a health check of this node and its peers, phase by phase, each failure with its fix.

The runner only calls the daemon and shows progress; every verdict comes from ``doctor_phases`` (pure
functions of the API results). Node phases: daemon (connect, status.get), permissions (this user's rights),
config, udp, nat and relays (netcheck.run). Per peer (PEER, or every peer peers.list shows): session (one
ping inside it), path (peers.get), rtt and loss (N pings), mtu (the current path's measured MTU), throughput
and failover (a second path or a relay).

The throughput phase is a stream throughput ramp: streams of 1, 4 and 16 MB through the stream socket (as
`omertactl connect`) to the peer's discard sink, port 9, which every daemon answers itself (no set-up on the
peer); each step half-closes, waits for the peer's byte count and reports MB/s. A step that would take more
than ``RAMP_BUDGET`` s at the rate seen is not run. Opening a stream is a write: a caller who may not write
gets the phase skipped with that reason.
"""

from __future__ import annotations

import argparse
import functools
import grp
import os
import socket
import time
from typing import Any, Callable, Iterator

from rich.text import Text

from .. import errors, output
from . import connect
from . import doctor_phases as ph
from .common import PEER_HELP, Ctx, Json, add_command

EXAMPLES = """\
Each line is one phase: pass, warn (works, but see the fix), fail (the cause, then the fix) or skip (an
earlier phase failed). Exits 0 when no phase failed, else with the first failure's code (3: the daemon is
not running, 4: permission, 6: a peer unreachable, 1: anything else). The throughput phase sends 1, 4 and
16 MB streams to the peer's discard sink (port 9, served by every daemon itself); it needs root or the
omerta group (opening a stream is a write) and is skipped otherwise.

examples:
  omertactl doctor                 this node, then every peer
  omertactl doctor bravo -c 50     this node and bravo, RTT over 50 probes
  omertactl doctor --json          the report: {"ok", "counts", "phases": [{name, scope, verdict, detail, fix, data}]}
"""
RAMP = (1_000_000, 4_000_000, 16_000_000)  # bytes: the throughput phase's streams
RAMP_BUDGET = 2.0  # seconds: a step that would take longer at the last step's rate is not run
STALL = 5.0  # seconds without progress (sending, or waiting for the count) end a step
MARK = {ph.PASS: ("ok", "green"), ph.WARN: ("warn", "yellow"), ph.FAIL: ("FAIL", "bold red"), ph.SKIP: ("skip", "dim")}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "doctor", help="check this node and its peers phase by phase; each failure with its fix",
                    description="Check the daemon, permissions, configuration, UDP, NAT and relays, then for each peer "
                                "(or PEER) the session, path, RTT percentiles, loss, path MTU, a stream throughput ramp and "
                                "failover readiness. Every failing phase says the cause and the fix.",
                    examples=EXAMPLES)
    p.add_argument("peer", metavar="PEER", nargs="?", help=f"only this peer: {PEER_HELP}")
    p.add_argument("-c", "--count", type=int, default=20, metavar="N", help="probes for the RTT and loss phases (1-100, default 20)")
    p.add_argument("-i", "--interval", type=float, default=0.05, metavar="SECONDS", help="between those probes (default 0.05)")
    p.add_argument("-W", "--wait", type=float, default=3.0, metavar="SECONDS", help="wait this long for each answer (default 3)")
    p.add_argument("--network", metavar="NETWORK", help="only peers of this network")
    p.set_defaults(func=run)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    if not 1 <= args.count <= 100:
        raise errors.ClientError(f"--count {args.count} is out of range", "give 1 to 100 probes", errors.USAGE, "USAGE")
    phases: list[ph.Phase] = []
    status = None if ctx.json else ctx.console.status("starting", spinner="dots")
    if status is not None:
        status.start()
    try:
        for name, make in Doctor(ctx, args).phases():
            if status is not None:
                status.update(f"checking {name}")
            phase = make()
            phases.append(phase)
            if status is not None:
                ctx.console.print(phase_line(phase))
    finally:
        if status is not None:
            status.stop()
    if ctx.json:
        output.print_json(ph.report(phases), ctx.out)
    else:
        ctx.console.print(summary(phases))
    return ph.exit_code(phases)


class Doctor:
    """The calls behind each phase, in order; ``phases()`` yields (what it checks, a thunk making the Phase), so the
    display can say what runs before it runs."""

    def __init__(self, ctx: Ctx, args: argparse.Namespace) -> None:
        self.ctx, self.args = ctx, args
        self.status: Json | None = None
        self.verdict: Json = {}

    def phases(self) -> Iterator[tuple[str, Callable[[], ph.Phase]]]:
        yield "the daemon", self._daemon
        if self.status is None:
            for name in ph.NODE_PHASES[1:]:
                yield name, functools.partial(ph.skipped, name, "node", "needs the daemon (see the daemon phase)")
            return
        status = self.status
        yield "permissions", lambda: ph.permissions(os.geteuid(), _group_names(), status)
        yield "the configuration", lambda: ph.config(status)
        yield "UDP", lambda: ph.udp(status)
        yield "the NAT verdict", self._nat
        yield "relays", lambda: ph.relays(self.verdict)
        for detail in self._peers():
            yield from PeerCheck(self, detail).phases()

    def _daemon(self) -> ph.Phase:
        try:
            self.status = self.ctx.call("status.get")
        except errors.ClientError as e:
            return ph.daemon(None, e)
        return ph.daemon(self.status, None)

    def _nat(self) -> ph.Phase:
        self.verdict = self.ctx.call("netcheck.run")
        return ph.nat(self.verdict)

    def _peers(self) -> list[Json]:
        """peers.get's per-network details of PEER, or of every peer peers.list shows."""
        if self.args.peer:
            found = self.ctx.call("peers.get", {"peer": self.args.peer, "network": self.args.network})
            return [d for d in found.get("networks") or [] if _in_network(d, self.args.network)]
        listed = self.ctx.call("peers.list")["peers"]
        out = []
        for p in listed:
            if _in_network(p, self.args.network):
                detail = self.ctx.call("peers.get", {"peer": p["node_id"], "network": p["network"]})
                out += [d for d in detail.get("networks") or [] if d.get("network") == p["network"]]
        return out

    def ping(self, peer: Json, count: int, interval: float) -> Json:
        a = self.args
        params = {"peer": peer["node_id"], "network": peer["network"], "count": count, "interval": interval, "timeout": a.wait}
        return self.ctx.call("ping", params, timeout=count * (interval + a.wait) + self.ctx.timeout)  # type: ignore[no-any-return]


class PeerCheck:
    """The per-peer phases of one peer (in one network)."""

    def __init__(self, doctor: Doctor, detail: Json) -> None:
        self.doctor, self.detail = doctor, detail
        self.scope = str(detail.get("name") or detail.get("short_id"))
        self.probes: Json = {}
        self.alive = False

    def phases(self) -> Iterator[tuple[str, Callable[[], ph.Phase]]]:
        yield f"the session with {self.scope}", self._session
        if not self.alive:
            for name in ph.PEER_PHASES[1:]:
                yield name, functools.partial(ph.skipped, name, self.scope, "needs a session (see the session phase)")
            return
        yield f"the path to {self.scope}", lambda: ph.path(self.scope, self.detail)
        yield f"RTT to {self.scope} ({self.doctor.args.count} probes)", self._rtt
        yield f"loss to {self.scope}", lambda: ph.loss(self.scope, self.probes)
        yield f"the path MTU to {self.scope}", lambda: ph.mtu(self.scope, self.detail)
        yield f"a stream throughput ramp to {self.scope}", self._ramp
        relays = [str(r.get("node_id")) for r in self.doctor.verdict.get("relays") or []]
        yield f"failover to {self.scope}", lambda: ph.failover(self.scope, self.detail, relays)

    def _session(self) -> ph.Phase:
        try:
            probe = self.doctor.ping(self.detail, 1, 0.01)
        except errors.ClientError as e:
            if e.name not in ("NOT_CONNECTED", "TIMEOUT"):
                raise
            return ph.session(self.scope, self.detail, None, e)
        phase = ph.session(self.scope, self.detail, probe, None)
        self.alive = phase.verdict != ph.FAIL
        if self.alive:  # the ping may have made the session: read the peer again
            fresh = self.doctor.ctx.call("peers.get", {"peer": self.detail["node_id"], "network": self.detail["network"]})
            self.detail = next((d for d in fresh.get("networks") or [] if d.get("network") == self.detail["network"]), self.detail)
        return phase

    def _rtt(self) -> ph.Phase:
        self.probes = self.doctor.ping(self.detail, self.doctor.args.count, self.doctor.args.interval)
        return ph.rtt(self.scope, self.probes)

    def _ramp(self) -> ph.Phase:
        steps: list[Json] = []
        for size in RAMP:
            if steps and (steps[-1]["error"] or size * steps[-1]["seconds"] / steps[-1]["bytes"] > RAMP_BUDGET):
                break
            try:
                steps.append(sink_step(self.doctor.ctx.socket, self.detail, size))
            except errors.ClientError as e:
                if e.exit_code == errors.PERMISSION:
                    return ph.skipped("throughput", self.scope, f"opening a stream needs write access: {e.message}")
                steps.append({"bytes": size, "seconds": 0.0, "counted": None, "error": e.message})
        return ph.throughput(self.scope, steps)


def sink_step(sock_path: str, peer: Json, size: int) -> Json:
    """One ramp step: ``size`` zero bytes to the peer's discard sink, a half-close, and its count back. ClientError
    when the stream cannot be opened (a refusal, or no write access)."""
    sock, _ = connect.open_stream(sock_path, peer["node_id"], ph.DISCARD_PORT, peer["network"], STALL * 3)
    chunk, left, answer, error = bytes(connect.CHUNK), size, b"", None
    start = time.monotonic()
    try:
        sock.settimeout(STALL)
        while left:
            left -= sock.send(chunk[:left])
        sock.shutdown(socket.SHUT_WR)
        while data := sock.recv(64):
            answer += data
    except TimeoutError:
        error = f"no progress for {STALL:g} s after {(size - left) / 1e6:.2f} MB"
    except OSError as e:
        error = f"the stream ended: {e.strerror or e}"
    finally:
        sock.close()
    counted = int(answer) if answer.strip().isdigit() else None
    if error is None and counted is None:
        error = "the stream closed without the peer's count (reset on the way, or an older peer)"
    return {"bytes": size, "seconds": round(time.monotonic() - start, 4), "counted": counted, "error": error}


def _in_network(peer: Json, network: str | None) -> bool:
    return network is None or network in (peer.get("network"), peer.get("network_name"))


def _group_names() -> set[str]:
    names = set()
    for gid in {os.getegid(), *os.getgroups()}:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            pass
    return names


# ---------------------------------------------------------------------- output
def phase_line(p: ph.Phase) -> Text:
    word, style = MARK[p.verdict]
    t = Text()
    t.append(f"{word:>4}  ", style=style)
    t.append(f"{p.scope:<10} {p.name:<12}", style="bold")
    t.append(p.detail)
    if p.fix and p.verdict in (ph.WARN, ph.FAIL):
        t.append(f"\n{'':16}fix: {p.fix}", style=style if p.verdict == ph.FAIL else "")
    return t


def summary(phases: list[ph.Phase]) -> Text:
    r: Any = ph.report(phases)
    c = r["counts"]
    head = "all phases passed" if r["ok"] and not c[ph.WARN] else "no phase failed" if r["ok"] else f"{c[ph.FAIL]} phase(s) failed"
    return Text(f"{head}: {c[ph.PASS]} passed, {c[ph.WARN]} warnings, {c[ph.FAIL]} failed, {c[ph.SKIP]} skipped",
                style="green" if r["ok"] else "bold red")
