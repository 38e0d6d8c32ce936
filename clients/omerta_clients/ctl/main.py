"""omertactl: the command-line client of omerta-meshd.

The root parser holds the global options (--socket, --json, --timeout) and one subcommand per command
group; each group's module registers its parsers and a ``run(ctx, args) -> exit code``. Every error
becomes two lines (cause, fix) on stderr and an exit code from ``errors``.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from typing import NoReturn

from .. import errors
from . import (
    channels,
    completion,
    connect,
    daemon,
    dns,
    doctor,
    events,
    exitnode,
    forward,
    ip,
    metrics,
    netcheck,
    network,
    peers,
    ping,
    routes,
    rules,
    serve,
    sshhosts,
    status,
    streams,
)
from .common import Ctx, add_command, add_common

DESCRIPTION = """\
Control and inspect omerta-meshd, the omerta mesh VPN daemon, through its local socket.
Anyone may read (status, peers, ping, ...); changing state (network, send, listen) needs root or
membership of the omerta group."""

EPILOG = f"""\
{errors.EXIT_CODES_HELP}
environment:
  OMERTA_SOCKET   the daemon's socket when --socket is not given (default /run/omerta/meshd.sock)

getting started:
  omertactl network create home       on the first machine; prints an invite
  omertactl network join omerta1-...  on each other machine
  omertactl peers                     who is there, by which path, how fast
  omertactl monitor                   live view (also installed as omerta-top)

Run `omertactl COMMAND --help` for a command's options and examples.
"""


def version() -> str:
    try:
        return metadata.version("omerta-mesh")
    except metadata.PackageNotFoundError:
        return "0.1.0+src"


class CtlParser(argparse.ArgumentParser):
    """argparse with one change: with ``--json`` anywhere on the command line, a usage error is a JSON
    object on stderr too (subcommand parsers are of the same class)."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            errors.show_json(errors.ClientError(message, f"see `{self.prog} --help`", errors.USAGE, "USAGE"), sys.stderr)
            self.exit(errors.USAGE)
        super().error(message)


def build_parser(prog: str = "omertactl") -> argparse.ArgumentParser:
    root = CtlParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(root, suppress=False)
    root.add_argument("--version", action="version", version=f"{prog} {version()}")
    common = argparse.ArgumentParser(add_help=False)
    add_common(common, suppress=True)
    sub = root.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    status.register(sub, common)
    peers.register(sub, common)
    ip.register(sub, common)
    dns.register(sub, common)
    exitnode.register(sub, common)
    routes.register(sub, common)
    rules.register(sub, common)
    ping.register(sub, common)
    connect.register(sub, common)
    serve.register(sub, common)
    forward.register(sub, common)
    streams.register(sub, common)
    netcheck.register(sub, common)
    doctor.register(sub, common)
    metrics.register(sub, common)
    network.register(sub, common)
    channels.register(sub, common)
    events.register(sub, common)
    daemon.register(sub, common)
    sshhosts.register(sub, common)
    _register_monitor(sub, common)
    completion.register(sub, common)
    root.set_defaults(root_parser=root)
    return root


def _register_monitor(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from ..tui import app

    p = add_command(sub, common, "monitor", help="live view of peers, paths, RTT, throughput and events",
                    description=app.DESCRIPTION, examples=app.EPILOG)
    app.add_arguments(p)
    p.set_defaults(func=lambda ctx, args: app.run(args))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    CtlParser.json_errors = "--json" in (sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return errors.USAGE
    ctx = Ctx(args)
    try:
        return int(args.func(ctx, args) or 0)
    except errors.ClientError as e:
        if ctx.json:
            errors.show_json(e, sys.stderr)
        else:
            errors.show(e, parser.prog, sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `omertactl events | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
