"""Persistent state on disk: identity, networks, peer cache. Every write is atomic.

Layout of a state directory (mode 0700)::

    identity        the node's Ed25519 seed (0600), see core.keys.encode_identity
    networks.json   the networks this node is in, with their keys (0600: the keys are secrets)
    peers.json      known peers' endpoints, to reconnect after a restart without the invite (0600)
    addresses.json  our mesh IPs per network (what we held last: claimed again after a restart) (0600)

A network name a user cannot be served (a lone surrogate, control characters, longer than an invite
carries: written by a daemon from before names were checked) is repaired at load: the network (its key,
hence its id and membership) is kept under the repaired name, the file is rewritten, and a warning says so.

``atomic_write`` writes a temporary file in the same directory, fsyncs it, renames it over the target and
fsyncs the directory, so a crash at any moment leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from ..core.entropy import Entropy, SystemEntropy
from ..core.errors import MeshError
from ..core.keys import Identity, decode_identity, encode_identity
from ..core.network import Network
from ..core.wire.invite import check_network_name, repair_network_name

STATE_VERSION = 1
log = logging.getLogger("omerta_mesh.io.store")


class StateError(MeshError):
    """A state file is unreadable; the message names the file and what to do."""


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class StateStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except PermissionError:
            raise StateError(f"cannot create state directory {self.dir}: permission denied; "
                             "run as root or pass a writable --state-dir") from None
        mode = stat.S_IMODE(self.dir.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.dir, 0o700)

    @property
    def identity_path(self) -> Path:
        return self.dir / "identity"

    @property
    def networks_path(self) -> Path:
        return self.dir / "networks.json"

    @property
    def peers_path(self) -> Path:
        return self.dir / "peers.json"

    # ---- identity
    def load_identity(self, entropy: Entropy | None = None) -> Identity:
        """The node's identity, created (and saved 0600) on first use."""
        p = self.identity_path
        if p.exists():
            try:
                return decode_identity(p.read_bytes())
            except ValueError as e:
                raise StateError(f"identity file {p} is damaged ({e}); restore it from a backup, "
                                 "or move it aside to create a new identity (the node id will change)") from None
        ident = Identity.generate(entropy or SystemEntropy())
        atomic_write(p, encode_identity(ident), 0o600)
        return ident

    # ---- networks
    def load_networks(self) -> list[Network]:
        doc = self._read_json(self.networks_path, {"version": STATE_VERSION, "networks": []})
        out = []
        repaired = False
        try:
            for n in doc["networks"]:
                name = n.get("name", "")
                if not isinstance(name, str):
                    raise TypeError(f"network name {name!r} is not a string")
                net = Network(base64.b64decode(n["key"], validate=True), self._repaired_name(name, n.get("id")))
                repaired = repaired or net.name != name
                out.append(net)
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"{self.networks_path} is damaged ({e}); "
                             "restore it from a backup, or move it aside and re-join your networks") from None
        if repaired:
            self.save_networks(out)
        return out

    def _repaired_name(self, name: str, net_id: object) -> str:
        """``name`` if it can be served; else repaired (core.wire.invite's rule), with a warning naming the file."""
        try:
            check_network_name(name)
            return name
        except ValueError as e:
            problem = str(e)
        fixed = repair_network_name(name)
        log.warning("%s: network %s had a name that cannot be served (%s: %a); kept the network (key, id and "
                    "membership unchanged) under the name %r and rewrote the file", self.networks_path, net_id, problem, name, fixed)
        return fixed

    def save_networks(self, networks: list[Network]) -> None:
        doc = {
            "version": STATE_VERSION,
            "networks": [{"id": str(n.id), "name": n.name, "key": base64.b64encode(n.key).decode()} for n in networks],
        }
        atomic_write(self.networks_path, json.dumps(doc, indent=1).encode(), 0o600)

    # ---- our mesh IPs (a cache of what we held: damaged, we derive them again)
    @property
    def addresses_path(self) -> Path:
        return self.dir / "addresses.json"

    def load_addresses(self) -> dict[str, tuple[str | None, str | None]]:
        """network id (text) -> (IPv4, IPv6) we held last."""
        doc = self._read_json(self.addresses_path, {"version": STATE_VERSION, "networks": {}}, damaged_ok=True)
        nets = doc.get("networks")
        out: dict[str, tuple[str | None, str | None]] = {}
        if isinstance(nets, dict):
            for k, v in nets.items():
                if isinstance(v, dict):
                    v4, v6 = v.get("v4"), v.get("v6")
                    out[str(k)] = (v4 if isinstance(v4, str) else None, v6 if isinstance(v6, str) else None)
        return out

    def save_addresses(self, addresses: dict[str, tuple[str | None, str | None]]) -> None:
        doc = {"version": STATE_VERSION, "networks": {k: {"v4": a, "v6": b} for k, (a, b) in sorted(addresses.items())}}
        atomic_write(self.addresses_path, json.dumps(doc, indent=1).encode(), 0o600)

    # ---- peer cache
    def load_peers(self) -> dict[str, Any]:
        doc = self._read_json(self.peers_path, {"version": STATE_VERSION, "peers": []}, damaged_ok=True)
        return doc if isinstance(doc.get("peers"), list) else {"version": STATE_VERSION, "peers": []}

    def save_peers(self, doc: dict[str, Any]) -> None:
        atomic_write(self.peers_path, json.dumps({"version": STATE_VERSION, **doc}).encode(), 0o600)

    def _read_json(self, path: Path, default: dict[str, Any], damaged_ok: bool = False) -> dict[str, Any]:
        if not path.exists():
            return default
        try:
            doc = json.loads(path.read_bytes())
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if doc.get("version", STATE_VERSION) > STATE_VERSION:
                raise ValueError(f"written by a newer omerta-mesh (state version {doc['version']})")
            return doc
        except (ValueError, UnicodeDecodeError) as e:
            if damaged_ok:  # a cache: losing it only costs a reconnect through the invite
                return default
            raise StateError(f"{path} is damaged ({e}); restore it from a backup, or move it aside") from None
