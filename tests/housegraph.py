"""The house's package graph, checked from source with `ast` (HOUSE.md section 6, rules 1 and 12).

Every module under a source root is parsed; every import, relative ones included, is resolved to an absolute
module name and checked against the allowed arrows between layers. Nothing is imported or executed, so a
forbidden import is found even where it sits under `if TYPE_CHECKING:` or inside a function.

Layers of `omerta_mesh` (the first name after the package; `node.py` and `demo.py` are their own layers):

    core  -> core                     sim   -> core, sim
    vnet  -> core, vnet (+ vnet.exit -> io.nft)
    io    -> core, io                 node  -> core, io, vnet
    meshd -> anything in omerta_mesh  demo  -> anything in omerta_mesh

core, sim and vnet are sans-I/O: no asyncio, socket, select, time, threading, subprocess, random (and the
like, see PURE_BANNED), no file I/O (`open()`, `os.<anything but urandom>`). `omerta_clients` imports nothing
of `omerta_mesh`. A module in an unknown layer is itself reported, so a new layer has to be placed here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

DAEMON_PKG = "omerta_mesh"
CLIENT_PKG = "omerta_clients"

# Which omerta_mesh layers each layer may import. "*" means any.
ARROWS: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "sim": frozenset({"core", "sim"}),
    "vnet": frozenset({"core", "vnet"}),
    "io": frozenset({"core", "io"}),
    "node": frozenset({"core", "io", "vnet", "node"}),
    "meshd": frozenset({"*"}),
    "demo": frozenset({"*"}),
}
# Single module-to-module exceptions to ARROWS: (importer, imported prefix).
EXCEPTIONS: frozenset[tuple[str, str]] = frozenset({("omerta_mesh.vnet.exit", "omerta_mesh.io.nft")})

PURE_LAYERS = frozenset({"core", "sim", "vnet"})
# Standard-library and third-party modules that do I/O, read clocks, spawn work or draw randomness.
PURE_BANNED = frozenset({
    "asyncio", "socket", "select", "selectors", "time", "threading", "multiprocessing", "concurrent",
    "subprocess", "random", "secrets", "signal", "pathlib", "io", "shutil", "tempfile", "glob", "fcntl",
    "mmap", "ssl", "http", "urllib", "importlib", "sched", "datetime",
    "uvloop", "pyroute2", "dbus_fast", "jsonrpcserver", "systemd",
})
# os is allowed in pure layers for these names only (the system Entropy reads os.urandom).
PURE_OS_ALLOWED = frozenset({"urandom"})
# Pure modules exempt from PURE_BANNED (none today; vnet/exit.py reaches nft only through io.nft).
PURE_EXEMPT: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} -> {self.target}: {self.rule}"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def find_modules(src_root: Path, package: str) -> list[Module]:
    """Every module of `package` under `src_root` (e.g. daemon/ and omerta_mesh), with its dotted name."""
    out = []
    for f in sorted((src_root / package).rglob("*.py")):
        parts = list(f.relative_to(src_root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out.append(Module(".".join(parts), f, is_pkg))
    return out


def resolve(module: Module, node: ast.ImportFrom) -> str | None:
    """The absolute name a `from ... import` refers to; None if a relative import climbs above the top package."""
    if node.level == 0:
        return node.module or ""
    pkg = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    if node.level - 1 > len(pkg) - 1:
        return None
    base = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: Module, tree: ast.AST) -> list[tuple[int, list[str]]]:
    """(line, candidate absolute names) per import statement (per name for `import a, b`).

    `from X import a` yields [X, X.a]: `a` may be a submodule, so both are checked; one report per statement.
    """
    out: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, [a.name]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, node)
            if base is None:
                out.append((node.lineno, ["." * node.level + (node.module or "")]))
                continue
            out.append((node.lineno, [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]))
    return out


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != DAEMON_PKG:
        return None
    return parts[1] if len(parts) > 1 else ""


def _file_io(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls of builtin open() and __import__() (an import the graph cannot see), uses of os.<name> beyond PURE_OS_ALLOWED."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "__import__"):
            hits.append((node.lineno, f"{node.func.id}()"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            if node.attr not in PURE_OS_ALLOWED:
                hits.append((node.lineno, f"os.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "os":
            hits += [(node.lineno, f"os.{a.name}") for a in node.names if a.name not in PURE_OS_ALLOWED]
    return hits


def _arrow_rule(name: str, layer: str, allowed: frozenset[str], pure: bool, target: str) -> str | None:
    """Why `name` (in `layer`) may not import `target`, or None if it may."""
    tlayer = layer_of(target)
    if tlayer is not None:
        if tlayer == "" or "*" in allowed or tlayer in allowed:
            return None
        if any(name == imp and (target == pre or target.startswith(pre + ".")) for imp, pre in EXCEPTIONS):
            return None
        return f"{layer} may import only {sorted(allowed)} of omerta_mesh"
    if pure and target.split(".")[0] in PURE_BANNED:
        return f"{layer} is sans-I/O: no I/O, clocks, threads or randomness (take `now`, an Entropy)"
    return None


def check_module(module: Module, rel: str) -> list[Violation]:
    tree = ast.parse(module.path.read_text(), str(module.path))
    bad: list[Violation] = []

    def report(line: int, target: str, rule: str) -> None:
        bad.append(Violation(rel, line, module.name, target, rule))

    top = module.name.split(".")[0]
    if top == CLIENT_PKG:
        for line, targets in imports_of(module, tree):
            if targets[0].split(".")[0] == DAEMON_PKG:
                report(line, targets[0], "clients import nothing of omerta_mesh (talk to the daemon over its API)")
        return bad

    layer = layer_of(module.name)
    if layer == "":  # omerta_mesh/__init__.py
        return bad
    if layer not in ARROWS:
        report(1, module.name, f"layer {layer!r} is not in tests/housegraph.py ARROWS: place it there")
        return bad
    allowed = ARROWS[layer]
    pure = layer in PURE_LAYERS and module.name not in PURE_EXEMPT
    for line, targets in imports_of(module, tree):
        if targets[0].startswith("."):
            report(line, targets[0], "relative import climbs above the top-level package")
            continue
        for target in targets:
            rule = _arrow_rule(module.name, layer, allowed, pure, target)
            if rule:
                report(line, target, rule)
                break
    if pure:
        for line, what in _file_io(tree):
            report(line, what, f"{layer} is sans-I/O: no file or OS access (the driver or meshd does it)")
    return bad


def check(src_root: Path, package: str, rel_to: Path | None = None) -> list[Violation]:
    """All violations in `package` under `src_root`; paths in the report are relative to `rel_to`."""
    rel_base = rel_to or src_root
    out: list[Violation] = []
    for m in find_modules(src_root, package):
        out += check_module(m, str(m.path.relative_to(rel_base)))
    return out
