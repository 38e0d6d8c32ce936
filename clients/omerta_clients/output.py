"""Output for people (rich tables and panels) and for programs (``--json``: the API result, unchanged).

Every renderer takes the API result dict exactly as the daemon returned it and returns a rich renderable,
so it can be printed to a terminal or to ``Console(record=True, width=...)`` in tests. A value the API
does not report is shown as "-"; nothing is made up.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Iterable, TextIO

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

Json = dict[str, Any]
DASH = "-"


# ---------------------------------------------------------------------- consoles and JSON
def console(file: TextIO | None = None) -> Console:
    """A console for command output; when not a terminal, wide enough that tables do not wrap."""
    stream = file or sys.stdout
    width = None
    if not stream.isatty() and not os.environ.get("COLUMNS"):
        width = 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_json(obj: Any, file: TextIO | None = None, lines: bool = False) -> None:
    """The API result as JSON: indented, or one document per line for streams (``lines``)."""
    out = file or sys.stdout
    out.write(json.dumps(obj, separators=(",", ":")) if lines else json.dumps(obj, indent=2))
    out.write("\n")
    out.flush()


# ---------------------------------------------------------------------- small formatters
def ms(v: float | None) -> str:
    if v is None:
        return DASH
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def size(n: int | float | None) -> str:
    if n is None:
        return DASH
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def rate(bps: float | None) -> str:
    return DASH if bps is None else f"{size(bps)}/s"


def duration(s: float | None) -> str:
    if s is None:
        return DASH
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{int(s // 86400)}d{int(s % 86400 // 3600):02d}h"


def ago(s: float | None) -> str:
    return DASH if s is None else f"{duration(s)} ago"


def pct(fraction: float | None) -> str:
    return DASH if fraction is None else f"{fraction * 100:.0f}%"


def text_or_dash(v: Any) -> str:
    return DASH if v is None or v == "" else str(v)


def path_text(peer: Json) -> Text:
    """The path column: direct (green), punched (cyan), relay via NAME (yellow), or not connected."""
    path = peer.get("path")
    if not peer.get("connected"):
        return Text("not connected", style="dim")
    if not path:
        return Text("connecting", style="dim")
    style = "green" if path == "direct" else "cyan" if path == "punched" else "yellow" if path.startswith("relay") else ""
    return Text(path, style=style)


def nat_summary(nat: Json | None) -> str:
    """One line for a NAT verdict: the API's NatVerdict (status, reason) or a classifier verdict as
    peers.get carries it (type, confidence)."""
    if not nat:
        return DASH
    if "type" in nat:
        conf = f" (confidence {nat['confidence']})" if nat.get("confidence") is not None else ""
        return f"{nat['type']}{conf}"
    if nat.get("status") == "classified":
        return str(nat.get("reason") or f"mapping {nat.get('mapping')}, filtering {nat.get('filtering')}")
    return f"unknown ({nat.get('reason', 'not classified yet')})"


def peer_nat(peer: Json) -> str:
    """The peer's NAT type as its signed record states it (PeerInfo.nat), or "-"."""
    return text_or_dash(peer.get("nat"))


def peer_loss(peer: Json) -> str:
    """Loss on the peer's current path as the daemon measures it (PeerInfo.loss), or "-"."""
    return pct(peer.get("loss"))


def peer_routes(peer: Json) -> str:
    """The peer's subnet routes (PeerInfo.routes*): each prefix it advertises or we accepted, with where it stands
    here: "active" (routed to it), "not accepted", "accepted" (not in force: see `omertactl routes`); or "-"."""
    adv, acc, act = (set(peer.get(k) or []) for k in ("routes", "routes_accepted", "routes_active"))
    words = [f"{p} {'active' if p in act else 'accepted' if p in acc else 'not accepted'}" for p in sorted(adv | acc | act)]
    return ", ".join(words) or DASH


def peer_exit(peer: Json) -> str:
    """The peer as an exit node (PeerInfo.exit_offered/exit_used): "in use", "offers", "in use, not offered"; or "-"."""
    if peer.get("exit_used"):
        return "in use" if peer.get("exit_offered") else "in use, not offered"
    return "offers" if peer.get("exit_offered") else DASH


