"""Sessions between two Mesh cores on a virtual clock: delivery, admission, replay, rekey, restart, expiry.

Everything runs on ``helpers.Pair`` (an in-memory wire, SeededEntropy, strict encryption audit), so each
test replays exactly.
"""

from __future__ import annotations

import random

import pytest

from helpers import A_ADDR, B_ADDR, Pair, make_mesh
from omerta_mesh.core import events as ev
from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.mesh import Mesh
from omerta_mesh.core.wire import handshake as hw
from omerta_mesh.core.wire.packet import PacketType

C_ADDR = ("198.51.100.3", 7000)
CFG = CoreConfig()


def connected(seed: str = "sessions", **kw) -> Pair:
    p = Pair(seed, **kw)
    p.connect()
    assert p.of(p.a, ev.PeerConnected) and p.of(p.b, ev.PeerConnected)
    return p


def received(p: Pair, m: Mesh) -> list[bytes]:
    return [e.data for e in p.of(m, ev.ChannelMessage)]


def take(m: Mesh, ptype: PacketType | None = None) -> list[bytes]:
    """Pull what ``m`` wants to send (off the Pair's wire), optionally only one packet type."""
    return [d for _, _, d in m.datagrams_to_send() if ptype is None or d[0] == ptype]


def fire_next(p: Pair) -> float:
    """Advance the virtual clock to the next deadline of either side and fire it."""
    p.run()
    at = min(d for d in (p.a.next_deadline(), p.b.next_deadline()) if d is not None)
    p.now = max(p.now, at)
    for m in (p.a, p.b):
        d = m.next_deadline()
        if d is not None and d <= p.now:
            m.handle_timer(p.now)
    p.run()
    return p.now


def stream_both_ways(p: Pair, n: int, batch: int = 500) -> None:
    for start in range(0, n, batch):
        for i in range(start, min(n, start + batch)):
            p.a.send(p.b.node_id, "bulk", b"a%d" % i, p.now)
            p.b.send(p.a.node_id, "bulk", b"b%d" % i, p.now)
        p.advance(p.now + 0.5)


# ------------------------------------------------------------------------------------ delivery
def test_ten_thousand_messages_both_ways_in_order() -> None:
    p = connected()
    stream_both_ways(p, 10_000)
    p.advance(p.now + 5)
    assert received(p, p.b) == [b"a%d" % i for i in range(10_000)]
    assert received(p, p.a) == [b"b%d" % i for i in range(10_000)]
    assert len(p.of(p.a, ev.MessageDelivered)) == len(p.of(p.b, ev.MessageDelivered)) == 10_000
    assert not p.of(p.a, ev.MessageFailed) and not p.of(p.b, ev.MessageFailed)
    assert p.a.counters.total_drops() == p.b.counters.total_drops() == 0


def test_one_mib_message_arrives_intact() -> None:
    p = connected()
    body = random.Random(1).randbytes(CFG.max_message)
    mid = p.a.send(p.b.node_id, "blob", body, p.now)
    p.advance(p.now + 10)
    [msg] = p.of(p.b, ev.ChannelMessage)
    assert msg.channel == "blob" and msg.data == body
    assert [e.message_id for e in p.of(p.a, ev.MessageDelivered)] == [mid]
    with pytest.raises(UsageError, match="over the"):
        p.a.send(p.b.node_id, "blob", body + b"!", p.now)


def test_five_percent_loss_everything_arrives_in_order() -> None:
    p = connected()
    rng = random.Random(5)
    lost = []
    p.drop = lambda m, d: rng.random() < 0.05 and not lost.append(d)
    stream_both_ways(p, 3000, batch=300)
    p.advance(p.now + 30)
    assert received(p, p.b) == [b"a%d" % i for i in range(3000)]
    assert received(p, p.a) == [b"b%d" % i for i in range(3000)]
    assert not p.of(p.a, ev.MessageFailed) and not p.of(p.b, ev.MessageFailed)
    assert len(lost) > 100  # the loss really happened, and was repaired
    assert p.a.peers()[0].stream.stats.retransmits > 0


