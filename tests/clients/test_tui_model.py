"""The monitor's pure model: a snapshot, then deltas folded in order; polls, pings, keys; and the views
rendered to a recording console."""

from __future__ import annotations

import re

from rich.console import Console

from omerta_clients.tui import views
from omerta_clients.tui.model import Model, parse_keys

NET = "n" * 16
BOB, CAROL, DAVE = "b" * 52, "c" * 52, "d" * 52


def peer(node: str, name: str, **kw: object) -> dict:
    base = {"name": name, "node_id": node, "short_id": node[:12], "network": NET, "network_name": "home",
            "endpoint": "127.0.0.1:1000", "path": "direct", "rtt_ms": None, "last_handshake_s": 1.0,
            "bytes_in": 100, "bytes_out": 200, "connected": True}
    return {**base, **kw}


def snapshot(seq: int = 10) -> dict:
    status = {"node_id": "a" * 52, "name": "alice", "status_text": "2 peers",
              "networks": [{"network": NET, "name": "home", "peers": 2, "connected": 2}],
              "peers": {"total": 2, "connected": 2, "direct": 2, "relayed": 0},
              "nat": {"status": "classified", "reason": "public (confidence 0.5)", "mapping": "none", "filtering": "none"}}
    return {"subscription": 1, "seq": seq, "snapshot": {"status": status, "peers": [peer(BOB, "bob", rtt_ms=1.5), peer(CAROL, "carol")]}}


def ev(seq: int, type_: str, node: str | None = None, **kw: object) -> dict:
    e = {"type": type_, "seq": seq, "time": 1700000000.0 + seq, "network": NET, **kw}
    if node:
        e |= {"node_id": node, "name": {BOB: "bob", CAROL: "carol", DAVE: "dave"}[node]}
    return e


def test_snapshot_then_deltas_in_order_and_old_events_ignored() -> None:
    m = Model()
    m.apply_subscribe(snapshot(seq=10))
    assert [r.label for r in m.rows()] == ["bob", "carol"] and m.peers[(BOB, NET)].rtt_ms == 1.5
    assert not m.apply_event(ev(10, "peer.disconnected", BOB, reason="x"))  # already in the snapshot
    assert m.peers[(BOB, NET)].connected
    assert m.apply_event(ev(11, "peer.pong", CAROL, rtt_ms=2.0, endpoint="127.0.0.1:1001"))
    assert m.apply_event(ev(12, "peer.pong", CAROL, rtt_ms=4.0, endpoint="127.0.0.1:1001"))
    assert not m.apply_event(ev(12, "peer.pong", CAROL, rtt_ms=9.0))  # a repeat changes nothing
    carol = m.peers[(CAROL, NET)]
    assert carol.rtt_ms == 4.0 and list(carol.rtts) == [2.0, 4.0] and m.seq == 12
    m.apply_event(ev(13, "peer.discovered", DAVE))
    m.apply_event(ev(14, "peer.connected", DAVE, endpoint="127.0.0.1:1002", initiator=True))
    assert m.peers[(DAVE, NET)].connected and m.peers[(DAVE, NET)].endpoint == "127.0.0.1:1002"
    assert m.peers[(DAVE, NET)].network_name == "home"
    m.apply_event(ev(15, "peer.path_changed", DAVE, old="127.0.0.1:1002", new="relay:x", kind="relay", reason="direct path lost"))
    assert m.peers[(DAVE, NET)].path == "relay" and m.peers[(DAVE, NET)].path_reason == "direct path lost"
    m.apply_peers([peer(BOB, "bob"), peer(CAROL, "carol"), peer(DAVE, "dave", path="relay via bob")], now=100.0)
    m.apply_event(ev(16, "peer.path_changed", DAVE, old=None, new="relay:x", kind="relay", reason="still relayed"))
    assert m.peers[(DAVE, NET)].path == "relay via bob"  # the event names no relay: the polled name stays
    m.apply_event(ev(17, "peer.path_changed", DAVE, old="relay:x", new="127.0.0.1:1009", kind="punched", reason="punch ok"))
    assert m.peers[(DAVE, NET)].path == "punched" and m.peers[(DAVE, NET)].endpoint == "127.0.0.1:1009"
    m.apply_event(ev(18, "peer.left", CAROL))  # carol left the network: her row goes at once
    assert (CAROL, NET) not in m.peers and (DAVE, NET) in m.peers
    m.apply_event(ev(19, "peer.disconnected", DAVE, reason="timeout"))
    dave = m.peers[(DAVE, NET)]
    assert not dave.connected and dave.path is None and [r.label for r in m.rows()][-1] == "dave"  # offline last
    m.apply_event(ev(20, "nat.changed", label="endpoint-independent"))
    assert m.nat_label == "endpoint-independent"
    m.apply_event(ev(21, "network.left"))
    assert m.peers == {} and m.status["networks"] == []
    m.apply_event(ev(22, "network.joined", name="lab"))
    assert [n["name"] for n in m.status["networks"]] == ["lab"]
    assert [e["seq"] for e in m.log] == list(range(13, 23))  # pongs stay out of the log; the rest is in
    m.apply_event(ev(23, "daemon.stopping"))
    assert m.error == "the daemon is stopping"


