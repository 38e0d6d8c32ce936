"""Messages on the reliable stream: splitting, reassembly within a budget, and request bookkeeping."""

from __future__ import annotations

import pytest

from omerta_mesh.core.channels import Assembler, PendingRequests, ReassemblyBudget, make_header, split_message
from omerta_mesh.core.config import CoreConfig
from omerta_mesh.core.errors import DropReason, UsageError, WireError
from omerta_mesh.core.wire import frames as fw
from omerta_mesh.core.wire.packet import TRANSPORT_OVERHEAD

CFG = CoreConfig()
CHUNK = CFG.max_datagram - TRANSPORT_OVERHEAD - 64 - fw.DATA_HEADER_LEN  # what the mesh uses
MSG, REQ = fw.MessageKind.MESSAGE, fw.MessageKind.REQUEST


def frames_of(chunks: list[bytes], kind=MSG) -> list[fw.DataFrame]:
    n = len(chunks)
    return [fw.DataFrame(i, i == 0, i == n - 1, kind, c) for i, c in enumerate(chunks)]


def feed_all(asm: Assembler, frames: list[fw.DataFrame]) -> list:
    out = []
    for f in frames:
        m = asm.feed(f)
        if m is not None:
            out.append(m)
    return out


def big_budget() -> ReassemblyBudget:
    return ReassemblyBudget(CFG.reassembly_per_peer_bytes, CFG.reassembly_total_bytes)