def utc_minute(t: float) -> str:
    """A wall-clock time in UTC to the minute: "2026-12-01 15:00"."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def peer_cert(peer: Json) -> str:
    """The peer's certificate in an owned network (PeerInfo.role/tags/cert_expires): "member web,db until
    2026-12-01 15:00Z"; "-" in an open network or before its signed record came."""
    expires = peer.get("cert_expires")
    if expires is None:
        return DASH
    tags = ",".join(peer.get("tags") or [])
    until = utc_minute(expires) + "Z"
    return f"{peer.get('role') or 'member'}{' ' + tags if tags else ''} until {until}"


def exit_text(x: Json) -> str:
    """status.exit (as exit.status): whether this node offers an exit, and the one it uses with its state."""
    offer = f"offering ({', '.join(x.get('families') or ['ipv4'])})" if x.get("offering") else "not offering"
    if x.get("using"):
        use = f"using {x.get('using_name') or x['using'][:12]}: {x.get('state') or DASH}"
    else:
        use = f"using none ({len(x.get('offered_by') or [])} members offer one)"
    return f"{offer}; {use}" + (f"; {x['error']}" if x.get("error") else "")


def routes_text(r: Json) -> str:
    """status.routes (as routes.list): what this node advertises and each accepted prefix's state and source."""
    acc = [f"{a['prefix']} from {a.get('name') or (a.get('node_id') or '')[:12]}: {a.get('state')} ({a.get('source', 'command')})"
           for a in r.get("accepted") or []]
    return "; ".join([f"advertising {', '.join(r.get('advertised') or []) or 'none'}", *acc])


# ---------------------------------------------------------------------- status
def status_view(st: Json, verbose: bool = False) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("node", f"{st.get('name', DASH)}  {st.get('node_id', DASH)}")
    head.add_row("state", str(st.get("status_text", DASH)))
    head.add_row("version", f"{st.get('version', DASH)} (API {st.get('api_version', '?')}.{st.get('api_revision', '?')})")
    head.add_row("uptime", duration(st.get("uptime_s")))
    head.add_row("listening", ", ".join(st.get("listen") or []) or DASH)
    head.add_row("endpoints", ", ".join(st.get("endpoints") or []) or DASH)
    head.add_row("NAT", nat_summary(st.get("nat")))
    pc = st.get("peers") or {}
    head.add_row("peers", f"{pc.get('connected', 0)}/{pc.get('total', 0)} connected: "
                          f"{pc.get('direct', 0)} direct, {pc.get('relayed', 0)} relayed")
    for key in ("relay", "audit", "dbus", "vnet", "dns", "socks", "metrics"):
        f = st.get(key) or {}
        state = "active" if f.get("active") else "enabled" if f.get("enabled") else "off"
        head.add_row(key, f"{state}" + (f" ({f['detail']})" if f.get("detail") and f.get("detail") != "off" else ""))
    if st.get("exit") is not None:
        head.add_row("exit node", exit_text(st["exit"]))
    if st.get("routes") is not None:
        head.add_row("routes", routes_text(st["routes"]))
    parts: list[RenderableType] = [head, Text(""), networks_table(st.get("networks") or [])]
    if verbose:
        counters = Table(title="counters", title_justify="left", box=None, padding=(0, 2), pad_edge=False)
        counters.add_column("counter")
        counters.add_column("value", justify="right")
        for k, v in sorted((st.get("counters") or {}).items()):
            counters.add_row(k, str(v))
        parts += [Text(""), counters]
    return Group(*parts)


def networks_table(nets: list[Json]) -> RenderableType:
    if not nets:
        return Text("no networks: create one with `omertactl network create NAME` or join one with `omertactl network join INVITE`")
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    for col in ("NETWORK", "ID", "PEERS", "CONNECTED", "MESH IPS", "DEVICE", "KIND"):
        t.add_column(col, no_wrap=True, justify="right" if col in ("PEERS", "CONNECTED") else "left")
    for n in nets:
        t.add_row(n.get("name") or DASH, n.get("network", DASH), str(n.get("peers", 0)), str(n.get("connected", 0)),
                  mesh_ips(n), text_or_dash(n.get("device")), network_kind(n))
    return t


