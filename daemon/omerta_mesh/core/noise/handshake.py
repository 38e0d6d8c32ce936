"""The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake (Noise revision 34), one object per side.

::

    IKpsk2:
      <- s
      ...
      -> e, es, s, ss          message 1: e (32) | enc(s) (32+16) | enc(payload) (len+16)
      <- e, ee, se, psk        message 2: e (32) | enc(payload) (len+16)

The initiator knows the responder's static key in advance; the responder learns the initiator's static key
from message 1 (``remote_static``) and can refuse an unknown peer before answering. ``psk`` is the network
key, so only members can complete a handshake. Ephemeral keys come from the caller as ``e_seed`` (32 random
bytes from the injected ``Entropy``), so a seeded simulation replays exactly.

State moves (anything else is our caller's mistake and raises ``UsageError``)::

    initiator: READY --write_message_1--> SENT_1 --read_message_2--> DONE
    responder: READY --read_message_1--> RECEIVED_1 --write_message_2--> DONE
    any step that raises NoiseError --> FAILED (terminal)

Remote input never escapes as anything but ``NoiseError``.
"""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..errors import UsageError
from .symmetric import HASHLEN, MAX_MESSAGE_LEN, TAGLEN, NoiseError, SymmetricState

PROTOCOL_NAME = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
DHLEN = 32
PSK_LEN = 32
MSG1_OVERHEAD = DHLEN + DHLEN + TAGLEN + TAGLEN  # 96
MSG2_OVERHEAD = DHLEN + TAGLEN  # 48

_ZERO_DH = bytes(DHLEN)


class HandshakeState(enum.Enum):
    READY = "ready"
    SENT_1 = "sent message 1"
    RECEIVED_1 = "received message 1"
    DONE = "done"
    FAILED = "failed"


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    """X25519, refusing low-order public keys (an all-zero shared secret) with ``NoiseError``."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # OpenSSL refuses an all-zero result
        raise NoiseError("DH with a low-order public key") from None
    if shared == _ZERO_DH:
        raise NoiseError("DH with a low-order public key")
    return shared


def _check_bytes(name: str, value: object, length: int | None = None) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise UsageError(f"{name} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if length is not None and len(value) != length:
        raise UsageError(f"{name} must be {length} bytes, not {len(value)}")
    return value


class _Handshake:
    """State shared by both roles. Subclasses list their legal moves in ``_MOVES``."""

    _MOVES: dict[str, tuple[HandshakeState, HandshakeState]] = {}

    def __init__(self, s_private: X25519PrivateKey, psk: bytes, prologue: bytes, e_seed: bytes) -> None:
        if not isinstance(s_private, X25519PrivateKey):
            raise UsageError("s_private must be an X25519PrivateKey")
        self._s = s_private
        self._psk = _check_bytes("psk", psk, PSK_LEN)
        self._e_seed: bytes | None = _check_bytes("e_seed", e_seed, DHLEN)
        self._sym: SymmetricState | None = SymmetricState(PROTOCOL_NAME)
        self._sym.mix_hash(_check_bytes("prologue", prologue))
        self._state = HandshakeState.READY
        self._keys: tuple[bytes, bytes] | None = None
        self._hash: bytes | None = None

    # -- state ------------------------------------------------------------------------------------------

    @property
    def state(self) -> HandshakeState:
        return self._state

    @property
    def failed(self) -> bool:
        return self._state is HandshakeState.FAILED

    @property
    def done(self) -> bool:
        return self._state is HandshakeState.DONE

    @property
    def handshake_hash(self) -> bytes:
        """The final handshake hash ``h`` (channel binding); available once the handshake is done."""
        if self._hash is None:
            raise UsageError(f"the handshake hash is known only when the handshake is done (it is {self._state.value})")
        return self._hash

    def split(self) -> tuple[bytes, bytes]:
        """``(send_key, recv_key)`` for this side; available once the handshake is done."""
        if self._keys is None:
            raise UsageError(f"transport keys exist only when the handshake is done (it is {self._state.value})")
        return self._keys

    def _begin(self, move: str) -> SymmetricState:
        """Check that ``move`` is legal now and return the symmetric state to work on."""
        before, _ = self._MOVES[move]
        if self._state is not before:
            raise UsageError(f"cannot {move.replace('_', ' ')}: the handshake is {self._state.value}, not {before.value}")
        assert self._sym is not None
        return self._sym

    def _end(self, move: str) -> None:
        self._state = self._MOVES[move][1]

    def _fail(self) -> None:
        self._state = HandshakeState.FAILED
        self._release()

    def _finish(self, move: str, initiator: bool) -> None:
        assert self._sym is not None
        k1, k2 = self._sym.split()
        self._keys = (k1, k2) if initiator else (k2, k1)
        self._hash = self._sym.h
        self._end(move)
        self._release()

    def _release(self) -> None:
        """Drop handshake secrets that are no longer needed."""
        self._sym = None
        self._e_seed = None

    def _ephemeral(self) -> tuple[X25519PrivateKey, bytes]:
        assert self._e_seed is not None
        e = X25519PrivateKey.from_private_bytes(self._e_seed)
        return e, e.public_key().public_bytes_raw()


class InitiatorHandshake(_Handshake):
    """The side that knows the responder's static key and sends message 1."""

    _MOVES = {
        "write_message_1": (HandshakeState.READY, HandshakeState.SENT_1),
        "read_message_2": (HandshakeState.SENT_1, HandshakeState.DONE),
    }

    def __init__(
        self, s_private: X25519PrivateKey, rs_public: bytes, psk: bytes, prologue: bytes, e_seed: bytes
    ) -> None:
        super().__init__(s_private, psk, prologue, e_seed)
        self._rs = _check_bytes("rs_public", rs_public, DHLEN)
        self._e: X25519PrivateKey | None = None
        assert self._sym is not None
        self._sym.mix_hash(self._rs)  # pre-message "<- s"

    def write_message_1(self, payload: bytes) -> bytes:
        """``-> e, es, s, ss`` with ``payload`` encrypted; returns the message bytes."""
        sym = self._begin("write_message_1")
        payload = _check_bytes("payload", payload)
        if len(payload) + MSG1_OVERHEAD > MAX_MESSAGE_LEN:
            raise UsageError(f"payload too large: at most {MAX_MESSAGE_LEN - MSG1_OVERHEAD} bytes in message 1")
        try:
            e, e_pub = self._ephemeral()
            sym.mix_hash(e_pub)
            sym.mix_key(e_pub)  # psk modifier: "e" also calls MixKey
            sym.mix_key(_dh(e, self._rs))  # es
            enc_s = sym.encrypt_and_hash(self._s.public_key().public_bytes_raw())
            sym.mix_key(_dh(self._s, self._rs))  # ss
            enc_payload = sym.encrypt_and_hash(payload)
        except NoiseError:
            self._fail()
            raise
        self._e = e
        self._end("write_message_1")
        return b"".join((e_pub, enc_s, enc_payload))

    def read_message_2(self, msg: bytes) -> bytes:
        """``<- e, ee, se, psk``; returns the decrypted payload or raises ``NoiseError``."""
        sym = self._begin("read_message_2")
        msg = _check_bytes("msg", msg)
        try:
            if not MSG2_OVERHEAD <= len(msg) <= MAX_MESSAGE_LEN:
                raise NoiseError(f"message 2 has bad length {len(msg)}")
            assert self._e is not None
            re = msg[:DHLEN]
            sym.mix_hash(re)
            sym.mix_key(re)
            sym.mix_key(_dh(self._e, re))  # ee
            sym.mix_key(_dh(self._s, re))  # se (initiator: DH(s, re))
            sym.mix_key_and_hash(self._psk)  # psk
            payload = sym.decrypt_and_hash(msg[DHLEN:])
        except NoiseError:
            self._fail()
            raise
        self._finish("read_message_2", initiator=True)
        return payload

    def _release(self) -> None:
        super()._release()
        self._e = None


