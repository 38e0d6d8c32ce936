"""The symmetric layer of the Noise Protocol Framework (revision 34, sections 4 and 5.1-5.2).

Fixed to ChaChaPoly and BLAKE2s (HASHLEN 32):

* ``HASH`` is BLAKE2s-256.
* ``HKDF(ck, ikm, n)`` is RFC 5869 HKDF with HMAC-BLAKE2s, salt = chaining key and empty info, giving
  n * 32 bytes split into n outputs. That is exactly Noise's HMAC-chain definition.
* ``ENCRYPT(k, n, ad, p)`` is ChaCha20-Poly1305 (RFC 8439) with the 96-bit nonce made of 4 zero bytes and
  the 64-bit counter ``n`` little-endian.

A ``NoiseError`` is raised on every authentication failure and on bad lengths. Callers on the receive
path turn it into a counted drop.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import MeshError

HASHLEN = 32
KEYLEN = 32
TAGLEN = 16
MAX_NONCE = 2**64 - 1  # reserved by the spec; never used to encrypt
MAX_MESSAGE_LEN = 65535

_NONCE = struct.Struct("<4xQ")
_BLAKE2S = hashes.BLAKE2s(HASHLEN)


class NoiseError(MeshError):
    """A Noise message failed authentication or had a bad length, or a DH result was all zeros."""


def nonce_bytes(n: int) -> bytes:
    """The 12-byte ChaChaPoly nonce for counter ``n``: 4 zero bytes, then ``n`` as 8 bytes little-endian."""
    return _NONCE.pack(n)


def blake2s(*parts: bytes) -> bytes:
    """BLAKE2s-256 of the concatenation of ``parts`` (without building the concatenation)."""
    h = hashes.Hash(_BLAKE2S)
    for part in parts:
        h.update(part)
    return h.finalize()


def hkdf(chaining_key: bytes, ikm: bytes, num_outputs: int) -> tuple[bytes, ...]:
    """Noise's ``HKDF(ck, ikm, num_outputs)`` for num_outputs 2 or 3."""
    out = HKDF(algorithm=_BLAKE2S, length=HASHLEN * num_outputs, salt=chaining_key, info=b"").derive(ikm)
    return tuple(out[i : i + HASHLEN] for i in range(0, len(out), HASHLEN))


class CipherState:
    """A key (possibly empty) and a 64-bit nonce. With an empty key, encryption and decryption pass data through."""

    __slots__ = ("_aead", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self._aead: ChaCha20Poly1305 | None = None
        self.n = 0
        self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        """Set the key (``None`` or ``b""`` means empty) and reset the nonce to zero."""
        if key:
            if len(key) != KEYLEN:
                raise ValueError(f"a ChaChaPoly key is {KEYLEN} bytes")
            self._aead = ChaCha20Poly1305(key)
        else:
            self._aead = None
        self.n = 0

    def has_key(self) -> bool:
        return self._aead is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._aead is None:
            return plaintext
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce exhausted; the key must be replaced")
        ciphertext = self._aead.encrypt(_NONCE.pack(self.n), plaintext, ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt and authenticate; on failure raise ``NoiseError`` and leave the nonce unchanged."""
        if self._aead is None:
            return ciphertext
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce exhausted; the key must be replaced")
        if len(ciphertext) < TAGLEN:
            raise NoiseError("ciphertext shorter than the authentication tag")
        try:
            plaintext = self._aead.decrypt(_NONCE.pack(self.n), ciphertext, ad)
        except InvalidTag:
            raise NoiseError("authentication failed") from None
        self.n += 1
        return plaintext


class SymmetricState:
    """The chaining key ``ck``, the handshake hash ``h`` and the handshake ``CipherState``."""

    __slots__ = ("ck", "h", "cipher")

    def __init__(self, protocol_name: bytes | None = None) -> None:
        self.ck = b""
        self.h = b""
        self.cipher = CipherState()
        if protocol_name is not None:
            self.initialize(protocol_name)

    def initialize(self, protocol_name: bytes) -> None:
        """``InitializeSymmetric``: h = name padded to HASHLEN, or HASH(name) if longer; ck = h; empty key."""
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\0")
        else:
            self.h = blake2s(protocol_name)
        self.ck = self.h
        self.cipher.initialize_key(None)

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_k = hkdf(self.ck, input_key_material, 2)
        self.cipher.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = blake2s(self.h, data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        self.ck, temp_h, temp_k = hkdf(self.ck, input_key_material, 3)
        self.mix_hash(temp_h)
        self.cipher.initialize_key(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        """The two transport keys (k1 for initiator-to-responder, k2 for responder-to-initiator)."""
        k1, k2 = hkdf(self.ck, b"", 2)
        return k1, k2
