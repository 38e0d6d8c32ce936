"""Which local TCP ports peers may open mesh streams to (``io/streams.py`` asks ``policy`` for each).

Exposed by default: none. The admin declares ports in the config (``[serve] ports``); ``omertactl serve add`` and
``remove`` change the set live and persist the change in the state directory (``serve.json``: the ports added
and removed relative to the config, written atomically), so a restart or a reload keeps it and the config file
is never rewritten by the daemon. The exposed set is (config ports + added) - removed. A stream to any other
port is refused with "port P not exposed on NAME". Port 9 is not in this rule's reach: it is the daemon's own
discard sink (``io/streams.py``, ``DISCARD_PORT``), answered before ``policy`` is asked, so exposing 9 would
change nothing and a local 127.0.0.1:9 is never connected.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io.store import atomic_write, damaged

SERVE_FILE = "serve.json"


def check_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"{port!r} is not a TCP port (1-65535)")
    return port


class ExposedPorts:
    def __init__(self, configured: list[int], state_dir: Path | None, name: str) -> None:
        self.configured = sorted(set(configured))
        self.path = state_dir / SERVE_FILE if state_dir is not None else None
        self.name = name
        self.added: set[int] = set()
        self.removed: set[int] = set()
        if self.path is not None and self.path.exists():
            try:
                doc = json.loads(self.path.read_bytes())
                self.added = {check_port(p) for p in doc.get("added", [])}
                self.removed = {check_port(p) for p in doc.get("removed", [])}
            except (ValueError, AttributeError, TypeError) as e:
                raise damaged(self.path, e, "fix or remove it (`omertactl serve add|remove` writes it again)") from None

    def lists(self) -> tuple[list[int], list[int]]:
        """(exposed now, declared in the config)."""
        return self.ports(), list(self.configured)

    def ports(self) -> list[int]:
        return sorted((set(self.configured) | self.added) - self.removed)

    def add(self, port: int) -> bool:
        """Expose ``port`` (persisted first); False when it already was."""
        if port in self.ports():
            return False
        self._save(self.added | {port}, self.removed - {port})
        return True

    def remove(self, port: int) -> bool:
        """Stop exposing ``port`` (open streams stay); False when it was not exposed."""
        if port not in self.ports():
            return False
        self._save(self.added - {port}, self.removed | ({port} if port in self.configured else set()))
        return True

    def _save(self, added: set[int], removed: set[int]) -> None:
        if self.path is not None:  # StateNotSaved leaves memory as it was
            atomic_write(self.path, json.dumps({"version": 1, "added": sorted(added), "removed": sorted(removed)}).encode())
        self.added, self.removed = added, removed

    def policy(self, port: int) -> str | None:
        """None when a peer may open a stream to ``port``; else the reason it is refused."""
        return None if port in self.ports() else f"port {port} not exposed on {self.name}"
