"""Path MTU on relay paths, on the simulated Internet (core/peers/pmtu.py): padded PINGs travel through the
relay and PONGs come back through it, so a relay whose own link is narrow gives the relayed pair a smaller MTU,
which ``ip_mtu`` (the device's ICMP too-big and MSS clamp) then uses. The probes go one at a time and rarely,
well inside the relay's per-client quota."""

from __future__ import annotations

import pytest

from omerta_mesh.core import ipseg
from omerta_mesh.core.peers.paths import ViaRelay
from omerta_mesh.core.peers.pmtu import PROBE_HEAD, RECHECK, RELAY_OVERHEAD, RELAY_SIZES, SIZES, WAIT
from omerta_mesh.core.views import find_peer_view, ip_mtu
from omerta_mesh.core.wire.packet import TRANSPORT_OVERHEAD
from omerta_mesh.sim.harness import SimMesh, SimNode
from omerta_mesh.sim.network import LinkSpec


def relayed_pair(mtu: int | None) -> tuple[SimMesh, SimNode, SimNode, SimNode, object, list[tuple[float, int]]]:
    """A and B behind random symmetric NATs (they meet only through the relay); B's NAT's uplink, the
    relay's link to B, carries datagrams of at most ``mtu`` bytes. Also returns A's padded probes on relay
    paths: (when, end-to-end datagram size)."""
    sm = SimMesh(seed=3)
    relay = sm.add_node("relay", relay=True)
    helper = sm.add_node("helper")
    a = sm.add_node("a", nat=sm.add_nat("nat-a", "symmetric-random"))
    b = sm.add_node("b", nat=sm.add_nat("nat-b", "symmetric-random", link=LinkSpec(mtu=mtu)))
    padded: list[tuple[float, int]] = []
    probe = a.mesh.links.probe

    def spy(peer, addr, now, out, user=False, local=None, pad=0):  # type: ignore[no-untyped-def]
        if pad and isinstance(addr, ViaRelay):
            padded.append((now, pad + TRANSPORT_OVERHEAD + PROBE_HEAD))
        return probe(peer, addr, now, out, user, local, pad)

    a.mesh.links.probe = spy  # type: ignore[method-assign]
    net = relay.mesh.create_network("lab", sm.now)
    for n in (helper, a, b):
        sm.join(n, relay, net)
    sm.run_for(8)
    sm.send(a, b, "hello", b"x")  # a session between a and b, through the relay (gossip may have made it already)
    sm.run_for(5)
    return sm, relay, a, b, net, padded


@pytest.mark.parametrize(("mtu", "want"), [(None, RELAY_SIZES[0]), (1400 - 28, RELAY_SIZES[3])])
def test_a_relay_path_is_probed_end_to_end_and_ip_mtu_answers(mtu: int | None, want: int) -> None:
    sm, relay, a, b, net, padded = relayed_pair(mtu)
    assert sm.path_kind(a, b, net) == "relay", sm.failure()
    sm.run_for(240)  # idle: a heartbeat every 25 s
    peer = a.mesh.table.get(net.id, b.mesh.node_id)
    assert peer is not None and isinstance(peer.endpoint, ViaRelay)
    assert a.mesh.links.path_mtu(peer) == want, sm.failure()
    # the largest IP packet one fragment carries end to end: what the device answers too-big with and clamps to
    assert ip_mtu(a.mesh, net.id, b.mesh.node_id) == want - TRANSPORT_OVERHEAD - ipseg.OVERHEAD
    view = find_peer_view(a.mesh, b.mesh.node_id, sm.now, net.id)
    assert view is not None and [p.mtu for p in view.paths if p.current] == [want]
    # the search: the probed sizes largest first, twice each size found too large, one probe at a time (WAIT
    # apart at least: a relay forwards within a quota), and nothing more until RECHECK
    expect = [s for s in RELAY_SIZES[: RELAY_SIZES.index(want)] for _ in (1, 2)] + [want]
    assert [size for _, size in padded] == expect, [(round(t, 1), size) for t, size in padded]
    assert all(t2 - t1 >= WAIT for (t1, _), (t2, _) in zip(padded, padded[1:]))
    # ... and no slower: the next size goes once the last is judged, not at the next (idle: 25 s) heartbeat
    assert padded[-1][0] - padded[0][0] <= (WAIT + 0.1) * (len(padded) - 1)
    assert sm.now - padded[0][0] < RECHECK
    # on the wire, each relayed leg adds RELAY_OVERHEAD: the largest probe fills a 1,472-byte datagram
    assert RELAY_SIZES[0] + RELAY_OVERHEAD == SIZES[0]
    if mtu is not None:
        assert sm.internet.stats.dropped["too_big"] >= 2 * 3  # the relay's link to B did drop the larger ones
    assert relay.mesh.counters["drop.relay_quota"] == 0
