"""Our Noise_IKpsk2 handshake against itself: success, state machine misuse, failure and garbage input."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.errors import UsageError
from omerta_mesh.core.noise.handshake import (
    MSG1_OVERHEAD,
    MSG2_OVERHEAD,
    HandshakeState,
    InitiatorHandshake,
    NoiseError,
    ResponderHandshake,
)
from omerta_mesh.core.noise.symmetric import CipherState, SymmetricState, nonce_bytes

PSK = bytes(range(32))
PROLOGUE = b"omerta test prologue"


def _key(n: int) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes([n]) * 32)


I_S, R_S = _key(1), _key(2)
R_PUB = R_S.public_key().public_bytes_raw()
I_PUB = I_S.public_key().public_bytes_raw()

# Low-order Curve25519 u-coordinates (the public keys that force an all-zero DH output).
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (2**255 - 19 - 1).to_bytes(32, "little"),
    (2**255 - 19).to_bytes(32, "little"),
]


def _pair(psk_i: bytes = PSK, psk_r: bytes = PSK) -> tuple[InitiatorHandshake, ResponderHandshake]:
    i = InitiatorHandshake(I_S, R_PUB, psk_i, PROLOGUE, bytes([3]) * 32)
    r = ResponderHandshake(R_S, psk_r, PROLOGUE, bytes([4]) * 32)
    return i, r


def test_handshake_completes_and_keys_match() -> None:
    i, r = _pair()
    msg1 = i.write_message_1(b"hello")
    assert len(msg1) == MSG1_OVERHEAD + 5
    assert r.read_message_1(msg1) == b"hello"
    assert r.remote_static == I_PUB
    msg2 = r.write_message_2(b"welcome!")
    assert len(msg2) == MSG2_OVERHEAD + 8
    assert i.read_message_2(msg2) == b"welcome!"
    assert i.done and r.done and not i.failed and not r.failed
    i_send, i_recv = i.split()
    r_send, r_recv = r.split()
    assert i_send == r_recv and i_recv == r_send and i_send != i_recv
    assert i.handshake_hash == r.handshake_hash and len(i.handshake_hash) == 32
    ct = ChaCha20Poly1305(i_send).encrypt(nonce_bytes(0), b"data", b"")
    assert ChaCha20Poly1305(r_recv).decrypt(nonce_bytes(0), ct, b"") == b"data"


def test_handshake_is_deterministic_given_seeds() -> None:
    a, b = _pair()
    c, d = _pair()
    msg1 = a.write_message_1(b"x")
    assert msg1 == c.write_message_1(b"x")
    b.read_message_1(msg1)
    d.read_message_1(msg1)
    assert b.write_message_2(b"y") == d.write_message_2(b"y")
    assert b.split() == d.split()


def test_empty_payloads() -> None:
    i, r = _pair()
    assert r.read_message_1(i.write_message_1(b"")) == b""
    assert i.read_message_2(r.write_message_2(b"")) == b""


def test_different_prologue_fails() -> None:
    i = InitiatorHandshake(I_S, R_PUB, PSK, b"a", bytes([3]) * 32)
    r = ResponderHandshake(R_S, PSK, b"b", bytes([4]) * 32)
    with pytest.raises(NoiseError):
        r.read_message_1(i.write_message_1(b""))
    assert r.failed and r.state is HandshakeState.FAILED


def test_wrong_psk_fails_at_message_2() -> None:
    i, r = _pair(psk_r=bytes(32))
    r.read_message_1(i.write_message_1(b"p"))  # the psk is mixed only in message 2
    msg2 = r.write_message_2(b"q")
    with pytest.raises(NoiseError):
        i.read_message_2(msg2)
    assert i.failed


def test_out_of_order_use_raises_usage_error() -> None:
    i, r = _pair()
    with pytest.raises(UsageError):
        i.read_message_2(bytes(64))
    with pytest.raises(UsageError):
        i.split()
    with pytest.raises(UsageError):
        _ = i.handshake_hash
    with pytest.raises(UsageError):
        r.write_message_2(b"")
    with pytest.raises(UsageError):
        _ = r.remote_static
    msg1 = i.write_message_1(b"")
    with pytest.raises(UsageError):
        i.write_message_1(b"")
    r.read_message_1(msg1)
    with pytest.raises(UsageError):
        r.read_message_1(msg1)
    i.read_message_2(r.write_message_2(b""))
    with pytest.raises(UsageError):
        i.read_message_2(bytes(64))
    with pytest.raises(UsageError):
        r.write_message_2(b"")
    assert i.state is HandshakeState.DONE and r.state is HandshakeState.DONE


def test_failed_state_is_terminal() -> None:
    i, r = _pair()
    msg1 = bytearray(i.write_message_1(b"x"))
    msg1[-1] ^= 1
    with pytest.raises(NoiseError):
        r.read_message_1(bytes(msg1))
    assert r.failed
    with pytest.raises(UsageError):
        r.read_message_1(bytes(msg1))
    with pytest.raises(UsageError):
        r.write_message_2(b"")
    with pytest.raises(UsageError):
        r.split()
    with pytest.raises(UsageError):
        _ = r.remote_static


def test_bad_constructor_arguments() -> None:
    with pytest.raises(UsageError):
        InitiatorHandshake(I_S, R_PUB, bytes(31), PROLOGUE, bytes(32))
    with pytest.raises(UsageError):
        InitiatorHandshake(I_S, R_PUB[:31], PSK, PROLOGUE, bytes(32))
    with pytest.raises(UsageError):
        ResponderHandshake(R_S, PSK, PROLOGUE, bytes(16))
    with pytest.raises(UsageError):
        ResponderHandshake(R_PUB, PSK, PROLOGUE, bytes(32))  # type: ignore[arg-type]
    i, _ = _pair()
    with pytest.raises(UsageError):
        i.write_message_1(bytes(65535))
    assert i.state is HandshakeState.READY


@pytest.mark.parametrize("low", LOW_ORDER, ids=lambda b: b.hex()[:8])
def test_low_order_remote_static_refused_by_initiator(low: bytes) -> None:
    i = InitiatorHandshake(I_S, low, PSK, PROLOGUE, bytes([3]) * 32)
    with pytest.raises(NoiseError, match="low-order"):
        i.write_message_1(b"")
    assert i.failed


@pytest.mark.parametrize("low", LOW_ORDER, ids=lambda b: b.hex()[:8])
def test_low_order_ephemeral_refused_by_responder(low: bytes) -> None:
    i, r = _pair()
    msg1 = i.write_message_1(b"")
    with pytest.raises(NoiseError, match="low-order"):
        r.read_message_1(low + msg1[32:])
    assert r.failed


@pytest.mark.parametrize("low", LOW_ORDER, ids=lambda b: b.hex()[:8])
def test_low_order_ephemeral_refused_by_initiator(low: bytes) -> None:
    i, r = _pair()
    r.read_message_1(i.write_message_1(b""))
    msg2 = r.write_message_2(b"")
    with pytest.raises(NoiseError, match="low-order"):
        i.read_message_2(low + msg2[32:])
    assert i.failed


def test_low_order_static_in_message_1_refused() -> None:
    """Message 1 carrying a validly encrypted but low-order static key is refused at the ss DH."""
    # Build message 1 by hand with a low-order static key, using our own symmetric layer.
    from omerta_mesh.core.noise.handshake import PROTOCOL_NAME

    e = _key(5)
    e_pub = e.public_key().public_bytes_raw()
    sym = SymmetricState(PROTOCOL_NAME)
    sym.mix_hash(PROLOGUE)
    sym.mix_hash(R_PUB)
    sym.mix_hash(e_pub)
    sym.mix_key(e_pub)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    sym.mix_key(e.exchange(X25519PublicKey.from_public_bytes(R_PUB)))
    msg1 = e_pub + sym.encrypt_and_hash(LOW_ORDER[2]) + bytes(16)
    _, r = _pair()
    with pytest.raises(NoiseError, match="low-order"):
        r.read_message_1(msg1)
    assert r.failed


@pytest.mark.parametrize("n", [0, 1, MSG1_OVERHEAD - 1])
def test_short_message_1(n: int) -> None:
    _, r = _pair()
    with pytest.raises(NoiseError):
        r.read_message_1(bytes(n))


@pytest.mark.parametrize("n", [0, MSG2_OVERHEAD - 1])
def test_short_message_2(n: int) -> None:
    i, _ = _pair()
    i.write_message_1(b"")
    with pytest.raises(NoiseError):
        i.read_message_2(bytes(n))


def test_oversized_message_refused() -> None:
    _, r = _pair()
    with pytest.raises(NoiseError):
        r.read_message_1(bytes(65536))


def test_cipher_state_pass_through_and_nonce() -> None:
    empty = CipherState(b"")
    assert not empty.has_key() and empty.encrypt_with_ad(b"ad", b"p") == b"p"
    k = CipherState(bytes(32))
    c0, c1 = k.encrypt_with_ad(b"", b"p"), k.encrypt_with_ad(b"", b"p")
    assert c0 != c1 and k.n == 2
    d = CipherState(bytes(32))
    with pytest.raises(NoiseError):
        d.decrypt_with_ad(b"", c1)  # wrong nonce
    assert d.n == 0  # nonce unchanged on failure
    assert d.decrypt_with_ad(b"", c0) == b"p" and d.decrypt_with_ad(b"", c1) == b"p"
    with pytest.raises(NoiseError):
        d.decrypt_with_ad(b"", b"short")
    k.n = 2**64 - 1
    with pytest.raises(NoiseError):
        k.encrypt_with_ad(b"", b"p")


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_garbage_message_1_only_raises_noise_error(garbage: bytes) -> None:
    _, r = _pair()
    with pytest.raises(NoiseError):
        r.read_message_1(garbage)
    assert r.failed


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_garbage_message_2_only_raises_noise_error(garbage: bytes) -> None:
    i, _ = _pair()
    i.write_message_1(b"")
    with pytest.raises(NoiseError):
        i.read_message_2(garbage)
    assert i.failed


@settings(max_examples=200)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_any_bit_flip_in_message_1_is_detected(pos: int, bit: int) -> None:
    i, r = _pair()
    msg1 = bytearray(i.write_message_1(b"payload"))
    msg1[pos % len(msg1)] ^= 1 << bit
    with pytest.raises(NoiseError):
        r.read_message_1(bytes(msg1))