def network_kind(n: Json) -> str:
    """open, or owned (by whom; the key's epoch once it was rotated: docs/membership.md)."""
    if not n.get("owner"):
        if n.get("claim_owner"):  # becoming owned (docs/membership.md 7)
            return f"open, owned by {str(n['claim_owner'])[:12]} from {utc_minute(n['owned_from'])}Z"
        if n.get("claims_waiting"):
            return f"open, claimed by {', '.join(str(o)[:12] for o in n['claims_waiting'])} (network accept-owner)"
        return "open"
    epoch = n.get("epoch") or 0
    return f"owned by {str(n['owner'])[:12]}" + (f", key {epoch}" if epoch else "")


# ---------------------------------------------------------------------- peers
PEER_COLUMNS = ("NAME", "ID", "NETWORK", "MESH IP", "PATH", "ENDPOINT", "RTT", "LOSS", "NAT", "HANDSHAKE", "IN", "OUT", "ROUTES", "EXIT",
                "CERT")


def mesh_ips(x: Json) -> str:
    """A network's or a peer's mesh IPv4 and IPv6 ("-" when it has none yet)."""
    return ", ".join(a for a in (x.get("ipv4"), x.get("ipv6")) if a) or DASH


def peers_table(peers: list[Json], show_network: bool | None = None) -> RenderableType:
    if not peers:
        return Text("no peers yet: share an invite (`omertactl network invite NETWORK`) and join it on another machine")
    if show_network is None:
        show_network = len({p.get("network") for p in peers}) > 1
    show = {"NETWORK": show_network, "ROUTES": any(peer_routes(p) != DASH for p in peers),
            "EXIT": any(peer_exit(p) != DASH for p in peers),
            "CERT": any(peer_cert(p) != DASH for p in peers)}  # (the last three only when some peer has any)
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    for col in PEER_COLUMNS:
        if not show.get(col, True):
            continue
        t.add_column(col, no_wrap=True, justify="right" if col in ("RTT", "LOSS", "IN", "OUT") else "left")
    for p in peers:
        row: list[Any] = [p.get("name") or DASH, p.get("short_id") or (p.get("node_id") or "")[:12]]
        if show_network:
            row.append(p.get("network_name") or p.get("network") or DASH)
        row += [text_or_dash(p.get("ipv4")), path_text(p), text_or_dash(p.get("endpoint")), ms(p.get("rtt_ms")), peer_loss(p), peer_nat(p),
                ago(p.get("last_handshake_s")), size(p.get("bytes_in")), size(p.get("bytes_out"))]
        row += [peer_routes(p)] if show["ROUTES"] else []
        row += [peer_exit(p)] if show["EXIT"] else []
        row += [peer_cert(p)] if show["CERT"] else []
        t.add_row(*row, style=None if p.get("connected") else "dim")
    return t


def _kv(rows: Iterable[tuple[str, Any]]) -> Table:
    g = Table.grid(padding=(0, 2))
    g.add_column(style="bold", no_wrap=True)
    g.add_column()
    for k, v in rows:
        g.add_row(k, v if isinstance(v, Text) else str(v))
    return g


def nat_lines(title: str, nat: Json | None, missing: str = "not reported by the daemon") -> RenderableType:
    """A NAT verdict with its evidence, or a plain statement of why there is none."""
    if not nat:
        return Text(f"{title}: {missing}", style="dim")
    rows = [(title, nat_summary(nat)), ("  mapping", nat.get("mapping", DASH)), ("  filtering", nat.get("filtering", DASH))]
    if nat.get("allocation"):
        rows.append(("  allocation", nat["allocation"]))
    if nat.get("port_delta") is not None:
        rows.append(("  port delta", nat["port_delta"]))
    if nat.get("public_endpoints"):
        rows.append(("  public", ", ".join(nat["public_endpoints"])))
    ev = nat.get("evidence") or []
    rows.append(("  evidence", "\n".join(f"- {e}" for e in ev) if ev else "none yet"))
    return _kv(rows)