def test_polls_give_throughput_and_pings_give_loss() -> None:
    m = Model()
    m.apply_subscribe(snapshot())
    m.apply_peers([peer(BOB, "bob", bytes_in=1000, bytes_out=0), peer(CAROL, "carol")], now=10.0)
    bob = m.peers[(BOB, NET)]
    assert bob.rate_in is None  # one poll: no rate yet
    m.apply_peers([peer(BOB, "bob", bytes_in=3000, bytes_out=500), peer(CAROL, "carol")], now=12.0)
    assert bob.rate_in == 1000.0 and bob.rate_out == 250.0 and list(bob.rates) == [1250.0]
    m.apply_ping((BOB, NET), {"sent": 1, "received": 1})
    m.apply_ping((BOB, NET), {"sent": 1, "received": 0})
    m.apply_ping((BOB, NET), None, "not connected")
    assert bob.loss == 0.5 and bob.last_error == "not connected" and m.peers[(CAROL, NET)].loss is None
    m.apply_peers([peer(BOB, "bob", bytes_in=3000, bytes_out=500)], now=13.0)  # carol is gone from the table
    assert list(m.peers) == [(BOB, NET)]
    again = snapshot(seq=50)  # a re-subscription keeps what was drawn
    m.apply_subscribe(again)
    assert list(m.peers[(BOB, NET)].rates) == [1250.0, 0.0] and m.peers[(BOB, NET)].pings_sent == 2 and m.seq == 50


def test_keys_select_and_quit() -> None:
    assert parse_keys(b"jk\x1b[A\x1b[Bq") == ["down", "up", "up", "down", "quit"]
    assert parse_keys(b"\x1bOB\x1b[1;5Cx\x03") == ["down", "quit"]  # SS3 arrows; unknown CSI and keys skipped
    m = Model()
    assert m.key("down") and m.selected_row() is None  # no peers: nothing to select
    m.apply_subscribe(snapshot())
    assert m.selected_row().label == "bob"
    for k, want in [("down", "carol"), ("down", "carol"), ("up", "bob"), ("up", "bob"), ("end", "carol"), ("home", "bob")]:
        assert m.key(k)
        assert m.selected_row().label == want, k
    assert m.key("quit") is False


def test_sparkline() -> None:
    assert views.sparkline([]) == ""
    assert views.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert views.sparkline([5, 5, 5]) == "▄▄▄" and views.sparkline([0, 0]) == "▁▁"
    assert len(views.sparkline(range(100), width=10)) == 10


