"""The host's receivers decide what is acknowledged (core/channels.py ``Receivers``): two Mesh cores on a Pair.

A message the receiver refuses fails at the sender with the receiver's reason and is counted at both ends; one it
holds back (no room) stays unacknowledged, is never dropped, and goes in once there is room; what was sent after
it arrives once, in order. The acknowledgement never runs ahead of ``deliver``.
"""

from __future__ import annotations

from helpers import Pair
from omerta_mesh.core import events as ev
from omerta_mesh.core.channels import Admit, Refuse
from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.ids import NetworkId, NodeId
from omerta_mesh.core.session.reliable import ReliableStream
from omerta_mesh.core.wire import frames as fw


class Box:
    """A host's receivers: channels it receives, each with room for ``room`` messages."""

    def __init__(self, channels: dict[str, int]) -> None:
        self.room = dict(channels)
        self.got: list[tuple[str, bytes]] = []
        self.asked = 0

    def admit(self, network: NetworkId, peer: NodeId, channel: str, size: int) -> Admit | Refuse:
        self.asked += 1
        if channel not in self.room:
            return Refuse(fw.RefuseCode.NO_RECEIVER, f"no receiver on channel {channel!r} at bravo")
        return Admit.ACCEPT if self.room[channel] > 0 else Admit.HOLD

    def deliver(self, m: ev.ChannelMessage) -> None:
        self.room[m.channel] -= 1
        self.got.append((m.channel, m.data))


def pair(box: Box, seed: str) -> Pair:
    p = Pair(seed)
    p.connect()
    p.b.messages.receivers = box
    return p


def test_a_refused_message_fails_at_the_sender_with_the_reason_and_the_rest_arrives_once_in_order() -> None:
    box = Box({"chat": 1000})
    p = pair(box, "refuse")
    ids = {}
    for i in range(6):  # all in flight at once: the refused one in the middle
        ch = "nobody" if i == 2 else "chat"
        ids[p.a.send(p.b.node_id, ch, b"m%d" % i, p.now)] = i
    p.advance(p.now + 2)
    failed = p.of(p.a, ev.MessageFailed)
    assert [(ids[f.message_id], f.reason) for f in failed] == [(2, "no receiver on channel 'nobody' at bravo")]
    assert sorted(ids[d.message_id] for d in p.of(p.a, ev.MessageDelivered)) == [0, 1, 3, 4, 5]
    assert box.got == [("chat", b"m%d" % i) for i in (0, 1, 3, 4, 5)]  # once each, in order
    assert p.b.counters["rx.refused.no_receiver"] == 1 and p.a.counters["tx.refused"] == 1
    assert not p.of(p.b, ev.ChannelMessage)  # taken by the receivers, not reported as events
    # the stream goes on: the refused message's frames never come back, later ones arrive
    mid = p.a.send(p.b.node_id, "chat", b"after", p.now)
    p.advance(p.now + 2)
    assert box.got[-1] == ("chat", b"after") and mid in {d.message_id for d in p.of(p.a, ev.MessageDelivered)}
    assert p.b.counters["rx.refused.no_receiver"] == 1


def test_a_lost_refusal_is_said_again_and_a_late_receiver_never_gets_the_refused_message() -> None:
    box = Box({"chat": 1000})
    p = pair(box, "refuse-lost")
    lost = []

    def drop_first_refuse(m: object, data: bytes) -> bool:
        if m is p.b and not lost and p.b.counters["rx.refused.no_receiver"]:
            lost.append(data)  # B's first answer after refusing (the REFUSE) is lost
            return True
        return False

    p.drop = drop_first_refuse
    mid = p.a.send(p.b.node_id, "late", b"x", p.now)
    p.run()
    assert lost and not p.of(p.a, ev.MessageFailed)
    box.room["late"] = 10  # the channel is opened now: the message was refused already, it stays refused
    p.advance(p.now + 3)  # A retransmits, B refuses again
    [f] = p.of(p.a, ev.MessageFailed)
    assert f.message_id == mid and "no receiver" in f.reason
    assert box.got == [] and not p.of(p.a, ev.MessageDelivered)
    p.a.send(p.b.node_id, "late", b"y", p.now)
    p.advance(p.now + 2)
    assert box.got == [("late", b"y")]


def test_no_room_holds_messages_back_unacknowledged_and_never_drops_them() -> None:
    box = Box({"chat": 3})
    p = pair(box, "hold")
    ids = [p.a.send(p.b.node_id, "chat", b"m%d" % i, p.now) for i in range(10)]
    p.advance(p.now + 20)  # long: the sender retransmits the held message many times
    assert box.got == [("chat", b"m%d" % i) for i in range(3)]
    assert [d.message_id for d in p.of(p.a, ev.MessageDelivered)] == ids[:3]  # only what was taken
    assert not p.of(p.a, ev.MessageFailed)
    assert p.b.counters["rx.held"] >= 2  # asked again at retransmissions
    box.room["chat"] = 100  # the application read: room again
    p.b.resume_receiving(p.now)
    p.run()
    assert box.got == [("chat", b"m%d" % i) for i in range(10)]  # at once (no retransmission needed), once each
    assert [d.message_id for d in p.of(p.a, ev.MessageDelivered)] == ids


def test_messages_without_receivers_are_events_as_before() -> None:
    p = Pair("plain")
    p.connect()
    p.a.send(p.b.node_id, "any", b"z", p.now)
    p.run()
    assert [e.data for e in p.of(p.b, ev.ChannelMessage)] == [b"z"]


def test_a_stale_or_bogus_refusal_is_only_the_ack_it_carries() -> None:
    s = ReliableStream(CoreConfig())
    s.enqueue(fw.MessageKind.MESSAGE, [b"a", b"b"], 1)  # two chunks: seq 0 (first), 1 (continuation)
    s.enqueue(fw.MessageKind.MESSAGE, [b"c"], 2)
    assert len(s.frames_to_send(0.0)) == 3
    assert s.on_refuse(5, 0.1) == ([], None)  # never sent: ignored
    assert s.on_refuse(1, 0.1) == ([], None)  # seq 1 begins no message: only "seq 0 arrived"
    assert s.counts() == (0, 2)
    delivered, refused = s.on_refuse(2, 0.2)  # 0-1 arrived (message 1), message 2 is refused
    assert (delivered, refused) == ([1], 2) and s.counts() == (0, 0)
    assert s.on_refuse(2, 0.3) == ([], None)  # said again: already handled
