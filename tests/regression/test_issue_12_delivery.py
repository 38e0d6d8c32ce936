"""Regression (issue 12, fault 10): messages reported delivered, then discarded.

A message arriving on a channel nobody had opened at the receiver was acknowledged to the sender and dropped
without a counter; a full inbox dropped its oldest messages; and the inbox lived in memory behind an
asynchronous event queue, so ``kill -9`` of the receiving daemon lost messages it had acknowledged (all of
them: the restarted daemon had no inbox at all). Now the receiving side decides per message before
acknowledging it: a channel without an inbox is refused and the sender's send fails with the reason (counted
on both sides), a full inbox holds messages back at the sender, and a message taken is in the spool
(``<state>/inbox/``, fdatasync'd) before its acknowledgement leaves. Real daemons, real UDP on loopback.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from meshd.harness import DaemonProc, join, wait_peer_cached
from meshd.rpcclient import RpcError

pytestmark = pytest.mark.slow


def named(tmp: Path, name: str) -> DaemonProc:
    """A daemon with a name (in the refusal's reason) and a fixed UDP port (its peers find it again after a restart)."""
    cfg = tmp / f"{name}.toml"
    cfg.write_text(f'[node]\nname = "{name}"\n')
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return DaemonProc(tmp, name, extra=["--config", str(cfg), "--port", str(port)])


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[DaemonProc, DaemonProc, str]]:
    a, b = named(tmp_path, "alpha"), named(tmp_path, "bravo")
    try:
        a.start()
        b.start()
        _, _, b_id = join(a, b, "deliver")
        yield a, b, b_id
    finally:
        a.close()
        b.close()


def counters(d: DaemonProc) -> dict[str, int]:
    return d.call("status.get")["counters"]  # type: ignore[index,no-any-return]


def receive_all(d: DaemonProc, channel: str, quiet: float = 1.0) -> list[str]:
    """Everything on ``channel`` until nothing more comes for ``quiet`` seconds."""
    out: list[str] = []
    with d.client(timeout=quiet + 10) as c:
        while True:
            res = c.call("channel.receive", channel=channel, max=1000, timeout=quiet)
            assert res["dropped"] == 0, res
            if not res["messages"]:
                return out
            out += [m["data"] for m in res["messages"]]


def test_a_message_to_a_channel_nobody_opened_fails_at_the_sender_with_the_reason(pair) -> None:
    a, b, b_id = pair
    with pytest.raises(RpcError) as e:
        a.call("channel.send", peer=b_id, channel="nobody", data="anyone?", wait=True, timeout=10)
    assert e.value.name == "DELIVERY_FAILED", e.value
    assert "no receiver on channel 'nobody' at bravo" in str(e.value), e.value
    assert counters(b).get("rx.refused.no_receiver") == 1  # counted where it was refused
    assert counters(a).get("tx.refused") == 1  # and where it failed
    # the stream to bravo goes on, and the refused message never turns up later
    assert b.call("channel.receive", channel="nobody", timeout=0)["messages"] == []  # type: ignore[index]
    a.call("channel.send", peer=b_id, channel="nobody", data="now?", wait=True, timeout=10)
    assert receive_all(b, "nobody", quiet=0.5) == ["now?"]


def test_kill_9_of_the_receiver_loses_no_acknowledged_message(pair) -> None:
    a, b, b_id = pair
    a_id = a.call("status.get")["node_id"]  # type: ignore[index]
    wait_peer_cached(b, a_id)  # bravo finds alpha again after the restart through its peer cache
    b.call("channel.receive", channel="x", timeout=0)  # bravo's client opens the channel
    acked: set[str] = set()
    failed: list[str] = []
    lock = threading.Lock()

    def sender(k: int) -> None:  # 8 senders of 25 messages each, every send waiting for its acknowledgement
        with a.client(timeout=40) as c:
            for i in range(25):
                text = f"m{k}-{i}"
                try:
                    c.call("channel.send", peer=b_id, channel="x", data=text, wait=True, timeout=15)
                    with lock:
                        acked.add(text)
                except RpcError as err:  # failed (bravo restarted) or not acknowledged in time: not counted
                    with lock:
                        failed.append(f"{text}: {err.name}")

    threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(acked) >= 60, (acked, failed)
    b.kill()  # SIGKILL mid-stream
    with lock:
        acked_at_kill = set(acked)
    b.start()
    end = time.monotonic() + 60
    for t in threads:
        t.join(max(0.1, end - time.monotonic()))
    assert not any(t.is_alive() for t in threads), (len(acked), failed)
    got = receive_all(b, "x")
    assert len(got) == len(set(got)), "a message was received twice"
    missing = (acked_at_kill | acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:10]}; failed: {failed[:10]}"
    assert set(got) <= {f"m{k}-{i}" for k in range(8) for i in range(25)}
    assert len(acked) + len(failed) == 200
    assert "restored from" in b.log_text()


def test_a_full_inbox_holds_senders_back_and_drops_nothing(pair) -> None:
    a, b, b_id = pair
    b.call("channel.receive", channel="bulk", timeout=0)
    n = 4096 + 100  # the inbox holds 4096 messages
    with a.client() as c:
        for i in range(n):
            c.call("channel.send", peer=b_id, channel="bulk", data=f"b{i}", timeout=20)  # queued, not waited for
    deadline = time.monotonic() + 20  # until the inbox is full and bravo holds the next message back
    while counters(b).get("rx.held", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    held = counters(b)
    got = receive_all(b, "bulk")  # (each answer says dropped = 0)
    assert got == [f"b{i}" for i in range(n)]  # every one, in order, once
    assert held.get("rx.held", 0) >= 1 and held["inbox.messages"] == 4096, held  # held back at alpha, unacknowledged
    assert a.call("channel.send", peer=b_id, channel="bulk", data="last", wait=True, timeout=10)["delivered"]  # type: ignore[index]
    assert receive_all(b, "bulk", quiet=0.5) == ["last"]
    assert counters(a).get("tx.refused", 0) == 0  # held, never refused
