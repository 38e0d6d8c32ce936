"""A node's long-term identity: an Ed25519 key pair, and the same key used for X25519.

* The node id is the Ed25519 public key (see ``ids.NodeId``). Records are signed with Ed25519.
* The Noise handshake needs an X25519 key. It is derived from the same seed exactly as libsodium's
  ``crypto_sign_ed25519_sk_to_curve25519`` does (first 32 bytes of SHA-512(seed), clamped), and a peer's
  X25519 public key is derived from its node id as ``crypto_sign_ed25519_pk_to_curve25519`` does. So a
  node id alone is enough to start a handshake with that node.
* The identity file codec turns an identity into a small versioned text and back. It does no file I/O;
  the caller writes the bytes atomically with mode 0600.

Randomness is never generated here: ``Identity.generate`` takes an injected ``Entropy``.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .entropy import Entropy
from .ids import NodeId, b32decode

SEED_LEN = 32
PUBLIC_LEN = 32
SIGNATURE_LEN = 64

# --- Edwards25519 arithmetic (pure Python, used only when a peer's key is loaded) -------------------------

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_L = 2**252 + 27742317777372353535851937790883648493  # order of the prime-order subgroup
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
_IDENTITY: _Point = (0, 1, 1, 0)


def _point_add(p: _Point, q: _Point) -> _Point:
    """Complete twisted-Edwards addition (RFC 8032, section 5.1.4); also correct for doubling."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _scalar_mult(k: int, p: _Point) -> _Point:
    q = _IDENTITY
    while k:
        if k & 1:
            q = _point_add(q, p)
        p = _point_add(p, p)
        k >>= 1
    return q


def _is_identity(p: _Point) -> bool:
    return p[0] % _P == 0 and (p[1] - p[2]) % _P == 0


def _decode_point(public: bytes) -> tuple[int, _Point]:
    """Decode a compressed Edwards point; return (y, point). Raises ValueError for invalid encodings."""
    enc = int.from_bytes(public, "little")
    sign = enc >> 255
    y = enc & ((1 << 255) - 1)
    if y >= _P:
        raise ValueError("Ed25519 public key is not canonical (y >= 2^255-19)")
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        if sign:
            raise ValueError("Ed25519 public key is not canonical (x = 0 with the sign bit set)")
        x = 0
    else:
        x = pow(x2, (_P + 3) // 8, _P)
        if (x * x - x2) % _P:
            x = x * _SQRT_M1 % _P
        if (x * x - x2) % _P:
            raise ValueError("Ed25519 public key is not a point on the curve")
        if (x & 1) != sign:
            x = _P - x
    return y, (x, y, 1, x * y % _P)


_CONVERTED: dict[bytes, bytes | str] = {}  # memo, the X25519 key or why not (pure: same key, same answer): a
_CONVERTED_MAX = 8192  # process of many nodes (the simulator) converts each key once, not once per node meeting it


def ed25519_public_to_x25519(public: bytes) -> bytes:
    """Map an Ed25519 public key to the X25519 public key of the same secret: u = (1+y)/(1-y) mod p.

    Like libsodium's ``crypto_sign_ed25519_pk_to_curve25519`` this refuses (with ``ValueError``) keys that
    no honest node has: non-canonical encodings, points not on the curve, the identity and other
    small-order points, and points outside the prime-order subgroup.
    """
    if not isinstance(public, (bytes, bytearray)) or len(public) != PUBLIC_LEN:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_LEN} bytes")
    key = bytes(public)
    hit = _CONVERTED.get(key)
    if hit is None:
        try:
            hit = _to_x25519(key)
        except ValueError as e:
            hit = str(e)
        if len(_CONVERTED) >= _CONVERTED_MAX:
            _CONVERTED.clear()
        _CONVERTED[key] = hit
    if isinstance(hit, str):
        raise ValueError(hit)
    return hit


