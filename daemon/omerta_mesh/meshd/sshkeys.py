"""SSH host keys: this host's, read for our signed records; a peer's, turned into known_hosts lines.

Each daemon reads its sshd's public host keys (``[ssh] host_keys``, by default ``/etc/ssh/ssh_host_*_key.pub``)
and publishes the SSH wire blobs in its signed peer records (``core/wire/records.py``, flag bit 3). A peer's
keys are therefore vouched for by its mesh identity: ``ssh.known_hosts`` answers them as known_hosts lines for
the alias ``omerta-ssh`` gives ssh (``HostKeyAlias`` = the peer's node id), so ``ssh`` checks strictly with an
empty known_hosts file and refuses, loudly, a host key the peer did not sign.
"""

from __future__ import annotations

import base64
import binascii
import glob
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.ids import NodeId

if TYPE_CHECKING:
    from ..core.mesh import Mesh

log = logging.getLogger("omerta_mesh.meshd.sshkeys")
MAX_FILE = 16384  # a public key file is a line; anything bigger is not one


def key_type(blob: bytes) -> str | None:
    """The key type an SSH public key blob starts with (``ssh-ed25519``, ...), None when it is not a blob."""
    if len(blob) < 4:
        return None
    n = int.from_bytes(blob[:4], "big")
    t = blob[4 : 4 + n]
    if not 0 < n <= 64 or len(t) != n or not all(0x21 <= c < 0x7F for c in t):
        return None
    return t.decode("ascii")


def parse_public_key(text: str) -> bytes | None:
    """``TYPE BASE64 [comment]`` (an OpenSSH .pub line) -> the key blob; None when it is not one."""
    parts = text.split()
    if len(parts) < 2:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return blob if key_type(blob) == parts[0] else None


def read_host_keys(patterns: list[str]) -> tuple[bytes, ...]:
    """The public key blobs of the files ``patterns`` name (globs allowed); unreadable or bad files are logged."""
    out: list[bytes] = []
    for pat in patterns:
        for path in sorted(glob.glob(pat)) if glob.has_magic(pat) else [pat]:
            try:
                with Path(path).open("r", encoding="ascii", errors="replace") as f:
                    text = f.read(MAX_FILE)
            except OSError as e:
                log.warning("ssh host key %s not read: %s", path, e.strerror or e)
                continue
            blob = parse_public_key(text)
            if blob is None:
                log.warning("ssh host key %s is not an OpenSSH public key (TYPE BASE64 [comment])", path)
            elif blob not in out:
                out.append(blob)
    return tuple(out)


def known_hosts_lines(alias: str, blobs: tuple[bytes, ...]) -> list[str]:
    """known_hosts lines ``<alias> <keytype> <base64>`` for the blobs that are SSH keys."""
    return [f"{alias} {t} {base64.b64encode(b).decode('ascii')}" for b in blobs if (t := key_type(b)) is not None]


def published(core: "Mesh", node: NodeId) -> tuple[bytes, ...]:
    """The host keys ``node`` publishes in its signed records, across our networks (each signed by its id)."""
    out: list[bytes] = []
    for net in list(core.networks.values()):
        rec = core.record_of(net.id, node)
        for b in rec.host_keys if rec is not None else ():
            if b not in out:
                out.append(b)
    return tuple(out)