# ------------------------------------------------------------------------------------ admission
def test_non_member_cannot_handshake_and_costs_no_dh() -> None:
    p = connected()
    dh_before = p.b.counters["handshake.dh_performed"]
    assert dh_before == 0  # B joined by invite, so it was the initiator: it never spent a responder DH
    c = make_mesh("outsider")
    cnet = c.create_network("elsewhere", p.now)
    c.add_peer(cnet.id, p.b.node_id, [B_ADDR], p.now)  # knows B's node id and address, not its network key
    delivered = 0
    for _ in range(100):  # timers fire (handshake retries, gossip rounds) until six initiations went out
        for dst, _, data in c.datagrams_to_send():
            assert dst == B_ADDR and data[0] == PacketType.HANDSHAKE_INIT
            p.b.receive_datagram(data, C_ADDR, None, p.now)
            delivered += 1
        if delivered >= 6:
            break
        p.now = c.next_deadline()
        c.handle_timer(p.now)
    assert delivered == 6
    assert p.b.counters["drop.bad_mac1"] == delivered
    assert p.b.counters["handshake.dh_performed"] == dh_before
    assert p.b.counters["handshake.responses_sent"] == 0
    assert [dst for dst, _, _ in p.b.datagrams_to_send()] == []  # not even a cookie reply
    assert all(peer.node != c.node_id for peer in p.b.peers())
    c_events = list(iter(c.next_event, None))
    assert any(isinstance(e, ev.NetworkJoined) for e in c_events)
    assert not any(isinstance(e, ev.PeerConnected) for e in c_events)


# ------------------------------------------------------------------------------------ replay and forgery
def test_replayed_and_bit_flipped_transport_packets() -> None:
    p = connected()
    p.a.send(p.b.node_id, "chat", b"one", p.now)
    [pkt] = take(p.a, PacketType.TRANSPORT)
    p.b.receive_datagram(pkt, A_ADDR, None, p.now)
    p.b.receive_datagram(pkt, A_ADDR, None, p.now)  # the same packet again
    assert p.b.counters["drop.replayed"] == 1

    p.a.send(p.b.node_id, "chat", b"two", p.now)
    [pkt2] = take(p.a, PacketType.TRANSPORT)
    for i in (16, 20, len(pkt2) - 1):  # ciphertext and tag
        flipped = bytearray(pkt2)
        flipped[i] ^= 0x01
        p.b.receive_datagram(bytes(flipped), A_ADDR, None, p.now)
    counter_flip = bytearray(pkt2)
    counter_flip[8] ^= 0x80  # the counter is authenticated data and the nonce
    p.b.receive_datagram(bytes(counter_flip), A_ADDR, None, p.now)
    assert p.b.counters["drop.decrypt_failed"] == 4
    p.b.receive_datagram(pkt2, A_ADDR, None, p.now)  # failed forgeries did not burn the real counter
    p.run()
    p.advance(p.now + 1)
    assert received(p, p.b) == [b"one", b"two"]
    assert p.b.counters["drop.replayed"] == 1 and p.b.counters["drop.decrypt_failed"] == 4


def test_replayed_initiation_and_bad_mac1() -> None:
    p = Pair("hs-replay")
    net = p.a.create_network("test", p.now)
    p.b.join(p.a.invite(net.id, [A_ADDR]), p.now)
    [init] = take(p.b, PacketType.HANDSHAKE_INIT)
    bad = bytearray(init)
    bad[hw.INIT_LEN - 2 * hw.MAC_LEN] ^= 0x01  # one bit of mac1
    p.a.receive_datagram(bytes(bad), B_ADDR, None, p.now)
    assert p.a.counters["drop.bad_mac1"] == 1
    assert p.a.counters["handshake.dh_performed"] == 0  # refused before any Diffie-Hellman
    body_flip = bytearray(init)
    body_flip[40] ^= 0x01  # mac1 covers the Noise message too
    p.a.receive_datagram(bytes(body_flip), B_ADDR, None, p.now)
    assert p.a.counters["drop.bad_mac1"] == 2 and p.a.counters["handshake.dh_performed"] == 0

    p.a.receive_datagram(init, B_ADDR, None, p.now)
    assert p.a.counters["handshake.responses_sent"] == 1
    session = p.a.peers()[0].next
    p.now += 3
    p.a.receive_datagram(init, B_ADDR, None, p.now)  # an eavesdropper replays it later
    assert p.a.counters["drop.handshake_replay"] == 1
    assert p.a.counters["handshake.responses_sent"] == 1
    assert p.a.peers()[0].next is session  # the session was not replaced
    p.run()
    p.a.send(p.b.node_id, "chat", b"fine", p.now)
    p.b.send(p.a.node_id, "chat", b"also", p.now)
    p.advance(p.now + 1)
    assert received(p, p.b) == [b"fine"] and received(p, p.a) == [b"also"]