def test_screen_renders_peers_detail_and_log() -> None:
    m = Model()
    m.apply_subscribe(snapshot())
    m.apply_event(ev(11, "peer.pong", CAROL, rtt_ms=2.25, endpoint="127.0.0.1:1001"))
    m.apply_event(ev(12, "peer.handshake_failed", DAVE, reason="cookie"))
    m.key("down")
    m.apply_detail((CAROL, NET), {"own_nat": {"type": "cone", "confidence": 0.5}, "why": "both public"})
    c = Console(record=True, width=160, file=open("/dev/null", "w"))
    c.print(views.render(m, 160, 45))
    c.file.close()
    text = c.export_text()
    lines = text.splitlines()
    assert "alice" in lines[0] and "public (confidence 0.5)" in lines[1]
    bob = next(x for x in lines if " bob " in x and "direct" in x)
    carol = next(x for x in lines if "carol" in x and "direct" in x)
    assert "1.50 ms" in bob and "2.25 ms" in carol and carol.startswith("›")  # the selected row is marked
    assert "╭─ carol" in text and "c" * 52 in text  # the detail pane shows the selected peer
    assert "this node cone (confidence 0.5)" in text and "both public" in text  # from peers.get
    assert "peer.handshake_failed dave cookie" in text


def forward_info(local: int, **kw: object) -> dict:
    base = {"bind": "127.0.0.1", "local": local, "peer": "bob", "node_id": BOB, "name": "bob", "port": 22, "network": None,
            "kept_in": None, "listening": True, "connections": 1, "connections_total": 3, "bytes_in": 2048, "bytes_out": 1024,
            "age_s": 75.0, "errors": 1, "last_error": "port 22 not exposed on bob"}
    return {**base, **kw}


def stream_info(sid: int, **kw: object) -> dict:
    base = {"peer": BOB, "name": "bob", "port": 22, "stream": sid, "direction": "out", "bytes_in": 3 << 20, "bytes_out": 512,
            "age_s": 12.0, "forward": "127.0.0.1:2222"}
    return {**base, **kw}


def screen(m: Model, height: int = 60, width: int = 160) -> str:
    c = Console(record=True, width=width, file=open("/dev/null", "w"))
    c.print(views.render(m, width, height))
    c.file.close()
    return c.export_text()


def test_streams_and_forwards_panel_shows_them_and_only_when_there_are_any() -> None:
    m = Model()
    m.apply_subscribe(snapshot())
    assert "streams and forwards" not in screen(m)  # nothing to show: no panel
    m.apply_streams({"streams": [stream_info(2), stream_info(4, direction="in", forward=None, port=8080, name="carol")],
                     "forwards": [forward_info(2222), forward_info(8080, bind="::1", listening=False, last_error="in use")]})
    text = screen(m)
    assert "╭─ streams and forwards" in text and "streams (2)" in text and "forwards (2)" in text
    out = next(x for x in text.splitlines() if "bob" in x and "3.0 MiB" in x)
    assert "22" in out and "out" in out and "127.0.0.1:2222" in out
    assert any("carol" in x and "8080" in x and " in " in x for x in text.splitlines())
    fwd = next(x for x in text.splitlines() if "127.0.0.1:2222" in x and "2.0 KiB" in x)
    assert "1m15s" in fwd and "port 22 not exposed on bob" in fwd
    assert "[::1]:8080 (not listening)" in text
    # many streams: the panel shows a few and says how many more
    m.apply_streams({"streams": [stream_info(2 * i) for i in range(20)], "forwards": []})
    text = screen(m)
    assert "streams (20)" in text and f"… {20 - views.STREAM_ROWS} more (omertactl streams)" in text
    assert "forwards (" not in text
    m.apply_streams({"streams": []})  # an older daemon's result without forwards
    assert "streams and forwards" not in screen(m)


