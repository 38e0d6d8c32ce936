"""`omertactl doctor` on real kernels (issue 14, item 6): real omerta-meshd daemons in the netns lab.

A and B are public hosts, R a relay and S a second public peer (so A's NAT verdict is classified and a relay
is known: failover has somewhere to go), in one network. `omertactl doctor B --json` on A passes every phase
and exits 0. Then B's UDP is blocked on the lab's internet (to and from A, R and S: the peer is cut off, not
only the direct path, which would just move to the relay): doctor fails B's session phase with the cause and
the fix, skips the phases that need a session, and exits 6 (peer unreachable).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.ctlharness import ctl
from netns.lab import Lab
from netns.test_mesh_matrix import connect, pair_mesh, wait_for
from omerta_clients.ctl.doctor_phases import current_path

pytestmark = pytest.mark.root


def doctor(sock: Path, *args: str) -> tuple[int, dict]:
    r = ctl(sock, "doctor", *args, "--json", timeout=120)
    return r.rc, r.json()


def verdicts(report: dict) -> dict[tuple[str, str], str]:
    return {(p["scope"], p["name"]): p["verdict"] for p in report["phases"]}


def test_doctor_passes_on_a_healthy_pair_and_fails_the_session_when_the_peers_udp_is_blocked(lab: Lab, tmp_path: Path) -> None:
    R, S, A, B = pair_mesh(lab, tmp_path, "public", "public")
    connect(A, B)
    assert wait_for(lambda: A.call("netcheck.run")["status"] == "classified", 20), A.call("netcheck.run")
    assert wait_for(lambda: all((current_path(d) or {}).get("mtu") is not None for d in A.call("peers.get", peer="B")["networks"]),
                    30), A.call("peers.get", peer="B")  # the path MTU is probed once the path answers: the mtu phase reads it

    rc, rep = doctor(A.socket, "B")
    bad = [p for p in rep["phases"] if p["verdict"] != "pass"]
    assert rc == 0 and rep["ok"] and not bad, bad
    assert [p["name"] for p in rep["phases"] if p["scope"] == "B"] == \
        ["session", "path", "rtt", "loss", "mtu", "throughput", "failover"]

    for other in (A, R, S):
        lab.block(B.host, other.host)
    rc, rep = doctor(A.socket, "B", "-W", "1")
    v = verdicts(rep)
    session = next(p for p in rep["phases"] if p["name"] == "session")
    assert rc == 6 and not rep["ok"], rep
    assert session["verdict"] == "fail", session
    assert "does not answer" in session["detail"] or "no session" in session["detail"], session
    assert "UDP between the two of you is allowed" in session["fix"] and B.host.public_ip in session["fix"], session
    assert all(v[("B", n)] == "skip" for n in ("path", "rtt", "loss", "mtu", "throughput", "failover")), v
    assert all(v[("node", n)] != "fail" for n in ("daemon", "permissions", "config", "udp", "nat", "relays")), v
