"""omertactl doctor's judgement, without I/O: each phase is a pure function from API results to a ``Phase``.

A ``Phase`` is data: its name, what it is about (``scope``: "node" or a peer's name), a ``verdict``
(pass, warn, fail, skip), a one-line ``detail`` (the measurement, or the cause when it failed), the ``fix``
for anything but a pass, the figures behind it (``data``) and the exit code a failure maps to. The runner
(``doctor.py``) makes the calls and hands their results here; it decides nothing itself. Phases of the
node come first (daemon, permissions, config, udp, nat, relays), then per peer (session, path, rtt, loss,
mtu, throughput, failover). A phase whose input is missing because an earlier one failed is a skip.

Thresholds are module constants, so a test can name the edge it checks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import errors

Json = dict[str, Any]
PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"

NODE_PHASES = ("daemon", "permissions", "config", "udp", "nat", "relays")
PEER_PHASES = ("session", "path", "rtt", "loss", "mtu", "throughput", "failover")

RTT_WARN_MS = 300.0  # a median above this: usable, but interactive use suffers
LOSS_WARN = 0.0  # any loss is worth a remark
LOSS_FAIL = 0.2  # a fifth of the probes lost: the path is broken for practical purposes
MIN_MTU = 1280  # IPv6's minimum link MTU: below it the mesh's IPv6 cannot work unfragmented
DISCARD_PORT = 9  # the stream port every daemon answers itself with a discard sink (daemon: io/streams.py)
THROUGHPUT_WARN_MBS = 1.0  # MB/s: the best ramp step below this works, but bulk transfers will crawl
USABLE_PATH_STATES = ("up", "degraded")  # the daemon's PathState values that still carry traffic

PEER_FIX = ("check that {peer}'s omerta-meshd runs (`systemctl status omerta-meshd` there) and that UDP between "
            "the two of you is allowed: {endpoints} (firewall rules such as nft/ufw/iptables, or a NAT dropping "
            "it); `omertactl peer {peer}` lists the candidate endpoints")


@dataclass(frozen=True)
class Phase:
    name: str
    scope: str
    verdict: str
    detail: str
    fix: str = ""
    data: Json = field(default_factory=dict)
    exit_code: int = errors.ERROR

    def to_json(self) -> Json:
        d = asdict(self)
        if self.verdict != FAIL:
            d.pop("exit_code")
        return d


def ok(name: str, scope: str, detail: str, **data: Any) -> Phase:
    return Phase(name, scope, PASS, detail, data=data)


def skipped(name: str, scope: str, why: str) -> Phase:
    return Phase(name, scope, SKIP, why)


def report(phases: list[Phase]) -> Json:
    """The whole report as JSON: ``ok`` is false when any phase failed; counts by verdict."""
    counts = {v: sum(p.verdict == v for p in phases) for v in (PASS, WARN, FAIL, SKIP)}
    return {"ok": counts[FAIL] == 0, "counts": counts, "phases": [p.to_json() for p in phases]}


def exit_code(phases: list[Phase]) -> int:
    """0 when no phase failed, else the exit code of the first failure (3 daemon down, 4 permission, 6 peer unreachable...)."""
    return next((p.exit_code for p in phases if p.verdict == FAIL), 0)


# ---------------------------------------------------------------------- the node
def daemon(status: Json | None, error: errors.ClientError | None) -> Phase:
    """Connecting and ``status.get``: the daemon answers, or the error that stopped it (with its fix)."""
    if error is not None or status is None:
        err = error or errors.ClientError("the daemon sent no status", "see `journalctl -u omerta-meshd`")
        return Phase("daemon", "node", FAIL, err.message, err.fix, {"code": err.name}, err.exit_code)
    return ok("daemon", "node", f"omerta-meshd {status.get('version', '?')} (API {status.get('api_version')}."
                                f"{status.get('api_revision')}) up {status.get('uptime_s', 0):.0f} s as "
                                f"{status.get('name') or '?'} {str(status.get('node_id', ''))[:12]}",
              node_id=status.get("node_id"), version=status.get("version"))


def permissions(uid: int, groups: set[str], status: Json) -> Phase:
    """May this user change state (root, or the daemon's [api] group, which status.get names)? Reading (doctor
    included) needs neither."""
    group = str(status.get("write_group") or errors.DEFAULT_GROUP)  # (a daemon before API revision 12 does not say)
    if uid == 0:
        return ok("permissions", "node", "root: may read and change everything", group=group)
    if group in groups:
        return ok("permissions", "node", f"member of {group}: may read and change state", group=group)
    return Phase("permissions", "node", WARN, f"read-only: not root and not in the {group} group, so `network`, `serve`, "
                                              "`connect` and channel commands are refused (reading works)",
                 errors.group_fix(group), {"group": group})


def config(status: Json) -> Phase:
    """The configuration as it took effect: at least one network, a UDP socket, and every enabled feature active
    (relay aside: in auto mode it starts only when the NAT verdict asks for it)."""
    if not status.get("listen"):
        return Phase("config", "node", FAIL, "no UDP socket is bound: the daemon listens nowhere",
                     "check [node] listen and port in /etc/omerta/meshd.toml, then `systemctl restart omerta-meshd`")
    if not status.get("networks"):
        return Phase("config", "node", FAIL, "this node is in no network",
                     "join one with `omertactl network join INVITE` (or create one: `omertactl network create NAME`)")
    idle = [(k, f) for k in ("vnet", "dbus", "socks", "metrics", "audit")
            if isinstance(f := status.get(k), dict) and f.get("enabled") and not f.get("active")]
    nets = ", ".join(str(n.get("name") or n.get("network")) for n in status["networks"])
    if idle:
        what = "; ".join(f"{k}: {f.get('detail') or 'not active'}" for k, f in idle)
        return Phase("config", "node", WARN, f"enabled but not active: {what}",
                     "see the reason above; `omertactl status` shows each feature, `journalctl -u omerta-meshd` why it stopped",
                     {"inactive": [k for k, _ in idle]})
    return ok("config", "node", f"networks {nets}; listening on {', '.join(status['listen'])}",
              networks=len(status["networks"]))


def udp(status: Json) -> Phase:
    """Datagrams come in: with peers known but nothing ever received, inbound UDP is blocked."""
    c = status.get("counters") or {}
    received, sent, errs = int(c.get("udp.received", 0)), int(c.get("udp.sent", 0)), int(c.get("udp.errors", 0))
    listen = ", ".join(status.get("listen") or []) or "-"
    ports = sorted({a.rsplit(":", 1)[-1] for a in status.get("listen") or []})
    data = {"received": received, "sent": sent, "errors": errs}
    total = int((status.get("peers") or {}).get("total", 0))
    if total and sent and not received:
        return Phase("udp", "node", FAIL, f"{sent} datagrams sent to {total} peer(s) but none received on {listen}: "
                                          "inbound UDP is blocked", f"allow inbound UDP to port {', '.join(ports)} in this "
                                          "machine's firewall (e.g. `nft add rule inet filter input udp dport "
                                          f"{ports[0] if ports else 'PORT'} accept`) and in any firewall in front of it", data)
    if errs:
        return Phase("udp", "node", WARN, f"{errs} send errors on {listen} ({received} received, {sent} sent)",
                     "see `journalctl -u omerta-meshd` for the errno; a route or a local firewall may refuse some destinations", data)
    return ok("udp", "node", f"listening on {listen}: {received} datagrams received, {sent} sent", **data)


def nat(verdict: Json) -> Phase:
    """The NAT verdict: classified is a pass (symmetric mapping a warning: direct paths are unlikely), unknown a
    warning that says why (fewer than two peers reported our address)."""
    reason = str(verdict.get("reason") or "")
    data = {k: verdict.get(k) for k in ("status", "mapping", "filtering")}
    if verdict.get("status") != "classified":
        return Phase("nat", "node", WARN, f"not classified yet: {reason or 'no evidence'}",
                     "it needs two peers that report the address they see us at; connect to a second peer and run "
                     "`omertactl netcheck`", data)
    if verdict.get("mapping") in ("endpoint-dependent", "address-and-port-dependent"):
        return Phase("nat", "node", WARN, f"{reason}: the NAT maps each destination to a new port, so peers behind "
                                          "NATs reach this node only by hole punching or a relay",
                     "allow a fixed UDP port through the router (port forward to [node] port), or keep a relay in the mesh", data)
    return ok("nat", "node", f"{reason} (mapping {verdict.get('mapping')}, filtering {verdict.get('filtering')})", **data)


def relays(verdict: Json) -> Phase:
    """Relays known with their latency; none is a failure only where they are needed (a symmetric NAT)."""
    rs = [r for r in verdict.get("relays") or [] if isinstance(r, dict)]
    data = {"relays": rs, "relay_mode": verdict.get("relay_mode"), "relaying": verdict.get("relaying")}
    relaying = f"; this node relays for others ({verdict.get('relay_reason')})" if verdict.get("relaying") else ""
    if rs:
        silent = [str(r.get("name")) for r in rs if r.get("rtt_ms") is None]
        listing = ", ".join(f"{r.get('name')} {r['rtt_ms']:.1f} ms" if r.get("rtt_ms") is not None else f"{r.get('name')} -"
                            for r in rs)
        if len(silent) == len(rs):
            return Phase("relays", "node", FAIL, f"no relay answers: {listing}",
                         "check that the relay nodes run and that UDP to them is allowed; `omertactl peers` shows their state", data)
        return ok("relays", "node", f"{listing}{relaying}", **data)
    if verdict.get("mapping") in ("endpoint-dependent", "address-and-port-dependent"):
        return Phase("relays", "node", FAIL, "no relay known, and this node's NAT is symmetric: peers behind NATs "
                                             "cannot reach it", "run a node with a public address as a relay "
                                                                "(`omerta-meshd --relay`, or [relay] mode = \"on\")", data)
    return ok("relays", "node", f"none known; none needed while direct paths work{relaying}", **data)


# ---------------------------------------------------------------------- a peer
def current_path(detail: Json) -> Json | None:
    return next((p for p in detail.get("paths") or [] if p.get("current")), None)


def session(peer: str, detail: Json, probe: Json | None, error: errors.ClientError | None) -> Phase:
    """A session, and the peer answering inside it (one ping; ``probe`` is its result, ``error`` why there was none)."""
    endpoints = ", ".join(detail.get("endpoints") or ([detail["endpoint"]] if detail.get("endpoint") else [])) or "no endpoint known"
    fix = PEER_FIX.format(peer=peer, endpoints=endpoints)
    data = {"connected": bool(detail.get("connected")), "endpoints": detail.get("endpoints") or [],
            "last_handshake_s": detail.get("last_handshake_s")}
    if error is not None:
        how = "a handshake was tried but never answered" if not detail.get("connected") else "the session stopped answering"
        return Phase("session", peer, FAIL, f"no session with {peer}: {how} ({error.message})", fix, data, errors.TIMEOUT)
    if not probe or not probe.get("received"):
        last: Json = next((p for p in (probe or {}).get("probes") or []), {})
        why = last.get("error") or "no answer"
        return Phase("session", peer, FAIL, f"{peer} does not answer inside its session ({why}): its UDP is dropped "
                                            "somewhere between you, or it is down", fix, data, errors.TIMEOUT)
    age = detail.get("last_handshake_s")
    return ok("session", peer, f"connected; answers (last handshake {age:.0f} s ago)" if age is not None else "connected; answers",
              **data)


def path(peer: str, detail: Json) -> Phase:
    """The current path: direct or punched pass; a relay works but costs latency (warn, with the daemon's why)."""
    kind = str(detail.get("path") or "")
    cur = current_path(detail) or {}
    data = {"path": kind, "endpoint": detail.get("endpoint"), "reason": detail.get("path_reason")}
    if not kind:
        return Phase("path", peer, FAIL, f"no path to {peer}: {detail.get('path_reason') or 'none proven'}",
                     PEER_FIX.format(peer=peer, endpoints=", ".join(detail.get("endpoints") or []) or "-"), data, errors.TIMEOUT)
    if kind.startswith("relay"):
        return Phase("path", peer, WARN, f"{kind}: {detail.get('why') or detail.get('path_reason') or 'no direct path answers'}",
                     "a direct path needs one side reachable: forward [node] port on a router, or put one side on a "
                     "public address; `omertactl peer PEER` explains the choice", data)
    return ok("path", peer, f"{kind} to {detail.get('endpoint') or cur.get('path')} ({detail.get('path_reason') or 'up'})", **data)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def rtts(result: Json) -> list[float]:
    return [float(p["rtt_ms"]) for p in result.get("probes") or [] if p.get("ok") and p.get("rtt_ms") is not None]


def rtt(peer: str, result: Json) -> Phase:
    """RTT percentiles over the probes (p50, p90, p99, max)."""
    xs = rtts(result)
    if not xs:
        return Phase("rtt", peer, FAIL, f"none of {result.get('sent', 0)} probes was answered",
                     PEER_FIX.format(peer=peer, endpoints="its endpoints"), {"sent": result.get("sent", 0)}, errors.TIMEOUT)
    q = {"p50_ms": percentile(xs, 50), "p90_ms": percentile(xs, 90), "p99_ms": percentile(xs, 99), "max_ms": max(xs),
         "answered": len(xs)}
    text = f"p50 {q['p50_ms']:.2f} ms, p90 {q['p90_ms']:.2f} ms, p99 {q['p99_ms']:.2f} ms over {len(xs)} probes"
    if q["p50_ms"] > RTT_WARN_MS:
        return Phase("rtt", peer, WARN, f"slow: {text}", "see the path phase: a relay far away or a congested link adds "
                                                         "latency; a direct path usually removes it", q)
    return ok("rtt", peer, text, **q)


def loss(peer: str, result: Json) -> Phase:
    sent, got = int(result.get("sent", 0)), len(rtts(result))
    frac = round(1 - got / sent, 4) if sent else 1.0  # rounded: 1 - 4/5 is 0.19999... in floats
    data = {"sent": sent, "received": got, "loss": frac}
    text = f"{frac:.0%} lost ({sent - got} of {sent} probes)"
    if frac >= LOSS_FAIL:
        return Phase("loss", peer, FAIL, text, "a lossy link or a firewall rate-limiting UDP: test the link itself "
                                               "(`mtr -u` to the peer's endpoint) and check rate limits on the way", data, errors.TIMEOUT)
    if frac > LOSS_WARN:
        return Phase("loss", peer, WARN, text, "repeat `omertactl doctor PEER`; persistent loss points at the link "
                                               "(`mtr -u` to the peer's endpoint)", data)
    return ok("loss", peer, text, **data)


def mtu(peer: str, detail: Json) -> Phase:
    """The path MTU the daemon measured on the current path (UDP payload bytes)."""
    cur = current_path(detail)
    value = cur.get("mtu") if cur else None
    if value is None:
        return Phase("mtu", peer, WARN, "not measured on the current path yet", "run `omertactl doctor PEER` again in a "
                                                                                  "minute: the daemon probes it once a path is up")
    if int(value) < MIN_MTU:
        return Phase("mtu", peer, FAIL, f"{value} bytes on {cur.get('path') if cur else '-'}: below IPv6's minimum of {MIN_MTU}",
                     "a tunnel or PPPoE link on the way lowers the MTU: raise it there, or route around it", {"mtu": value})
    return ok("mtu", peer, f"{value} bytes on {cur.get('path') if cur else '-'}", mtu=value)


def throughput(peer: str, steps: list[Json]) -> Phase:
    """The stream throughput ramp: ``steps`` are streams to the peer's discard sink (port 9) at rising sizes, each
    {bytes sent, seconds until the peer's count came back, counted (the peer's count, None without one), error
    (why the step stopped, else None)}. A step moved when the peer counted every byte."""
    rows = [{**st, "mb_s": round(st["bytes"] / st["seconds"] / 1e6, 2) if _moved(st) else None} for st in steps]
    if not rows:
        return skipped("throughput", peer, "no ramp step ran")
    text = "; ".join(f"{r['bytes'] / 1e6:g} MB " + (f"{r['mb_s']:.1f} MB/s" if r["mb_s"] is not None else
                                                    f"stopped: {r.get('error') or 'the peer counted ' + str(r.get('counted'))}")
                     for r in rows)
    moved = [r["mb_s"] for r in rows if r["mb_s"] is not None]
    data = {"kind": "stream throughput ramp", "port": DISCARD_PORT, "steps": rows, "best_mb_s": max(moved, default=None)}
    if not moved:
        cause = str(rows[0].get("error") or "")
        fix = (f"update omerta-meshd on {peer}: its daemon has no discard sink on port {DISCARD_PORT}" if "not exposed" in cause
               else "the path answers pings but carries no stream: a rate limit or a path MTU problem on the way (see the "
                    "mtu phase), or the peer's stream limits are full (`omertactl streams` there)")
        return Phase("throughput", peer, FAIL, f"nothing moved over a stream ({text})", fix, data)
    if len(moved) < len(rows):
        return Phase("throughput", peer, WARN, f"a step stopped after others moved ({text})",
                     "repeat it; a stream that stalls under load points at a saturated link or a rate limit", data)
    if max(moved) < THROUGHPUT_WARN_MBS:
        return Phase("throughput", peer, WARN, f"slow: {text}", "a relay far away or a congested link: see the path and "
                                                                  "rtt phases; a direct path usually helps", data)
    return ok("throughput", peer, f"stream to the discard sink: {text}", **data)


def _moved(step: Json) -> bool:
    return step.get("error") is None and step.get("counted") == step["bytes"] and step["seconds"] > 0


def failover(peer: str, detail: Json, relay_ids: list[str]) -> Phase:
    """A second way to the peer if the current path breaks: another usable path, or a relay (other than the peer:
    ``relay_ids`` are the node ids netcheck lists)."""
    paths = detail.get("paths") or []
    usable = [p for p in paths if p.get("state") in USABLE_PATH_STATES]
    others = [p for p in usable if not p.get("current")]
    relays_known = len([r for r in relay_ids if r != detail.get("node_id")])
    data = {"paths": len(paths), "usable": len(usable), "relays": relays_known}
    if others:
        return ok("failover", peer, f"{len(others)} more usable path(s): " + ", ".join(f"{p.get('kind')} {p.get('path')}" for p in others),
                  **data)
    if relays_known and not str(detail.get("path") or "").startswith("relay"):
        return ok("failover", peer, f"one path, and {relays_known} relay(s) to fall back on", **data)
    return Phase("failover", peer, WARN, "only one path and no relay: if it breaks, the peer is unreachable until a new one "
                                         "is found", "give the peer a second endpoint (another address or family), or keep a "
                                                     "relay in the mesh (`omerta-meshd --relay` on a public node)", data)
