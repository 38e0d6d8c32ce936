"""The daemon's log lines (meshd/eventlog.py, issue 14 item 5): real daemons on loopback say, one line each, that a
peer connected, that its path changed, that it restarted and left, that a stranger's handshake was refused and
that garbage datagrams were dropped; and the rate limits hold against floods (virtual clock, in process)."""

from __future__ import annotations

import logging
import re
import socket
import time

from meshd.harness import DaemonProc, wait_connected
from omerta_mesh.core import events as ev
from omerta_mesh.core.ids import NetworkId, NodeId
from omerta_mesh.core.peers.paths import ViaRelay
from omerta_mesh.meshd import eventlog

GARBAGE = 40


def lines(d: DaemonProc, pattern: str) -> list[str]:
    return [ln for ln in d.log_text().splitlines() if " omerta_mesh.meshd.log: " in ln and re.search(pattern, ln)]


def wait_line(d: DaemonProc, pattern: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := lines(d, pattern):
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n{d.log_text()[-4000:]}")


def one_line(d: DaemonProc, pattern: str) -> str:
    wait_line(d, pattern)
    found = lines(d, pattern)
    assert len(found) == 1, found
    return found[0]


def udp_port(d: DaemonProc) -> int:
    return int(d.call("status.get")["listen"][0].rsplit(":", 1)[1])  # type: ignore[index]


def test_a_pair_logs_what_an_admin_should_read(daemon_factory) -> None:
    a, b, c = daemon_factory("a").start(), daemon_factory("b"), daemon_factory("c").start()
    a_id = a.call("status.get")["node_id"]  # type: ignore[index]
    port = udp_port(a)

    # garbage datagrams: one summary line, with the count the counters hold
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(GARBAGE):
            s.sendto(b"\xee" * 40, ("127.0.0.1", port))
    line = one_line(a, r"dropped [\d,]+ datagrams in the last \d+ s: ")
    n = a.call("status.get")["counters"]["drop.unknown_type"]  # type: ignore[index]
    assert 0 < n <= GARBAGE and f"dropped {n} datagrams" in line and f"unknown_type {n}" in line, (n, line)
    assert "REFUSED=datagrams" in line

    # a stranger (another network's key) handshakes with a: refused, said once
    c.call("network.create", name="elsewhere")
    c.stop()
    c.extra = ["--bootstrap", f"{a_id}@127.0.0.1:{port}"]
    c.start()
    line = one_line(a, r"refused [\d,]+ handshakes in the last \d+ s: bad_mac1 ")
    c.stop()

    # b joins: connected, one line with the fields
    net = a.call("network.create", name="home")
    b.start()
    b_id = b.call("status.get")["node_id"]  # type: ignore[index]
    assert b.call("network.join", invite=net["invite"], wait=10)["connected"]  # type: ignore[index]
    wait_connected(a, b_id)
    line = one_line(a, rf"peer .* in home connected via 127\.0\.0\.1:\d+ .*PEER_ID={b_id}")
    assert "NETWORK=home" in line and "PATH=direct" in line and re.search(r" PEER=\S+", line), line

    # b restarts on another port: restarted, and the path moves to the new port
    old = udp_port(b)
    b.stop()
    b.start()
    new = udp_port(b)
    assert new != old
    wait_connected(a, b_id)
    one_line(a, rf"peer .* restarted .*PEER_ID={b_id}")
    line = one_line(a, rf"path change for .*: 127\.0\.0\.1:{old} -> 127\.0\.0\.1:{new} \(direct; ")
    assert f"ENDPOINT=127.0.0.1:{new}" in line and "PATH=direct" in line, line

    # b leaves: one line
    b.call("network.leave", network=net["network"])  # type: ignore[index]
    one_line(a, rf"peer \S+ (\(\w+\) )?in home left the network .*PEER_ID={b_id}")
    assert not lines(a, r"INFO .* disconnected: left the network")  # the departure is one line, not two
    one_line(b, r"left network home ")
    assert "Traceback" not in a.log_text() + b.log_text() + c.log_text()


# ---------------------------------------------------------------------- in process, on a virtual clock
class Names:
    def peer(self, node: NodeId) -> str:
        return "bob"

    def network(self, network: NetworkId) -> str:
        return "home"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


NET, BOB = NetworkId(bytes(10)), NodeId(bytes(range(32)))


def make(caplog, counters: dict[str, int] | None = None) -> tuple[eventlog.EventLog, Clock]:
    caplog.set_level(logging.DEBUG, logger="omerta_mesh.meshd.log")
    clock = Clock()
    return eventlog.EventLog(Names(), lambda: dict(counters or {}), clock), clock


def test_a_flood_of_debug_events_costs_a_bounded_number_of_lines(caplog) -> None:
    log, clock = make(caplog)
    for _ in range(10_000):
        log.on_event(ev.PongReceived(NET, BOB, 1, 0.002, ("10.0.0.1", 7)))
    burst = int(eventlog.BUCKETS[logging.DEBUG][1])
    assert len(caplog.records) == burst and log.suppressed == 10_000 - burst
    clock.t += 1.0  # one second refills rate tokens; the next line says what was held back
    log.on_event(ev.PongReceived(NET, BOB, 1, 0.002, ("10.0.0.1", 7)))
    last = caplog.records[-1]
    assert f"({10_000 - burst} similar lines suppressed)" in last.getMessage() and last.SUPPRESSED == str(10_000 - burst)


def test_a_summary_at_most_once_a_minute_and_the_window_it_covers(caplog) -> None:
    counters = {"drop.replayed": 0, "drop.handshake_tie_break": 5}
    log, clock = make(caplog, counters)
    summaries = lambda: [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]  # noqa: E731
    log.counters = lambda: dict(counters)
    clock.t += 2
    log.tick()
    assert summaries() == []  # a benign drop (both sides initiated at once) is not news
    counters["drop.replayed"], counters["drop.decrypt_failed"] = 1200, 1234 - 1200
    clock.t += 2
    log.tick()
    assert summaries() == ["dropped 1,234 datagrams in the last 2 s: replayed 1,200, decrypt_failed 34"]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]  # each tick's new refusals
    assert debug == ["new refusals: drop.decrypt_failed +34, drop.replayed +1200"]  # (the benign drop is not one)
    for _ in range(29):  # 58 s more of drops: held back
        counters["drop.replayed"] += 1
        clock.t += 2
        log.tick()
    assert len(summaries()) == 1
    counters["drop.replayed"] += 1
    clock.t += 2
    log.tick()
    assert summaries()[-1] == "dropped 30 datagrams in the last 60 s: replayed 30"
    clock.t += 10
    log.tick()
    clock.t += 70  # quiet, then one more: the window starts at the last quiet look
    counters["drop.replayed"] += 1
    log.tick()
    assert summaries()[-1] == "dropped 1 datagrams in the last 70 s: replayed 1"