# ------------------------------------------------------------------------------------ rekey
def test_rekey_under_continuous_traffic_loses_nothing() -> None:
    p = connected("rekey")
    start = p.now
    i = 0
    while p.now < start + 30 * 60:
        p.a.send(p.b.node_id, "tick", b"a%d" % i, p.now)
        p.b.send(p.a.node_id, "tick", b"b%d" % i, p.now)
        i += 1
        p.advance(p.now + 0.5)
    p.advance(p.now + 5)
    assert i == 3600
    assert received(p, p.b) == [b"a%d" % k for k in range(i)]
    assert received(p, p.a) == [b"b%d" % k for k in range(i)]
    # one rekey per rekey_after_time (120 s): about 15 in 30 minutes, seen by both sides
    assert len(p.of(p.a, ev.SessionRekeyed)) >= 14 and len(p.of(p.b, ev.SessionRekeyed)) >= 14
    for m in (p.a, p.b):
        assert not p.of(m, ev.MessageFailed) and not p.of(m, ev.PeerDisconnected)
        assert m.counters.total_drops() == 0
        # state stays bounded however many rekeys happened: at most previous/current/next (+ a handshake)
        assert m.table.index_count() <= 4
        assert m.sessions.live_count() <= 3


def live_session_objects(m: Mesh) -> int:
    return m.sessions.live_count()


def test_lost_responses_do_not_leak_sessions() -> None:
    """Regression: each retried initiation whose response was lost replaced the responder's unconfirmed
    ``next`` session, and the replaced one stayed in the mesh's remote-index map (and passed the audit)
    forever: remote-triggered unbounded growth."""
    p = Pair("lost-responses")
    net = p.a.create_network("test", p.now)
    p.drop = lambda m, d: m is p.a and d[0] == PacketType.HANDSHAKE_RESP
    p.b.join(p.a.invite(net.id, [A_ADDR]), p.now)
    p.advance(p.now + 30)
    assert p.a.counters["handshake.responses_sent"] >= 6
    assert live_session_objects(p.a) == 1 and p.a.table.index_count() == 1
    p.drop = lambda m, d: False
    p.advance(p.now + 10)
    assert p.of(p.a, ev.PeerConnected) and p.of(p.b, ev.PeerConnected)
    for m in (p.a, p.b):
        assert live_session_objects(m) == len(m.peers()[0].sessions()) == 1