def paths_table(paths: list[Json]) -> RenderableType:
    """peers.get's candidate paths with their probe evidence; the current one is marked with *."""
    t = Table(box=None, padding=(0, 2), pad_edge=False, header_style="bold")
    for col in ("", "PATH", "KIND", "STATE", "RTT", "LOSS", "MTU", "LAST ANSWER"):
        t.add_column(col, no_wrap=True, justify="right" if col in ("RTT", "LOSS", "MTU") else "left")
    for p in paths:
        t.add_row("*" if p.get("current") else "", text_or_dash(p.get("path")), text_or_dash(p.get("kind")),
                  text_or_dash(p.get("state")), ms(p.get("rtt_ms")), pct(p.get("loss")), text_or_dash(p.get("mtu")),
                  ago(p.get("last_answer_s")))
    return t


def stream_text(st: Json) -> str:
    """Our message stream to the peer in words: what waits, what is unacknowledged, whether it holds."""
    parts = [f"{st.get('waiting', 0)} waiting, {st.get('in_flight', 0)} unacknowledged"]
    if st.get("held_s") is not None:
        parts.append(f"held {duration(st['held_s'])} (no proven path yet)")
    parts.append(f"{st.get('frames_sent', 0)} frames sent, {st.get('retransmits', 0)} resent, "
                 f"{st.get('frames_received', 0)} received")
    if st.get("give_ups"):
        parts.append(f"gave up {st['give_ups']} times")
    return "; ".join(parts)


def peer_detail_view(detail: Json) -> RenderableType:
    """``peers.get`` result: one block per network, and why the path is what it is."""
    parts: list[RenderableType] = [Text(f"{detail.get('name', DASH)}  {detail.get('node_id', DASH)}", style="bold")]
    for d in detail.get("networks") or []:
        rows: list[tuple[str, Any]] = [
            ("network", f"{d.get('network_name') or DASH} ({d.get('network', DASH)})"),
            ("state", "connected" if d.get("connected") else "handshaking" if d.get("handshake_in_progress") else "not connected"),
            ("mesh IPs", mesh_ips(d)),
            ("path", path_text(d)),
            ("endpoint", text_or_dash(d.get("endpoint"))),
            ("candidates", ", ".join(d.get("endpoints") or []) or DASH),
            ("RTT", ms(d.get("rtt_ms")) + ("" if d.get("rtt_ms") is not None else " (no measurement yet: `omertactl ping PEER`)")),
            ("loss", peer_loss(d)),
            ("NAT", peer_nat(d)),
            ("subnet routes", peer_routes(d)),
            ("exit node", peer_exit(d)),
            ("certificate", peer_cert(d) if d.get("cert_expires") is not None else "none (an open network, or no signed record yet)"),
            ("last handshake", ago(d.get("last_handshake_s"))),
            ("handshakes", d.get("handshakes", DASH)),
            ("traffic", f"in {size(d.get('bytes_in'))} ({d.get('packets_in', DASH)} packets), "
                        f"out {size(d.get('bytes_out'))} ({d.get('packets_out', DASH)} packets)"),
        ]
        if d.get("stream"):
            rows.append(("messages", stream_text(d["stream"])))
        sessions = d.get("sessions") or []
        rows.append(("sessions", "\n".join(
            f"{x.get('slot')}: {duration(x.get('age_s'))} old, {'initiator' if x.get('initiator') else 'responder'}, "
            f"{x.get('packets_sent')} sent"
            for x in sessions) or "none"))
        parts += [Text(""), _kv(rows)]
        if d.get("paths"):
            parts += [Text(""), paths_table(d["paths"])]
        parts += [Text(""), why_path(d)]
    return Group(*parts)


