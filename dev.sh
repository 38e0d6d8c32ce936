#!/bin/sh
# omerta-mesh from a checkout, with nothing installed beforehand: the README's two commands.
#
#   ./dev.sh demo [--json]     a local three-node mesh on loopback (embedded default configuration)
#   ./dev.sh test [pytest args] the whole test suite (root-only tests skip with a reason when not root)
#   ./dev.sh fast              the quick subset for development (no slow, no root-only tests)
#   ./dev.sh lint              house rules (tests/test_boundaries.py), ruff and mypy, as CI runs them
#   ./dev.sh bench             the benchmarks
#   ./dev.sh python ARGS...    the environment's python (e.g. ./dev.sh python -m omerta_mesh.meshd.main --help)
#
# It sets itself up and reuses what it set up: a virtual environment in .venv (Debian's python3 is
# "externally managed", so nothing goes into the system's Python), the Python packages pyproject.toml
# declares (installed again only when pyproject.toml changes), and, when run as root, the Debian packages
# the tests use. Not root and something is missing: it prints the one apt-get line to run.
# Environment: PYTHON (default python3) picks the interpreter the environment is made from; OMERTA_VENV
# moves the environment elsewhere (e.g. a directory you can write when the checkout is not yours).
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${OMERTA_VENV:-.venv}
EXTRAS=test,speed,lint

say() { printf '%s\n' "$*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {  # apt_install PKG...: as root install them, else print the line to run and return 1
    if is_root && command -v apt-get >/dev/null 2>&1; then
        say "dev.sh: installing Debian packages: $*"
        if [ -z "${OMERTA_APT_UPDATED:-}" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq || say "dev.sh: apt-get update failed; using the package lists we have"
            OMERTA_APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        say "dev.sh: missing Debian packages; run:  sudo apt-get install -y $*"
        return 1
    fi
}

has_headers() {  # Python.h for $PYTHON (Debian: python3-dev), which systemd-python compiles against
    "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null
}

ensure_python() {
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        apt_install python3 python3-venv || exit 1
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "dev.sh: $PYTHON is $("$PYTHON" -V 2>&1); omerta-mesh needs Python 3.11 or newer (Debian 12 has it: PYTHON=/usr/bin/python3)"
        exit 1
    fi
    # Debian ships venv's pip bootstrap in a separate package
    if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        v=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python$v-venv" || exit 1
    fi
}

ensure_venv() {
    ensure_python
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        say "dev.sh: creating the virtual environment $VENV (from $("$PYTHON" -V 2>&1))"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    stamp="$VENV/.omerta-installed"
    want="$EXTRAS $(cksum < pyproject.toml) $(pwd)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "dev.sh: installing omerta-mesh and its dependencies into $VENV (once; again only when pyproject.toml changes)"
        [ -w "${HOME:-/nonexistent}" ] || export PIP_NO_CACHE_DIR=1  # e.g. nobody: no home for pip's cache
        if [ -w . ]; then
            pip_install -e ".[$EXTRAS]"
        else  # a checkout we may not write (another user's): pip -e would write its egg-info into it
            say "dev.sh: $(pwd) is not writable: installing only the dependencies; $VENV finds the checkout's code through a .pth file"
            requirements "$EXTRAS" > "$VENV/omerta-requirements.txt"
            pip_install -r "$VENV/omerta-requirements.txt"
            "$VENV/bin/python" -c 'import sys, sysconfig; open(sysconfig.get_paths()["purelib"] + "/omerta-checkout.pth", "w").write("\n".join(sys.argv[1:]) + "\n")' \
                "$(pwd)/daemon" "$(pwd)/clients"
        fi
        # journald logging (systemd-python) builds from source; optional: without it the daemon logs to stderr
        if command -v gcc >/dev/null 2>&1 && pkg-config --exists libsystemd 2>/dev/null && has_headers; then
            requirements systemd --only > "$VENV/omerta-requirements.txt"
            pip_install -r "$VENV/omerta-requirements.txt" || say "dev.sh: systemd-python did not build; journald logging is off (stderr instead)"
        fi
        echo "$want" > "$stamp"
    fi
}

pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

requirements() {  # requirements EXTRAS [--only]: pyproject.toml's dependencies and those extras (--only: just the extras)
    "$VENV/bin/python" -c 'import sys, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = [] if "--only" in sys.argv else list(p["dependencies"])
for extra in sys.argv[1].split(","):
    reqs += p["optional-dependencies"][extra]
print("\n".join(reqs))' "$@"
}

ensure_test_tools() {
    # what the root-only tests drive for real: namespaces and veth (iproute2), NAT (nftables), ping,
    # a private bus (dbus), iperf3, sshd and ssh, ethtool (offloads), and journald's headers for
    # systemd-python; without them those tests skip
    missing=""
    command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
    command -v nft >/dev/null 2>&1 || missing="$missing nftables"
    command -v ping >/dev/null 2>&1 || missing="$missing iputils-ping"
    command -v dbus-daemon >/dev/null 2>&1 || missing="$missing dbus"
    command -v pgrep >/dev/null 2>&1 || missing="$missing procps"
    command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
    command -v iperf3 >/dev/null 2>&1 || missing="$missing iperf3"
    [ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
    command -v ssh >/dev/null 2>&1 || missing="$missing openssh-client"
    command -v ethtool >/dev/null 2>&1 || missing="$missing ethtool"
    command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
    if is_root; then
        command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
        pkg-config --exists libsystemd 2>/dev/null || missing="$missing pkg-config libsystemd-dev"
        has_headers || missing="$missing python3-dev"
    fi
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        apt_install $missing || say "dev.sh: the tests that need them will skip, saying why"
    fi
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
    demo)
        ensure_venv
        exec "$VENV/bin/python" -m omerta_mesh.demo "$@" ;;
    test)
        ensure_test_tools
        ensure_venv
        exec "$VENV/bin/python" -m pytest -q "$@" ;;
    fast)
        ensure_venv
        exec "$VENV/bin/python" -m pytest -q -m "not slow and not root" "$@" ;;
    lint)
        ensure_venv
        "$VENV/bin/python" -m pytest -q tests/test_boundaries.py  # house rules: import arrows, module sizes (seconds)
        "$VENV/bin/python" -m ruff check daemon clients tests bench docs packaging
        exec "$VENV/bin/python" -m mypy ;;
    bench)
        ensure_venv
        for b in handshakes session_throughput; do "$VENV/bin/python" "bench/$b.py"; done ;;
    python)
        ensure_venv
        exec "$VENV/bin/python" "$@" ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        [ "$cmd" = help ] || exit 2 ;;
esac