# ------------------------------------------------------------------------------------ simultaneous initiation
def test_simultaneous_initiation_ends_in_one_session_pair() -> None:
    p = Pair("simultaneous")
    net = p.a.create_network("test", p.now)
    p.b.join(p.a.invite(net.id, [A_ADDR]), p.now)  # B initiates ...
    p.a.add_peer(net.id, p.b.node_id, [B_ADDR], p.now)  # ... and so does A, before anything crossed
    assert p.a.counters["handshake.initiations_sent"] == p.b.counters["handshake.initiations_sent"] == 1
    p.run()
    ties = (p.a.counters["drop.handshake_tie_break"], p.b.counters["drop.handshake_tie_break"])
    assert sorted(ties) == [0, 1]
    bigger = p.a if p.a.node_id.raw > p.b.node_id.raw else p.b
    assert bigger.counters["drop.handshake_tie_break"] == 1  # the larger id stays the initiator
    for m in (p.a, p.b):
        assert m.counters["handshake.completed"] == 1
        [peer] = m.peers()
        assert len(peer.sessions()) == 1 and peer.pending is None
        assert len(p.of(m, ev.PeerConnected)) == 1
    sa, sb = p.a.peers()[0].sessions()[0], p.b.peers()[0].sessions()[0]
    assert (sa.local_index, sa.remote_index) == (sb.remote_index, sb.local_index)  # the same session pair
    assert sa.initiator != sb.initiator
    p.a.send(p.b.node_id, "chat", b"to b", p.now)
    p.b.send(p.a.node_id, "chat", b"to a", p.now)
    p.advance(p.now + 1)
    assert received(p, p.b) == [b"to b"] and received(p, p.a) == [b"to a"]


# ------------------------------------------------------------------------------------ cookies under load
def test_cookie_under_load_then_retry_with_mac2_succeeds() -> None:
    cfg = CoreConfig().with_(handshakes_per_second_under_load=2)
    p = Pair("cookie", config=cfg)
    net = p.a.create_network("test", p.now)
    a_net = p.a.networks[net.id.raw]
    rng = random.Random(9)
    flood_src = ("203.0.113.50", 9999)

    def flood(n: int) -> None:
        """Initiations from a member with a valid mac1 but garbage Noise (counted as load, cost a DH)."""
        for _ in range(n):
            junk, _ = hw.encode_init(rng.getrandbits(32), rng.randbytes(hw.NOISE_MSG1_LEN), a_net.mac1_key(p.a.identity.public), None)
            p.a.receive_datagram(junk, flood_src, None, p.now)

    sent: list[bytes] = []
    p.drop = lambda m, d: sent.append(d) and False  # record, lose nothing
    p.b.join(p.a.invite(net.id, [A_ADDR]), p.now)
    flood(2)
    assert not p.a.hs.cookies.under_load(p.now)
    p.run()  # B's initiation is the third in this second: A is under load, answers with a cookie
    assert p.a.hs.cookies.under_load(p.now)
    assert p.a.counters["drop.cookie_required"] == 1
    assert p.b.counters["handshake.cookies_received"] == 1
    kinds = [d[0] for d in sent]
    assert kinds[:4] == [PacketType.HANDSHAKE_INIT, PacketType.COOKIE_REPLY, PacketType.HANDSHAKE_INIT, PacketType.HANDSHAKE_RESP]
    assert sent[0][-hw.MAC_LEN :] == bytes(hw.MAC_LEN)  # the first initiation had no mac2
    assert sent[2][-hw.MAC_LEN :] != bytes(hw.MAC_LEN)  # the retry, sent at once on the cookie, has one
    assert p.a.counters["drop.cookie_required"] == 1  # and A accepted it without waiting for a retransmit timeout
    assert p.of(p.a, ev.PeerConnected) and p.of(p.b, ev.PeerConnected)
    p.b.send(p.a.node_id, "chat", b"made it", p.now)
    p.advance(p.now + 1)
    assert received(p, p.a) == [b"made it"]


def test_a_cookie_triggers_at_most_one_immediate_retry() -> None:
    """A retry that already carried mac2 and still got a cookie (say the source address changed) waits for the
    retransmit timer: cookie replies cannot make the two sides ping-pong initiations."""
    cfg = CoreConfig().with_(handshakes_per_second_under_load=0)  # always under load
    p = Pair("cookie-once", config=cfg)
    net = p.a.create_network("test", p.now)
    sent: list[bytes] = []

    def lose_b_retry(m: object, d: bytes) -> bool:
        sent.append(d)
        return False

    p.drop = lose_b_retry
    # A answers every initiation with a cookie for a source it sees differently from where B sends: mimic a NAT
    # that rebinds by giving A's cookie jar a fresh secret before each initiation arrives
    orig = p.a.hs.cookies.cookie
    p.a.hs.cookies.cookie = lambda src, now: orig(("198.51.100.7", len(sent)), now)  # type: ignore[method-assign]
    p.b.join(p.a.invite(net.id, [A_ADDR]), p.now)
    p.run()
    inits = [d for d in sent if d[0] == PacketType.HANDSHAKE_INIT]
    assert len(inits) == 2 and p.b.counters["handshake.cookies_received"] == 2
    assert not p.of(p.b, ev.PeerConnected)


