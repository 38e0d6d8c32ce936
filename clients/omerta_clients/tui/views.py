"""Rendering of the monitor's model: header (this node, NAT), peer table with path, RTT sparkline and
throughput, the selected peer's detail pane, the streams and forwards panel (when there are any), and the event
log. Functions of the model only."""

from __future__ import annotations

from typing import Iterable

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .. import output
from ..ctl import forward as forward_view
from ..ctl import streams as streams_view
from .model import Model, PeerRow

BLOCKS = "▁▂▃▄▅▆▇█"
ROLE_MARKS = {"owner": ("★ owner", "bold yellow"), "admin": ("☆ admin", "yellow"), "member": ("member", "")}


def sparkline(values: Iterable[float], width: int = 20) -> str:
    """The last ``width`` values as block characters scaled between their min and max."""
    vals = [float(v) for v in values][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:
        return BLOCKS[0 if hi == 0 else 3] * len(vals)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - lo) / (hi - lo) * top)] for v in vals)


def role_text(role: str | None) -> Text:
    """A peer's role in an owned network, the owner and admins marked: "★ owner", "☆ admin", "member"; "-" without one."""
    text, style = ROLE_MARKS.get(role or "", (role or output.DASH, ""))
    return Text(text, style=style)


def cert_rows(r: PeerRow) -> list[tuple[str, RenderableType]]:
    """The detail pane's certificate rows (owned networks: role, tags, expiry); none in an open network."""
    if r.role is None and r.cert_expires is None:
        return []
    expires = f"{output.utc_minute(r.cert_expires)}Z" if r.cert_expires is not None else output.DASH
    return [("role", role_text(r.role)), ("tags", ", ".join(r.tags or []) or output.DASH), ("certificate", f"expires {expires}")]


def header(m: Model) -> RenderableType:
    st = m.status
    pc = st.get("peers") or {}
    nat = output.nat_summary(st.get("nat"))
    if m.nat_label and m.nat_label not in nat:
        nat = f"{m.nat_label} (changed; was {nat})"
    t = Text()
    t.append("omerta-top ", style="bold")
    t.append(f"{st.get('name', '-')} ", style="bold cyan")
    t.append(f"{(st.get('node_id') or '')[:12]}  ")
    t.append(f"{st.get('status_text', '')}\n")
    nets = ", ".join(n.get("name") or n.get("network", "")[:8] for n in st.get("networks") or []) or "none"
    t.append(f"NAT: {nat}   networks: {nets}   peers: {pc.get('connected', 0)}/{pc.get('total', 0)} connected   "
             f"up {output.duration(st.get('uptime_s'))}   event #{m.seq}")
    t.append(f"\nexit: {output.exit_text(st['exit']) if st.get('exit') else '-'}   "
             f"routes: {output.routes_text(st['routes']) if st.get('routes') else '-'}   "
             f"dns: {output.text_or_dash((st.get('dns') or {}).get('detail'))}")
    if m.error:
        t.append(f"\n{m.error}", style="bold red")
    return t


