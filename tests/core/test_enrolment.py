"""The admin's side of enrolment (core/member/enrolment.py; docs/membership.md 3.3, 3.4) with an injected clock:
one test per refusal, a repeated enrolment answered with the same credential, uses counted with other admins'
marks, bounds, and the serialisation; the request and answer layouts (core/wire/enrol.py)."""

from __future__ import annotations

import pytest

from omerta_mesh.core.config import DEFAULT_CONFIG
from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason, UsageError, WireError
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.member.check import Accepted, check_credential
from omerta_mesh.core.member.enrolment import Declined, Enrolment, Issued
from omerta_mesh.core.member.revocations import RevocationList
from omerta_mesh.core.network import Network
from omerta_mesh.core.wire import enrol as ew
from omerta_mesh.core.wire.certs import Certificate, Role, decode_credential, encode_credential, sign_certificate
from omerta_mesh.core.wire.enrol import EnrolStatus
from omerta_mesh.core.wire.revocations import Revocation, RevocationKind, sign_revocation
from omerta_mesh.core.wire.tokens import Token, UseMark, sign_mark, sign_token

OWNER = Identity.generate(SeededEntropy("enrol-owner"))
ADMIN = Identity.generate(SeededEntropy("enrol-admin"))
ADMIN2 = Identity.generate(SeededEntropy("enrol-admin2"))
ALICE = Identity.generate(SeededEntropy("enrol-alice"))
BOB = Identity.generate(SeededEntropy("enrol-bob"))
T0 = 1_800_000_000
DAY = 86400
NET = Network(bytes(range(32)), "home", owner=OWNER.node_id)
CFG = DEFAULT_CONFIG.with_(cert_clock_skew=0.0)


def admin_credential(who: Identity = ADMIN) -> bytes:
    c = Certificate(Role.ADMIN, NET.id, who.node_id, OWNER.node_id, 9, T0 - DAY, T0 + 90 * DAY)
    return encode_credential([sign_certificate(OWNER, c)])


def owner_side() -> tuple[Enrolment, bytes]:
    e = Enrolment(OWNER, CFG, SeededEntropy("e-owner"))
    return e, e.owner_credential(NET, T0 - DAY, 365 * DAY)


def revs() -> RevocationList:
    return RevocationList(NET.id, OWNER.node_id)


def test_a_token_admits_one_node_and_a_second_use_is_refused_as_used() -> None:
    e, own = owner_side()
    token = e.issue(NET, own, T0, uses=1, expires=3600, name="laptop", tags=("dev",), lifetime=7 * DAY)
    got = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "ignored", T0 + 10)
    assert isinstance(got, Issued) and got.mark is not None and got.mark.uses == 1 and got.mark.signature_ok()
    verdict = check_credential(got.credential, network=NET.id, owner=OWNER.node_id, subject=ALICE.node_id,
                               wall=T0 + 20, revocations=revs())
    assert isinstance(verdict, Accepted) and verdict.cert.name == "laptop" and verdict.cert.tags == ("dev",)
    assert verdict.cert.not_after == T0 + 10 + 7 * DAY and verdict.cert.role is Role.MEMBER
    again = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0 + 30)  # a repeat: same answer, no use
    assert again == Issued(got.credential, None)
    second = e.redeem(NET, own, revs(), BOB.node_id, token.encode(), "", T0 + 40)
    assert isinstance(second, Declined) and second.status is EnrolStatus.USED and second.status.word == "used"
    assert "already used" in second.status.fix
    assert e.issued(NET.id, T0 + 50) == []  # used up: no longer listed


def test_n_uses_and_the_requested_name() -> None:
    e, own = owner_side()
    token = e.issue(NET, own, T0, uses=2)
    a = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "alice-pc", T0)
    b = e.redeem(NET, own, revs(), BOB.node_id, token.encode(), "bad\nname", T0)
    assert isinstance(a, Issued) and isinstance(b, Issued)
    assert decode_credential(a.credential)[0].name == "alice-pc" and decode_credential(b.credential)[0].name == ""
    assert e.issued(NET.id, T0) == [] and b.mark is not None and b.mark.uses == 2


def test_an_expired_token_is_refused_as_expired() -> None:
    e, own = owner_side()
    token = e.issue(NET, own, T0, expires=60)
    got = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0 + 60)
    assert isinstance(got, Declined) and got.status is EnrolStatus.EXPIRED and got.status.word == "expired"
    assert isinstance(e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0 + 59), Issued)


