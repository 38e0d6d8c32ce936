"""KeyRing (core/session/keyring.py): the current key first, a rotated-out key accepted until its grace ends and not a
moment longer, at most MAX_PREVIOUS previous keys, restore and remove."""

from __future__ import annotations

from omerta_mesh.core.session.keyring import MAX_PREVIOUS, KeyRing
from omerta_mesh.core.wire.handshake import mac1_key

PUB = b"P" * 32
NET = b"n" * 10


def keys(ring: KeyRing, now: float) -> list[bytes]:
    return [a.key for a in ring.of(NET, now)]


def test_a_rotated_out_key_is_accepted_until_its_grace_ends() -> None:
    ring = KeyRing(PUB)
    ring.set(NET, b"A" * 32)
    ring.rotate(NET, b"B" * 32, b"A" * 32, until=100.0, now=10.0)
    assert keys(ring, 10.0) == [b"B" * 32, b"A" * 32]
    assert [a.mac1 for a in ring.of(NET, 10.0)] == [mac1_key(b"B" * 32, PUB), mac1_key(b"A" * 32, PUB)]
    assert [(n, a.key) for n, a in ring.accepted(99.9)] == [(NET, b"B" * 32), (NET, b"A" * 32)]
    assert keys(ring, 100.0) == [b"B" * 32] and list(ring.accepted(100.0)) == [(NET, ring.of(NET, 0)[0])]
    assert ring.previous(NET, 50.0) == [(b"A" * 32, 100.0)] and ring.previous(NET, 100.0) == []


def test_a_rotation_received_after_its_grace_keeps_no_previous_key() -> None:
    ring = KeyRing(PUB)
    ring.set(NET, b"A" * 32)
    ring.rotate(NET, b"B" * 32, b"A" * 32, until=5.0, now=10.0)
    assert keys(ring, 10.0) == [b"B" * 32]


def test_at_most_max_previous_keys_newest_first() -> None:
    ring = KeyRing(PUB)
    ring.set(NET, bytes([0]) * 32)
    for i in range(1, 8):
        ring.rotate(NET, bytes([i]) * 32, bytes([i - 1]) * 32, until=1000.0 + i, now=float(i))
    assert keys(ring, 10.0) == [bytes([i]) * 32 for i in range(7, 7 - MAX_PREVIOUS - 1, -1)]


def test_restore_and_remove() -> None:
    ring = KeyRing(PUB)
    ring.restore(NET, [(b"A" * 32, 50.0)], 0.0)  # no current key: nothing to restore to
    assert ring.of(NET, 0.0) == []
    ring.set(NET, b"B" * 32)
    ring.restore(NET, [(b"A" * 32, 50.0), (b"C" * 32, 5.0), (b"B" * 32, 90.0)], 10.0)  # expired and current ones left out
    assert keys(ring, 10.0) == [b"B" * 32, b"A" * 32]
    ring.remove(NET)
    assert ring.of(NET, 10.0) == [] and list(ring.accepted(10.0)) == []
