"""omertactl completion bash: a bash completion script generated from the argument parser itself, so it
always knows every command and option; peer and network arguments are completed by asking the daemon
(`omertactl completion peers|networks`, silent when the daemon is not there)."""

from __future__ import annotations

import argparse

from ..errors import ClientError
from ..tui import app
from .common import Ctx, add_command

# completes network names after a sub-command whose first argument is a NETWORK
NETWORK_WORDS = '; [[ $cur != -* && $npos -eq 0 ]] && words="$words $(_omertactl_names networks)"'


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "completion", help="print a bash completion script",
                    description="Print a bash completion script. Load it with\n"
                                "  source <(omertactl completion bash)\n"
                                "or install it with\n"
                                "  omertactl completion bash | sudo tee /etc/bash_completion.d/omertactl\n"
                                "`peers` and `networks` print names for the script to offer.")
    p.add_argument("what", choices=["bash", "peers", "networks"], help="bash: the script; peers/networks: names to complete")
    p.set_defaults(func=run)


def _options(p: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in p._actions for o in a.option_strings)


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def _first_argument(p: argparse.ArgumentParser) -> str | None:
    """The metavar of the first positional argument (PEER, NETWORK...), or None."""
    for a in p._actions:
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction):
            return a.metavar if isinstance(a.metavar, str) else None
    return None


def _value_options(p: argparse.ArgumentParser) -> set[str]:
    """Every option of ``p`` and its subcommands that takes a value."""
    opts = {o for a in p._actions if a.nargs != 0 for o in a.option_strings}
    return opts.union(*(_value_options(sp) for sp in _subparsers(p).values()))


def bash_script(root: argparse.ArgumentParser) -> str:
    cmds = _subparsers(root)
    top = app.build_parser()
    cases = []
    for name, p in sorted(cmds.items()):
        subs = _subparsers(p)
        opts = " ".join(_options(p))
        if subs:
            sub_cases = "\n".join(
                f'        {s}) words="{" ".join(_options(sp))}"'
                + (NETWORK_WORDS if _first_argument(sp) == "NETWORK" else "")
                + ";;" for s, sp in sorted(subs.items()))
            cases.append(f'    {name})\n      case "$sub" in\n'
                         f'        "") words="{" ".join(sorted(subs))} {opts}";;\n{sub_cases}\n      esac;;')
        elif _first_argument(p) == "PEER":
            cases.append(f'    {name}) words="{opts}"; [[ $cur != -* && $npos -eq 0 ]] && words="$words $(_omertactl_names peers)";;')
        elif name == "completion":
            cases.append(f'    {name}) words="bash peers networks {opts}";;')
        else:
            cases.append(f'    {name}) words="{opts}";;')
    value_opts = "|".join(sorted(_value_options(root) | _value_options(top)))
    return f"""\
# bash completion for omertactl and omerta-top
# load it with:  source <(omertactl completion bash)
_omertactl_names() {{
  local sock=()
  [[ -n $_omertactl_socket ]] && sock=(--socket "$_omertactl_socket")
  omertactl "${{sock[@]}}" --timeout 2 completion "$1" 2>/dev/null
}}
_omertactl() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  local cmd="" sub="" npos=0 words="" i w
  _omertactl_socket=""
  case "$prev" in
    --socket) COMPREPLY=($(compgen -f -- "$cur")); return;;
    {value_opts}) return;;
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    case "$w" in
      --socket) _omertactl_socket="${{COMP_WORDS[i+1]}}"; ((i++)); continue;;
      {value_opts}) ((i++)); continue;;
      -*) continue;;
    esac
    if [[ -z $cmd ]]; then cmd=$w
    elif [[ -z $sub && $cmd == network ]]; then sub=$w
    else ((npos++))
    fi
  done
  case "$cmd" in
    "") words="{" ".join(sorted(cmds))} {" ".join(_options(root))}";;
{chr(10).join(cases)}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F _omertactl omertactl
complete -W "{" ".join(_options(top))}" omerta-top
"""


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    if args.what == "bash":
        ctx.out.write(bash_script(args.root_parser))
        return 0
    try:
        if args.what == "peers":
            peers = ctx.call("peers.list")["peers"]
            names = {p["name"] for p in peers} | {p["short_id"] for p in peers}
        else:
            nets = ctx.call("network.list")["networks"]
            names = {n["name"] for n in nets if n["name"]} | {n["network"] for n in nets}
    except ClientError:
        return 0  # completion stays quiet when the daemon is not there
    ctx.out.write("".join(f"{n}\n" for n in sorted(names)))
    return 0
