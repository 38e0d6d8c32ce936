"""The receive fast path for UDP GRO runs of IPSEG fragments (core/segruns.py): the same outcome as the
general path, datagram for datagram: whole super-segments delivered, replayed and forged fragments dropped and
counted, any other frame in a run handled as it would be alone, and runs it may not take left to the general
path (a new path, another session)."""

from __future__ import annotations

import pytest

from helpers import A_ADDR, B_ADDR, Pair
from omerta_mesh.core import events as ev
from vnetframes import tcp_superseg


def _pair(seed: str) -> Pair:
    p = Pair(seed)
    p.connect()
    p.a.ip.open(p.net.id)
    p.run()
    return p


def _fragments(p: Pair, payload_len: int = 1336 * 20, seq: int = 1000) -> tuple[bytes, list[bytes]]:
    """A TCP super-segment B seals for A: the frame and its datagrams (one GSO run)."""
    seg = tcp_superseg(bytes(range(256)) * (payload_len // 256) + bytes(payload_len % 256), seq=seq)
    assert p.b.send_ip(p.net.id, p.a.node_id, seg, p.now, True)
    out = [d for dst, _, d in p.b.datagrams_to_send() if dst == A_ADDR]
    assert len(out) > 10
    return seg, out


def _fast_taken(p: Pair) -> list[int]:
    """Spy on how many datagrams of each run the fast path took."""
    taken: list[int] = []
    take = p.a.seg_runs.take

    def spy(*args: object) -> int:
        taken.append(take(*args))  # type: ignore[arg-type]
        return taken[-1]

    p.a.seg_runs.take = spy  # type: ignore[method-assign]
    return taken


def test_a_run_of_fragments_is_one_super_segment_through_the_fast_path() -> None:
    p = _pair("segrun-whole")
    taken = _fast_taken(p)
    peer = p.a.find_peer(p.b.node_id, p.net.id)
    before = (peer.stats.packets_in, peer.stats.bytes_in)
    seg, run = _fragments(p)
    p.a.receive_datagrams(run, B_ADDR, None, p.now)
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, seg)]
    assert taken == [len(run)]
    assert (peer.stats.packets_in - before[0], peer.stats.bytes_in - before[1]) == (len(run), sum(map(len, run)))
    assert p.a.counters["rx.datagrams"] >= len(run)


def test_replayed_and_forged_fragments_in_a_run_are_dropped_and_counted_the_rest_delivered() -> None:
    p = _pair("segrun-bad")
    seg, run = _fragments(p)
    forged = bytearray(run[5])
    forged[-1] ^= 1
    p.a.receive_datagrams(run[:3], B_ADDR, None, p.now)  # the first three, then again with the rest
    taken = _fast_taken(p)
    p.a.receive_datagrams(run[:3] + [bytes(forged)] + run[3:], B_ADDR, None, p.now)
    assert taken == [len(run) + 1]  # all of them through the fast path, which drops what the general one would
    assert p.a.counters["drop.replayed"] == 3 and p.a.counters["drop.decrypt_failed"] == 1
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, seg)]


def test_another_frame_inside_a_run_is_handled_as_if_alone_and_the_rest_still_arrives() -> None:
    p = _pair("segrun-mixed")
    seg, run = _fragments(p)
    p.b.send(p.a.node_id, "chat", b"between the fragments", p.now, p.net.id)
    [msg] = [d for dst, _, d in p.b.datagrams_to_send() if dst == A_ADDR]
    taken = _fast_taken(p)
    p.a.receive_datagrams(run[:4] + [msg] + run[4:], B_ADDR, None, p.now)
    # all opened at once: four fragments to the reassembly, the message frame and the fragments after it through the
    # general path's handling after decryption, in order
    assert taken == [len(run) + 1]
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, seg)]
    p.run()
    got = [e for e in p.events[id(p.a)] if isinstance(e, ev.ChannelMessage)]
    assert [(e.channel, e.data) for e in got] == [("chat", b"between the fragments")]


def test_a_malformed_frame_inside_a_run_is_a_counted_drop_as_alone_not_an_internal_error() -> None:
    p = _pair("segrun-badframe")
    seg, run = _fragments(p)
    bad = p.b.find_peer(p.a.node_id, p.net.id).current.encrypt(b"\x02", p.now)  # DATA, shorter than its header
    taken = _fast_taken(p)
    p.a.receive_datagrams(run[:3] + [bad] + run[3:], B_ADDR, None, p.now)
    assert taken == [len(run) + 1]
    assert p.a.counters["drop.bad_frame"] == 1 and p.a.counters["drop.internal_error"] == 0
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, seg)]


@pytest.mark.parametrize("why", ["new path", "unknown receiver"])
def test_runs_the_fast_path_may_not_take_go_the_general_way(why: str) -> None:
    p = _pair("segrun-" + why.replace(" ", "-"))
    seg, run = _fragments(p)
    taken = _fast_taken(p)
    if why == "new path":  # B roamed: the general path must see it to move the peer's endpoint
        src = ("192.0.2.99", 7000)
        p.a.receive_datagrams(run, src, None, p.now)
        assert taken == [0]
        assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, seg)]
        assert src in p.a.find_peer(p.b.node_id, p.net.id).paths  # heard: a path the general path now knows
    else:
        junk = bytearray(run[0])
        junk[4:8] = b"\xff\xff\xff\xff"  # a receiver index we never gave out
        p.a.receive_datagrams([bytes(junk)] + run[1:], B_ADDR, None, p.now)
        assert taken == [0] and p.a.counters["drop.unknown_receiver"] == 1


def test_a_malformed_header_ends_the_fast_path_and_is_dropped_by_the_general_one() -> None:
    p = _pair("segrun-short")
    seg, run = _fragments(p)
    taken = _fast_taken(p)
    p.a.receive_datagrams(run[:2] + [b"\x04\x01"] + run[2:], B_ADDR, None, p.now)
    assert taken == [2] and p.a.counters["drop.truncated"] == 1
    assert p.a.ip_packets_to_write() == [(p.net.id, p.b.node_id, seg)]