def body_of(n: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


HEAD_LEN = len(make_header(MSG, "chat", b"", CFG.max_message).encode())
FIRST_ROOM = CHUNK - HEAD_LEN


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, FIRST_ROOM - 1, FIRST_ROOM, FIRST_ROOM + 1, FIRST_ROOM + CHUNK, FIRST_ROOM + CHUNK + 1, 1 << 20],
)
def test_split_assemble_round_trip(size: int) -> None:
    body = body_of(size)
    header = make_header(MSG, "chat", body, CFG.max_message, corr_id=9, status=3)
    chunks = split_message(header, body, CHUNK)
    expected = 1 if size <= FIRST_ROOM else 1 + -(-(size - FIRST_ROOM) // CHUNK)
    assert len(chunks) == expected
    assert all(0 < len(c) <= CHUNK for c in chunks[:-1]) and len(chunks[-1]) <= CHUNK
    assert all(len(c) == CHUNK for c in chunks[:-1])  # only the last chunk is short
    budget = big_budget()
    asm = Assembler(budget, CFG.max_message)
    [got] = feed_all(asm, frames_of(chunks))
    assert got.body == body
    assert got.header == header
    assert budget.used == 0


def test_messages_back_to_back_and_kinds() -> None:
    asm = Assembler(big_budget(), CFG.max_message)
    frames: list[fw.DataFrame] = []
    bodies = [body_of(n) for n in (5, 3000, 0, 2 * CHUNK)]
    for i, b in enumerate(bodies):
        kind = REQ if i % 2 else MSG
        frames += frames_of(split_message(make_header(kind, f"ch{i}", b, CFG.max_message, corr_id=i), b, CHUNK), kind)
    got = feed_all(asm, frames)
    assert [m.body for m in got] == bodies
    assert [(m.header.kind, m.header.channel, m.header.corr_id) for m in got] == [(REQ if i % 2 else MSG, f"ch{i}", i) for i in range(4)]


def test_split_refuses_a_chunk_too_small_for_the_header() -> None:
    header = make_header(MSG, "c" * 64, b"x", CFG.max_message)
    with pytest.raises(UsageError):
        split_message(header, b"x", len(header.encode()))


# ------------------------------------------------------------------------------------ budget
def test_over_budget_refused_then_next_message_recovers() -> None:
    budget = ReassemblyBudget(per_peer=5000, total=100_000)
    asm = Assembler(budget, CFG.max_message)
    big, small = body_of(6000), body_of(4000)
    big_frames = frames_of(split_message(make_header(MSG, "a", big, CFG.max_message), big, 1000))
    with pytest.raises(WireError) as e:
        asm.feed(big_frames[0])
    assert e.value.reason is DropReason.REASSEMBLY_LIMIT
    assert budget.used == 0
    # the rest of the refused message is discarded quietly, up to its LAST chunk
    assert [asm.feed(f) for f in big_frames[1:]] == [None] * (len(big_frames) - 1)
    [got] = feed_all(asm, frames_of(split_message(make_header(MSG, "b", small, CFG.max_message), small, 1000)))
    assert got.body == small and budget.used == 0


def test_total_budget_is_shared_across_peers() -> None:
    budget = ReassemblyBudget(per_peer=6000, total=10_000)
    a, b, c = (Assembler(budget, CFG.max_message) for _ in range(3))
    body = body_of(6000)
    fa = frames_of(split_message(make_header(MSG, "x", body, CFG.max_message), body, 1000))
    assert a.feed(fa[0]) is None
    assert budget.used == 6000
    with pytest.raises(WireError) as e:
        b.feed(fa[0])  # 6000 more would exceed the 10,000 total
    assert e.value.reason is DropReason.REASSEMBLY_LIMIT
    small = body_of(4000)
    fc = frames_of(split_message(make_header(MSG, "y", small, CFG.max_message), small, 1000))
    assert c.feed(fc[0]) is None  # 4000 still fits
    assert budget.used == 10_000
    a.reset()  # the peer went away: its reservation is returned
    assert budget.used == 4000
    assert [m.body for m in feed_all(c, fc[1:])] == [small]
    assert budget.used == 0


def test_single_chunk_messages_need_no_reservation() -> None:
    budget = ReassemblyBudget(per_peer=10, total=10)
    asm = Assembler(budget, CFG.max_message)
    body = body_of(500)
    [got] = feed_all(asm, frames_of(split_message(make_header(MSG, "x", body, CFG.max_message), body, CHUNK)))
    assert got.body == body and budget.used == 0


def test_announced_size_over_max_message_is_oversized() -> None:
    asm = Assembler(big_budget(), 1000)
    header = fw.MessageHeader(MSG, 1001, 0, 0, "x")
    with pytest.raises(WireError) as e:
        asm.feed(fw.DataFrame(0, True, False, MSG, header.encode() + b"abc"))
    assert e.value.reason is DropReason.OVERSIZED


# ------------------------------------------------------------------------------------ malformed sequences
def _chunks(total: int, parts: list[bytes]) -> list[bytes]:
    return [fw.MessageHeader(MSG, total, 0, 0, "x").encode() + parts[0]] + parts[1:]


def _refused(asm: Assembler, frames: list[fw.DataFrame]) -> DropReason:
    with pytest.raises(WireError) as e:
        feed_all(asm, frames)
    return e.value.reason


def test_single_chunk_shorter_than_announced() -> None:
    asm = Assembler(big_budget(), CFG.max_message)
    assert _refused(asm, frames_of(_chunks(10, [b"12345"]))) is DropReason.FRAGMENT_INVALID


def test_first_chunk_longer_than_announced_is_a_bad_frame() -> None:
    asm = Assembler(big_budget(), CFG.max_message)
    assert _refused(asm, frames_of(_chunks(3, [b"12345"]))) is DropReason.BAD_FRAME


def test_continuation_overruns_the_announced_length() -> None:
    budget = big_budget()
    asm = Assembler(budget, CFG.max_message)
    frames = frames_of(_chunks(6, [b"123", b"4567", b"89"]))
    assert _refused(asm, frames[:2]) is DropReason.FRAGMENT_INVALID
    assert budget.used == 0
    assert asm.feed(frames[2]) is None  # the rest of the broken message is skipped
    [ok] = feed_all(asm, frames_of(_chunks(6, [b"123", b"456"])))
    assert ok.body == b"123456"


def test_last_chunk_arrives_short() -> None:
    budget = big_budget()
    asm = Assembler(budget, CFG.max_message)
    assert _refused(asm, frames_of(_chunks(10, [b"123", b"45"]))) is DropReason.FRAGMENT_INVALID
    assert budget.used == 0
    [ok] = feed_all(asm, frames_of(_chunks(2, [b"1", b"2"])))
    assert ok.body == b"12"


def test_continuation_without_a_first_chunk() -> None:
    asm = Assembler(big_budget(), CFG.max_message)
    assert _refused(asm, [fw.DataFrame(0, False, True, MSG, b"orphan")]) is DropReason.FRAGMENT_INVALID


def test_new_message_before_the_previous_ended() -> None:
    budget = big_budget()
    asm = Assembler(budget, CFG.max_message)
    first = frames_of(_chunks(10, [b"12345", b"67890"]))
    assert asm.feed(first[0]) is None
    assert budget.used == 10
    assert _refused(asm, [first[0]]) is DropReason.FRAGMENT_INVALID
    assert budget.used == 0


def test_reset_discards_a_partial_message() -> None:
    budget = big_budget()
    asm = Assembler(budget, CFG.max_message)
    asm.feed(frames_of(_chunks(10, [b"12345", b"67890"]))[0])
    asm.reset()
    assert budget.used == 0
    [ok] = feed_all(asm, frames_of(_chunks(1, [b"z"])))
    assert ok.body == b"z"


# ------------------------------------------------------------------------------------ headers
@pytest.mark.parametrize("name", ["", "c" * 65, "é" * 33, "a\nb", "tab\t", "nul\x00", "del\x7f", "esc\x1b"])
def test_bad_channel_names_refused(name: str) -> None:
    with pytest.raises(UsageError, match="bad channel name"):
        make_header(MSG, name, b"", CFG.max_message)


@pytest.mark.parametrize("name", ["c" * 64, "é" * 32, "chat/room-1", "☃", "a b"])
def test_good_channel_names_accepted(name: str) -> None:
    h = make_header(MSG, name, b"data", CFG.max_message)
    parsed, body = fw.decode_message_header(MSG, h.encode() + b"data", CFG.max_message)
    assert parsed.channel == name and body == b"data"


def test_non_string_channel_refused() -> None:
    with pytest.raises(UsageError):
        make_header(MSG, b"chat", b"", CFG.max_message)  # type: ignore[arg-type]


def test_message_over_the_limit_refused() -> None:
    make_header(MSG, "x", bytes(100), 100)
    with pytest.raises(UsageError, match="over the 100-byte limit"):
        make_header(MSG, "x", bytes(101), 100)


# ------------------------------------------------------------------------------------ pending requests
def test_request_times_out_at_its_deadline() -> None:
    pr = PendingRequests(10)
    cid = pr.open("peer-a", 110.0)
    cid2 = pr.open("peer-b", 120.0)
    assert cid != cid2
    assert pr.deadlines.next_deadline() == 110.0
    assert pr.expired(109.999) == []
    assert pr.expired(110.0) == [(cid, "peer-a")]
    assert pr.expired(111.0) == []  # reported once
    assert len(pr) == 1
    assert pr.close(cid, "peer-a") is False  # too late: already timed out
    assert pr.expired(120.0) == [(cid2, "peer-b")]


def test_response_from_the_wrong_peer_is_refused() -> None:
    pr = PendingRequests(10)
    cid = pr.open("peer-a", 110.0)
    assert pr.close(cid, "peer-b") is False
    assert pr.close(cid + 1, "peer-a") is False
    assert len(pr) == 1
    assert pr.close(cid, "peer-a") is True
    assert pr.close(cid, "peer-a") is False  # and only once
    assert pr.expired(200.0) == []  # a closed request never times out


def test_pending_request_limit() -> None:
    pr = PendingRequests(3)
    ids = [pr.open("p", 100.0 + i) for i in range(3)]
    with pytest.raises(UsageError, match="3 requests already pending"):
        pr.open("p", 200.0)
    pr.close(ids[1], "p")
    pr.open("p", 200.0)


def test_fail_peer_cancels_only_its_requests() -> None:
    pr = PendingRequests(10)
    a1, b1, a2 = pr.open("a", 110.0), pr.open("b", 110.0), pr.open("a", 115.0)
    assert sorted(pr.fail_peer("a")) == sorted([a1, a2])
    assert pr.expired(200.0) == [(b1, "b")]


def test_correlation_ids_wrap_and_skip_zero() -> None:
    pr = PendingRequests(10)
    pr._next = 0xFFFFFFFF
    assert pr.open("p", 1.0) == 0xFFFFFFFF
    assert pr.open("p", 1.0) == 1
