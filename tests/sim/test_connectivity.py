"""Connectivity on the simulated Internet: the NAT matrix, relays, failover, roaming, gossip discovery."""

from __future__ import annotations

import pytest

from nat_design import KINDS, design
from omerta_mesh.core import events as ev
from omerta_mesh.core.config import DEFAULT_CONFIG, CoreConfig
from omerta_mesh.core.errors import DropReason
from omerta_mesh.sim.harness import SimMesh, SimNode
from omerta_mesh.sim.network import LinkSpec


def lab(ka: str, kb: str, seed: int = 1, config: CoreConfig = DEFAULT_CONFIG) -> tuple[SimMesh, SimNode, SimNode, SimNode, object]:
    """A relay and a second public member (two observers for NAT classification), A and B behind NATs."""
    sm = SimMesh(seed=seed, config=config)
    relay = sm.add_node("relay", relay=True)
    helper = sm.add_node("helper")

    def mk(name: str, kind: str) -> SimNode:
        nat = None if kind == "public" else sm.add_nat("nat-" + name, kind)
        return sm.add_node(name, nat=nat, link=LinkSpec(latency=0.01))

    a, b = mk("a", ka), mk("b", kb)
    net = relay.mesh.create_network("lab", sm.now)
    for n in (helper, a, b):
        sm.join(n, relay, net)
    sm.run_for(8)  # gossip spreads the records; peers report the mappings they see
    return sm, relay, a, b, net


def first_message(sm: SimMesh, a: SimNode, b: SimNode, limit: float = 10.0) -> float | None:
    t0 = sm.now
    sm.send(a, b, "hello", b"first")
    while sm.now - t0 < limit:
        sm.run_for(0.05)
        if any(m.data == b"first" for m in b.of(ev.ChannelMessage)):
            return sm.now - t0
    return None


def test_nat_matrix_direct_wherever_possible_relayed_otherwise(capsys) -> None:
    rows, wrong = [], []
    for ka in KINDS:
        for kb in KINDS:
            sm, relay, a, b, net = lab(ka, kb)
            t = first_message(sm, a, b)
            sm.run_for(12)  # punching and upgrade attempts
            sm.send(b, a, "hello", b"back")
            sm.run_for(2)
            back = any(m.data == b"back" for m in a.of(ev.ChannelMessage))
            kinds = (sm.path_kind(a, b, net), sm.path_kind(b, a, net))
            got = "relay" if "relay" in kinds else "direct"
            rows.append(f"{ka:21} {kb:21} {design(ka, kb):7} {kinds[0]:8} {kinds[1]:8} {'-' if t is None else f'{t:.2f}s'}")
            if t is None or t > 5.0 or not back or got != design(ka, kb) or kinds[0] == "none" or kinds[1] == "none":
                wrong.append(rows[-1])
            assert relay.mesh.counters["drop.internal_error"] == 0
    with capsys.disabled():
        print("\n" + f"{'A':21} {'B':21} {'design':7} {'A->B':8} {'B->A':8} first message")
        print("\n".join(rows))
    assert wrong == [], "pairs not as designed:\n" + "\n".join(wrong)


def test_relay_sees_only_ids_and_sizes_and_the_relayed_pair_keeps_its_session() -> None:
    sm, relay, a, b, net = lab("symmetric-random", "symmetric-random")
    assert first_message(sm, a, b) is not None
    assert sm.path_kind(a, b, net) == "relay"
    assert relay.mesh.counters["relay.forwarded"] > 0
    # the relay has no session keys for the a<->b session: it holds sessions with a and b only
    assert {p.node for p in relay.mesh.peers()} >= {a.mesh.node_id, b.mesh.node_id}
    assert relay.mesh.table.get(net.id, a.mesh.node_id).stats.bytes_in > 0
    # an a->b datagram opens under none of the relay's sessions: the relay cannot read what it forwards
    session = a.mesh.table.get(net.id, b.mesh.node_id).current
    datagram = session.encrypt(b"\x00", sm.now)
    counter = int.from_bytes(datagram[8:16], "little")
    relay_sessions = [s for p in relay.mesh.peers() for s in p.sessions()]
    assert relay_sessions and all(isinstance(s.decrypt(datagram, counter, sm.now), DropReason) for s in relay_sessions)


