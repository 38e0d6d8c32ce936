"""Bash completion for omerta-meshd and omerta-ssh, printed for the package (packaging/deb/build.py runs this
with the package's own Python, so it reads the parser that is shipped). omertactl's and omerta-top's script
comes from `omertactl completion bash`.

    python packaging/deb/completion.py omerta-meshd|omerta-ssh
"""

from __future__ import annotations

import argparse
import sys

# options whose value is a path: complete file names after them
PATH_DESTS = {"config", "state_dir", "runtime_dir", "socket"}


def meshd_script(parser: argparse.ArgumentParser) -> str:
    options = sorted(o for a in parser._actions for o in a.option_strings)
    cases = []
    for a in parser._actions:
        if not a.option_strings or a.nargs == 0:
            continue
        names = "|".join(a.option_strings)
        if a.choices:
            cases.append(f'    {names}) COMPREPLY=($(compgen -W "{" ".join(map(str, a.choices))}" -- "$cur")); return;;')
        elif a.dest in PATH_DESTS:
            cases.append(f'    {names}) COMPREPLY=($(compgen -f -- "$cur")); return;;')
        else:
            cases.append(f"    {names}) return;;")
    body = "\n".join(cases)
    return f"""\
# bash completion for omerta-meshd (generated from its argument parser by packaging/deb/completion.py)
_omerta_meshd() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  case "$prev" in
{body}
  esac
  COMPREPLY=($(compgen -W "{" ".join(options)}" -- "$cur"))
}}
complete -F _omerta_meshd omerta-meshd
"""


# omerta-ssh takes ssh's arguments: ssh's own completion (bash-completion's _ssh), plus the mesh's peer names
SSH_SCRIPT = """\
# bash completion for omerta-ssh: ssh's completion, plus the peer names the daemon knows
_omerta_ssh() {
  declare -F _ssh >/dev/null || __load_completion ssh 2>/dev/null
  declare -F _ssh >/dev/null && _ssh "$@"
  local cur="${COMP_WORDS[COMP_CWORD]}" user=""
  [[ $cur == -* ]] && return
  [[ $cur == *@* ]] && user="${cur%@*}@"
  COMPREPLY+=($(compgen -P "$user" -W "$(omertactl --timeout 2 completion peers 2>/dev/null)" -- "${cur#*@}"))
}
complete -F _omerta_ssh omerta-ssh
"""


def main(argv: list[str]) -> int:
    if argv == ["omerta-meshd"]:
        from omerta_mesh.meshd.main import build_parser

        sys.stdout.write(meshd_script(build_parser()))
    elif argv == ["omerta-ssh"]:
        sys.stdout.write(SSH_SCRIPT)
    else:
        print("usage: completion.py omerta-meshd|omerta-ssh", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
