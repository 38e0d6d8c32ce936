"""Man pages from the real argument parsers plus a hand-written source per page.

    .venv/bin/python packaging/man/genman.py            write packaging/man/NAME.SECTION for every page
    .venv/bin/python packaging/man/genman.py --check    exit 1, naming the pages, when a written page is stale

Each page has a source, ``packaging/man/src/NAME.SECTION.txt``::

    omertactl(1) -- control and inspect omerta-meshd          <- NAME(SECTION) -- the one-line summary
    parser: omerta_clients.ctl.main:build_parser              <- optional: a function returning the parser

    # DESCRIPTION                                             <- a section
    Paragraphs of text, separated by blank lines; `code` is set in bold.

      indented lines are kept as they are (examples)

    : /etc/omerta/meshd.toml                                  <- a tagged item: the term,
    the configuration file (its description: the lines up to the next blank line)

    @synopsis  @options  @commands  @epilog                   <- generated from the parser, where they stand

``@synopsis`` is the usage line; ``@options`` the parser's options; ``@commands`` one subsection per subcommand
(nested ones too: `network join`) with its usage, description, options (those the command shares with the
top-level parser are listed once, under OPTIONS) and examples; ``@epilog`` the parser's epilog. Descriptions and
epilogs are argparse text: indented runs stay preformatted, a line ending in ':' before one is its heading, the
rest is filled. Pages are deterministic (no date; the version from pyproject.toml), so a test can regenerate
and compare them (tests/packaging/test_man.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCES = HERE / "src"


@dataclass(frozen=True)
class Source:
    name: str
    section: str
    summary: str
    parser: str | None  # "module:function"
    body: list[str]  # the lines after the header

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.section}"


def read_source(path: Path) -> Source:
    lines = path.read_text().splitlines()
    m = re.fullmatch(r"(\S+)\((\d)\) -- (.+)", lines[0])
    if not m:
        raise SystemExit(f"{path}: the first line must be 'NAME(SECTION) -- summary', not {lines[0]!r}")
    parser = None
    rest = lines[1:]
    if rest and rest[0].startswith("parser:"):
        parser = rest[0].split(":", 1)[1].strip()
        rest = rest[1:]
    return Source(m[1], m[2], m[3], parser, rest)


def load_parser(ref: str) -> argparse.ArgumentParser:
    module, func = ref.split(":")
    parser = getattr(importlib.import_module(module), func)()
    assert isinstance(parser, argparse.ArgumentParser), f"{ref} returned {parser!r}"
    return parser


# ---- roff text


def esc(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, a leading '.' or "'" made literal."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in text.split("\n"))


def inline(text: str) -> str:
    """Filled text: escaped, `code` in bold."""
    return re.sub(r"`([^`]+)`", lambda m: f"\\fB{m[1]}\\fR", esc(text))


def bold(text: str) -> str:
    return f"\\fB{esc(text)}\\fR"


def preformatted(lines: list[str]) -> list[str]:
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
    return [".PP", ".RS 4", ".nf", *(esc(ln[indent:]) for ln in lines), ".fi", ".RE"]


def help_text(text: str) -> list[str]:
    """argparse description or epilog text as roff: indented runs preformatted (a line ending in ':' just
    before one is set as its heading), everything else filled into paragraphs."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = block.split("\n")
        i = 0
        while i < len(lines):
            j = i
            indented = lines[i].startswith((" ", "\t"))
            while j < len(lines) and lines[j].startswith((" ", "\t")) == indented:
                j += 1
            run = lines[i:j]
            if indented:
                out += preformatted(run)
            elif j < len(lines) and run[-1].rstrip().endswith(":"):  # a heading for the indented run below
                if run[:-1]:
                    out += [".PP", inline("\n".join(run[:-1]))]
                out += [".PP", bold(run[-1].strip())]
            else:  # a line starting "word:" (e.g. "columns: ...") starts a paragraph of its own
                for para in re.split(r"\n(?=[a-z][\w-]*: )", "\n".join(run)):
                    out += [".PP", inline(para)]
            i = j
    return out


def tagged(term: str, text: str) -> list[str]:
    return [".TP", term, inline(text)]


# ---- from the parser