# ------------------------------------------------------------------------------------ peer restart
def test_peer_restart_is_detected_and_messages_flow_again() -> None:
    p = connected("restart")
    p.a.send(p.b.node_id, "chat", b"before", p.now)
    p.advance(p.now + 1)
    assert received(p, p.b) == [b"before"]
    old_b = p.b
    p.drop = lambda m, d: True  # B goes down
    stuck = p.a.send(p.b.node_id, "chat", b"while down", p.now)
    p.advance(p.now + 3)

    new_b = Mesh(Identity.from_seed(old_b.identity.seed), entropy=SeededEntropy("restart-b2"), strict_audit=True)
    assert new_b.node_id == old_b.node_id and new_b.incarnation != old_b.incarnation
    p.b = new_b
    p.addr[id(new_b)] = B_ADDR
    p.events[id(new_b)] = []
    p.drop = lambda m, d: False
    new_b.join(p.a.invite(p.net.id, [A_ADDR]), p.now)
    p.advance(p.now + 1)

    assert len(p.of(p.a, ev.PeerRestarted)) == 1
    failed = p.of(p.a, ev.MessageFailed)
    assert [(e.message_id, e.reason) for e in failed] == [(stuck, "peer restarted")]
    assert p.of(new_b, ev.PeerConnected)
    p.a.send(p.b.node_id, "chat", b"after", p.now)
    new_b.send(p.a.node_id, "chat", b"hello again", p.now)
    p.advance(p.now + 1)
    assert received(p, new_b) == [b"after"]
    assert received(p, p.a) == [b"hello again"]
    assert not p.of(new_b, ev.MessageFailed)
    # the sessions with the old incarnation are gone, not just unused
    assert live_session_objects(p.a) == len(p.a.peers()[0].sessions())
    assert p.a.table.index_count() == len(p.a.peers()[0].sessions())


# ------------------------------------------------------------------------------------ expiry
def test_session_expiry_without_traffic() -> None:
    p = connected("expiry")
    a_session = p.a.peers()[0].current
    created = a_session.created_at
    p.b.send(p.a.node_id, "chat", b"late", p.now)
    [late] = take(p.b, PacketType.TRANSPORT)  # captured, not delivered
    p.drop = lambda m, d: True  # the two lose touch: no rekey can complete
    p.advance(created + CFG.reject_after_time - 1)
    assert p.a.peers()[0].current is a_session  # still there, 179 s old
    # no path answers: shown disconnected long before the session expires (issue 10), once
    lost = [e.reason for e in p.of(p.a, ev.PeerDisconnected)]
    assert len(lost) == 1 and lost[0].startswith("no path answers"), lost
    # a packet under it arrives after its 180 s are up, before the timer ran: not used
    p.now = created + CFG.reject_after_time
    p.a.receive_datagram(late, B_ADDR, None, p.now)
    assert p.a.counters["drop.session_expired"] == 1
    assert p.a.counters["drop.replayed"] == p.a.counters["drop.decrypt_failed"] == 0
    assert p.a.peers()[0].sendable_session(p.now) is None  # nor used to send
    p.a.handle_timer(p.now)
    assert [e.reason for e in p.of(p.a, ev.PeerDisconnected)] == lost  # already shown: not again at expiry
    p.a.send(p.b.node_id, "chat", b"new", p.now)
    assert [d[0] for d in take(p.a)] == [PacketType.HANDSHAKE_INIT]  # a new handshake, not the old keys
    p.drop = lambda m, d: False
    p.a.send(p.b.node_id, "chat", b"new2", p.now)
    p.advance(p.now + 10)
    assert received(p, p.b)[-2:] == [b"new", b"new2"]