def _to_x25519(public: bytes) -> bytes:
    y, point = _decode_point(public)
    if _is_identity(_scalar_mult(8, point)):
        raise ValueError("Ed25519 public key has small order (identity or torsion point)")
    if not _is_identity(_scalar_mult(_L, point)):
        raise ValueError("Ed25519 public key is not in the prime-order subgroup")
    u = (1 + y) * pow((1 - y) % _P, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


def binds_x25519(ed_public: bytes, x25519_public: bytes) -> bool:
    """Whether ``x25519_public`` is the Montgomery form of ``ed_public``'s y: u(1-y) = 1+y (mod p), two
    multiplications and no inversion, so a handshake from a fresh identity costs no curve arithmetic. It
    says nothing about ``ed_public`` being a key an honest node has: ``ed25519_public_to_x25519`` checks that
    (about 1.5 ms in pure Python), once the peer sends authenticated traffic."""
    if len(ed_public) != PUBLIC_LEN or len(x25519_public) != PUBLIC_LEN:
        return False
    y = int.from_bytes(ed_public, "little") & ((1 << 255) - 1)
    u = int.from_bytes(x25519_public, "little")
    return y < _P and u < _P and u * (1 - y) % _P == (1 + y) % _P


def _x25519_scalar(seed: bytes) -> bytes:
    """libsodium's ``crypto_sign_ed25519_sk_to_curve25519``: SHA-512(seed)[:32], clamped."""
    h = hashes.Hash(hashes.SHA512())
    h.update(seed)
    k = bytearray(h.finalize()[:32])
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


# --- identity ---------------------------------------------------------------------------------------------


class Identity:
    """An Ed25519 identity and the X25519 key derived from it. Immutable; ``repr`` never shows the seed."""

    __slots__ = ("_seed", "_signer", "_public", "_x25519_private", "_x25519_public")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_LEN:
            raise ValueError(f"an identity seed is {SEED_LEN} bytes")
        self._seed = bytes(seed)
        self._signer = Ed25519PrivateKey.from_private_bytes(self._seed)
        self._public = self._signer.public_key().public_bytes_raw()
        self._x25519_private = X25519PrivateKey.from_private_bytes(_x25519_scalar(self._seed))
        self._x25519_public = self._x25519_private.public_key().public_bytes_raw()

    @classmethod
    def from_seed(cls, seed32: bytes) -> "Identity":
        """The identity whose Ed25519 seed (RFC 8032 private key) is ``seed32``."""
        return cls(seed32)

    @classmethod
    def generate(cls, entropy: Entropy) -> "Identity":
        """A new identity from 32 bytes of the injected entropy."""
        return cls(entropy.random_bytes(SEED_LEN))

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def public(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public

    @property
    def node_id(self) -> NodeId:
        return NodeId(self._public)

    @property
    def x25519_private(self) -> X25519PrivateKey:
        return self._x25519_private

    @property
    def x25519_public(self) -> bytes:
        """The 32-byte X25519 public key; equals ``ed25519_public_to_x25519(self.public)``."""
        return self._x25519_public

    def sign(self, msg: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``msg``."""
        return self._signer.sign(msg)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other._seed == self._seed

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"Identity({self.node_id.short()})"


def verify_signature(public: bytes, msg: bytes, sig: bytes) -> bool:
    """True iff ``sig`` is a valid Ed25519 signature of ``msg`` by ``public``. Never raises."""
    try:
        if len(public) != PUBLIC_LEN or len(sig) != SIGNATURE_LEN:
            return False
        Ed25519PublicKey.from_public_bytes(bytes(public)).verify(bytes(sig), bytes(msg))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


# --- identity file codec ----------------------------------------------------------------------------------
#
#   omerta-identity v1\n
#   seed: <standard base64 of the 32-byte seed>\n
#   node-id: <node id text, 52 base32 characters>\n
#
# The node id is redundant; it lets an admin see whose key the file holds, and decoding checks it against
# the seed so a damaged or hand-edited file is refused instead of silently becoming another identity.

IDENTITY_MAGIC = "omerta-identity"
IDENTITY_VERSION = "v1"
_MAX_IDENTITY_FILE = 4096


def encode_identity(identity: Identity) -> bytes:
    """The identity file contents for ``identity``."""
    seed = base64.b64encode(identity.seed).decode("ascii")
    return f"{IDENTITY_MAGIC} {IDENTITY_VERSION}\nseed: {seed}\nnode-id: {identity.node_id.text()}\n".encode("ascii")


def decode_identity(data: bytes) -> Identity:
    """Parse an identity file. Raises ``ValueError`` naming what is wrong with malformed input."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError("identity file contents must be bytes")
    if len(data) > _MAX_IDENTITY_FILE:
        raise ValueError(f"identity file is too large ({len(data)} bytes; expected under {_MAX_IDENTITY_FILE})")
    try:
        text = bytes(data).decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("identity file is not ASCII text") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError("identity file is empty")
    header = lines[0].split()
    if len(header) != 2 or header[0] != IDENTITY_MAGIC:
        raise ValueError(f"not an identity file: first line must be {IDENTITY_MAGIC!r} followed by a version")
    if header[1] != IDENTITY_VERSION:
        raise ValueError(f"unsupported identity file version {header[1]!r} (this build reads {IDENTITY_VERSION})")
    fields: dict[str, str] = {}
    for n, line in enumerate(lines[1:], start=2):
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"identity file line {n} is not 'name: value'")
        if name not in ("seed", "node-id"):
            raise ValueError(f"identity file line {n} has unknown field {name!r}")
        if name in fields:
            raise ValueError(f"identity file has field {name!r} twice")
        fields[name] = value.strip()
    for name in ("seed", "node-id"):
        if name not in fields:
            raise ValueError(f"identity file has no {name!r} field")
    try:
        seed = base64.b64decode(fields["seed"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("identity file 'seed' is not valid base64") from None
    if len(seed) != SEED_LEN:
        raise ValueError(f"identity file 'seed' is {len(seed)} bytes; expected {SEED_LEN}")
    try:
        public = b32decode(fields["node-id"])
    except ValueError:
        raise ValueError("identity file 'node-id' is not valid base32") from None
    if len(public) != PUBLIC_LEN:
        raise ValueError(f"identity file 'node-id' is {len(public)} bytes; expected {PUBLIC_LEN}")
    identity = Identity(seed)
    if identity.public != public:
        raise ValueError("identity file 'node-id' does not match its seed (the file is damaged or was edited)")
    return identity