def test_revoked_token_or_joiner_is_refused_as_revoked() -> None:
    e, own = owner_side()
    token = e.issue(NET, own, T0)
    for kind, target in ((RevocationKind.TOKEN, token.token_id), (RevocationKind.NODE, ALICE.node_id.raw)):
        rl = revs()
        rev = sign_revocation(OWNER, Revocation(kind, NET.id, target, T0, T0 + DAY, OWNER.node_id))
        assert rl.add(rev, lambda n: False, T0) is None
        got = e.redeem(NET, own, rl, ALICE.node_id, token.encode(), "", T0 + 1)
        assert isinstance(got, Declined) and got.status is EnrolStatus.REVOKED


def test_another_network_an_invalid_token_and_a_forged_issuer() -> None:
    e, own = owner_side()
    other = Network(bytes(32), "other", owner=OWNER.node_id)
    token = e.issue(other, e.owner_credential(other, T0, DAY), T0)
    got = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0)
    assert isinstance(got, Declined) and got.status is EnrolStatus.WRONG_NETWORK
    got = e.redeem(NET, own, revs(), ALICE.node_id, b"\x01" * 50, "", T0)
    assert isinstance(got, Declined) and got.status is EnrolStatus.INVALID
    for signer in (ALICE, ADMIN):  # a member's key, and an admin whose certificate this node never saw
        forged = sign_token(signer, Token(NET.id, bytes(16), signer.node_id, T0 + 60, 1, DAY), T0)
        got = e.redeem(NET, own, revs(), BOB.node_id, forged.encode(), "", T0)
        assert isinstance(got, Declined) and got.status is EnrolStatus.NOT_ADMIN_SIGNED
    e.note_admin(decode_credential(admin_credential())[0])  # now seen: its token is an admin's
    by_admin = sign_token(ADMIN, Token(NET.id, bytes(16), ADMIN.node_id, T0 + 60, 1, DAY), T0)
    assert isinstance(e.redeem(NET, own, revs(), BOB.node_id, by_admin.encode(), "", T0), Issued)
    bad_sig = Token(NET.id, bytes([1]) * 16, OWNER.node_id, T0 + 60, 1, DAY, signature=ALICE.sign(b"x"))
    got = e.redeem(NET, own, revs(), BOB.node_id, bad_sig.encode(), "", T0)
    assert isinstance(got, Declined) and got.status is EnrolStatus.NOT_ADMIN_SIGNED


def test_only_an_admin_issues_and_redeems() -> None:
    member = Enrolment(ALICE, CFG, SeededEntropy("e-alice"))
    c = Certificate(Role.MEMBER, NET.id, ALICE.node_id, OWNER.node_id, 1, T0, T0 + DAY)
    mine = encode_credential([sign_certificate(OWNER, c)])
    with pytest.raises(UsageError, match="only an admin"):
        member.issue(NET, mine, T0)
    e, own = owner_side()
    token = e.issue(NET, own, T0)
    got = member.redeem(NET, mine, revs(), BOB.node_id, token.encode(), "", T0)
    assert isinstance(got, Declined) and got.status is EnrolStatus.NOT_ADMIN
    got = e.redeem(NET, own, revs(), BOB.node_id, token.encode(), "", T0 + 400 * DAY)  # our owner cert has expired
    assert isinstance(got, Declined) and got.status is EnrolStatus.NOT_ADMIN


def test_an_admin_issues_with_its_admin_certificate_in_the_chain() -> None:
    e = Enrolment(ADMIN, CFG, SeededEntropy("e-admin"))
    own = admin_credential()
    token = e.issue(NET, own, T0)
    got = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0)
    assert isinstance(got, Issued)
    chain = decode_credential(got.credential)
    assert len(chain) == 2 and chain[0].issuer == ADMIN.node_id and chain[1].role is Role.ADMIN
    assert isinstance(check_credential(got.credential, network=NET.id, owner=OWNER.node_id, subject=ALICE.node_id,
                                       wall=T0, revocations=revs()), Accepted)


