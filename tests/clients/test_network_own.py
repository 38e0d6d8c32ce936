"""An open network becoming owned through omertactl (docs/membership.md 7), on two real daemons on loopback:
`omertactl network own` by a member that joined is refused, naming who may; by the creator it claims the network; the
member that dora invited follows by itself; `network list` shows the transition ("open, owned by ... from ...") and
then the owned network; `network accept-owner` with no claim waiting is refused with where to look; both keep talking."""

from __future__ import annotations

import time
from pathlib import Path

from clients.ctlharness import check_result, ctl, start_all, wait_until
from meshd.harness import DaemonProc

TRANSITION = 10


def _home(sock: Path) -> dict:
    return next(n for n in ctl(sock, "network", "list", "--json").json()["networks"] if n["name"] == "home")


def test_the_creator_owns_its_open_network_and_the_member_it_invited_follows(tmp_path: Path) -> None:
    conf = tmp_path / "meshd.toml"
    conf.write_text(f"[node]\nowner_transition = {TRANSITION}\n")
    dora, emil = (DaemonProc(tmp_path, n, ["--config", str(conf)]) for n in ("dora", "emil"))
    try:
        start_all([dora, emil])
        dora_id = ctl(dora.socket, "status", "--json").json()["node_id"]
        created = ctl(dora.socket, "--json", "network", "create", "home", "--open").json()
        j = ctl(emil.socket, "network", "join", created["invite"])
        assert j.rc == 0, j.err
        r = ctl(emil.socket, "network", "own", "home")
        assert r.rc != 0 and "only its creator claims it" in r.err and "on the machine that created it" in r.err, r.err
        assert _home(dora.socket)["owner"] is None and _home(dora.socket)["claim_owner"] is None  # open on purpose: not claimed
        o = ctl(dora.socket, "network", "own", "home")
        assert o.rc == 0 and "this node claims network home" in o.out and f"owned by {dora_id[:12]} from" in o.out, (o.out, o.err)
        res = check_result("network.own", ctl(dora.socket, "--json", "network", "own", "home").json())  # (again: the same claim)
        assert res["owner"] == dora_id and res["certified"] and time.time() < res["owned_from"] <= time.time() + TRANSITION
        wait_until(lambda: _home(emil.socket)["claim_owner"] == dora_id or _home(emil.socket)["owner"] == dora_id, 10,
                   "emil follows dora's claim")
        home, table = _home(emil.socket), ctl(emil.socket, "network", "list").out
        if home["owner"] is None:  # (the transition lasts TRANSITION seconds: the list is read just after it began)
            assert home["owned_from"] == res["owned_from"] and f"open, owned by {dora_id[:12]} from" in table, table
        wait_until(lambda: _home(emil.socket)["owner"] == dora_id and _home(dora.socket)["owner"] == dora_id,
                   TRANSITION + 15, "home owned by dora")
        assert f"owned by {dora_id[:12]}" in ctl(emil.socket, "network", "list").out
        r = ctl(emil.socket, "network", "accept-owner", "home", "abcdef")
        assert r.rc != 0 and "no owner claims waiting" in r.err and "claims_waiting" in r.err, r.err
        wait_until(lambda: ctl(emil.socket, "ping", dora_id[:12], "--count", "1").rc == 0, 15, "emil pings dora in home")
    finally:
        for d in (dora, emil):
            d.close()
