"""What every omertactl command shares: the context (socket, --json, one client) and the
global options. Peers are named as typed: the daemon resolves names and id prefixes (one rule, one place)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, TextIO

from rich.console import RenderableType

from .. import output
from ..rpc import Client, default_socket

Json = dict[str, Any]
# The shortest node id prefix taken as one. The rule lives in the daemon (omerta_mesh.core.ids.MIN_PREFIX),
# which resolves every peer a command names; this copy is only for help texts and is pinned to it by
# tests/test_shared_rules.py (clients import nothing of omerta_mesh).
MIN_PREFIX = 8
PEER_HELP = f"a peer name (as `omertactl peers` shows it), a full node id, or a unique prefix of {MIN_PREFIX}+ characters of one"


class Ctx:
    """One command's view of the world: where the daemon is, how to print, and a lazily opened client."""

    def __init__(self, args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.socket: str = args.socket
        self.json: bool = bool(args.json)
        self.timeout: float = args.timeout
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.console = output.console(self.out)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket, self.timeout)
        return self._client

    def call(self, method: str, params: Json | None = None, timeout: float | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self.client.call(method, clean, timeout=timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- output
    def emit(self, result: Any, render: Callable[[Any], RenderableType]) -> None:
        """``--json``: the API result unchanged; otherwise the rendering of it."""
        if self.json:
            output.print_json(result, self.out)
        else:
            self.console.print(render(result))

    def emit_text(self, result: Any, text: Callable[[Any], str]) -> None:
        """``--json``: the API result unchanged; otherwise ``text(result)`` as plain, unwrapped lines."""
        if self.json:
            output.print_json(result, self.out)
        else:
            self.say(text(result))

    def say(self, text: str) -> None:
        """A plain line on stdout that must not be wrapped (invites, ids)."""
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A remark for people on stderr (never mixed into --json output)."""
        self.err.write(text + "\n")
        self.err.flush()


def add_common(p: argparse.ArgumentParser, suppress: bool, with_timeout: bool = True) -> None:
    """The global options; on subcommands they default to SUPPRESS so `omertactl peers --json` works too."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    add_socket(p, d(default_socket()))
    p.add_argument("--json", action="store_true", default=d(False), help="print the API result as JSON, unchanged")
    if with_timeout:
        p.add_argument("--timeout", type=float, metavar="SECONDS", default=d(30.0), help="seconds to wait for the daemon (default 30)")


def add_command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help: str,
                description: str, examples: str | None = None, usage: str | None = None) -> argparse.ArgumentParser:
    """A command with the global options (``common``), its line in the command list (``help``), and its
    description and examples printed as written (the examples are laid out by hand)."""
    return sub.add_parser(name, parents=[common], help=help, description=description, epilog=examples, usage=usage,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_socket(p: argparse.ArgumentParser, default: str) -> None:
    """--socket, shared by omertactl and omerta-top."""
    p.add_argument("--socket", metavar="PATH", default=default,
                   help="the daemon's socket (default $OMERTA_SOCKET or /run/omerta/meshd.sock)")
