"""Regenerate docs/protocol.md from the wire modules' docstrings (the layouts live next to the code).

    python3 docs/gen_protocol.py          # rewrite docs/protocol.md
    python3 docs/gen_protocol.py --check  # exit 1 if it is out of date (a test runs this)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
sys.path.insert(0, str(ROOT / "daemon"))

MODULES = [
    ("Outer datagram and transport data", "omerta_mesh.core.wire.packet"),
    ("Handshake messages", "omerta_mesh.core.wire.handshake"),
    ("In-session frames", "omerta_mesh.core.wire.frames"),
    ("Invite strings", "omerta_mesh.core.wire.invite"),
    ("Signed peer records (gossip)", "omerta_mesh.core.wire.records"),
    ("Control messages (gossip, NAT traversal, relays)", "omerta_mesh.core.wire.control"),
    ("Endpoint lists", "omerta_mesh.core.wire.endpoints"),
    ("Stream messages", "omerta_mesh.core.wire.streams"),
    ("The stream gate (kernel TCP on the virtual network)", "omerta_mesh.core.wire.gate"),
    ("Member certificates and credentials (owned networks)", "omerta_mesh.core.wire.certs"),
    ("Revocations (owned networks)", "omerta_mesh.core.wire.revocations"),
    ("Invite tokens and use marks (owned networks)", "omerta_mesh.core.wire.tokens"),
    ("Enrolment (owned networks)", "omerta_mesh.core.wire.enrol"),
    ("Renewal of certificates (owned networks)", "omerta_mesh.core.wire.renew"),
    ("Key rotation (owned networks)", "omerta_mesh.core.wire.rekey"),
    ("Owner claims (open networks becoming owned)", "omerta_mesh.core.wire.claim"),
]

INTRO = """# omerta-mesh wire protocol (version 1)

Generated from the docstrings of `daemon/omerta_mesh/core/wire/` by `docs/gen_protocol.py`; edit those,
not this file. All integers are little-endian unless marked BE.

Cryptography: `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` with prologue `omerta-mesh/1`, the network key as the
PSK (position 2), and each node's X25519 static key derived from its Ed25519 identity (libsodium's
`crypto_sign_ed25519_sk_to_curve25519`). Transport: ChaCha20-Poly1305, nonce = 4 zero bytes || 64-bit
counter, the 16-byte transport header as associated data, a 2048-packet replay window. Tested against the
independent `noiseprotocol` implementation (`tests/interop/`).
"""


def render() -> str:
    parts = [INTRO]
    for title, mod in MODULES:
        doc = importlib.import_module(mod).__doc__ or ""
        parts.append(f"## {title}\n\nSource: `{mod.replace('.', '/')}.py`\n\n```text\n{doc.strip()}\n```\n")
    return "\n".join(parts)


def main() -> int:
    from docgen import write_or_check

    return write_or_check(ROOT / "docs" / "protocol.md", render(), "gen_protocol.py")


if __name__ == "__main__":
    sys.exit(main())