# ------------------------------------------------------------------------------------ requests and ping
def test_request_response_correlation() -> None:
    p = connected("rpc")
    ids = [p.a.request(p.b.node_id, "rpc", b"q%d" % i, p.now) for i in range(3)]
    assert len(set(ids)) == 3
    p.advance(p.now + 0.5)
    reqs = p.of(p.b, ev.RequestReceived)
    assert [(r.channel, r.data) for r in reqs] == [("rpc", b"q0"), ("rpc", b"q1"), ("rpc", b"q2")]
    for r in reversed(reqs):  # answered out of order
        p.b.respond(p.a.node_id, r.request_id, b"answer to " + r.data, p.now, ok=r.data != b"q1")
    p.advance(p.now + 0.5)
    got = {e.request_id: (e.ok, e.data) for e in p.of(p.a, ev.ResponseReceived)}
    assert got == {ids[0]: (True, b"answer to q0"), ids[1]: (False, b"answer to q1"), ids[2]: (True, b"answer to q2")}
    # an answer to a request that is no longer pending is counted, not delivered
    p.b.respond(p.a.node_id, reqs[0].request_id, b"again", p.now)
    p.advance(p.now + 12)
    assert len(p.of(p.a, ev.ResponseReceived)) == 3
    assert p.a.counters["rx.unmatched_responses"] == 1
    assert not p.of(p.a, ev.RequestTimedOut)


def test_request_to_a_silent_peer_times_out_exactly() -> None:
    p = connected("rpc-timeout")
    t = p.now
    cid = p.a.request(p.b.node_id, "rpc", b"anyone?", p.now, timeout=3.0)
    fired = None
    while fired is None and p.now < t + 10:
        fire_next(p)
        if any(e.request_id == cid for e in p.of(p.a, ev.RequestTimedOut)):
            fired = p.now
    assert p.of(p.b, ev.RequestReceived)  # it arrived; B just never answers
    assert fired == t + 3.0
    assert len(p.of(p.a, ev.RequestTimedOut)) == 1


def test_ping_reports_rtt() -> None:
    p = connected("ping")
    t = p.now
    pid = p.a.ping(p.b.node_id, t)
    [ping] = take(p.a)
    p.b.receive_datagram(ping, A_ADDR, None, t + 0.1)  # 100 ms there
    [pong] = take(p.b)
    p.a.receive_datagram(pong, B_ADDR, None, t + 0.25)  # 150 ms back
    p.now = t + 0.25
    p.run()
    [e] = p.of(p.a, ev.PongReceived)
    assert e.probe_id == pid and e.peer == p.b.node_id and e.endpoint == B_ADDR
    assert e.rtt == pytest.approx(0.25)
    p.a.receive_datagram(pong, B_ADDR, None, t + 0.3)  # replayed pong: dropped, no second event
    p.run()
    assert len(p.of(p.a, ev.PongReceived)) == 1


def test_ping_without_a_session_is_a_usage_error() -> None:
    p = Pair("ping-early")
    net = p.a.create_network("test", p.now)
    p.a.add_peer(net.id, p.b.node_id, [B_ADDR], p.now)
    with pytest.raises(UsageError, match="no session"):
        p.a.ping(p.b.node_id, p.now)


# ------------------------------------------------------------------------------------ leaving
def test_leave_tells_the_peer() -> None:
    p = connected("leave")
    p.a.leave(p.net.id, p.now)
    p.run()
    [gone] = p.of(p.b, ev.PeerDisconnected)
    assert gone.peer == p.a.node_id and gone.reason == "left the network"  # its signed departure record
    assert p.of(p.a, ev.NetworkLeft) and p.a.peers() == []
    assert p.b.peers() == [] and p.b.table.index_count() == 0  # dropped from the list at once
    p.advance(p.now + 120)  # B does not try to reconnect to a peer that said goodbye
    assert len(p.of(p.b, ev.PeerConnected)) == 1
    assert p.b.counters["handshake.initiations_sent"] == 1
    assert p.a.audit.violations == [] and p.b.audit.violations == []
