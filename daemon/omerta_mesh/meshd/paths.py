"""Where the daemon keeps things. Flags win, then systemd's directories, then the built-in defaults.

| what      | default                  | systemd variable (set by the unit's *Directory=) | flag          |
|-----------|--------------------------|--------------------------------------------------|---------------|
| config    | /etc/omerta/meshd.toml   | CONFIGURATION_DIRECTORY (+ /meshd.toml)          | --config      |
| state     | /var/lib/omerta (0700)   | STATE_DIRECTORY                                  | --state-dir   |
| runtime   | /run/omerta              | RUNTIME_DIRECTORY                                | --runtime-dir |
| socket    | <runtime>/meshd.sock     | (api.socket in the config)                       | --socket      |

A missing default config file means "use the embedded default"; a missing file named by --config is an
error. systemd may pass several directories separated by ':'; the first is ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_CONFIG = Path("/etc/omerta/meshd.toml")
DEFAULT_STATE = Path("/var/lib/omerta")
DEFAULT_RUNTIME = Path("/run/omerta")
SOCKET_NAME = "meshd.sock"


@dataclass(frozen=True)
class Paths:
    config: Path | None  # None: run on the embedded default configuration
    state: Path
    runtime: Path
    socket_flag: Path | None

    def socket(self, configured: str) -> Path:
        if self.socket_flag is not None:
            return self.socket_flag
        return Path(configured) if configured else self.runtime / SOCKET_NAME


def _first(env: Mapping[str, str], name: str) -> Path | None:
    v = env.get(name, "")
    return Path(v.split(":")[0]) if v else None


def resolve(config: str | None, state: str | None, runtime: str | None, socket: str | None, env: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if env is None else env
    if config is not None:
        cfg: Path | None = Path(config)
    else:
        conf_dir = _first(env, "CONFIGURATION_DIRECTORY")
        candidate = conf_dir / "meshd.toml" if conf_dir else DEFAULT_CONFIG
        cfg = candidate if candidate.exists() else None
    return Paths(
        config=cfg,
        state=Path(state) if state else (_first(env, "STATE_DIRECTORY") or DEFAULT_STATE),
        runtime=Path(runtime) if runtime else (_first(env, "RUNTIME_DIRECTORY") or DEFAULT_RUNTIME),
        socket_flag=Path(socket) if socket else None,
    )
