"""omertactl reload / shutdown: re-read the daemon's configuration (daemon.reload), stop it (daemon.shutdown)."""

from __future__ import annotations

import argparse

from .common import Ctx, add_command

RELOAD_EXAMPLES = """\
Like `systemctl reload omerta-meshd` (SIGHUP): settings that can change live (names, log level, limits)
take effect at once; the others are listed as needing a restart. A configuration with an error is refused
and the daemon keeps the one it had.

examples:
  omertactl reload
  omertactl reload --json             the daemon.reload result, unchanged
"""
SHUTDOWN_EXAMPLES = """\
The daemon tells its peers it is leaving, saves its state and exits (as on SIGTERM). Under systemd,
prefer `systemctl stop omerta-meshd` (systemd would otherwise restart it if configured to).

examples:
  omertactl shutdown
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    r = add_command(sub, common, "reload", help="re-read the daemon's configuration file",
                    description="Make the daemon read its configuration file again.", examples=RELOAD_EXAMPLES)
    r.set_defaults(func=run_reload)
    s = add_command(sub, common, "shutdown", help="stop the daemon gracefully",
                    description="Stop the daemon gracefully: peers are told, state is saved.", examples=SHUTDOWN_EXAMPLES)
    s.set_defaults(func=run_shutdown)


def run_reload(ctx: Ctx, args: argparse.Namespace) -> int:
    def text(r: dict) -> str:
        out = f"configuration reloaded: changed {', '.join(r['changed']) or 'nothing'}"
        if r["restart_required"]:
            out += f"\nneeds a restart to take effect: {', '.join(r['restart_required'])}"
        return out

    ctx.emit_text(ctx.call("daemon.reload"), text)
    return 0


def run_shutdown(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("daemon.shutdown"), lambda r: "the daemon is stopping (peers are told, state is saved)")
    return 0
