"""What certificates and revocations (certs.py, revocations.py) share: an issuer's Ed25519 signature over a
context string and the body, and the rules that an unsigned item has no wire form and that only the issuer
it names may sign it. Keys and signatures are ``keys.Identity`` and ``keys.verify_signature`` (cryptography)."""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any, Callable, Protocol, TypeVar

from ..errors import DropReason, UsageError, WireError
from ..ids import NodeId
from ..keys import SIGNATURE_LEN, Identity, verify_signature


class Signable(Protocol):  # (read-only members: frozen dataclasses fit)
    @property
    def issuer(self) -> NodeId: ...

    @property
    def signature(self) -> bytes: ...

    def body(self) -> bytes: ...


S = TypeVar("S", bound=Signable)


def wire_form(item: Signable, what: str, signer: str) -> bytes:
    if len(item.signature) != SIGNATURE_LEN:
        raise UsageError(f"an unsigned {what} has no wire form: sign it with {signer} first")
    return item.body() + item.signature


def verifies(item: Signable, context: bytes) -> bool:
    """Whether ``item``'s signature verifies under its issuer's key; False for fields with no wire form."""
    try:
        return verify_signature(item.issuer.raw, context + item.body(), item.signature)
    except ValueError:
        return False


def sign_as(issuer: Identity, item: S, context: bytes, what: str) -> S:
    """``item`` signed by ``issuer``, the issuer it must name. UsageError says which field cannot be carried."""
    if item.issuer != issuer.node_id:
        raise UsageError(f"{what} names issuer {item.issuer.short()}, but {issuer.node_id.short()} is signing it")
    try:
        body = item.body()
    except ValueError as e:
        raise UsageError(f"cannot sign this {what}: {e}") from None
    return replace(item, signature=issuer.sign(context + body))  # type: ignore[type-var]


def decode_signed(data: bytes, layout: struct.Struct, version: int, build: Callable[[tuple[Any, ...], bytes], S], reason: DropReason,
                  what: str) -> S:
    """A fixed-length signed item: ``layout`` (its first field the version) then the signature; ``build`` makes the
    item from the other fields and the signature. WireError (``reason``) for a wrong length or version, or a field
    its ``body`` refuses; the signature is not verified here."""
    if len(data) != layout.size + SIGNATURE_LEN:
        raise WireError(reason, f"{what} of {len(data)} bytes, not {layout.size + SIGNATURE_LEN}")
    data = bytes(data)
    fields = layout.unpack_from(data)
    if fields[0] != version:
        raise WireError(reason, f"{what} version {fields[0]}")
    item = build(fields[1:], data[layout.size :])
    try:
        item.body()
    except ValueError as e:
        raise WireError(reason, str(e)) from None
    return item