def why_path(d: Json) -> RenderableType:
    """Why the peer is on this path: the daemon's explanation and path decision, and both NAT verdicts
    with their evidence."""
    path = d.get("path") or ""
    if path.startswith("relay"):
        head = f"why relayed: no direct or punched path to this peer answers, so traffic goes {path}"
    elif path == "punched":
        head = "why punched: a direct path opened only after coordinated hole punching"
    elif path == "direct":
        head = "why direct: the peer answers on one of its own endpoints, without hole punching or a relay"
    else:
        head = "no path yet: no session with this peer"
    parts: list[RenderableType] = [Text(head, style="bold")]
    if d.get("why"):
        parts.append(Text(f"NAT pair: {d['why']}"))
    if d.get("path_reason"):
        parts.append(Text(f"path decision: {d['path_reason']}"))
    parts.append(nat_lines("this node's NAT", d.get("own_nat")))
    parts.append(nat_lines("peer's NAT", d.get("peer_nat"), "unknown (no signed record from this peer yet)"))
    return Group(*parts)


# ---------------------------------------------------------------------- ping, netcheck
def ping_probe_line(probe: Json, peer: str) -> Text:
    if probe.get("ok"):
        via = probe.get("path") or DASH
        at = f" {probe['endpoint']}" if probe.get("endpoint") else ""
        return Text(f"pong from {peer} via {via}{at}: seq={probe.get('seq')} time={ms(probe.get('rtt_ms'))}")
    return Text(f"no pong from {peer}: seq={probe.get('seq')} {probe.get('error') or 'no answer'}", style="red")


def ping_summary(res: Json) -> Text:
    short = (res.get("node_id") or "")[:12]
    who = res.get("peer") if res.get("peer") == short else f"{res.get('peer')} ({short})"
    line = f"--- {who} ping statistics ---\n"
    sent = res.get("sent", 0)
    line += f"{sent} probe{'' if sent == 1 else 's'} sent, {res.get('received', 0)} answered, {pct(res.get('loss'))} loss"
    if res.get("rtt_avg_ms") is not None:
        line += f", rtt min/avg/max = {res['rtt_min_ms']:.3f}/{res['rtt_avg_ms']:.3f}/{res['rtt_max_ms']:.3f} ms"
    paths = sorted({p.get("path") for p in res.get("probes") or [] if p.get("ok") and p.get("path")})
    if paths:
        line += f"\nanswered via {', '.join(paths)}"
    return Text(line)


def netcheck_view(nc: Json) -> RenderableType:
    rows: list[tuple[str, Any]] = [
        ("NAT", nat_summary(nc)),
        ("mapping", nc.get("mapping", DASH)),
        ("filtering", nc.get("filtering", DASH)),
        ("port delta", text_or_dash(nc.get("port_delta"))),
        ("hairpinning", {True: "yes", False: "no"}.get(nc["hairpinning"], "not measured") if "hairpinning" in nc else "not measured"),
        ("public endpoints", ", ".join(nc.get("public_endpoints") or []) or DASH),
        ("local endpoints", ", ".join(nc.get("local_endpoints") or []) or DASH),
        ("evidence", "\n".join(f"- {e}" for e in nc.get("evidence") or []) or "none yet"),
    ]
    if "relaying" in nc:
        why = nc.get("relay_reason") or "relay = " + str(nc.get("relay_mode", DASH))
        rows.append(("relaying", f"{'yes' if nc['relaying'] else 'no'} ({why})"))
    relays = nc.get("relays")
    if isinstance(relays, list) and relays:
        rows.append(("relay latency", "\n".join(f"{r.get('name', DASH)}: {ms(r.get('rtt_ms'))}" for r in relays)))
    else:
        rows.append(("relay latency", Text("- (not reported by the daemon)", style="dim")))
    return _kv(rows)


