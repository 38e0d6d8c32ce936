"""Renderings that loopback daemons cannot produce (they always meet directly): a relayed peer's detail
explains the path with both NAT verdicts and their evidence. The input is checked against the schema."""

from __future__ import annotations

import io
import re

from rich.console import Console

from clients.ctlharness import check_result
from omerta_clients import output

SYM = {"type": "symmetric-random", "mapping": "apdm", "filtering": "apdf", "allocation": "random", "port_delta": None,
       "public_endpoints": ["198.51.100.7:40001", "198.51.100.7:40873"], "confidence": 0.9,
       "evidence": ["bob saw 198.51.100.7:40001", "carol saw 198.51.100.7:40873: a new port per destination"]}
THEIRS = {**SYM, "public_endpoints": [], "confidence": 0.0, "evidence": ["as stated in the peer's signed record"]}
RELAYED = {
    "node_id": "d" * 52, "name": "dave", "networks": [{
        "name": "dave", "node_id": "d" * 52, "short_id": "d" * 12, "network": "n" * 16, "network_name": "home",
        "endpoint": None, "path": "relay via carol", "rtt_ms": 41.5, "last_handshake_s": 12.0, "bytes_in": 2048,
        "bytes_out": 4096, "connected": True, "loss": 0.05, "nat": "symmetric-random",
        "ipv4": "100.77.12.34", "ipv6": "fd12:3456:789a::1234",
        "routes": ["10.1.0.0/24", "10.2.0.0/24"], "routes_accepted": ["10.1.0.0/24", "10.3.0.0/24"], "routes_active": ["10.1.0.0/24"],
        "exit_offered": True, "exit_used": False, "role": "member", "tags": ["web", "db"], "cert_expires": 1798718400,
        "path_reason": "no direct path answered; relay up",
        "why": "symmetric-random and symmetric-random: both NATs pick a new port for every destination, "
               "so neither side can aim at the other; relayed",
        "own_nat": SYM, "peer_nat": THEIRS,
        "paths": [{"path": "relay:" + "c" * 52, "kind": "relay", "state": "up", "current": True,
                   "rtt_ms": 41.5, "loss": 0.05, "last_answer_s": 0.4},
                  {"path": "203.0.113.9:51888", "kind": "direct", "state": "down", "current": False,
                   "rtt_ms": None, "loss": 1.0, "last_answer_s": None, "mtu": 1340}],
        "endpoints": ["203.0.113.9:51888"], "packets_in": 20, "packets_out": 30, "handshakes": 2,
        "handshake_in_progress": False, "sessions": [{"slot": "current", "age_s": 12.0, "initiator": True, "packets_sent": 30}],
        "stream": {"waiting": 2, "in_flight": 5, "held_s": 3.2, "rto_ms": 800.0, "frames_sent": 40, "retransmits": 7,
                   "give_ups": 0, "frames_received": 31, "duplicates": 1},
    }],
}


def render(renderable, width: int = 140) -> str:
    c = Console(record=True, width=width, file=io.StringIO())
    c.print(renderable)
    return c.export_text()


def test_relayed_peer_detail_explains_why_with_both_nat_verdicts() -> None:
    text = render(output.peer_detail_view(check_result("peers.get", RELAYED)))
    assert "why relayed" in text and "relay via carol" in text
    assert "both NATs pick a new port for every destination" in text and "no direct path answered" in text
    assert "this node's NAT  symmetric-random (confidence 0.9)" in text and "carol saw 198.51.100.7:40873" in text
    assert "peer's NAT" in text and "as stated in the peer's signed record" in text
    assert re.search(r"mesh IPs\s+100\.77\.12\.34, fd12:3456:789a::1234", text)
    assert "5%" in text and "41.5 ms" in text and "203.0.113.9:51888" in text  # loss, RTT, the dead direct path
    assert "2 waiting, 5 unacknowledged; held 3.2s (no proven path yet); 40 frames sent, 7 resent" in text
    assert re.search(r"203\.0\.113\.9:51888\s+direct\s+down\s+-\s+100%\s+1340", text)  # the path's MTU
    # its subnet routes: advertised and active, advertised only, accepted ahead of an advertisement; its exit offer
    assert re.search(r"subnet routes\s+10\.1\.0\.0/24 active, 10\.2\.0\.0/24 not accepted, 10\.3\.0\.0/24 accepted *$", text, re.M)
    assert re.search(r"exit node\s+offers *$", text, re.M)
    assert re.search(r"certificate\s+member web,db until 2026-12-31 12:00Z *$", text, re.M)  # owned network: verified, UTC


def test_peer_table_for_relayed_and_offline_peers() -> None:
    peers = [{k: v for k, v in RELAYED["networks"][0].items() if k in (
        "name", "node_id", "short_id", "network", "network_name", "endpoint", "path", "rtt_ms", "last_handshake_s",
        "bytes_in", "bytes_out", "connected", "loss", "nat", "ipv4", "ipv6", "routes", "routes_accepted", "routes_active",
        "exit_offered", "exit_used", "role", "tags", "cert_expires")}]
    peers.append({**peers[0], "name": "erin", "node_id": "e" * 52, "short_id": "e" * 12, "connected": False, "path": None,
                  "rtt_ms": None, "loss": None, "nat": None, "last_handshake_s": None, "ipv4": None, "ipv6": None,
                  "routes": [], "routes_accepted": [], "routes_active": [], "exit_offered": False, "exit_used": True,
                  "role": None, "tags": [], "cert_expires": None})
    check_result("peers.list", {"peers": peers})
    lines = [x.rstrip() for x in render(output.peers_table(peers), 300).splitlines()]
    assert lines[0].split()[2:4] == ["MESH", "IP"]
    assert lines[1].split()[:6] == ["dave", "d" * 12, "100.77.12.34", "relay", "via", "carol"] and "symmetric-random" in lines[1]
    assert lines[2].split()[:5] == ["erin", "e" * 12, "-", "not", "connected"] and lines[2].count(" - ") >= 3
    assert lines[0].split()[-3:] == ["ROUTES", "EXIT", "CERT"]  # (shown when some peer has any)
    assert re.search(r"10\.1\.0\.0/24 active, 10\.2\.0\.0/24 not accepted, 10\.3\.0\.0/24 accepted +offers +member web,db until "
                     r"2026-12-31 12:00Z$", lines[1])
    assert re.search(r" - +in use, not offered +-$", lines[2])  # (its record no longer offers one: exit.status says lost)
    plain = render(output.peers_table([{**p, "routes": [], "routes_accepted": [], "routes_active": [], "exit_used": False,
                                        "exit_offered": False, "cert_expires": None} for p in peers]))
    assert "ROUTES" not in plain and "CERT" not in plain  # (an open network: no certificates)
