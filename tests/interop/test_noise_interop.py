"""Our Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s against the independent ``noiseprotocol`` package.

If these pass, our handshake is standard Noise: a third-party implementation completes it with us in either
role, derives the same transport keys and the same handshake hash, and refuses what we refuse.
"""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection

from omerta_mesh.core.keys import Identity, ed25519_public_to_x25519
from omerta_mesh.core.noise.handshake import (
    PROTOCOL_NAME,
    InitiatorHandshake,
    NoiseError,
    ResponderHandshake,
)
from omerta_mesh.core.noise.symmetric import nonce_bytes

PSK = bytes(range(100, 132))
PROLOGUE = b"omerta-mesh interop"
ALICE = Identity.from_seed(b"A" * 32)
BOB = Identity.from_seed(b"B" * 32)


def _theirs(initiator: bool, me: Identity, peer: Identity | None, psk: bytes = PSK) -> NoiseConnection:
    conn = NoiseConnection.from_name(PROTOCOL_NAME)
    conn.set_psks(psk=psk)
    conn.set_prologue(PROLOGUE)
    conn.set_keypair_from_private_bytes(Keypair.STATIC, me.x25519_private.private_bytes_raw())
    if peer is not None:
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, ed25519_public_to_x25519(peer.public))
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.start_handshake()
    return conn


def _our_initiator(e_seed: bytes = b"e" * 32, psk: bytes = PSK, peer: Identity = BOB) -> InitiatorHandshake:
    return InitiatorHandshake(ALICE.x25519_private, ed25519_public_to_x25519(peer.public), psk, PROLOGUE, e_seed)


def _our_responder(e_seed: bytes = b"f" * 32, psk: bytes = PSK) -> ResponderHandshake:
    return ResponderHandshake(BOB.x25519_private, psk, PROLOGUE, e_seed)


def _check_transport(send_key: bytes, recv_key: bytes, conn: NoiseConnection) -> None:
    """Our split keys, used with nonces 0, 1, 2, ... and empty AD, talk to their transport ciphers."""
    send, recv = ChaCha20Poly1305(send_key), ChaCha20Poly1305(recv_key)
    for n in range(3):
        msg = f"ours #{n}".encode()
        assert conn.decrypt(send.encrypt(nonce_bytes(n), msg, b"")) == msg
        reply = f"theirs #{n}".encode() * (n + 1)
        assert recv.decrypt(nonce_bytes(n), conn.encrypt(reply), b"") == reply


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=100), st.binary(max_size=100))
def test_ours_initiator_theirs_responder(e_seed: bytes, p1: bytes, p2: bytes) -> None:
    ours = _our_initiator(e_seed)
    theirs = _theirs(initiator=False, me=BOB, peer=None)
    assert bytes(theirs.read_message(ours.write_message_1(p1))) == p1
    assert ours.read_message_2(bytes(theirs.write_message(p2))) == p2
    assert theirs.handshake_finished and ours.done
    assert ours.handshake_hash == theirs.get_handshake_hash() == theirs.noise_protocol.handshake_hash
    send, recv = ours.split()
    _check_transport(send, recv, theirs)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=100), st.binary(max_size=100))
def test_theirs_initiator_ours_responder(e_seed: bytes, p1: bytes, p2: bytes) -> None:
    theirs = _theirs(initiator=True, me=ALICE, peer=BOB)
    ours = _our_responder(e_seed)
    assert ours.read_message_1(bytes(theirs.write_message(p1))) == p1
    assert ours.remote_static == ALICE.x25519_public
    assert bytes(theirs.read_message(ours.write_message_2(p2))) == p2
    assert theirs.handshake_finished and ours.done
    assert ours.handshake_hash == theirs.get_handshake_hash()
    send, recv = ours.split()
    _check_transport(send, recv, theirs)


def test_non_empty_payloads_both_messages() -> None:
    ours = _our_initiator()
    theirs = _theirs(initiator=False, me=BOB, peer=None)
    assert bytes(theirs.read_message(ours.write_message_1(b"hello from alice"))) == b"hello from alice"
    assert ours.read_message_2(bytes(theirs.write_message(b"hello from bob"))) == b"hello from bob"


def test_wrong_psk_ours_initiator() -> None:
    ours = _our_initiator(psk=bytes(32))
    theirs = _theirs(initiator=False, me=BOB, peer=None)
    theirs.read_message(ours.write_message_1(b"x"))  # message 1 does not depend on the psk
    with pytest.raises(NoiseError):
        ours.read_message_2(bytes(theirs.write_message(b"y")))
    assert ours.failed


def test_wrong_psk_ours_responder() -> None:
    theirs = _theirs(initiator=True, me=ALICE, peer=BOB, psk=bytes(32))
    ours = _our_responder()
    ours.read_message_1(bytes(theirs.write_message(b"x")))
    msg2 = ours.write_message_2(b"y")
    # They refuse our message 2 just as we would refuse theirs. (noiseprotocol lets cryptography's InvalidTag
    # escape from handshake reads; only its transport decrypt() wraps it in NoiseInvalidMessage.)
    with pytest.raises(InvalidTag):
        theirs.read_message(msg2)


def test_tampered_message_1() -> None:
    theirs = _theirs(initiator=True, me=ALICE, peer=BOB)
    msg1 = bytearray(theirs.write_message(b"x"))
    msg1[40] ^= 0x10  # inside the encrypted static key
    ours = _our_responder()
    with pytest.raises(NoiseError):
        ours.read_message_1(bytes(msg1))
    assert ours.failed


def test_tampered_message_2() -> None:
    ours = _our_initiator()
    theirs = _theirs(initiator=False, me=BOB, peer=None)
    theirs.read_message(ours.write_message_1(b"x"))
    msg2 = bytearray(theirs.write_message(b"y"))
    msg2[-1] ^= 0x01
    with pytest.raises(NoiseError):
        ours.read_message_2(bytes(msg2))
    assert ours.failed


def test_wrong_responder_static() -> None:
    """They believe they are talking to someone else; our responder cannot decrypt their message 1."""
    carol = Identity.from_seed(b"C" * 32)
    theirs = _theirs(initiator=True, me=ALICE, peer=carol)
    ours = _our_responder()
    with pytest.raises(NoiseError):
        ours.read_message_1(bytes(theirs.write_message(b"x")))
    assert ours.failed


def test_wrong_responder_static_ours_initiator() -> None:
    carol = Identity.from_seed(b"C" * 32)
    ours = _our_initiator(peer=carol)
    theirs = _theirs(initiator=False, me=BOB, peer=None)
    with pytest.raises(InvalidTag):
        theirs.read_message(ours.write_message_1(b"x"))


def test_static_key_derived_from_identity_matches_raw_x25519() -> None:
    """A raw X25519 key (not from an Ed25519 seed) interoperates too: nothing depends on the conversion."""
    raw = X25519PrivateKey.from_private_bytes(bytes(range(32)))
    ours = InitiatorHandshake(raw, BOB.x25519_public, PSK, PROLOGUE, b"e" * 32)
    theirs = _theirs(initiator=False, me=BOB, peer=None)
    theirs.read_message(ours.write_message_1(b""))
    # noiseprotocol deletes its handshake_state when the handshake finishes, so look now.
    assert theirs.noise_protocol.handshake_state.rs.public_bytes == raw.public_key().public_bytes_raw()
    ours.read_message_2(bytes(theirs.write_message(b"")))
    assert ours.handshake_hash == theirs.get_handshake_hash()
