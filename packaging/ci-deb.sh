#!/usr/bin/env bash
# The Debian package, end to end, as CI runs it (as root, on a Debian 12 machine; docs/packaging.md):
#   build (packaging/deb/build.py)  ->  lintian (errors and warnings fail; overrides are justified in
#   packaging/deb/lintian-overrides)  ->  dpkg -i (apt-get install -f for dependencies)  ->  use it from the
#   installed paths (--version, --help, systemd-analyze verify on the installed unit, systemd-sysusers, the
#   man pages, a daemon started and asked for its status)  ->  dpkg -r (state and configuration kept)  ->
#   dpkg --purge (both gone). Each step is checked; the figures (sizes, times) are printed at the end.
# It refuses to run where omerta-mesh state exists that this script did not make (it would purge it).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

say() { printf 'ci-deb: %s\n' "$*"; }
fail() { printf 'ci-deb: FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || fail "run as root: it installs, removes and purges the package"
if ! dpkg -s omerta-mesh >/dev/null 2>&1; then
  for d in /var/lib/omerta /etc/omerta; do
    [ -e "$d" ] && fail "$d exists and omerta-mesh is not installed: this run would purge it; move it away first"
  done
fi

# what the build, lintian and the checks need (Debian 12 names)
need=""
for pair in dpkg-deb:dpkg-dev dpkg-shlibdeps:dpkg-dev strip:binutils lintian:lintian gcc:gcc pkg-config:pkg-config \
            man:man-db systemd-analyze:systemd systemd-sysusers:systemd; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
done
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need="$need python3-venv"
/usr/bin/python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
  || need="$need python3-dev"
pkg-config --exists libsystemd 2>/dev/null || need="$need libsystemd-dev"
if [ -n "$need" ]; then
  say "installing:$need"
  apt-get update -qq || say "apt-get update failed; using the package lists we have"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

work=$(mktemp -d /tmp/omerta-ci-deb.XXXXXX)
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

t=$(now)
/usr/bin/python3 packaging/deb/build.py --out "$work"
build_s=$(since "$t")
deb=$(ls "$work"/omerta-mesh_*_"$(dpkg --print-architecture)".deb)
say "built $(basename "$deb") in ${build_s}s"

t=$(now)
lintian --fail-on error,warning "$deb" || fail "lintian reported errors or warnings (above)"
say "lintian: no errors or warnings ($(lintian --show-overrides "$deb" 2>/dev/null | grep -c '^O:') overridden tags, justified in packaging/deb/lintian-overrides) in $(since "$t")s"

t=$(now)
if ! dpkg -i "$deb"; then
  say "dpkg -i left dependencies to install: apt-get install -f"
  apt-get install -f -y -qq --no-install-recommends >/dev/null
fi
[ "$(dpkg-query -W -f='${Status}' omerta-mesh)" = "install ok installed" ] || fail "omerta-mesh is not installed after dpkg -i"
install_s=$(since "$t")
say "installed in ${install_s}s"

# the commands, from the installed paths
ver=$(dpkg-query -W -f='${Version}' omerta-mesh)
out=$(/usr/bin/omerta-meshd --version)
[ "$out" = "omerta-meshd $ver" ] || fail "omerta-meshd --version printed '$out', not 'omerta-meshd $ver'"
/usr/bin/omertactl --help | grep -q "^usage: omertactl" || fail "omertactl --help printed no usage"
/usr/bin/omerta-top --help | grep -q "^usage: omerta-top" || fail "omerta-top --help printed no usage"
say "omerta-meshd --version: $out; omertactl --help and omerta-top --help: usage printed"

# the unit as installed: ExecStart and the Documentation= man pages must exist (verify checks both)
unit=/usr/lib/systemd/system/omerta-meshd.service
r=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $r"
[ -z "$(grep -i 'omerta' <<<"$r")" ] || fail "systemd-analyze verify $unit complained: $r"
say "systemd-analyze verify $unit: clean (ExecStart and the man pages in Documentation= found)"

systemd-sysusers
getent group omerta >/dev/null || fail "no group omerta after systemd-sysusers"
[ "$(stat -c %a /var/lib/omerta)" = 700 ] || fail "/var/lib/omerta is not 0700 (tmpfiles.d)"
for page in omerta-meshd.8 omertactl.1 omerta-top.1 omerta-ssh.1; do  # (lintian rendered them: groff-message)
  f=/usr/share/man/man${page##*.}/$page.gz
  [ "$(man -w "${page%.*}" 2>/dev/null)" = "$f" ] || fail "man does not find $f"
done
grep -q '^#port = 51888' /etc/omerta/meshd.toml || fail "/etc/omerta/meshd.toml is not the commented default"
say "group omerta, /var/lib/omerta 0700, man pages found, /etc/omerta/meshd.toml commented"

# used: the installed daemon (default state directory and configuration file; no TUN, no D-Bus, loopback only)
/usr/bin/omerta-meshd --no-vnet --no-dbus --listen 127.0.0.1 --port 0 --runtime-dir "$work/run" >"$work/meshd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 300); do  # up to 30 s for the socket to answer
  /usr/bin/omertactl --socket "$work/run/meshd.sock" --timeout 2 status --json >"$work/status.json" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/meshd.log"; fail "the installed omerta-meshd exited"; }
  sleep 0.1
done
node=$(/usr/lib/omerta-mesh/venv/bin/python3 -I -c 'import json, sys; print(json.load(open(sys.argv[1]))["node_id"])' "$work/status.json") \
  || { cat "$work/meshd.log"; fail "omertactl status --json gave no node id"; }
/usr/bin/omertactl --socket "$work/run/meshd.sock" shutdown >/dev/null
wait "$daemon_pid" || { cat "$work/meshd.log"; fail "omerta-meshd did not stop cleanly"; }
daemon_pid=""
[ -n "$(ls -A /var/lib/omerta)" ] || fail "the daemon left no state in /var/lib/omerta"
say "the installed omerta-meshd ran: node $node, state in /var/lib/omerta, stopped by omertactl shutdown"

# nothing was written under /usr/lib/omerta-mesh at run time (the .pyc files are shipped)
extra=$(comm -13 <(dpkg -L omerta-mesh | sort) <(find /usr/lib/omerta-mesh | sort))
[ -z "$extra" ] || fail "files under /usr/lib/omerta-mesh that dpkg does not know: $(head -5 <<<"$extra")"

size_kib=$(( $(stat -c %s "$deb") / 1024 ))
installed_kib=$(dpkg-query -W -f='${Installed-Size}' omerta-mesh)

t=$(now)
dpkg -r omerta-mesh
[ "$(dpkg-query -W -f='${Status}' omerta-mesh)" = "deinstall ok config-files" ] || fail "dpkg -r: status is not config-files"
for f in /usr/bin/omerta-meshd /usr/lib/omerta-mesh $unit; do [ ! -e "$f" ] || fail "dpkg -r left $f"; done
[ -f /etc/omerta/meshd.toml ] || fail "dpkg -r removed the configuration"
[ -n "$(ls -A /var/lib/omerta)" ] || fail "dpkg -r removed the state"
say "dpkg -r: programs gone, /etc/omerta/meshd.toml and /var/lib/omerta kept"

dpkg --purge omerta-mesh
! dpkg -s omerta-mesh >/dev/null 2>&1 || fail "omerta-mesh still known to dpkg after --purge"
for d in /var/lib/omerta /etc/omerta; do [ ! -e "$d" ] || fail "dpkg --purge left $d"; done
say "dpkg --purge: /var/lib/omerta and /etc/omerta gone (the group omerta stays, as Debian leaves system groups)"
remove_s=$(since "$t")

say "figures: package $size_kib KiB, installed size $installed_kib KiB, build ${build_s}s, install ${install_s}s, remove and purge ${remove_s}s"