def test_other_admins_marks_count_towards_the_uses() -> None:
    e, own = owner_side()
    e.note_admin(decode_credential(admin_credential())[0])
    token = e.issue(NET, own, T0, uses=2)
    mark = sign_mark(ADMIN, UseMark(NET.id, token.token_id, ADMIN.node_id, 2, BOB.node_id, token.not_after))
    assert e.receive_mark(NET, mark.encode(), T0) is None
    got = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0)
    assert isinstance(got, Declined) and got.status is EnrolStatus.USED
    lower = sign_mark(ADMIN, UseMark(NET.id, token.token_id, ADMIN.node_id, 1, ALICE.node_id, token.not_after))
    assert e.receive_mark(NET, lower.encode(), T0) is None and e.marks(NET.id) == [mark]  # the highest is kept


def test_marks_not_signed_by_an_admin_or_malformed_are_refused() -> None:
    e, own = owner_side()
    token = e.issue(NET, own, T0)
    forged = sign_mark(ALICE, UseMark(NET.id, token.token_id, ALICE.node_id, 1, BOB.node_id, token.not_after))
    assert e.receive_mark(NET, forged.encode(), T0) is DropReason.TOKEN_MARK_INVALID
    assert e.receive_mark(NET, forged.encode()[:-1], T0) is DropReason.TOKEN_MARK_INVALID
    other = Network(bytes(32), "o", owner=OWNER.node_id)
    theirs = sign_mark(OWNER, UseMark(other.id, token.token_id, OWNER.node_id, 1, BOB.node_id, token.not_after))
    assert e.receive_mark(NET, theirs.encode(), T0) is DropReason.TOKEN_MARK_INVALID
    assert isinstance(e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0), Issued)


def test_marks_and_tokens_are_bounded_and_forgotten_at_expiry() -> None:
    e = Enrolment(OWNER, CFG.with_(max_token_marks=3), SeededEntropy("e-bound"))
    own = e.owner_credential(NET, T0 - DAY, 365 * DAY)
    tokens = [e.issue(NET, own, T0, expires=100) for _ in range(3)]
    with pytest.raises(UsageError, match="3 invites are open"):
        e.issue(NET, own, T0)
    for i, t in enumerate(tokens):
        assert isinstance(e.redeem(NET, own, revs(), ALICE.node_id, t.encode(), "", T0 + i), Issued)
    mark = sign_mark(OWNER, UseMark(NET.id, bytes([9]) * 16, OWNER.node_id, 1, BOB.node_id, T0 + 100))
    assert e.receive_mark(NET, mark.encode(), T0) is DropReason.TOKEN_MARK_LIMIT
    e.issue(NET, own, T0 + 100)  # the first three expired: room again
    assert len(e.marks(NET.id)) == 0 and len(e.issued(NET.id, T0 + 100)) == 1


def test_state_round_trip() -> None:
    e, own = owner_side()
    token = e.issue(NET, own, T0, uses=2)
    first = e.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0)
    assert isinstance(first, Issued)
    back = Enrolment(OWNER, CFG, SeededEntropy("e-owner-2"))
    marks, tokens, enrolled = e.export(NET.id)
    assert back.restore(NET, marks, tokens + (b"junk",), enrolled, T0 + 1) == 1
    assert back.issued(NET.id, T0 + 1) == [token] and back.marks(NET.id) == e.marks(NET.id)
    assert back.redeem(NET, own, revs(), ALICE.node_id, token.encode(), "", T0 + 2) == Issued(first.credential, None)
    assert isinstance(back.redeem(NET, own, revs(), BOB.node_id, token.encode(), "", T0 + 2), Issued)
    refused = back.redeem(NET, own, revs(), OWNER.node_id, token.encode(), "", T0 + 2)
    assert isinstance(refused, Declined) and refused.status is EnrolStatus.USED


def test_request_and_answer_layouts() -> None:
    section = ew.encode_request(b"T" * 150, "laptop", 836)
    assert len(section) == 836 and ew.decode_request(section) == (b"T" * 150, "laptop")
    for bad in (b"\x02" + section[1:], section[:-1] + b"\x01", section[:1] + b"\xff\xff" + section[3:]):
        with pytest.raises(WireError):
            ew.decode_request(bad)
    with pytest.raises(ValueError):
        ew.encode_request(b"T" * 300, "", 836)
    assert ew.decode_answer(ew.encode_answer(EnrolStatus.USED)) == (EnrolStatus.USED, b"")
    assert ew.decode_answer(ew.encode_answer(EnrolStatus.ISSUED, b"cred")) == (EnrolStatus.ISSUED, b"cred")
    for bad in (b"", b"\x09", b"\x00", b"\x02cred"):
        with pytest.raises(WireError):
            ew.decode_answer(bad)
