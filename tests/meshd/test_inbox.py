"""The daemon's channel inboxes (meshd/inbox.py) and their spool on disk (io/spool.py), without a daemon.

A spool is read back by a fresh ``Spool`` that never saw the old one closed: what a daemon killed with -9 leaves.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from omerta_mesh.core.channels import HOLD_LIMIT, Admit, Refuse
from omerta_mesh.core.events import ChannelMessage
from omerta_mesh.core.ids import NetworkId, NodeId
from omerta_mesh.core.wire.frames import RefuseCode
from omerta_mesh.io import spool as spool_mod
from omerta_mesh.io.spool import Spool
from omerta_mesh.meshd import inbox as inbox_mod
from omerta_mesh.meshd.errors import ApiError
from omerta_mesh.meshd.inbox import RETRY_SPOOL, Inboxes

NET, PEER = NetworkId(bytes(range(10))), NodeId(bytes(range(32)))


def msg(channel: str, data: bytes) -> ChannelMessage:
    return ChannelMessage(NET, PEER, channel, data)


def fresh(d: Path) -> dict[str, list[bytes]]:
    """What a restarted daemon finds (a new Spool; the old one never closed)."""
    return {ch: [m.data for m in ms] for ch, ms in Spool(d).load().items()}


def test_what_was_synced_survives_and_what_was_received_does_not_come_back(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    assert sp.load() == {}
    assert os.stat(tmp_path).st_mode & 0o777 == 0o700
    for i in range(5):
        sp.add(msg("chat/ü", b"m%d" % i))
    assert fresh(tmp_path) == {}  # buffered only: nothing acknowledged yet either
    sp.sync()
    assert sp.syncs == 1  # one write and fdatasync for the batch
    [f] = tmp_path.iterdir()
    assert f.stat().st_mode & 0o777 == 0o600
    assert fresh(tmp_path) == {"chat/ü": [b"m0", b"m1", b"m2", b"m3", b"m4"]}
    sp = Spool(tmp_path)  # (the restarted daemon)
    sp.load()
    sp.taken("chat/ü", 2, 3, 6)
    assert fresh(tmp_path) == {"chat/ü": [b"m2", b"m3", b"m4"]}
    sp = Spool(tmp_path)
    sp.load()
    sp.taken("chat/ü", 3, 0, 0)  # all received: the file is emptied, and a restart restores no inbox
    assert fresh(tmp_path) == {} and list(tmp_path.iterdir()) == []


def test_a_damaged_tail_is_cut_off_and_what_follows_later_is_readable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sp = Spool(tmp_path)
    sp.load()
    sp.add(msg("c", b"kept"))
    sp.sync()
    [f] = tmp_path.iterdir()
    with open(f, "ab") as fh:
        fh.write(b"\x40\x00\x00\x00garbage")  # a record cut short (a crash while writing, a bad block)
    with caplog.at_level(logging.WARNING):
        assert fresh(tmp_path) == {"c": [b"kept"]}
    assert "damaged after byte" in caplog.text and str(f) in caplog.text
    sp = Spool(tmp_path)
    sp.load()
    sp.add(msg("c", b"later"))
    sp.sync()
    assert fresh(tmp_path) == {"c": [b"kept", b"later"]}


def test_a_failed_write_leaves_no_torn_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sp = Spool(tmp_path)
    sp.load()
    sp.add(msg("c", b"one"))
    sp.sync()
    real = os.write

    def half_then_full(fd: int, data: object) -> int:  # the disk fills up part way through the record
        monkeypatch.setattr(spool_mod.os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
        return real(fd, bytes(data)[:7])  # type: ignore[call-overload]

    monkeypatch.setattr(spool_mod.os, "write", half_then_full)
    sp.add(msg("c", b"two"))
    with pytest.raises(OSError):
        sp.sync()
    monkeypatch.setattr(spool_mod.os, "write", real)
    sp.add(msg("c", b"three"))
    sp.sync()
    assert fresh(tmp_path) == {"c": [b"one", b"three"]}


def test_a_mostly_received_file_is_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_mod, "COMPACT_AT", 1000)
    sp = Spool(tmp_path)
    sp.load()
    for i in range(100):
        sp.add(msg("c", b"x" * 50 + b"%d" % i))
    sp.sync()
    [f] = tmp_path.iterdir()
    before = f.stat().st_size
    sp.taken("c", 90, 10, sum(len(b"x" * 50 + b"%d" % i) for i in range(90, 100)))
    assert f.stat().st_size < before // 5  # rewritten with the 10 left
    sp.add(msg("c", b"new"))
    sp.sync()
    assert fresh(tmp_path) == {"c": [b"x" * 50 + b"%d" % i for i in range(90, 100)] + [b"new"]}


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_no_inbox_refuses_a_full_one_holds_then_refuses_and_taking_makes_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox_mod, "INBOX_MESSAGES", 3)
    clock, rooms = Clock(), []
    boxes = Inboxes(lambda: "bravo", Spool(tmp_path), lambda: rooms.append(clock.t), clock)
    verdict = boxes.admit(NET, PEER, "x", 10)
    assert verdict == Refuse(RefuseCode.NO_RECEIVER, "no receiver on channel 'x' at bravo")
    boxes.open("x")
    for i in range(3):
        assert boxes.admit(NET, PEER, "x", 10) is Admit.ACCEPT
        boxes.deliver(msg("x", b"%d" % i))
    boxes.sync()
    assert boxes.admit(NET, PEER, "x", 10) is Admit.HOLD  # full: held back at the sender
    clock.t += HOLD_LIMIT - 0.5
    assert boxes.admit(NET, PEER, "x", 10) is Admit.HOLD
    clock.t += 1
    refused = boxes.admit(NET, PEER, "x", 10)
    assert isinstance(refused, Refuse) and refused.code is RefuseCode.INBOX_FULL and "is full" in refused.reason
    assert [m.data for m in boxes.take("x", 2)] == [b"0", b"1"] and rooms == [clock.t]  # the held ones are offered again
    assert boxes.admit(NET, PEER, "x", 10) is Admit.ACCEPT
    assert boxes.counters()["inbox.messages"] == 1
    assert Inboxes(lambda: "bravo", Spool(tmp_path)).boxes["x"].items[0].data == b"2"  # a restart finds the rest


def test_a_spool_that_cannot_be_written_refuses_messages_for_a_while(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    sp = Spool(tmp_path)
    boxes = Inboxes(lambda: "bravo", sp, now=clock)
    boxes.open("x")
    boxes.deliver(msg("x", b"kept in memory"))
    monkeypatch.setattr(sp, "sync", lambda: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
    boxes.sync()
    assert boxes.counters()["inbox.spool_errors"] == 1
    refused = boxes.admit(NET, PEER, "x", 10)
    assert isinstance(refused, Refuse) and "cannot be kept on disk: Input/output error" in refused.reason
    clock.t += RETRY_SPOOL
    assert boxes.admit(NET, PEER, "x", 10) is Admit.ACCEPT  # tried again
    assert [m.data for m in boxes.take("x", 10)] == [b"kept in memory"]


def test_at_most_max_inboxes_channels(tmp_path: Path) -> None:
    boxes = Inboxes(lambda: "bravo", None)
    for i in range(inbox_mod.MAX_INBOXES):
        boxes.open(f"c{i}")
    with pytest.raises(ApiError):
        boxes.open("one-more")
