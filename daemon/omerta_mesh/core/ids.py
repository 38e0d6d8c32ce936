"""Node and network identifiers and their text forms.

* A node id is the node's Ed25519 public key (32 bytes). Text form: lowercase unpadded base32 (52 chars).
  Any unique prefix of at least ``MIN_PREFIX`` characters, or a peer name, resolves to it.
* A network id is a short hash of the network key (10 bytes). Text form: lowercase base32 (16 chars).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Iterable, Mapping

from .errors import UsageError

MIN_PREFIX = 8


def b32encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    t = text.strip().upper()
    t += "=" * (-len(t) % 8)
    try:
        return base64.b32decode(t)
    except (ValueError, base64.binascii.Error) as e:  # type: ignore[attr-defined]
        raise ValueError(f"not base32: {text!r}") from e


@dataclass(frozen=True, order=True, slots=True)
class NodeId:
    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError("a node id is 32 bytes")

    @classmethod
    def parse(cls, text: str) -> "NodeId":
        try:
            raw = b32decode(text)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise UsageError(f"not a node id: {text!r} (expected 52 base32 characters)")
        return cls(raw)

    def text(self) -> str:
        return b32encode(self.raw)

    def short(self) -> str:
        return self.text()[:12]

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"NodeId({self.short()})"


NETWORK_ID_LEN = 10


@dataclass(frozen=True, order=True, slots=True)
class NetworkId:
    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != NETWORK_ID_LEN:
            raise ValueError(f"a network id is {NETWORK_ID_LEN} bytes")

    @classmethod
    def from_key(cls, network_key: bytes) -> "NetworkId":
        return cls(hashlib.blake2s(network_key, digest_size=NETWORK_ID_LEN, person=b"omnetid1").digest())

    @classmethod
    def parse(cls, text: str) -> "NetworkId":
        try:
            raw = b32decode(text)
        except ValueError:
            raw = b""
        if len(raw) != NETWORK_ID_LEN:
            raise UsageError(f"not a network id: {text!r} (expected 16 base32 characters)")
        return cls(raw)

    def text(self) -> str:
        return b32encode(self.raw)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"NetworkId({self.text()})"


def resolve_node(query: str, known: Iterable[NodeId], names: Mapping[str, NodeId] | None = None) -> NodeId:
    """Resolve a peer name, a full node id or a unique id prefix (>= MIN_PREFIX chars).

    Raises ``UsageError`` naming the candidates when the prefix is ambiguous, and saying what was expected
    when nothing matches.
    """
    q = query.strip()
    if names and q in names:
        return names[q]
    ql = q.lower()
    if len(ql) < MIN_PREFIX:
        raise UsageError(f"{query!r} is neither a known peer name nor an id prefix of at least {MIN_PREFIX} characters")
    matches = sorted({n for n in known if n.text().startswith(ql)})
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no peer matches {query!r}; list peers with `omertactl peers`")
    listing = ", ".join(m.short() for m in matches)
    raise UsageError(f"{query!r} is ambiguous: it matches {len(matches)} peers ({listing}); type more characters")
