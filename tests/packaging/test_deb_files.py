"""What packaging/deb/build.py generates for the package, checked without building it (the build, lintian and
the install run in packaging/ci-deb.sh, from .ci/run: about two minutes, too long for the suite): the
commented /etc/omerta/meshd.toml means the embedded default, omerta-meshd's bash completion works in a real
bash, and the unit names only pages and files the package installs."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from omerta_mesh.meshd import config
from omerta_mesh.meshd.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEB = ROOT / "packaging/deb"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DEB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_packaged_config_file_changes_nothing_and_shows_every_setting(tmp_path: Path) -> None:
    text = _load("build").commented_config(config.DEFAULT_TOML)
    assert tomllib.loads(text) == {k: {} for k in tomllib.loads(config.DEFAULT_TOML)}  # every table, nothing set
    f = tmp_path / "meshd.toml"
    f.write_text(text)
    loaded = config.load(f)
    assert config.diff(config.default(), loaded) == ([], [])
    for section, keys in tomllib.loads(config.DEFAULT_TOML).items():
        assert f"\n[{section}]" in text
        for key in keys:
            assert re.search(rf"^#{key}\s*=", text, re.M), f"[{section}] {key} is not shown commented out"
    # uncommenting a line is how an admin changes a setting: it must then parse and take effect
    changed = text.replace("#port = 51888", "port = 51999")
    f.write_text(changed)
    assert config.load(f).node.port == 51999


def _complete(script: str, words: list[str]) -> list[str]:
    """What bash offers after ``words`` (the last one being completed), using the script's function."""
    quoted = " ".join(f"'{w}'" for w in words)
    prog = f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _omerta_meshd; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    r = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_omerta_meshd_completion_offers_options_choices_and_files(tmp_path: Path) -> None:
    script = _load("completion").meshd_script(build_parser())
    assert subprocess.run(["bash", "-n", "-c", script], timeout=30).returncode == 0
    assert _complete(script, ["omerta-meshd", "--log"]) == ["--log-level"]
    assert sorted(_complete(script, ["omerta-meshd", "--relay-mode", ""])) == ["auto", "off", "on"]
    (tmp_path / "meshd.toml").write_text("")
    assert _complete(script, ["omerta-meshd", "--config", str(tmp_path / "me")]) == [str(tmp_path / "meshd.toml")]
    assert _complete(script, ["omerta-meshd", "--port", ""]) == []  # a number: nothing to offer
    offered = set(_complete(script, ["omerta-meshd", "--"]))
    assert {o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")} <= offered


def test_the_unit_names_only_what_the_package_installs(tmp_path: Path) -> None:
    """ExecStart and every Documentation= reference resolve in the tree build.py stages (its install_files: the
    files that do not come from the environment), man pages as the .gz man finds."""
    unit = (ROOT / "systemd/omerta-meshd.service").read_text()
    build = _load("build")
    build.install_files(tmp_path, "0", "Thu, 01 Jan 1970 00:00:00 +0000", "")
    exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M)
    assert exec_start
    command = tmp_path / exec_start[1].lstrip("/")
    assert command.is_file() and command.stat().st_mode & 0o111, f"{exec_start[1]}: build.py installs no such command"
    docs = re.search(r"^Documentation=(.*)$", unit, re.M)
    assert docs
    for ref in docs[1].split():
        if m := re.fullmatch(r"man:([\w-]+)\((\d)\)", ref):
            installed = tmp_path / f"usr/share/man/man{m[2]}/{m[1]}.{m[2]}.gz"
        else:
            assert ref.startswith("file:///"), ref
            installed = tmp_path / ref.removeprefix("file:///")
        assert installed.is_file(), f"{ref}: build.py does not install {installed.relative_to(tmp_path)}"