def test_each_event_kind_has_its_line_with_fields(caplog) -> None:
    log, _ = make(caplog)
    relay = ev.PathChanged(NET, BOB, ("10.0.0.1", 7), ViaRelay(str(BOB)), "relay", "direct path lost")
    log.on_event(relay)
    r = caplog.records[-1]
    assert r.levelno == logging.INFO and r.getMessage().startswith("relay change for bob (")
    assert (r.PEER, r.NETWORK, r.PATH, r.REASON) == ("bob", "home", "relay", "direct path lost")
    for e in [ev.NatChanged("symmetric"), ev.HandshakeFailed(NET, BOB, "no answer to handshake initiations"),
              ev.PunchFinished(NET, BOB, True, ("10.0.0.2", 9), 2, 1.5, None)]:
        log.on_event(e)
        assert caplog.records[-1].levelno == logging.INFO, e
    assert set(eventlog.LINES) >= {ev.PeerConnected, ev.PeerDisconnected, ev.PeerLeft, ev.PeerRestarted,
                                   ev.PathChanged, ev.NatChanged, ev.HandshakeFailed, ev.PunchFinished}


class OwnedNames:
    """bob and carol by name, the network "lab", and this node (ME), which has no name of its own here."""

    def peer(self, node: NodeId) -> str:
        return {BOB: "bob", CAROL: "carol"}.get(node, node.short())

    def network(self, network: NetworkId) -> str:
        return "lab"

    def is_self(self, node: NodeId) -> bool:
        return node == ME


CAROL, ME = NodeId(bytes([2] * 32)), NodeId(bytes([3] * 32))


def test_the_membership_of_owned_networks_in_words(caplog) -> None:
    """Each membership event is one line saying what happened: info, a refusal a warning; who removed whom as fields."""
    caplog.set_level(logging.DEBUG, logger="omerta_mesh.meshd.log")
    log = eventlog.EventLog(OwnedNames(), dict, Clock())
    b, c = f"bob ({BOB.short()})", f"carol ({CAROL.short()})"
    info, warning = logging.INFO, logging.WARNING
    for e, level, text in [
        (ev.Enrolled(NET, BOB), info, f"this node enrolled in network lab by {b}: it holds a member certificate now"),
        (ev.EnrolmentRefused(NET, BOB, "used", "ask an admin for a new one"), warning,
         f"enrolment in network lab refused by {b}: used (fix: ask an admin for a new one)"),
        (ev.InviteRedeemed(NET, CAROL, 2), info, f"enrolled {c} in lab with an invite (2 uses of it so far)"),
        (ev.MemberRemoved(NET, CAROL, BOB), info, f"member {c} in lab removed by {b}: its sessions closed, refused from now on"),
        (ev.MemberRemoved(NET, ME, BOB), info, f"this node was removed from network lab by {b}: its members refuse it from now on"),
        (ev.MemberRemoved(NET, None, BOB), info, f"a certificate or an invite of network lab revoked by {b}"),
        (ev.NetworkRekeyed(NET, 3), info, "key of network lab rotated (epoch 3): the previous key is accepted until its grace ends"),
        (ev.CredentialRenewed(NET, BOB, 1790000000), info, f"certificate in network lab renewed by {b}, valid until 2026-09-21 14:13Z"),
        (ev.CredentialRenewed(NET, ME, 1790000000), info,
         "certificate in network lab renewed by this node (the owner signs its own), valid until 2026-09-21 14:13Z"),
        (ev.RenewalRefused(NET, BOB, "revoked", "ask an admin to invite this node again"), warning,
         f"renewal of the certificate in network lab refused by {b}: revoked (fix: ask an admin to invite this node again)"),
    ]:
        log.on_event(e)
        r = caplog.records[-1]
        assert (r.levelno, r.getMessage()) == (level, text), e
    removal = next(r for r in caplog.records if r.getMessage().startswith("member carol"))
    assert (removal.PEER, removal.PEER_ID, removal.BY, removal.BY_ID) == ("carol", str(CAROL), "bob", str(BOB))
    refusal = next(r for r in caplog.records if r.levelno == warning)
    assert (refusal.REASON, refusal.FIX, refusal.NETWORK) == ("used", "ask an admin for a new one", "lab")
