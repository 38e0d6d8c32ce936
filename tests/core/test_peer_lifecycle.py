"""The peer lifecycle (core/peers/peer.py, PeerState): one transition function, Peer.move, that refuses the
moves the lifecycle does not have; and the states a peer really goes through in the simulator."""

from __future__ import annotations

import pytest

from omerta_mesh.core.channels import ReassemblyBudget
from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.ids import NodeId
from omerta_mesh.core.network import Network
from omerta_mesh.core.peers.peer import LEGAL, Peer, PeerState

S = PeerState


def peer(state: PeerState = S.NEW) -> Peer:
    net = Network.create(SeededEntropy("lifecycle"), "n")
    p = Peer(net, NodeId(bytes(32)), bytes(32), DEFAULT_CONFIG, ReassemblyBudget(1 << 20, 1 << 22))
    p.state = state
    return p


@pytest.mark.parametrize("frm,to", [(a, b) for a in S for b in S])
def test_move_allows_exactly_the_written_down_transitions(frm: PeerState, to: PeerState) -> None:
    p = peer(frm)
    if to in LEGAL[frm]:
        assert p.move(to, 5.0) is frm
        assert p.state is to
        assert p.connected is (to is S.CONNECTED)
        assert (p.unreachable_since == 5.0) is (to is S.UNREACHABLE)
    else:
        with pytest.raises(UsageError, match=f"from {frm.value} to {to.value}"):
            p.move(to, 5.0)
        assert p.state is frm


def test_illegal_moves_raise() -> None:
    for frm, to in [(S.NEW, S.UNREACHABLE), (S.REMOVED, S.CONNECTED), (S.HANDSHAKING, S.UNREACHABLE),
                    (S.CONNECTED, S.HANDSHAKING), (S.CONNECTED, S.CONNECTED)]:
        with pytest.raises(UsageError, match="cannot go from"):
            peer(frm).move(to, 0.0)


def test_every_state_is_reachable_from_new_and_removed_is_final() -> None:
    seen, todo = {S.NEW}, [S.NEW]
    while todo:
        for nxt in LEGAL[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(S)
    assert not LEGAL[S.REMOVED]


def test_a_pair_in_the_simulator_connects_and_a_departed_peer_is_removed() -> None:
    from sim.test_connectivity import first_message, lab

    sm, _relay, a, b, net = lab("full-cone", "full-cone", seed=1)
    assert first_message(sm, a, b) is not None
    pa = a.mesh.table.get(net.id, b.mesh.node_id)
    assert pa is not None and pa.state is S.CONNECTED
    b.mesh.leave(net.id, sm.now)
    sm.run_for(3)
    assert a.mesh.table.get(net.id, b.mesh.node_id) is None
    assert pa.state is S.REMOVED
