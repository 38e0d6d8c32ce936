"""The ``member.revoked`` body (core/wire/revocations.py): revocations after their length byte, canonical, bounded;
the splitter only raises WireError (REVOCATION_INVALID), never more than ``limit`` entries."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason, WireError
from omerta_mesh.core.ids import NetworkId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.wire.revocations import (
    Revocation,
    RevocationKind,
    decode_revocation,
    encode_revocations,
    sign_revocation,
    split_revocations,
)

OWNER = Identity.generate(SeededEntropy("revoked-owner"))
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rev(target: bytes, kind: RevocationKind = RevocationKind.NODE) -> bytes:
    return sign_revocation(OWNER, Revocation(kind, NetworkId(b"N" * 10), target, 1000, 2000, OWNER.node_id)).encode()


REVS = [rev(bytes([i]) * 32) for i in range(3)] + [rev(bytes(8), RevocationKind.SERIAL), rev(bytes(16), RevocationKind.TOKEN)]


@FUZZ
@given(st.lists(st.sampled_from(REVS), min_size=1, max_size=8))
def test_round_trip(revs: list[bytes]) -> None:
    body = encode_revocations(revs)
    assert split_revocations(body, 8) == revs
    assert [decode_revocation(b).encode() for b in split_revocations(body, 8)] == revs


@FUZZ
@given(st.binary(max_size=600))
def test_the_splitter_only_raises_wire_error_and_keeps_its_bound(data: bytes) -> None:
    try:
        got = split_revocations(data, 3)
    except WireError as e:
        assert e.reason is DropReason.REVOCATION_INVALID
    else:
        assert 1 <= len(got) <= 3 and encode_revocations(got) == data


@pytest.mark.parametrize("body", [b"", bytes([200]) + bytes(200), bytes([10]) + bytes(10), encode_revocations(REVS[:1])[:-1]])
def test_empty_short_or_cut_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(WireError):
        split_revocations(body, 4)


def test_more_entries_than_the_limit_are_refused() -> None:
    assert len(split_revocations(encode_revocations(REVS[:4]), 4)) == 4
    with pytest.raises(WireError, match="entry 4"):
        split_revocations(encode_revocations(REVS[:5]), 4)
