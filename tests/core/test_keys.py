"""Node identity: Ed25519 keys, the libsodium-compatible X25519 conversion, and the identity file codec."""

from __future__ import annotations

import base64

import nacl.bindings as sodium
import nacl.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.entropy import SeededEntropy
from omerta_mesh.core.ids import NodeId
from omerta_mesh.core.keys import (
    Identity,
    binds_x25519,
    decode_identity,
    ed25519_public_to_x25519,
    encode_identity,
    verify_signature,
)

P = 2**255 - 19
seeds = st.binary(min_size=32, max_size=32)


def _nacl_pk_to_curve(pk: bytes) -> bytes | None:
    try:
        return sodium.crypto_sign_ed25519_pk_to_curve25519(pk)
    except nacl.exceptions.RuntimeError:
        return None


def _ours(pk: bytes) -> bytes | None:
    try:
        return ed25519_public_to_x25519(pk)
    except ValueError:
        return None


# --- conversion matches libsodium ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(seeds)
def test_conversion_matches_libsodium(seed: bytes) -> None:
    ident = Identity.from_seed(seed)
    pk, sk = sodium.crypto_sign_seed_keypair(seed)
    assert ident.public == pk
    assert ident.x25519_private.private_bytes_raw() == sodium.crypto_sign_ed25519_sk_to_curve25519(sk)
    assert ed25519_public_to_x25519(ident.public) == sodium.crypto_sign_ed25519_pk_to_curve25519(pk)


@settings(max_examples=100)
@given(seeds)
def test_derived_public_equals_public_of_derived_private(seed: bytes) -> None:
    ident = Identity.from_seed(seed)
    assert ident.x25519_public == ident.x25519_private.public_key().public_bytes_raw()
    assert ident.x25519_public == ed25519_public_to_x25519(ident.public)


@settings(max_examples=50)
@given(seeds, seeds)
def test_dh_between_identities_agrees(seed_a: bytes, seed_b: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    a, b = Identity.from_seed(seed_a), Identity.from_seed(seed_b)
    ab = a.x25519_private.exchange(X25519PublicKey.from_public_bytes(ed25519_public_to_x25519(b.public)))
    ba = b.x25519_private.exchange(X25519PublicKey.from_public_bytes(ed25519_public_to_x25519(a.public)))
    assert ab == ba


@settings(max_examples=300)
@given(st.binary(min_size=32, max_size=32))
def test_arbitrary_points_accepted_or_refused_like_libsodium(pk: bytes) -> None:
    y = int.from_bytes(pk, "little") & ((1 << 255) - 1)
    if y >= P:
        assert _ours(pk) is None  # we refuse every non-canonical encoding
    else:
        assert _ours(pk) == _nacl_pk_to_curve(pk)


def _small_order_encodings() -> list[bytes]:
    # y = 1 (identity), y = -1 (order 2), y = 0 (order 4, both signs), and the order-8 points.
    out = [(1).to_bytes(32, "little"), (P - 1).to_bytes(32, "little"), bytes(32), bytes(31) + b"\x80"]
    out.append(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))
    out.append(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))
    return out


@pytest.mark.parametrize("pk", _small_order_encodings(), ids=lambda b: b.hex()[:8])
def test_small_order_points_refused(pk: bytes) -> None:
    with pytest.raises(ValueError):
        ed25519_public_to_x25519(pk)
    assert _nacl_pk_to_curve(pk) is None


@pytest.mark.parametrize("y", [P, P + 1, P + 2, 2**255 - 1])
def test_non_canonical_y_refused(y: int) -> None:
    with pytest.raises(ValueError, match="canonical"):
        ed25519_public_to_x25519(y.to_bytes(32, "little"))


def test_point_not_on_curve_refused() -> None:
    y = 2
    while True:  # first y with no x on the curve
        pk = y.to_bytes(32, "little")
        if _nacl_pk_to_curve(pk) is None and _ours(pk) is None:
            break
        y += 1
    with pytest.raises(ValueError, match="not a point on the curve"):
        ed25519_public_to_x25519(pk)


def test_mixed_order_point_refused() -> None:
    # A valid public key plus an order-8 torsion point: on the curve, not small order, not in the subgroup.
    from omerta_mesh.core import keys

    _, good = keys._decode_point(Identity.from_seed(bytes(32)).public)
    _, torsion = keys._decode_point(_small_order_encodings()[4])
    x, y, z, _ = keys._point_add(good, torsion)
    zi = pow(z, P - 2, P)
    xa, ya = x * zi % P, y * zi % P
    pk = (ya | ((xa & 1) << 255)).to_bytes(32, "little")
    with pytest.raises(ValueError, match="prime-order subgroup"):
        ed25519_public_to_x25519(pk)
    assert _nacl_pk_to_curve(pk) is None


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "x" * 32])
def test_conversion_refuses_wrong_length(bad: object) -> None:
    with pytest.raises(ValueError):
        ed25519_public_to_x25519(bad)  # type: ignore[arg-type]


# --- identity ----------------------------------------------------------------------------------------------


def test_generate_uses_entropy_and_node_id() -> None:
    a = Identity.generate(SeededEntropy(7))
    b = Identity.generate(SeededEntropy(7))
    assert a == b and a.seed == SeededEntropy(7).random_bytes(32)
    assert a.node_id == NodeId(a.public)
    assert a.seed.hex() not in repr(a)
    assert Identity.generate(SeededEntropy(8)) != a


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33)])
def test_from_seed_refuses_wrong_length(bad: bytes) -> None:
    with pytest.raises(ValueError):
        Identity.from_seed(bad)


