"""Issue 12, fault 5: the handshake rate limits could be bypassed.

Seen on a running daemon: with 200 source addresses, ~1,750 Diffie-Hellman per second passed the per-source
limiter, and the first 200 initiations of every one-second window skipped both the cookie check and the
limiter. Now "under load" is measured over a sliding second and held for a second after it was last true,
a global DH budget bounds the work however many sources a flood has, and a reserve lets peers we talk to
rekey through the flood.

The responder is a real Mesh core on a virtual clock (``helpers.Pair``); the flood is initiations with a
valid mac1 (the attacker holds the network key, as every invite does) from 200 addresses. An attacker with
real addresses always gets its cookie back in one round trip; here it takes it from the responder's jar
instead of routing the cookie reply.
"""

from __future__ import annotations

import random

from helpers import A_ADDR, B_ADDR, Pair
from omerta_mesh.core import events as ev
from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.wire import handshake as hw
from omerta_mesh.core.wire.packet import PacketType

SOURCES = [(f"203.0.113.{i % 250 + 1}", 40000 + i) for i in range(200)]


class Flood:
    def __init__(self, p: Pair, answer_cookies: bool, seed: int = 5) -> None:
        self.p = p
        self.answer_cookies = answer_cookies
        self.rng = random.Random(seed)
        self.n = 0
        net = next(iter(p.a.networks.values()))
        self.mac1_key = net.mac1_key(p.a.identity.public)

    def send(self, count: int) -> None:
        a, now = self.p.a, self.p.now
        for _ in range(count):
            src = SOURCES[self.n % len(SOURCES)]
            self.n += 1
            cookie = a.hs.cookies.cookie(src, now) if self.answer_cookies and a.hs.cookies.under_load(now) else None
            init, _ = hw.encode_init(self.rng.getrandbits(32), self.rng.randbytes(hw.NOISE_MSG1_LEN), self.mac1_key, cookie)
            a.receive_datagram(init, src, None, now)


def flood_for(p: Pair, flood: Flood, seconds: float, per_ms: int, every_100ms=None) -> None:
    for tick in range(int(seconds * 1000)):
        p.now += 0.001
        flood.send(per_ms)
        if tick % 100 == 0:
            if every_100ms is not None:
                every_100ms(tick)
            p.advance(p.now)


def test_no_window_lets_initiations_without_a_cookie_through() -> None:
    """1,000 initiations a second for 3 s, none answering its cookie: only the ones before the load was seen
    cost a DH (the old fixed window let the first 200 of every second through: ~600)."""
    cfg = CoreConfig()
    p = Pair("flood-window", config=cfg)
    p.connect()
    flood_for(p, Flood(p, answer_cookies=False), 3.0, 1)
    dh = p.a.counters["handshake.dh_performed"]
    assert dh <= cfg.handshakes_per_second_under_load + 1, dh
    assert p.a.counters["drop.cookie_required"] >= 3000 - dh


def test_a_global_dh_budget_bounds_a_flood_from_many_sources() -> None:
    """3,000 cookie-answering initiations a second from 200 addresses (15 a second each, under the
    per-source limit): the DHs spent stay within the global budget (the old code spent one on each: 9,000)."""
    cfg = CoreConfig()
    p = Pair("flood-budget", config=cfg)
    p.connect()
    flood_for(p, Flood(p, answer_cookies=True), 3.0, 3)
    dh = p.a.counters["handshake.dh_performed"]
    bound = cfg.handshakes_per_second_under_load + cfg.handshake_dh_burst + 3.0 * cfg.handshake_dh_per_second
    assert dh <= bound, (dh, bound)
    assert p.a.counters["drop.dh_budget"] > 3000
    assert p.a.hs.cookies.under_load(p.now)


def test_a_peer_we_talk_to_rekeys_and_keeps_talking_through_the_flood() -> None:
    """While the flood spends the whole budget, B (with a session and traffic) rekeys every second through
    the reserve, at once, and every message it sends arrives."""
    cfg = CoreConfig().with_(rekey_after_time=1.0)
    p = Pair("flood-rekey", config=cfg)
    p.connect()
    a_peer = p.a.find_peer(p.b.node_id)
    assert a_peer is not None
    before = a_peer.stats.handshakes
    sent: list[bytes] = []

    def talk(tick: int) -> None:
        msg = b"m%d" % tick
        sent.append(msg)
        p.b.send(p.a.node_id, "chat", msg, p.now)

    flood_for(p, Flood(p, answer_cookies=True), 3.5, 3, talk)
    p.advance(p.now + 0.5)
    assert p.a.counters["drop.dh_budget"] > 1000  # the flood did take the whole budget
    assert a_peer.stats.handshakes - before >= 3  # a rekey at 1 s, 2 s and 3 s
    assert not p.of(p.b, ev.HandshakeFailed) and not p.of(p.b, ev.PeerDisconnected)
    got = [e.data for e in p.of(p.a, ev.ChannelMessage)]
    assert got == sent


def test_an_unproven_initiator_gets_no_records_until_it_speaks() -> None:
    """A completed handshake from an identity we did not add gets only the handshake response: our gossip
    sync (records, KB) waits for its first transport frame, so a spoofed source cannot make us reflect records
    at a victim. The newcomer still learns the network at once: its own sync is answered."""
    p = Pair("flood-greet")
    net = p.a.create_network("test", p.now)
    invite = p.a.invite(net.id, [A_ADDR])
    p.b.join(invite, p.now)
    init = [d for _, _, d in p.b.datagrams_to_send()]
    assert init and init[0][0] == PacketType.HANDSHAKE_INIT
    p.a.receive_datagram(init[0], B_ADDR, None, p.now)
    a_out = [d for _, _, d in p.a.datagrams_to_send()]
    assert a_out[0][0] == PacketType.HANDSHAKE_RESP
    assert p.a.counters["gossip.sync_sent"] == 0  # nothing of our records yet
    for d in a_out:  # B gets the response; it greets A, which answers
        p.b.receive_datagram(d, A_ADDR, None, p.now)
    p.run()
    assert p.a.counters["gossip.sync_sent"] >= 1 or p.a.counters["gossip.records_accepted"] >= 1
    assert p.of(p.b, ev.PeerConnected) and p.b.find_peer(p.a.node_id) is not None