def test_failover_to_relay_within_five_seconds_and_back_to_direct() -> None:
    sm, relay, a, b, net = lab("full-cone", "full-cone")
    assert first_message(sm, a, b) is not None
    sm.run_for(5)
    assert sm.path_kind(a, b, net) in ("direct", "punched")
    end = sm.now + 2  # a steady stream from a to b, flowing before the cut
    while sm.now < end:
        sm.send(a, b, "stream", b"tick")
        sm.run_for(0.1)
    assert any(m.data == b"tick" for m in b.of(ev.ChannelMessage))
    cut_at = sm.now
    sm.internet.block(a.nat.ip, b.nat.ip)
    switched = None
    while sm.now - cut_at < 8:
        sm.send(a, b, "stream", b"tick")
        sm.run_for(0.1)
        if switched is None and sm.path_kind(a, b, net) == "relay":
            switched = sm.now - cut_at
    assert switched is not None and switched <= 5.0, f"failover took {switched}\n{sm.failure(60)}"
    n_before = len(b.of(ev.ChannelMessage))
    sm.send(a, b, "stream", b"during")
    sm.run_for(1)
    assert any(m.data == b"during" for m in b.of(ev.ChannelMessage)[n_before:])
    sm.internet.unblock(a.nat.ip, b.nat.ip)
    back = None
    t0 = sm.now
    while sm.now - t0 < 30:
        sm.send(a, b, "stream", b"tick")
        sm.run_for(0.25)
        if sm.path_kind(a, b, net) != "relay":
            back = sm.now - t0
            break
    assert back is not None, "never went back to direct after the block was lifted"
    assert not a.of(ev.MessageFailed)


def test_roaming_keeps_the_session_and_messages_resume_within_two_seconds() -> None:
    sm, relay, a, b, net = lab("public", "port-restricted")
    assert first_message(sm, a, b) is not None
    sm.run_for(3)
    peer_b = a.mesh.table.get(net.id, b.mesh.node_id)
    old_ep = peer_b.endpoint
    handshakes = peer_b.stats.handshakes
    new_ip = b.host.set_address(behind=None)  # b leaves its NAT: a new public address, a new port mapping
    t0 = sm.now
    resumed = None
    i = 0
    while sm.now - t0 < 6:
        i += 1
        sm.send(a, b, "roam", b"x%d" % i)
        sm.send(b, a, "roam", b"y%d" % i)
        sm.run_for(0.1)
        if resumed is None and any(m.data == b"x%d" % i for m in b.of(ev.ChannelMessage)):
            resumed = sm.now - t0
    assert resumed is not None and resumed <= 2.0, f"resumed after {resumed}\n{sm.failure(60)}"
    assert peer_b.endpoint != old_ep and peer_b.endpoint[0] == new_ip
    assert peer_b.stats.handshakes == handshakes  # the session survived the move: no new handshake
    assert not a.of(ev.MessageFailed) and not b.of(ev.MessageFailed)


def test_gossip_spreads_every_record_from_a_chain_of_invites() -> None:
    sm = SimMesh(seed=4)
    first = sm.add_node("n0", relay=True)
    net = first.mesh.create_network("big", sm.now)
    nodes = [first]
    for i in range(1, 40):
        n = sm.add_node(f"n{i}")
        inviter = nodes[(i * 7919) % len(nodes)]  # each joins through an earlier member
        sm.join(n, inviter, net)
        nodes.append(n)
    sm.run_for(1)
    rounds = 0
    while rounds < 30 and not all(len(n.mesh.records(net.id)) == 40 for n in nodes):
        sm.run_for(first.mesh.cfg.gossip_interval)
        rounds += 1
    assert all(len(n.mesh.records(net.id)) == 40 for n in nodes), f"after {rounds} rounds"
    assert rounds <= 15
    # any member can now reach any other by node id alone (a session is opened on demand)
    x, y = nodes[5], nodes[33]
    assert x.mesh.record_of(net.id, y.mesh.node_id) is not None  # known by its signed record
    sm.send(x, y, "hello", b"found you by gossip")
    sm.run_for(2)
    assert any(m.data == b"found you by gossip" for m in y.of(ev.ChannelMessage))


@pytest.mark.slow
def test_four_hundred_nodes_converge_within_bounded_rounds_and_bytes() -> None:
    """The scale target's bounds (under 30 rounds, the busiest node under 1 MiB a round, the average under 48 KiB)
    on 400 nodes: 27 s quiet (7 rounds). The 1,000-node figure itself is bench/gossip_convergence.py's (167 s at
    load 2.6 and up to 457 s on a busy machine, a third of the suite's time: issue 14's 20 minutes)."""
    from omerta_mesh.sim.gossip_bench import converge

    r = converge(400, seed=1)
    assert r.converged, r
    assert r.rounds < 30, r
    # bounded: the busiest node (the first member, whom hundreds of newcomers join at once) stays under
    # 1 MiB per round; the average node sends a few tens of KiB
    assert r.max_bytes_per_node_round <= 1 << 20, r
    assert r.mean_bytes_per_node_round <= 48 * 1024, r


def test_relay_enforces_its_per_client_byte_quota() -> None:
    sm, relay, a, b, net = lab("symmetric-random", "symmetric-random", seed=9, config=CoreConfig(relay_rate=20_000.0, relay_burst=40_000.0))
    assert first_message(sm, a, b) is not None
    for _ in range(5):
        sm.send(a, b, "bulk", bytes(100_000))
    sm.run_for(3)
    assert relay.mesh.counters["drop.relay_quota"] > 0
    # the quota slows the pair down but does not break it: everything arrives in the end
    sm.run_for(60)
    assert len([m for m in b.of(ev.ChannelMessage) if m.channel == "bulk"]) == 5
