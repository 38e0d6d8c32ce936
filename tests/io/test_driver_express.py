"""The driver's express lane on real UDP sockets (io/driver.py, core/express.py): one packet goes out at once and
arrives at the other node's virtual-network writer (``ip_one``); a node with the encryption audit
on sends nothing by the lane, so that the audit sees every datagram."""

from __future__ import annotations

from helpers import eventually
from omerta_mesh.core.ipseg import VNET
from omerta_mesh.node import MeshNode

PING = VNET.pack(0, 0, 0, 0, 0, 0) + bytes([0x45]) + bytes(83)


async def test_one_packet_crosses_by_the_lane_and_an_audited_node_never_uses_it() -> None:
    async with MeshNode(host="127.0.0.1") as fast, MeshNode(host="127.0.0.1", strict_audit=True) as audited:
        net = fast.create_network("lane")
        await audited.join(fast.invite(net.id), timeout=5)
        await fast.wait_connected(audited.node_id, 5)
        got: dict[str, list] = {"fast": [], "audited": []}
        for name, n in (("fast", fast), ("audited", audited)):
            n.core.ip.open(net.id)
            n.driver.ip_sink = lambda packets, name=name: got[name].extend(p[2] for p in packets)
            n.driver.ip_one = lambda net_, node, frame, name=name: got[name].append(frame)
        for sender, receiver, name in ((fast, audited, "audited"), (audited, fast, "fast")):
            now = sender.driver.now()
            assert sender.core.send_ip(net.id, receiver.node_id, PING, now, True)  # the first: the general way
            sender.driver.flush()
            await eventually(lambda name=name: len(got[name]) == 1, 5, "the first packet")
        lane = fast.driver.lane(net.id, audited.node_id, fast.driver.now())
        fast.driver.udp.sendto(lane.seal(PING, fast.driver.now()), lane.ep, lane.local)  # as the device reader does
        await eventually(lambda: len(got["audited"]) == 2, 5, "the express packet")
        assert audited.driver.lane(net.id, fast.node_id, audited.driver.now()) is None  # audited: never a lane
        assert audited.core.audit.violations == [] and audited.core.counters["ip.tx_express"] == 0
        assert fast.core.counters["ip.tx_express"] == 1 and got["audited"] == [PING, PING]
        # the audited node opens by the lane what it receives (the audit is about what leaves): both packets, the first
        # one too (a single packet from the general path is the same datagram)
        assert audited.core.counters["ip.rx_express"] == 2
