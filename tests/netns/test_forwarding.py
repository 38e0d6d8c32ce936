"""io/forwarding.py on a real kernel, in a namespace of its own (root): IPv4 and IPv6 forwarding held by the exit
offer and subnet routes, put back as it was; IPv6's keeps router advertisements on interfaces that took them.

The namespace has two interfaces besides lo (a veth pair): ``up0`` takes router advertisements (accept_ra 1, as a SLAAC
uplink), ``quiet0`` takes none (accept_ra 0) and has forwarding on by itself (an admin's choice while
``all.forwarding`` is 0). The sequence runs in one process inside it (the holders are that process's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netns.tunlab import make_ns, sh

pytestmark = pytest.mark.root
DAEMON = Path(__file__).resolve().parents[2] / "daemon"

SCRIPT = r"""
import json, os
from omerta_mesh.io import forwarding as f

def state():
    conf = "/proc/sys/net/ipv6/conf"
    out = {"ip_forward": open("/proc/sys/net/ipv4/ip_forward").read().strip()}
    for name in ("all", "default", "lo", "up0", "quiet0"):
        out[name] = [open(f"{conf}/{name}/{k}").read().strip() for k in ("forwarding", "accept_ra")]
    return out

steps = [("before", state())]
f.hold("subnets", 6, True); steps.append(("subnets holds 6", state()))
f.hold("exit", 6, True); f.hold("subnets", 6, False); steps.append(("exit holds 6, subnets let go", state()))
os.system("ip link add later0 type veth peer name later1")  # made while held: default's values
steps.append(("later0", [open(f"/proc/sys/net/ipv6/conf/later0/{k}").read().strip() for k in ("forwarding", "accept_ra")]))
f.hold("exit", 6, False); steps.append(("nobody holds 6", state()))
f.hold("exit", 4, True); steps.append(("exit holds 4", state()))
f.hold("exit", 4, False); steps.append(("nobody holds 4", state()))
print(json.dumps(steps))
"""


@pytest.fixture
def ns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = make_ns(f"fwd{time.monotonic_ns() % 10**6}")
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def test_forwarding_is_held_per_family_and_put_back_with_router_advertisements_kept(ns: str) -> None:
    sh("ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "quiet0")  # (no dummy module here)
    for cmd in ("net.ipv6.conf.up0.accept_ra=1", "net.ipv6.conf.quiet0.accept_ra=0",
                "net.ipv6.conf.quiet0.forwarding=1", "net.ipv4.ip_forward=0"):
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", cmd)
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "PYTHONPATH": str(DAEMON)})
    assert r.returncode == 0, r.stderr
    steps = dict(json.loads(r.stdout))
    before = steps["before"]
    assert before["all"][0] == "0" and before["up0"] == ["0", "1"] and before["quiet0"] == ["1", "0"], before

    on = steps["subnets holds 6"]
    assert on["all"][0] == "1" and on["up0"] == ["1", "2"], on  # a router that still takes the uplink's RAs
    assert on["quiet0"] == ["1", "0"] and on["default"] == ["1", "2"], on  # accept_ra 0 stays 0; new ones take RAs
    assert on["ip_forward"] == "0"  # the other family untouched
    assert steps["exit holds 6, subnets let go"] == on  # still held by the exit
    assert steps["later0"] == ["1", "2"]

    assert steps["nobody holds 6"] == before  # quiet0's own forwarding too, though writing all.forwarding cleared it
    assert steps["exit holds 4"] == {**before, "ip_forward": "1"}
    assert steps["nobody holds 4"] == before
