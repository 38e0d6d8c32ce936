"""The NAT lab's namespace side: node records (Host, Nat), shell helpers, and cleanup of namespaces and processes.

Used by lab.py (the Lab class). Every namespace is called ``om-<pid>-<n>-<name>``; ``sweep`` removes them.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/run/netns")
ENV_MARK = "OMERTA_LAB"
PUBLIC_NET = ipaddress.IPv4Network("203.0.113.0/24")
PUBLIC_GW = "203.0.113.1"


class LabError(RuntimeError):
    """A lab command failed."""



def run_prefix(pid: int | None = None) -> str:
    """Prefix of every namespace made by this process (``om-<pid>-``)."""
    return f"om-{os.getpid() if pid is None else pid}-"


def _sh(argv: list[str], *, input: str | None = None, check: bool = True, timeout: float = 30):
    r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


_missing_cache: list[str | None] = []


def requirements_missing() -> str | None:
    """Why the lab cannot run here (None when it can). Cached per process."""
    if _missing_cache:
        return _missing_cache[0]
    why = None
    if os.geteuid() != 0:
        why = "the netns lab needs root (network namespaces, nftables); CI runs as root"
    elif missing := [t for t in ("ip", "nft") if shutil.which(t) is None]:
        why = f"the netns lab needs {' and '.join(missing)} (apt-get install iproute2 nftables)"
    else:
        ns = f"{run_prefix()}0-check"
        r = _sh(["ip", "netns", "add", ns], check=False)
        if r.returncode != 0:
            why = f"cannot create network namespaces here: {r.stderr.strip()}"
        else:
            r = _sh(["ip", "netns", "exec", ns, "nft", "add", "table", "ip", "t"], check=False)
            _sh(["ip", "netns", "del", ns], check=False)
            if r.returncode != 0:
                why = f"nftables does not work in a namespace here: {r.stderr.strip()}"
    _missing_cache.append(why)
    return why


# ------------------------------------------------------------------------------------------- nodes
@dataclass(eq=False)
class Host:
    name: str
    ns: str
    ip: str
    nat: Nat | None = None
    iface: str = "eth0"
    port: str = ""  # the veth end in the switch namespace
    switch_ns: str = ""
    master: str = ""  # the bridge the port belongs to
    ip6: str = ""  # an IPv6 address, where the lab gave one (add_lan_host's subnet6)

    @property
    def public_ip(self) -> str:
        return self.nat.wan_ip if self.nat else self.ip

    @property
    def gateway(self) -> str:
        return self.nat.lan_ip if self.nat else PUBLIC_GW

    @property
    def net(self) -> ipaddress.IPv4Network:
        return self.nat.lan if self.nat else PUBLIC_NET

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class Nat:
    name: str
    ns: str
    kind: str
    wan_ip: str
    lan: ipaddress.IPv4Network
    lan_ip: str
    hosts: list[Host] = field(default_factory=list)
    iface: str = "wan0"
    port: str = ""
    switch_ns: str = ""
    master: str = "br0"

    @property
    def public_ip(self) -> str:
        return self.wan_ip

    @property
    def ip(self) -> str:
        return self.wan_ip

    @property
    def net(self) -> ipaddress.IPv4Network:
        return PUBLIC_NET

    def __str__(self) -> str:
        return self.name


Node = Host | Nat

_NS_INIT = """
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done
ip link set lo up
"""


# ---------------------------------------------------------------------------------------- cleanup
def _ns_pids(ns: str) -> list[int]:
    r = _sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split()] if r.returncode == 0 else []


def marked_processes(prefix: str) -> list[int]:
    """Pids of live processes started by a lab whose namespace names start with ``prefix``."""
    needle = f"{ENV_MARK}={prefix}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            env = Path(f"/proc/{d}/environ").read_bytes()
            state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(e.startswith(needle) for e in env.split(b"\0")):
            found.append(int(d))
    return found


def lab_namespaces(prefix: str = "om-") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _kill(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def destroy_namespaces(names: list[str]) -> None:
    """Kill every process inside the namespaces, then delete them (their veths and bridges go too)."""
    for ns in names:
        _kill(_ns_pids(ns))
    for ns in names:
        _sh(["ip", "netns", "del", ns], check=False)


def sweep(prefix: str | None = None) -> list[str]:
    """Remove every namespace and marked process with ``prefix`` (default: this process's prefix)."""
    prefix = prefix or run_prefix()
    names = lab_namespaces(prefix)
    destroy_namespaces(names)
    _kill(marked_processes(prefix))
    return names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove leftovers of lab runs whose process is gone (e.g. a pytest killed with SIGKILL)."""
    removed = []
    pids = {int(m.group(1)) for n in lab_namespaces() if (m := re.match(r"om-(\d+)-", n))}
    for pid in sorted(pids):
        if pid != os.getpid() and not _alive(pid):
            removed += sweep(run_prefix(pid))
    return removed


atexit.register(lambda: lab_namespaces(run_prefix()) and sweep())
