"""Build the Debian package omerta-mesh_<version>_<arch>.deb with dpkg-deb (``make deb``).

    /usr/bin/python3 packaging/deb/build.py [--out DIR] [--keep]

Run it with the Python the package is for: Debian's /usr/bin/python3 (3.11 on Debian 12). Debian's own
python3-* packages are too old for us (cryptography 38, pyroute2 0.7, no jsonrpcserver), so the package
carries a private virtual environment, /usr/lib/omerta-mesh/venv, made here from that Python with the wheels
from PyPI at the versions pinned in packaging/deb/constraints.txt (docs/packaging.md says why and what it
costs). What it installs:

    /usr/bin/{omerta-meshd,omertactl,omerta-top,omerta-ssh}    sh wrappers: exec the venv's python3 -I -m MODULE
    /usr/lib/omerta-mesh/venv                                  the environment, byte-compiled here
    /usr/lib/systemd/system/omerta-meshd.service               systemd/omerta-meshd.service
    /usr/lib/sysusers.d/omerta.conf                            the group omerta
    /usr/lib/tmpfiles.d/omerta-mesh.conf                       /var/lib/omerta, 0700
    /usr/share/dbus-1/system.d/org.omerta.Mesh1.conf           packaging/dbus
    /etc/omerta/meshd.toml                                     conffile: the embedded default, commented out
    /usr/share/man/man{1,8}/                                   packaging/man (generated, committed)
    /usr/share/bash-completion/completions/                    generated from the shipped parsers
    /usr/share/doc/omerta-mesh/                                copyright, changelog, api.md

The tree is built in a temporary directory; the source is the working tree (daemon/, clients/, pyproject.toml,
README.md), copied first so nothing is written into the checkout but the .deb in --out (default dist/).
Needs: python3-venv, dpkg-dev (dpkg-shlibdeps), binutils (strip), and for systemd-python (journald logging)
gcc, python3-dev, libsystemd-dev and pkg-config; packaging/ci-deb.sh installs them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = "omerta-mesh"
PREFIX = Path("/usr/lib/omerta-mesh")
VENV = PREFIX / "venv"
COMMANDS = {"omerta-meshd": "omerta_mesh.meshd.main", "omertactl": "omerta_clients.ctl.main",
            "omerta-top": "omerta_clients.tui.app", "omerta-ssh": "omerta_clients.ssh.main"}
EXTRAS = "systemd,speed"  # journald logging (systemd-python) and uvloop, which the daemon uses when present
MAINTAINER = "omerta-mesh maintainers <omerta-mesh@users.noreply.example.org>"  # a placeholder: the repository names none
DESCRIPTION = """\
peer-to-peer mesh VPN with NAT traversal and relays
 omerta-mesh joins Linux machines into private networks: each node keeps
 end-to-end encrypted Noise sessions with the other members, finds them
 through signed peer records passed on by gossip, reaches them through NATs
 by coordinated hole punching, and through another member acting as a relay
 when no direct path works. Each network gets a TUN device carrying the
 members' mesh IPs.
 .
 This package holds the daemon omerta-meshd (a systemd service, not enabled
 on installation), the command-line client omertactl, the live view
 omerta-top and omerta-ssh (ssh to a peer with host keys vouched for by its
 mesh identity). It carries its own Python environment in
 /usr/lib/omerta-mesh."""


def say(msg: str) -> None:
    print(f"build.py: {msg}", file=sys.stderr, flush=True)


def run(*argv: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], check=True, text=True, **kw)  # type: ignore[call-overload]


def project() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["project"])


# ---- the environment


def copy_source(dst: Path) -> Path:
    src = dst / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for d in ("daemon", "clients"):
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / f, src / f)
    return src


def make_venv(stage: Path, src: Path, python: str) -> Path:
    venv = stage / VENV.relative_to("/")
    say(f"creating {VENV} (staged) from {python} and installing omerta-mesh[{EXTRAS}] with the pinned wheels")
    run(python, "-m", "venv", venv)
    # PyPI only (no machine-wide pip.conf, find-links or extra indexes), and a cache of our own: a wheel built
    # for another Python (a checkout's .venv) must not be reused (systemd-python's would name that Python's lib)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore",
               PIP_CACHE_DIR=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "omerta-mesh-deb"))
    pip: list[str | Path] = [venv / "bin/python", "-m", "pip"]
    quiet(*pip, "install", "--no-compile", "-c", HERE / "constraints.txt", f"{src}[{EXTRAS}]", env=env)
    quiet(*pip, "uninstall", "-y", "pip", "setuptools", env=env)  # not needed at run time
    return venv


def quiet(*argv: str | Path, env: dict[str, str]) -> None:
    """Run a command, showing its output only when it fails."""
    r = subprocess.run([str(a) for a in argv], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode:
        sys.stderr.write(r.stdout)
        raise SystemExit(f"build.py: {' '.join(map(str, argv[:4]))} ... failed (exit {r.returncode}), output above")


def generated_files(venv: Path, stage: Path) -> None:
    """The conffile and the completions, from the code just installed (so they are true for what ships)."""
    py = venv / "bin/python"  # -I: only the environment's own packages (not a checkout in the current directory); -B: no .pyc yet
    default = run(py, "-I", "-B", "-m", "omerta_mesh.meshd.main", "--print-default-config", capture_output=True).stdout
    write(stage / "etc/omerta/meshd.toml", commented_config(default))
    comp = stage / "usr/share/bash-completion/completions"
    write(comp / "omertactl", run(py, "-I", "-B", "-m", "omerta_clients.ctl.main", "completion", "bash", capture_output=True).stdout)
    os.symlink("omertactl", comp / "omerta-top")  # the same script completes both (bash-completion loads it by name)
    for name in ("omerta-meshd", "omerta-ssh"):
        write(comp / name, run(py, "-I", "-B", HERE / "completion.py", name, capture_output=True).stdout)


def commented_config(default: str) -> str:
    """The embedded default configuration with every setting commented out: the file changes nothing until the
    admin uncomments a line, and each line shows the default and what it means."""
    out = ["# /etc/omerta/meshd.toml: omerta-meshd's configuration (omerta-meshd(8), CONFIGURATION).",
           "# Generated from the daemon's embedded default (omerta-meshd --print-default-config) when the package",
           "# was built: every setting is commented out and shows its default. Uncomment and change what you need,",
           "# then `systemctl reload omerta-meshd` (settings not marked live need a restart).", ""]
    for line in default.splitlines():
        out.append(f"#{line}" if re.match(r"[a-z_][a-z0-9_]*\s*=", line) else line)
    return "\n".join(out) + "\n"


def relocate(venv: Path, stage: Path, version: str) -> None:
    """Make the staged environment right for /usr/lib/omerta-mesh/venv: pyvenv.cfg, the interpreter links
    (relative, to the exact python3.X the package depends on; ``version`` is its X.Y.Z), and nothing else in
    bin/: the commands are run by the wrappers in /usr/bin, the rest (activate, the dependencies' own scripts)
    is not needed."""
    minor = version.rsplit(".", 1)[0]
    bindir = venv / "bin"
    for f in bindir.iterdir():
        f.unlink()
    os.symlink(f"../../../../bin/python{minor}", bindir / "python3")  # /usr/lib/omerta-mesh/venv/bin -> /usr/bin
    os.symlink("python3", bindir / "python")
    os.symlink("python3", bindir / f"python{minor}")
    staged = str(stage).encode()
    shutil.rmtree(venv / "include")  # empty: nothing is compiled against this environment
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {version}\n"
                                     f"executable = /usr/bin/python{minor}\ncommand = /usr/bin/python{minor} -m venv {VENV}\n")
    for direct_url in venv.glob("lib/python*/site-packages/*.dist-info/direct_url.json"):  # names the build directory
        direct_url.unlink()
        record, entry = direct_url.with_name("RECORD"), f"{direct_url.parent.name}/direct_url.json,"
        record.write_text("".join(ln for ln in record.read_text().splitlines(True) if not ln.startswith(entry)))
    leftovers = [str(p) for p in venv.rglob("*") if p.is_file() and not p.is_symlink() and staged in p.read_bytes()]
    if leftovers:
        raise SystemExit(f"build.py: these files still name the build directory {stage}: {leftovers[:5]}")


def strip_and_compile(venv: Path, stage: Path, python: str) -> list[Path]:
    """Strip the extension modules (as dh_strip does) and byte-compile everything for /usr/lib/omerta-mesh,
    hash-checked, so nothing writes __pycache__ under /usr at run time. Returns the ELF files."""
    elves = [p for p in venv.rglob("*") if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"]
    for p in elves:
        run("strip", "--remove-section=.comment", "--remove-section=.note", "--strip-unneeded", p)
    for cache in list(venv.rglob("__pycache__")):
        shutil.rmtree(cache)
    run(python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "checked-hash", "-s", stage, "-p", "/", venv / "lib")
    return elves


# ---- the rest of the tree


def write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)  # gzip -9n: no name, no time


def install_files(stage: Path, version: str, date: str, dists: str) -> None:
    for cmd, module in COMMANDS.items():
        # -I: neither PYTHONPATH nor the current directory nor the user's site-packages can change what runs
        write(stage / "usr/bin" / cmd, f'#!/bin/sh\nexec {VENV}/bin/python3 -I -m {module} "$@"\n', 0o755)
    write(stage / "usr/lib/systemd/system/omerta-meshd.service", (ROOT / "systemd/omerta-meshd.service").read_bytes())
    write(stage / "usr/lib/sysusers.d/omerta.conf", (ROOT / "systemd/sysusers.d/omerta.conf").read_bytes())
    write(stage / "usr/lib/tmpfiles.d/omerta-mesh.conf", (HERE / "tmpfiles.conf").read_bytes())
    write(stage / "usr/share/dbus-1/system.d/org.omerta.Mesh1.conf", (ROOT / "packaging/dbus/org.omerta.Mesh1.conf").read_bytes())
    for page in sorted((ROOT / "packaging/man").glob("*.[18]")):
        write(stage / f"usr/share/man/man{page.suffix[1:]}/{page.name}.gz", gzipped(page.read_bytes()))
    doc = stage / "usr/share/doc" / PACKAGE
    write(doc / "copyright", copyright_text(dists, date.split()[3]))
    write(doc / "api.md", (ROOT / "docs/api.md").read_bytes())  # the unit's Documentation= names it
    changelog = (f"{PACKAGE} ({version}) unstable; urgency=medium\n\n"
                 "  * Built from the omerta-mesh source tree; its git history lists the changes.\n\n"
                 f" -- {MAINTAINER}  {date}\n")
    write(doc / "changelog.gz", gzipped(changelog.encode()))
    write(stage / "usr/share/lintian/overrides" / PACKAGE, (HERE / "lintian-overrides").read_bytes())


def bundled(venv: Path) -> str:
    """One line per Python distribution in the environment: name, version, licence (from its metadata)."""
    code = """
import importlib.metadata as md
for d in sorted(md.distributions(), key=lambda d: d.metadata["Name"].lower()):
    m = d.metadata
    lic = m.get("License-Expression") or ""
    if not lic or len(lic) > 60:
        lic = "; ".join(c.split(" :: ")[-1] for c in m.get_all("Classifier") or [] if c.startswith("License ::"))
    if not lic:
        lic = (m.get("License") or "").split("\\n")[0][:60]
    print(f"  {m['Name']} {d.version}: {lic or 'see its metadata'}")
"""
    return run(venv / "bin/python", "-I", "-B", "-c", code, capture_output=True).stdout


def copyright_text(dists: str, year: str) -> str:
    return f"""\
omerta-mesh: peer-to-peer mesh VPN for Linux

Copyright {year} the omerta-mesh authors. A placeholder: the source repository names no copyright holder
and carries no LICENSE file.

License: its pyproject.toml declares Apache-2.0; on Debian systems the complete text of the Apache
License, Version 2.0 is in /usr/share/common-licenses/Apache-2.0.

Bundled: /usr/lib/omerta-mesh/venv holds these Python distributions from PyPI (name, version, licence as
each one's metadata states it); each one's licence text is in its
/usr/lib/omerta-mesh/venv/lib/python3.*/site-packages/*.dist-info directory:
{dists}"""


# ---- control data and the archive


def normalise(stage: Path) -> None:
    """root:root is dpkg-deb's --root-owner-group; modes: directories 0755, files 0755 if executable else 0644."""
    for p in [stage, *stage.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        p.chmod(0o755 if p.is_dir() or mode & stat.S_IXUSR else 0o644)


def shlib_depends(elves: list[Path], tmp: Path) -> str:
    """The shared-library dependencies of the extension modules, from dpkg-shlibdeps."""
    work = tmp / "shlibdeps"
    write(work / "debian/control", f"Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n")
    out = run("dpkg-shlibdeps", "-O", "--warnings=0", *[f"-e{p}" for p in elves], cwd=work, capture_output=True).stdout
    m = re.search(r"^shlibs:Depends=(.*)$", out, re.M)
    return m[1] if m else ""


def installed_size(stage: Path) -> int:
    """KiB, as dpkg-gencontrol counts: each file rounded up to 1 KiB, each directory and symlink 1."""
    total = 0
    for p in stage.rglob("*"):
        if p.is_relative_to(stage / "DEBIAN"):
            continue
        total += -(-p.lstat().st_size // 1024) if p.is_file() and not p.is_symlink() else 1
    return total


def control(stage: Path, version: str, arch: str, python_minor: str, shlibs: str) -> None:
    deb = stage / "DEBIAN"
    depends = ", ".join(filter(None, [f"python{python_minor}", shlibs, "systemd | systemd-standalone-sysusers | systemd-sysusers"]))
    write(deb / "control", f"""\
Package: {PACKAGE}
Version: {version}
Architecture: {arch}
Maintainer: {MAINTAINER}
Installed-Size: {installed_size(stage)}
Depends: {depends}
Recommends: dbus
Suggests: openssh-client
Section: net
Priority: optional
Description: {DESCRIPTION}
""")
    write(deb / "conffiles", "/etc/omerta/meshd.toml\n")
    for script in ("postinst", "prerm", "postrm"):
        write(deb / script, (HERE / script).read_bytes(), 0o755)
    conffiles = {stage / "etc/omerta/meshd.toml"}
    sums = []
    for p in sorted(stage.rglob("*")):
        if p.is_file() and not p.is_symlink() and not p.is_relative_to(deb) and p not in conffiles:
            sums.append(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(stage)}\n")
    write(deb / "md5sums", "".join(sums))


def source_date() -> tuple[int, str]:
    """SOURCE_DATE_EPOCH, else the last commit's time, else now: (epoch, RFC 2822 date for the changelog)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        git = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True)
        epoch = git.stdout.strip() or str(int(time.time()))
    return int(epoch), time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(int(epoch)))


def build(out: Path, python: str, keep: bool) -> Path:
    meta = project()
    version = str(meta["version"])
    arch = run("dpkg", "--print-architecture", capture_output=True).stdout.strip()
    py_version = run(python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])", capture_output=True).stdout.strip()
    epoch, date = source_date()
    tmp = Path(tempfile.mkdtemp(prefix="omerta-deb-"))
    try:
        stage = tmp / "root"
        venv = make_venv(stage, copy_source(tmp), python)
        generated_files(venv, stage)
        dists = bundled(venv)
        relocate(venv, stage, py_version)
        elves = strip_and_compile(venv, stage, python)
        install_files(stage, version, date, dists)
        normalise(stage)
        control(stage, version, arch, py_version.rsplit(".", 1)[0], shlib_depends(elves, tmp))
        out.mkdir(parents=True, exist_ok=True)
        deb = out / f"{PACKAGE}_{version}_{arch}.deb"
        run("dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage, deb, env=dict(os.environ, SOURCE_DATE_EPOCH=str(epoch)),
            capture_output=True)
        say(f"wrote {deb} ({deb.stat().st_size // 1024} KiB; installed size {installed_size(stage)} KiB)")
        return deb
    finally:
        if keep:
            say(f"kept the build tree {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build omerta-mesh_<version>_<arch>.deb (docs/packaging.md).")
    ap.add_argument("--out", default=str(ROOT / "dist"), help="where the .deb goes (default dist/ in the checkout)")
    ap.add_argument("--python", default="/usr/bin/python3", help="the Debian Python the package is for (default /usr/bin/python3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary build tree (its path is printed)")
    a = ap.parse_args(argv)
    missing = [t for t in ("dpkg-deb", "dpkg-shlibdeps", "strip") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"build.py: {', '.join(missing)} not found; install them: apt-get install dpkg-dev binutils")
    python = os.path.realpath(a.python)
    build(Path(a.out).resolve(), python, a.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