def _formatter(p: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return p._get_formatter()


def _option_term(p: argparse.ArgumentParser, a: argparse.Action) -> str:
    f = _formatter(p)
    if not a.option_strings:
        return f"\\fI{esc(f._format_args(a, a.dest))}\\fR"
    names = ", ".join(bold(o) for o in a.option_strings)
    if a.nargs == 0:
        return names
    return f"{names} \\fI{esc(f._format_args(a, f._get_default_metavar_for_optional(a)))}\\fR"


def _help(p: argparse.ArgumentParser, a: argparse.Action) -> str:
    return _formatter(p)._expand_help(a) if a.help else ""


def _subcommands(p: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) for each subcommand, aliases left out."""
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help or "" for c in a._choices_actions}
            seen: set[int] = set()
            out = []
            for name, sp in a.choices.items():
                if id(sp) not in seen:
                    seen.add(id(sp))
                    out.append((name, helps.get(name, ""), sp))
            return out
    return []


def _own_actions(p: argparse.ArgumentParser, shared: dict[tuple[str, ...], str | None], with_help: bool = False) -> list[argparse.Action]:
    """The actions worth listing: not subparsers, not --help (unless ``with_help``), not an option shared (same
    names, same help) with the top-level parser (listed there once)."""
    return [a for a in p._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
            and (with_help or not isinstance(a, argparse._HelpAction)) and shared.get(tuple(a.option_strings)) != a.help]


def _usage_words(p: argparse.ArgumentParser, actions: list[argparse.Action]) -> list[str]:
    f = _formatter(p)
    words = []
    for a in actions:
        if not a.option_strings:
            words.append(f"\\fI{esc(f._format_args(a, a.dest))}\\fR")
            continue
        w = bold(a.option_strings[0])
        if a.nargs != 0:
            w += f"\\ \\fI{esc(f._format_args(a, f._get_default_metavar_for_optional(a)))}\\fR"
        words.append(w if a.required else f"[{w}]")
    return words


def synopsis(p: argparse.ArgumentParser, shared: dict[tuple[str, ...], str | None], top: bool) -> list[str]:
    if p.usage:  # a hand-written usage: its lines as they are
        usage = p.format_usage().removeprefix("usage: ").rstrip("\n").split("\n")
        return [".nf", *(esc(ln.strip()) for ln in usage), ".fi"]
    words = p.prog.split(" ")
    line = [bold(words[0])]
    if not top:
        line += ["[\\fIoptions\\fR]", *(bold(w) for w in words[1:])]
    line += _usage_words(p, _own_actions(p, shared if not top else {}))
    if _subcommands(p):
        line.append("\\fICOMMAND\\fR")
    return [".PP", " ".join(line)]


def options(p: argparse.ArgumentParser, shared: dict[tuple[str, ...], str | None], with_help: bool = False) -> list[str]:
    out: list[str] = []
    for a in _own_actions(p, shared, with_help):
        out += tagged(_option_term(p, a), _help(p, a))
    return out


def commands(p: argparse.ArgumentParser, shared: dict[tuple[str, ...], str | None]) -> list[str]:
    out: list[str] = []
    for _, summary, sp in _subcommands(p):
        out += [".SS " + esc(sp.prog.split(" ", 1)[1])]
        out += synopsis(sp, shared, top=False)
        out += help_text(sp.description or summary)
        out += options(sp, shared)
        if sp.epilog:
            out += help_text(sp.epilog)
        out += commands(sp, shared)
    return out


# ---- a page


def render(src: Source, version: str) -> str:
    parser = load_parser(src.parser) if src.parser else None
    shared = {tuple(a.option_strings): a.help for a in parser._actions if a.option_strings} if parser else {}
    out = [f'.\\" Generated by packaging/man/genman.py from packaging/man/src/{src.filename}.txt and the argument parser;',
           '.\\" edit those and run it again, not this file.',
           f'.TH {src.name.upper()} {src.section} "" "omerta-mesh {version}" "omerta-mesh manual"',
           ".SH NAME", f"{esc(src.name)} \\- {esc(src.summary)}"]
    text: list[str] = []

    def flush() -> None:
        if any(t.strip() for t in text):
            out.extend(help_text("\n".join(text)))
        text.clear()

    lines = iter(src.body)
    for ln in lines:
        if ln.startswith("# "):
            flush()
            out.append(".SH " + ln[2:].strip().upper())
        elif ln.startswith("@"):
            flush()
            if parser is None:
                raise SystemExit(f"{src.filename}: {ln} needs a 'parser:' line")
            out += {"@synopsis": lambda: synopsis(parser, shared, top=True),
                    "@options": lambda: options(parser, {}, with_help=True),
                    "@commands": lambda: commands(parser, shared),
                    "@epilog": lambda: help_text(parser.epilog or "")}[ln.strip()]()
        elif ln.startswith(": "):
            flush()
            term = ln[2:].strip()
            desc = []
            for d in lines:
                if not d.strip():
                    break
                desc.append(d)
            out += tagged(inline(term) if "`" in term else bold(term), "\n".join(desc))
        else:
            text.append(ln)
    flush()
    return "\n".join(out) + "\n"


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def generate() -> dict[str, str]:
    """{file name: page text} for every source."""
    os.environ.pop("OMERTA_SOCKET", None)  # defaults shown must not depend on who runs this
    for d in ("daemon", "clients"):
        if str(ROOT / d) not in sys.path:
            sys.path.insert(0, str(ROOT / d))
    version = project_version()
    pages = {}
    for path in sorted(SOURCES.glob("*.txt")):
        src = read_source(path)
        pages[src.filename] = render(src, version)
    return pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the man pages in packaging/man from their sources and the parsers.")
    ap.add_argument("--check", action="store_true", help="only compare: exit 1 naming the pages that differ")
    args = ap.parse_args(argv)
    pages = generate()
    stale = [n for n, text in pages.items() if not (HERE / n).exists() or (HERE / n).read_text() != text]
    if args.check:
        for n in stale:
            print(f"packaging/man/{n} is stale: run .venv/bin/python packaging/man/genman.py", file=sys.stderr)
        return 1 if stale else 0
    for n in stale:
        (HERE / n).write_text(pages[n])
        print(f"wrote packaging/man/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
