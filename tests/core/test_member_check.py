"""The credential check (core/member/check.py) and the revocation list (core/member/revocations.py): one test per
refusal reason, each beside the nearest credential that is accepted, with an injected clock."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.errors import DropReason
from omerta_mesh.core.ids import NetworkId, NodeId
from omerta_mesh.core.keys import Identity
from omerta_mesh.core.member.check import Accepted, Refused, check_credential
from omerta_mesh.core.member.revocations import RevocationList
from omerta_mesh.core.wire.certs import MAX_LIFETIME, Certificate, Role, encode_credential, sign_certificate
from omerta_mesh.core.wire.revocations import Revocation, RevocationKind, serial_target, sign_revocation

NET = NetworkId(b"M" * 10)
OTHER_NET = NetworkId(b"O" * 10)
OWNER = Identity.generate(SeededEntropy("check-owner"))
ADMIN = Identity.generate(SeededEntropy("check-admin"))
ADMIN2 = Identity.generate(SeededEntropy("check-admin2"))
ALICE = Identity.generate(SeededEntropy("check-alice"))
MALLORY = Identity.generate(SeededEntropy("check-mallory"))
T0 = 1_800_000_000
DAY = 86400


def cert(subject: Identity, issuer: Identity, role: Role = Role.MEMBER, net: NetworkId = NET, nb: int = T0,
         na: int = T0 + 30 * DAY, serial: int = 1) -> Certificate:
    name = "alice" if subject is ALICE else ""
    return sign_certificate(issuer, Certificate(role, net, subject.node_id, issuer.node_id, serial, nb, na, name))


ADMIN_CERT = cert(ADMIN, OWNER, Role.ADMIN, serial=100)
BY_ADMIN = encode_credential([cert(ALICE, ADMIN, nb=T0 + DAY, serial=2), ADMIN_CERT])
BY_OWNER = encode_credential([cert(ALICE, OWNER, serial=3)])


def revs() -> RevocationList:
    return RevocationList(NET, OWNER.node_id, limit=8)


def check(data: bytes | None, subject: Identity = ALICE, wall: float = T0 + 2 * DAY, rl: RevocationList | None = None,
          skew: float = 0.0):
    return check_credential(data, network=NET, owner=OWNER.node_id, subject=subject.node_id, wall=wall,
                            revocations=rl if rl is not None else revs(), skew=skew)


def refused(verdict, reason: DropReason) -> None:
    assert isinstance(verdict, Refused), verdict
    assert verdict.reason is reason, verdict


def revoke(kind: RevocationKind, target: bytes, issuer: Identity = OWNER, issued: int = T0, void: bool = False) -> Revocation:
    return sign_revocation(issuer, Revocation(kind, NET, target, issued, issued + MAX_LIFETIME, issuer.node_id, void))


def is_admin(node: NodeId) -> bool:
    return node in (ADMIN.node_id, ADMIN2.node_id)


# --- accepted -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, subject, role", [
    (BY_OWNER, ALICE, Role.MEMBER),
    (BY_ADMIN, ALICE, Role.MEMBER),
    (encode_credential([ADMIN_CERT]), ADMIN, Role.ADMIN),
    (encode_credential([cert(OWNER, OWNER, Role.OWNER)]), OWNER, Role.OWNER),
])
def test_valid_credentials_are_accepted_with_their_role(data: bytes, subject: Identity, role: Role) -> None:
    v = check(data, subject)
    assert isinstance(v, Accepted) and v.role is role and v.cert.subject == subject.node_id


# --- one test per refusal reason --------------------------------------------------------------------------------

def test_missing() -> None:
    refused(check(None), DropReason.CERT_MISSING)
    refused(check(b""), DropReason.CERT_MISSING)


def test_malformed() -> None:
    refused(check(BY_OWNER[:-1]), DropReason.CERT_MALFORMED)
    refused(check(b"\x01garbage"), DropReason.CERT_MALFORMED)


def test_wrong_network() -> None:
    refused(check(encode_credential([cert(ALICE, OWNER, net=OTHER_NET)])), DropReason.CERT_WRONG_NETWORK)
    other_admin = cert(ADMIN, OWNER, Role.ADMIN, net=OTHER_NET)
    refused(check(encode_credential([cert(ALICE, ADMIN), other_admin])), DropReason.CERT_WRONG_NETWORK)


def test_wrong_subject_a_stolen_certificate_is_useless() -> None:
    refused(check(BY_OWNER, subject=MALLORY), DropReason.CERT_WRONG_SUBJECT)


@pytest.mark.parametrize("chain, subject", [
    ([cert(ALICE, MALLORY)], ALICE),  # a member signed by a non-admin member
    ([cert(ALICE, ADMIN)], ALICE),  # an admin's signature, but no admin certificate with it
    ([cert(ALICE, MALLORY), cert(MALLORY, MALLORY, Role.ADMIN)], ALICE),  # a self-made admin
    ([cert(ALICE, MALLORY), cert(MALLORY, ADMIN, Role.ADMIN)], ALICE),  # admins cannot make admins
    ([cert(ALICE, MALLORY), cert(MALLORY, OWNER, Role.MEMBER)], ALICE),  # a member certificate is no admin's
    ([cert(ALICE, ADMIN), cert(ADMIN2, OWNER, Role.ADMIN)], ALICE),  # the admin certificate of someone else
    ([cert(MALLORY, MALLORY, Role.OWNER)], MALLORY),  # an owner that is not the owner
    ([cert(MALLORY, ADMIN, Role.ADMIN), ADMIN_CERT], MALLORY),  # an admin certificate needs the owner's signature
    ([cert(ALICE, OWNER), ADMIN_CERT], ALICE),  # the owner's certificate needs no admin after it
])
def test_issuer_not_admin(chain: list[Certificate], subject: Identity) -> None:
    refused(check(encode_credential(chain), subject), DropReason.CERT_ISSUER_NOT_ADMIN)


def test_bad_signature_forged_by_a_key_outside_the_network() -> None:
    c = cert(ALICE, OWNER, serial=9)
    forged = replace(c, signature=MALLORY.sign(b"omcert01" + c.body()))
    refused(check(encode_credential([forged])), DropReason.CERT_BAD_SIGNATURE)
    raised = replace(c, not_after=c.not_after + DAY)  # a member lengthening its own certificate
    refused(check(encode_credential([raised])), DropReason.CERT_BAD_SIGNATURE)
    assert isinstance(check(encode_credential([c])), Accepted)


def test_not_yet_valid_with_and_without_skew() -> None:
    refused(check(BY_ADMIN, wall=T0 + DAY - 1), DropReason.CERT_NOT_YET_VALID)
    assert isinstance(check(BY_ADMIN, wall=T0 + DAY - 1, skew=300), Accepted)
    refused(check(BY_ADMIN, wall=T0 + DAY - 301, skew=300), DropReason.CERT_NOT_YET_VALID)
    early_admin = cert(ADMIN, OWNER, Role.ADMIN, nb=T0 + 5 * DAY)
    refused(check(encode_credential([cert(ALICE, ADMIN), early_admin])), DropReason.CERT_NOT_YET_VALID)


def test_expired_at_the_second_the_clock_reaches_not_after() -> None:
    end = T0 + 30 * DAY
    assert isinstance(check(BY_OWNER, wall=end - 0.001), Accepted)
    refused(check(BY_OWNER, wall=end), DropReason.CERT_EXPIRED)
    assert isinstance(check(BY_OWNER, wall=end, skew=300), Accepted)


def test_issuer_expired() -> None:
    short_admin = cert(ADMIN, OWNER, Role.ADMIN, na=T0 + 3 * DAY)
    data = encode_credential([cert(ALICE, ADMIN), short_admin])
    assert isinstance(check(data, wall=T0 + 3 * DAY - 1), Accepted)
    refused(check(data, wall=T0 + 3 * DAY), DropReason.CERT_ISSUER_EXPIRED)


def test_issuer_revoked_voids_only_what_it_issued_after_unless_void_issued() -> None:
    rl = revs()
    assert rl.add(revoke(RevocationKind.NODE, ADMIN.public, issued=T0 + DAY + 1), is_admin, T0) is None
    assert isinstance(check(BY_ADMIN, rl=rl), Accepted)  # issued at T0 + DAY, before the admin was removed
    later = encode_credential([cert(ALICE, ADMIN, nb=T0 + DAY + 1), ADMIN_CERT])
    refused(check(later, rl=rl), DropReason.CERT_ISSUER_REVOKED)
    rl2 = revs()
    assert rl2.add(revoke(RevocationKind.NODE, ADMIN.public, issued=T0 + 2 * DAY, void=True), is_admin, T0) is None
    refused(check(BY_ADMIN, rl=rl2), DropReason.CERT_ISSUER_REVOKED)
    rl3 = revs()
    assert rl3.add(revoke(RevocationKind.SERIAL, serial_target(ADMIN_CERT.serial)), is_admin, T0) is None
    refused(check(BY_ADMIN, rl=rl3), DropReason.CERT_ISSUER_REVOKED)


def test_revoked_node_or_serial() -> None:
    rl = revs()
    assert rl.add(revoke(RevocationKind.NODE, ALICE.public, ADMIN), is_admin, T0) is None
    refused(check(BY_OWNER, rl=rl), DropReason.CERT_REVOKED)
    refused(check(BY_ADMIN, rl=rl), DropReason.CERT_REVOKED)
    rl2 = revs()
    assert rl2.add(revoke(RevocationKind.SERIAL, serial_target(3), ADMIN), is_admin, T0) is None
    refused(check(BY_OWNER, rl=rl2), DropReason.CERT_REVOKED)  # serial 3
    assert isinstance(check(BY_ADMIN, rl=rl2), Accepted)  # serial 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_flipped_byte_of_a_valid_credential_is_refused(data) -> None:
    raw = bytearray(BY_ADMIN)
    raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    assert isinstance(check(bytes(raw)), Refused)


def test_the_clock_and_revocations_are_asked_after_the_signature_memo() -> None:
    rl = revs()
    assert isinstance(check(BY_OWNER, rl=rl), Accepted)  # memoised now
    rl.add(revoke(RevocationKind.NODE, ALICE.public), is_admin, T0)
    refused(check(BY_OWNER, rl=rl), DropReason.CERT_REVOKED)
    refused(check(BY_OWNER, wall=T0 + 31 * DAY), DropReason.CERT_EXPIRED)


# --- the revocation list ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rev, why", [
    (revoke(RevocationKind.NODE, ALICE.public, MALLORY), "signed by a member who is no admin"),
    (revoke(RevocationKind.NODE, ADMIN2.public, ADMIN), "an admin revoking an admin"),
    (revoke(RevocationKind.NODE, OWNER.public, OWNER), "the owner revoking itself"),
    (revoke(RevocationKind.NODE, OWNER.public, ADMIN), "an admin revoking the owner"),
    (replace(revoke(RevocationKind.NODE, ALICE.public), network=OTHER_NET), "another network"),
    (replace(revoke(RevocationKind.NODE, ALICE.public), issued=T0 + 1), "altered after signing"),
])
def test_revocations_not_signed_by_someone_allowed_are_refused(rev: Revocation, why: str) -> None:
    rl = revs()
    assert rl.add(rev, is_admin, T0) is DropReason.REVOCATION_INVALID, why
    assert len(rl) == 0


def test_owner_revokes_admins_and_repeats_are_held_once() -> None:
    rl = revs()
    r = revoke(RevocationKind.NODE, ADMIN.public)
    assert rl.add(r, is_admin, T0) is None and rl.add(r, is_admin, T0) is None
    assert len(rl) == 1 and rl.node(ADMIN.node_id, T0) == [r]


def test_the_list_is_bounded_refuses_beyond_and_prunes_at_until() -> None:
    rl = revs()
    for i in range(8):
        r = sign_revocation(OWNER, Revocation(RevocationKind.TOKEN, NET, bytes([i]) * 16, T0, T0 + DAY, OWNER.node_id))
        assert rl.add(r, is_admin, T0) is None
    ninth = revoke(RevocationKind.NODE, ALICE.public)
    assert rl.add(ninth, is_admin, T0) is DropReason.REVOCATION_LIMIT and len(rl) == 8
    assert rl.token_revoked(bytes(16), T0 + DAY - 1) and not rl.token_revoked(bytes(16), T0 + DAY)
    assert rl.add(ninth, is_admin, T0 + DAY) is None  # the tokens' revocations lapsed and were pruned
    assert len(rl) == 1 and rl.node(ALICE.node_id, T0 + DAY)
    assert rl.add(revoke(RevocationKind.NODE, ADMIN.public, issued=T0 - MAX_LIFETIME), is_admin, T0) is None
    assert not rl.node(ADMIN.node_id, T0)  # already past its until: nothing to stop, nothing held
    assert rl.prune(T0 + MAX_LIFETIME) == 1 and len(rl) == 0


def test_an_admin_cannot_revoke_an_admin_certificate_by_serial() -> None:
    rl = revs()
    assert rl.add(revoke(RevocationKind.SERIAL, serial_target(ADMIN_CERT.serial), ADMIN2), is_admin, T0) is None
    assert isinstance(check(BY_ADMIN, rl=rl), Accepted)
    assert isinstance(check(encode_credential([ADMIN_CERT]), ADMIN, rl=rl), Accepted)
