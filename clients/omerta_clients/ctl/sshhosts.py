"""omertactl ssh-known-hosts PEER: a peer's SSH host keys as known_hosts lines (ssh.known_hosts), for ssh's
KnownHostsCommand (omerta-ssh sets it)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import PEER_HELP, Ctx, add_command

EXAMPLES = """\
Each node publishes its sshd's host public keys in its signed peer record, so a key is vouched for by the
peer's mesh identity. The lines name the peer by its node id: the HostKeyAlias omerta-ssh gives ssh. No lines:
the peer publishes no keys ([ssh] host_keys in its meshd.toml; RSA keys are too big for a record).

examples:
  omertactl ssh-known-hosts bob        bob's host keys, one known_hosts line each
  omertactl ssh-known-hosts --json bob the ssh.known_hosts result, unchanged
  ssh -o HostKeyAlias=<bob's id> -o KnownHostsCommand="omertactl ssh-known-hosts <bob's id>" ...   (what omerta-ssh does)
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "ssh-known-hosts", help="a peer's SSH host keys as known_hosts lines (KnownHostsCommand)",
                    description="Print a peer's SSH host keys, as its signed records publish them, as known_hosts lines.",
                    examples=EXAMPLES)
    p.add_argument("peer", metavar="PEER", help="whose keys (" + PEER_HELP + ", or one of its mesh IPs)")
    p.set_defaults(func=run)


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    res: dict[str, Any] = ctx.call("ssh.known_hosts", {"peer": args.peer})
    if res["lines"] or ctx.json:
        ctx.emit_text(res, lambda r: "\n".join(r["lines"]))
    else:
        ctx.note(f"{res['name'] or res['node_id']} publishes no SSH host keys; set [ssh] host_keys in its meshd.toml "
                 "(Ed25519 or ECDSA keys; RSA keys are too big for a record)")
    return 0
