"""omerta-ssh: ``ssh`` to a mesh peer, with host keys vouched for by its mesh identity.

``omerta-ssh [ssh options] [user@]PEER [command]`` asks the daemon who PEER is (a name, a node id or a unique
prefix of one, or a mesh IP; ``ssh.known_hosts``), then execs the system ``ssh`` with the same arguments plus:

* ``-o ProxyCommand=omertactl connect --fdpass <node id> %p`` and ``-o ProxyUseFdpass=yes``: the connection is a mesh
  stream to the peer's port (kernel TCP to its mesh IP when the virtual network reaches it: ``meshd/meshtcp.py``),
  handed to ssh as a descriptor, so no process copies its bytes; without ``--fdpass`` when the user's own options
  set a ProxyCommand or ProxyJump (theirs wins, and must not be taken for a descriptor passer);
* ``-o HostKeyAlias=<node id>``: the host key is looked up under the peer's node id, whatever name was typed;
* ``-o KnownHostsCommand=omertactl ssh-known-hosts <node id>``: the keys the peer's signed record publishes (the
  node id, not ssh's ``%H``: ssh also asks for the name it connects to, lowercased, so a peer named ``B`` was
  asked for as ``b``, an unknown peer, and ssh gives up when the command fails);
* ``-o StrictHostKeyChecking=yes``: a key the peer did not publish is refused, loudly, with no prompt.

Everything else passes to ``ssh`` untouched: the destination is left as typed (so ``Host`` blocks of the user's
ssh config match it), and our options go just before it, after the user's own, so an explicit ``-o`` of the
user's wins (for ssh the first value obtained wins). Only enough of ssh's option syntax is parsed to find the
destination. Without a destination (``-V``, ``-Q``, ``-G`` alone) ssh runs unchanged.

It works wherever ssh's transport can be replaced: ``scp -S omerta-ssh``, ``rsync -e omerta-ssh``,
``GIT_SSH_COMMAND=omerta-ssh``, and sftp's ``-S``.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass

from .. import errors
from ..rpc import Client, default_socket

# ssh's options that take an argument (OpenSSH 9: `ssh -h`); the others are flags and may be clustered (-vvt)
WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")
SSH = os.environ.get("OMERTA_SSH_BINARY", "ssh")


@dataclass(frozen=True)
class Destination:
    index: int  # where the destination is in the arguments
    insert_at: int  # where our options go: before the destination, or before a "--" that precedes it
    host: str  # the host part: what the daemon resolves


def host_of(dest: str) -> str:
    """``[user@]host`` or ``ssh://[user@]host[:port]`` -> host (ssh takes the last '@')."""
    if dest.startswith("ssh://"):
        rest = dest[6:].rpartition("@")[2]
        if rest.startswith("["):
            return rest[1:].partition("]")[0]
        return rest.partition(":")[0].rstrip("/")
    return dest.rpartition("@")[2]


def find_destination(args: list[str]) -> Destination | None:
    """The destination among ssh's arguments: the first argument that is neither an option nor an option's value."""
    i = 0
    dashdash = None
    while i < len(args):
        a = args[i]
        if dashdash is None and a == "--":
            dashdash = i
            i += 1
            continue
        if dashdash is None and a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                if a[j] in WITH_ARG:
                    if j == len(a) - 1:  # the value is the next argument
                        i += 1
                    break  # the rest of this argument is the value
                j += 1
            i += 1
            continue
        return Destination(i, dashdash if dashdash is not None else i, host_of(a))
    return None


def ctl_command(*words: str) -> str:
    """A command line running this installation's omertactl with the same daemon socket (for ssh's options; %
    is ssh's token character, doubled where it is not ours)."""
    argv = [sys.executable, "-m", "omerta_clients.ctl.main", "--socket", default_socket()]
    return " ".join(shlex.quote(w).replace("%", "%%") for w in argv) + " " + " ".join(words)


def own_proxy(args: list[str]) -> bool:
    """Whether the user's arguments set a ProxyCommand or ProxyJump of their own (theirs wins: ssh keeps the first)."""
    return any(k in a.lower() for a in args for k in ("proxycommand", "proxyjump")) or "-J" in args


def ssh_options(node_id: str, fdpass: bool = True) -> list[str]:
    """``fdpass``: omertactl hands ssh the connection itself (ProxyUseFdpass) and exits, instead of copying every byte
    between ssh and the daemon's socket."""
    proxy = ["-o", f"ProxyCommand={ctl_command('connect', '--fdpass', node_id, '%p')}", "-o", "ProxyUseFdpass=yes"] \
        if fdpass else ["-o", f"ProxyCommand={ctl_command('connect', node_id, '%p')}"]
    return [*proxy,
            "-o", f"HostKeyAlias={node_id}",
            "-o", f"KnownHostsCommand={ctl_command('ssh-known-hosts', node_id)}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UpdateHostKeys=no"]


def build_argv(args: list[str], node_id: str) -> list[str]:
    d = find_destination(args)
    if d is None:
        return [SSH, *args]
    return [SSH, *args[: d.insert_at], *ssh_options(node_id, not own_proxy(args[: d.insert_at])), *args[d.insert_at :]]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    d = find_destination(args)
    if d is None:
        os.execvp(SSH, [SSH, *args])
    try:
        with Client(default_socket(), 10.0) as client:
            res = client.call("ssh.known_hosts", {"peer": d.host})
    except errors.ClientError as e:
        errors.show(e, "omerta-ssh", sys.stderr)
        return e.exit_code
    if not res.get("lines"):
        sys.stderr.write(f"omerta-ssh: {res.get('name') or d.host} ({res['node_id']}) publishes no SSH host keys, so ssh "
                         "will refuse its key (strict checking)\n  fix: on that node, point [ssh] host_keys in meshd.toml at "
                         "its sshd's Ed25519 or ECDSA public key and restart omerta-meshd\n")
    full = build_argv(args, res["node_id"])
    sys.stdout.flush()
    os.execvp(full[0], full)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