def test_exit_node_routes_and_dns_in_the_header_table_and_detail() -> None:
    m = Model()
    sub = snapshot()
    st = sub["snapshot"]["status"]
    st["exit"] = {"offering": False, "using": BOB, "using_name": "bob", "state": "active", "offered_by": [], "error": None}
    st["routes"] = {"advertised": ["10.5.0.0/24"], "offered": [], "error": None, "accepted": [
        {"node_id": CAROL, "name": "carol", "prefix": "10.1.0.0/24", "state": "not advertised (accepted ahead)",
         "installed": False, "source": "config"}]}
    st["dns"] = {"enabled": True, "active": True, "detail": "100.64.0.1 on om-home; systemd-resolved: registered"}
    sub["snapshot"]["peers"][0] |= {"exit_offered": True, "exit_used": True}
    m.apply_subscribe(sub)
    text = screen(m, 45, 240)
    header = text.splitlines()[2]
    assert "exit: not offering; using bob: active" in header and "routes: advertising 10.5.0.0/24; 10.1.0.0/24 from carol" in header
    assert "dns: 100.64.0.1 on om-home; systemd-resolved: registered" in header
    assert "ROUTES" not in text and re.search(r"bob .* in use *$", text, re.M)  # (no peer has routes yet: no column)
    # a poll brings carol's advertisement in force: the ROUTES column appears; the detail pane says it too
    m.apply_peers([peer(BOB, "bob", exit_offered=True, exit_used=True),
                   peer(CAROL, "carol", routes=["10.1.0.0/24"], routes_accepted=["10.1.0.0/24"], routes_active=["10.1.0.0/24"])], 1.0)
    m.key("down")
    text = screen(m)
    assert "ROUTES" in text and re.search(r"carol .*10\.1\.0\.0/24 active", text)
    assert re.search(r"subnet routes\s+10\.1\.0\.0/24 active", text) and re.search(r"exit node\s+- ", text)


def test_owned_network_roles_marked_certificates_in_the_detail_and_membership_in_words() -> None:
    """bob is the owner (★), carol an admin (☆) with tags; the detail pane shows the selected peer's role, tags and
    certificate expiry; the membership events read as words, and a removed member's row goes."""
    m = Model()
    m.apply_subscribe(snapshot())
    assert "ROLE" not in screen(m) and "certificate" not in screen(m)  # an open network: no roles, no certificates
    m.apply_peers([peer(BOB, "bob", role="owner", tags=[], cert_expires=1790000000),
                   peer(CAROL, "carol", role="admin", tags=["web", "db"], cert_expires=1790003600)], now=1.0)
    m.key("down")
    for i, (kind, node, kw) in enumerate([
            ("peer.discovered", DAVE, {}), ("invite.redeemed", DAVE, {"uses": 2}), ("member.enrolled", BOB, {}),
            ("member.enrolment_refused", BOB, {"reason": "used", "fix": "ask an admin for a new one"}),
            ("credential.renewed", BOB, {"not_after": 1790000000}),
            ("credential.renewal_refused", BOB, {"reason": "revoked", "fix": "ask to be invited again"}),
            ("network.rekeyed", None, {"epoch": 2}), ("member.removed", None, {"node_id": None, "name": None, "by": BOB, "by_name": "bob"}),
            ("member.removed", DAVE, {"by": BOB, "by_name": "bob"})], start=11):
        assert (DAVE, NET) in m.peers or kind == "peer.discovered"  # (dave's row stays until its removal)
        m.apply_event(ev(i, kind, node, **kw))
    text = screen(m)
    table = text.split("events\n")[0]
    assert "ROLE" in table.splitlines()[4]
    assert re.search(r"bob +★ owner +bbbbbbbbbbbb", table) and re.search(r"carol +☆ admin +cccccccccccc", table), table
    assert re.search(r"role +☆ admin", text) and re.search(r"tags +web, db", text)
    assert re.search(r"certificate +expires 2026-09-21 15:13Z", text), text
    assert (DAVE, NET) not in m.peers and "dave" not in table
    for words in ["invite.redeemed dave enrolled with an invite (2 uses of it so far)",
                  "member.enrolled this node enrolled by bob: it holds a member certificate now",
                  "member.enrolment_refused bob refused this node's invite: used (fix: ask an admin for a new one)",
                  "credential.renewed this node's certificate renewed by bob, valid until 2026-09-21 14:13Z",
                  "credential.renewal_refused bob refused to renew this node's certificate: revoked (fix: ask to be invited again)",
                  f"network.rekeyed the key of network {NET[:12]} rotated (epoch 2)",
                  "member.removed a certificate or an invite revoked by bob", "member.removed dave removed by bob"]:
        assert words in text, (words, text)