@settings(max_examples=50)
@given(seeds, st.binary(max_size=200))
def test_sign_verify(seed: bytes, msg: bytes) -> None:
    ident = Identity.from_seed(seed)
    sig = ident.sign(msg)
    assert len(sig) == 64
    assert sig == sodium.crypto_sign(msg, seed + ident.public)[:64]
    assert verify_signature(ident.public, msg, sig)
    flipped = bytearray(sig)
    flipped[len(msg) % 64] ^= 0x01
    assert not verify_signature(ident.public, msg, bytes(flipped))
    assert not verify_signature(ident.public, msg + b"x", sig)
    other = Identity.from_seed(bytes(b ^ 0xFF for b in seed))
    assert not verify_signature(other.public, msg, sig)


@pytest.mark.parametrize(
    "public,sig",
    [(b"", bytes(64)), (bytes(31), bytes(64)), (bytes(33), bytes(64)), (None, bytes(64)), (b"\xff" * 32, b"")],
)
def test_verify_rejects_garbage_without_raising(public: object, sig: bytes) -> None:
    ident = Identity.from_seed(bytes(range(32)))
    pub = ident.public if public is None else public
    good = ident.sign(b"m")
    assert not verify_signature(pub, b"m", sig)  # type: ignore[arg-type]
    assert not verify_signature(ident.public, b"m", good[:63])
    assert not verify_signature(ident.public, b"m", good + b"\0")
    assert not verify_signature(b"\xff" * 32, b"m", good)
    assert not verify_signature(ident.public, None, good)  # type: ignore[arg-type]
    assert not verify_signature(ident.public, b"m", None)  # type: ignore[arg-type]


# --- identity file codec --------------------------------------------------------------------------------------


@settings(max_examples=50)
@given(seeds)
def test_identity_file_round_trip(seed: bytes) -> None:
    ident = Identity.from_seed(seed)
    data = encode_identity(ident)
    assert data.startswith(b"omerta-identity v1\n")
    assert decode_identity(data) == ident
    assert decode_identity(data.replace(b"\n", b"\r\n")) == ident
    assert decode_identity(data + b"\n\n") == ident


def _good() -> tuple[Identity, str]:
    ident = Identity.from_seed(bytes(range(32)))
    return ident, encode_identity(ident).decode()


def _malformed() -> list[tuple[str, object, str]]:
    ident, text = _good()
    seed64 = base64.b64encode(ident.seed).decode()
    other = Identity.from_seed(bytes(32))
    return [
        ("empty", b"", "empty"),
        ("blank", b"\n\n", "empty"),
        ("not bytes", text, "must be bytes"),
        ("not ascii", text.encode() + "é".encode(), "not ASCII"),
        ("too large", b"omerta-identity v1\n" + b"#" * 5000, "too large"),
        ("bad magic", text.replace("omerta-identity", "wireguard").encode(), "not an identity file"),
        ("no version", b"omerta-identity\nseed: x\n", "not an identity file"),
        ("future version", text.replace(" v1", " v2").encode(), "unsupported identity file version"),
        ("line without colon", text.replace("seed: ", "seed ").encode(), "not 'name: value'"),
        ("unknown field", (text + "comment: hi\n").encode(), "unknown field"),
        ("duplicate field", (text + f"seed: {seed64}\n").encode(), "twice"),
        ("missing seed", "\n".join(ln for ln in text.splitlines() if not ln.startswith("seed")).encode(), "no 'seed'"),
        ("missing node-id", "\n".join(ln for ln in text.splitlines() if not ln.startswith("node")).encode(), "no 'node-id'"),
        ("seed not base64", text.replace(seed64, "!!" + seed64[2:]).encode(), "not valid base64"),
        ("seed short", text.replace(seed64, base64.b64encode(ident.seed[:31]).decode()).encode(), "31 bytes"),
        ("node-id not base32", text.replace(ident.node_id.text(), "1" * 52).encode(), "not valid base32"),
        ("node-id short", text.replace(ident.node_id.text(), ident.node_id.text()[:40]).encode(), "expected 32"),
        ("node-id mismatch", text.replace(ident.node_id.text(), other.node_id.text()).encode(), "does not match"),
    ]


@pytest.mark.parametrize("name,data,message", _malformed(), ids=[m[0] for m in _malformed()])
def test_identity_file_malformed(name: str, data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_identity(data)  # type: ignore[arg-type]


# --- the handshake's cheap binding check ----------------------------------------------------------------------


@settings(max_examples=100)
@given(seeds, seeds)
def test_binding_check_agrees_with_the_conversion(seed_a: bytes, seed_b: bytes) -> None:
    """binds_x25519 (no inversion) accepts exactly the X25519 form of the same key, never another's."""
    a, b = Identity.from_seed(seed_a), Identity.from_seed(seed_b)
    xa = a.x25519_private.public_key().public_bytes_raw()
    assert binds_x25519(a.public, xa)
    assert binds_x25519(a.public, ed25519_public_to_x25519(a.public))
    assert binds_x25519(b.public, xa) == (seed_a == seed_b)
    flipped = bytes([xa[0] ^ 1]) + xa[1:]
    assert not binds_x25519(a.public, flipped)


def test_binding_check_refuses_non_canonical_and_short_input() -> None:
    a = Identity.from_seed(bytes(32))
    xa = a.x25519_private.public_key().public_bytes_raw()
    u = int.from_bytes(xa, "little")
    assert not binds_x25519(a.public, (u + P).to_bytes(32, "little"))  # the same u, not reduced
    assert not binds_x25519(a.public[:31], xa) and not binds_x25519(a.public, xa[:31])