# ---------------------------------------------------------------------- events
def describe_event(e: Json) -> str:
    """One line for an event: who, what, and the detail that matters for its type."""
    kind = str(e.get("type", "?"))
    who = e.get("name") or (e.get("node_id") or "")[:12]
    detail = ""
    if kind == "peer.connected":
        detail = f"at {e.get('endpoint', DASH)}"
    elif kind in ("peer.disconnected", "peer.handshake_failed", "message.failed"):
        detail = str(e.get("reason", ""))
    elif kind == "peer.path_changed":
        detail = f"{e.get('kind', DASH)} {e.get('new') or ''} ({e.get('reason', '')})".replace("  ", " ")
    elif kind == "peer.punch_finished":
        outcome = f"direct at {e.get('endpoint')}" if e.get("ok") else f"failed, still relayed; retry in {e.get('retry_in', 0):.0f} s"
        detail = outcome + f" (attempt {e.get('attempt')}, {e.get('elapsed', 0):.1f} s)"
    elif kind == "peer.pong":
        detail = f"{ms(e.get('rtt_ms'))} via {e.get('endpoint', DASH)}"
    elif kind in ("network.joined", "network.left"):
        who = e.get("name") or e.get("network", "")
        detail = str(e.get("network", "")) if e.get("name") else ""
    elif kind == "nat.changed":
        detail = str(e.get("label", ""))
    elif kind in MEMBERSHIP_WORDS:
        return f"{kind} {membership_words(e)}"
    else:
        detail = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("type", "seq", "time", "node_id", "name", "network"))
    return " ".join(x for x in (kind, str(who), detail) if x).strip()


MEMBERSHIP_WORDS = {  # owned networks: what happened, in words ({who}: the peer the event names; {by}: a removal's signer)
    "member.enrolled": "this node enrolled by {who}: it holds a member certificate now",
    "member.enrolment_refused": "{who} refused this node's invite: {reason} (fix: {fix})",
    "invite.redeemed": "{who} enrolled with an invite ({uses} of it so far)",
    "invite.offered": "{who} offers an invite to network {invited}: omertactl network accept {offer}",
    "member.removed": "{who} removed by {by}",
    "network.rekeyed": "the key of network {network} rotated (epoch {epoch})",
    "credential.renewed": "this node's certificate renewed by {who}, valid until {until}",
    "credential.renewal_refused": "{who} refused to renew this node's certificate: {reason} (fix: {fix})",
    "network.owner_claimed": "{owner} claims to own network {network} from {at}: {state}",
    "network.owned": "network {network} owned by {owner} from now on",
}


def membership_words(e: Json) -> str:
    """A membership event of an owned network in words: "carol removed by alice"."""
    kind = str(e.get("type"))
    who = e.get("name") or (e.get("node_id") or "")[:12]
    by = e.get("by_name") or (e.get("by") or DASH)[:12]
    if kind == "member.removed" and not e.get("node_id"):
        return f"a certificate or an invite revoked by {by}"
    until = utc_minute(e["not_after"]) + "Z" if isinstance(e.get("not_after"), (int, float)) else DASH
    at = utc_minute(e["enforce_at"]) + "Z" if isinstance(e.get("enforce_at"), (int, float)) else DASH
    owner = e.get("owner_name") or (e.get("owner") or DASH)[:12]
    state = ("followed, certified" if e.get("certified") else "followed") if e.get("adopted") else (
        f"not followed (omertactl network accept-owner {str(e.get('network') or DASH)[:12]} {e.get('owner', DASH)})")
    n = e.get("uses")
    uses = f"{n} use{'' if n == 1 else 's'}" if isinstance(n, int) else "uses"
    return MEMBERSHIP_WORDS[kind].format(who=who, by=by, until=until, reason=e.get("reason", DASH), fix=e.get("fix", DASH),
                                         uses=uses, epoch=e.get("epoch", DASH), network=str(e.get("network") or DASH)[:12],
                                         invited=e.get("invited_name") or str(e.get("invited") or DASH)[:12], offer=e.get("offer", DASH),
                                         owner=owner, at=at, state=state)


def clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "--:--:--"


def event_line(e: Json) -> Text:
    kind = str(e.get("type", ""))
    good = ("peer.connected", "network.joined", "member.enrolled", "invite.redeemed", "credential.renewed", "invite.offered")
    bad = ("peer.disconnected", "peer.handshake_failed", "message.failed", "member.removed", "member.enrolment_refused",
           "credential.renewal_refused")
    style = "green" if kind in good else "red" if kind in bad else "yellow" if kind == "peer.path_changed" else ""
    return Text(f"{clock(e.get('time'))} #{e.get('seq', '?')} {describe_event(e)}", style=style)