class ResponderHandshake(_Handshake):
    """The side that receives message 1, learns the initiator's static key, and answers."""

    _MOVES = {
        "read_message_1": (HandshakeState.READY, HandshakeState.RECEIVED_1),
        "write_message_2": (HandshakeState.RECEIVED_1, HandshakeState.DONE),
    }

    def __init__(self, s_private: X25519PrivateKey, psk: bytes, prologue: bytes, e_seed: bytes) -> None:
        super().__init__(s_private, psk, prologue, e_seed)
        self._re: bytes | None = None
        self._rs: bytes | None = None
        assert self._sym is not None
        self._sym.mix_hash(s_private.public_key().public_bytes_raw())  # pre-message "<- s"

    @property
    def remote_static(self) -> bytes:
        """The initiator's X25519 static public key, known after ``read_message_1``."""
        if self._rs is None:
            raise UsageError(f"the remote static key is known only after message 1 (the handshake is {self._state.value})")
        return self._rs

    def read_message_1(self, msg: bytes) -> bytes:
        """``-> e, es, s, ss``; returns the decrypted payload or raises ``NoiseError``."""
        sym = self._begin("read_message_1")
        msg = _check_bytes("msg", msg)
        try:
            if not MSG1_OVERHEAD <= len(msg) <= MAX_MESSAGE_LEN:
                raise NoiseError(f"message 1 has bad length {len(msg)}")
            re = msg[:DHLEN]
            sym.mix_hash(re)
            sym.mix_key(re)
            sym.mix_key(_dh(self._s, re))  # es (responder: DH(s, re))
            rs = sym.decrypt_and_hash(msg[DHLEN : 2 * DHLEN + TAGLEN])
            sym.mix_key(_dh(self._s, rs))  # ss
            payload = sym.decrypt_and_hash(msg[2 * DHLEN + TAGLEN :])
        except NoiseError:
            self._fail()
            raise
        self._re, self._rs = re, rs
        self._end("read_message_1")
        return payload

    def write_message_2(self, payload: bytes) -> bytes:
        """``<- e, ee, se, psk`` with ``payload`` encrypted; returns the message bytes."""
        sym = self._begin("write_message_2")
        payload = _check_bytes("payload", payload)
        if len(payload) + MSG2_OVERHEAD > MAX_MESSAGE_LEN:
            raise UsageError(f"payload too large: at most {MAX_MESSAGE_LEN - MSG2_OVERHEAD} bytes in message 2")
        assert self._re is not None and self._rs is not None
        try:
            e, e_pub = self._ephemeral()
            sym.mix_hash(e_pub)
            sym.mix_key(e_pub)
            sym.mix_key(_dh(e, self._re))  # ee
            sym.mix_key(_dh(e, self._rs))  # se (responder: DH(e, rs))
            sym.mix_key_and_hash(self._psk)  # psk
            enc_payload = sym.encrypt_and_hash(payload)
        except NoiseError:
            self._fail()
            raise
        self._finish("write_message_2", initiator=False)
        return e_pub + enc_payload


__all__ = [
    "DHLEN",
    "HASHLEN",
    "MSG1_OVERHEAD",
    "MSG2_OVERHEAD",
    "PROTOCOL_NAME",
    "HandshakeState",
    "InitiatorHandshake",
    "NoiseError",
    "ResponderHandshake",
]