def peer_table(m: Model, spark: int = 20) -> RenderableType:
    rows = m.rows()
    if not rows:
        return Text("no peers yet: join a network (`omertactl network join INVITE`) or give out an invite", style="dim")
    sel = m.selected_row()
    show_net = len({r.network for r in rows}) > 1
    t = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold", expand=False)
    t.add_column("", width=1)
    t.add_column("PEER", no_wrap=True)
    roles = any(r.role for r in rows)  # (owned networks only)
    if roles:
        t.add_column("ROLE", no_wrap=True)
    t.add_column("ID", no_wrap=True)
    if show_net:
        t.add_column("NETWORK", no_wrap=True)
    t.add_column("MESH IP", no_wrap=True)
    t.add_column("PATH", no_wrap=True)
    t.add_column("ENDPOINT", no_wrap=True)
    t.add_column("RTT", justify="right", no_wrap=True)
    t.add_column("RTT HISTORY", no_wrap=True, min_width=spark)
    t.add_column("IN", justify="right", no_wrap=True)
    t.add_column("OUT", justify="right", no_wrap=True)
    t.add_column("THROUGHPUT", no_wrap=True, min_width=spark // 2)
    t.add_column("LOSS", justify="right", no_wrap=True)
    t.add_column("NAT", no_wrap=True)
    extra = [c for c, f in (("ROUTES", output.peer_routes), ("EXIT", output.peer_exit)) if any(f(vars(r)) != output.DASH for r in rows)]
    for c in extra:  # (only when some peer has any)
        t.add_column(c, no_wrap=True)
    for r in rows:
        chosen = sel is not None and r.key == sel.key
        cells: list[RenderableType | str] = ["›" if chosen else " ", r.label]
        cells += [role_text(r.role)] if roles else []
        cells.append(r.short_id or r.node_id[:12])
        if show_net:
            cells.append(r.network_name or r.network[:8])
        cells += [output.text_or_dash(r.ipv4), output.path_text({"connected": r.connected, "path": r.path}),
                  output.text_or_dash(r.endpoint),
                  output.ms(r.rtt_ms), Text(sparkline(r.rtts, spark), style="cyan"),
                  output.rate(r.rate_in), output.rate(r.rate_out), Text(sparkline(r.rates, spark // 2), style="magenta"),
                  output.pct(r.loss), output.text_or_dash(r.nat)]
        cells += [(output.peer_routes if c == "ROUTES" else output.peer_exit)(vars(r)) for c in extra]
        t.add_row(*cells, style="reverse" if chosen else None if r.connected else "dim")
    return t


def detail(r: PeerRow | None) -> RenderableType:
    if r is None:
        return Text("")
    rtts = list(r.rtts)
    stats = (f"min {output.ms(min(rtts))}  avg {output.ms(sum(rtts) / len(rtts))}  max {output.ms(max(rtts))}  ({len(rtts)} samples)"
             if rtts else "no samples yet")
    g = Table.grid(padding=(0, 2))
    g.add_column(style="bold", no_wrap=True)
    g.add_column()
    g.add_row("node", f"{r.node_id}")
    g.add_row("network", f"{r.network_name or '-'} ({r.network})")
    for k, v in cert_rows(r):
        g.add_row(k, v)
    g.add_row("mesh IPs", output.mesh_ips({"ipv4": r.ipv4, "ipv6": r.ipv6}))
    g.add_row("path", Text.assemble(output.path_text({"connected": r.connected, "path": r.path}),
                                    f"   ({r.path_reason})" if r.path_reason else ""))
    if r.why:
        g.add_row("why", r.why)
    g.add_row("NAT", f"peer {output.text_or_dash(r.nat)}; this node {output.nat_summary(r.own_nat)}")
    g.add_row("endpoint", output.text_or_dash(r.endpoint))
    g.add_row("subnet routes", output.peer_routes(vars(r)))
    g.add_row("exit node", output.peer_exit(vars(r)))
    g.add_row("RTT", f"{output.ms(r.rtt_ms)}   {stats}")
    pings = f"{r.pings_answered}/{r.pings_sent} monitor pings answered" if r.pings_sent else "no monitor pings yet"
    g.add_row("loss", f"{output.pct(r.api_loss)} on the current path (daemon); {pings}" if r.api_loss is not None
              else f"{output.pct(r.ping_loss)}; {pings}")
    g.add_row("traffic", f"in {output.size(r.bytes_in)} ({output.rate(r.rate_in)}), "
                         f"out {output.size(r.bytes_out)} ({output.rate(r.rate_out)})")
    g.add_row("handshake", output.ago(r.last_handshake_s))
    if r.last_error:
        g.add_row("last ping", Text(r.last_error, style="red"))
    return Panel(g, title=f"{r.label}", title_align="left", border_style="blue")


STREAM_ROWS, FORWARD_ROWS = 6, 4  # rows of each the panel shows at most (the rest: "N more")


def streams_panel(m: Model) -> tuple[RenderableType | None, int]:
    """Open streams and port forwards (as `omertactl streams` shows them), and the lines it takes; None when there
    are neither."""
    if not m.streams and not m.forwards:
        return None, 0
    parts: list[RenderableType] = []
    lines = 2  # the border
    for title, items, most, table in (("streams", m.streams, STREAM_ROWS, streams_view.table),
                                      ("forwards", m.forwards, FORWARD_ROWS, forward_view.table)):
        if not items:
            continue
        parts.append(Text(f"{title} ({len(items)})", style="bold"))
        parts.append(table(items[:most]))
        lines += 2 + min(len(items), most)
        if len(items) > most:
            parts.append(Text(f"… {len(items) - most} more (omertactl streams)", style="dim"))
            lines += 1
    return Panel(Group(*parts), title="streams and forwards", title_align="left", border_style="magenta"), lines


def event_log(m: Model, lines: int) -> RenderableType:
    items = list(m.log)[-max(1, lines):]
    if not items:
        return Text("no events yet", style="dim")
    return Group(*(output.event_line(e) for e in items))


def render(m: Model, width: int = 120, height: int = 40) -> RenderableType:
    """The whole screen for a terminal of ``width`` x ``height``; the event log gets the rows left over."""
    spark = max(8, min(30, width - 94) - (6 if any(r.role for r in m.peers.values()) else 0))  # (room for ROLE)
    rows = len(m.peers)
    panel, panel_lines = streams_panel(m)
    sel = m.selected_row()
    used = 4 + (rows + 2 if rows else 2) + (13 + len(cert_rows(sel)) if sel is not None else 0) + panel_lines + 3
    log_lines = max(3, height - used)
    parts: list[RenderableType] = [header(m), Text(""), peer_table(m, spark)]
    if rows:
        parts.append(detail(sel))
    if panel is not None:
        parts.append(panel)
    parts += [Text("events", style="bold"), event_log(m, log_lines),
              Text("q quit   ↑/↓ or j/k select a peer", style="dim")]
    return Group(*parts)
