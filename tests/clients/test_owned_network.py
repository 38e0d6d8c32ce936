"""Owned networks through the daemon and omertactl (issue 16 item 6, docs/membership.md): three real daemons on
loopback (no TUN). dora creates an owned network and makes a one-time tagged invite; emil joins with it (admitted,
and each side's `peers` shows the other's certificate: role, tags, expiry); fred's join with the same invite is
refused as "used" with the fix, and fred is left outside the network; an open network refuses invite options."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from clients.ctlharness import check_result, ctl, peer_json, started, wait_until
from meshd.harness import DaemonProc


@pytest.fixture
def three(tmp_path: Path) -> Iterator[tuple[DaemonProc, DaemonProc, DaemonProc]]:
    with started(tmp_path, "dora", "emil", "fred") as (dora, emil, fred):
        yield dora, emil, fred


def test_owned_network_invite_join_used_and_peers_show_certificates(three) -> None:
    dora, emil, fred = three
    dora_id = ctl(dora.socket, "status", "--json").json()["node_id"]
    emil_id = ctl(emil.socket, "status", "--json").json()["node_id"]
    created = check_result("network.create", ctl(dora.socket, "--json", "network", "create", "lab", "--owned").json())
    assert created["invite"].startswith("omerta2-")
    [net] = ctl(dora.socket, "network", "list", "--json").json()["networks"]
    assert net["owner"] == dora_id

    inv = ctl(dora.socket, "network", "invite", "lab", "--uses", "1", "--expires", "2h", "--tags", "web,db")
    assert inv.rc == 0, inv.err
    invite = inv.out.strip()
    assert invite.startswith("omerta2-") and invite != created["invite"]  # a fresh token each time

    j = ctl(emil.socket, "network", "join", invite)
    assert j.rc == 0 and "joined network lab" in j.out and "connected to the inviter" in j.out, (j.out, j.err)

    # dora sees emil's certificate (from the credential in emil's signed record), emil sees dora's (the owner's)
    wait_until(lambda: (peer_json(dora.socket, emil_id) or {}).get("cert_expires") is not None, 20, "emil's certificate at dora")
    pe = check_result("peers.list", ctl(dora.socket, "peers", "--json").json())["peers"][0]
    assert pe["role"] == "member" and pe["tags"] == ["web", "db"]
    assert time.time() < pe["cert_expires"] < time.time() + 31 * 86400
    wait_until(lambda: (peer_json(emil.socket, dora_id) or {}).get("cert_expires") is not None, 20, "dora's certificate at emil")
    pd = peer_json(emil.socket, dora_id)
    assert pd is not None and pd["role"] == "owner" and pd["tags"] == []
    table = ctl(dora.socket, "peers").out
    assert "CERT" in table.splitlines()[0] and "member web,db until " in table, table
    detail = ctl(dora.socket, "peer", emil_id[:12]).out
    assert "certificate" in detail and "member web,db until" in detail, detail

    # the one use is spent: fred is refused with the reason and the fix, and is not left in the network
    r = ctl(fred.socket, "network", "join", invite)
    assert r.rc != 0 and "used" in r.err and "fix:" in r.err and "ask an admin for a new one" in r.err, (r.out, r.err)
    assert ctl(fred.socket, "network", "list", "--json").json()["networks"] == []

    # an open network's invite is its key: options are refused, saying why and what to do instead
    ctl(dora.socket, "network", "create", "open", "--open")
    o = ctl(dora.socket, "network", "invite", "open", "--uses", "2")
    assert o.rc != 0 and "is open" in o.err and "omertactl network create NAME" in o.err, o.err
    assert ctl(dora.socket, "network", "invite", "open").out.startswith("omerta1-")
    bad = ctl(dora.socket, "network", "invite", "lab", "--expires", "40d")
    assert bad.rc == 2 and "30 days" in bad.err


def test_network_remove_cuts_a_member_off_and_is_refused_where_it_cannot_be(three) -> None:
    """dora (owner) invites emil and fred; fred may not remove emil (a plain member); dora removes fred: it leaves the
    peers of dora and emil and stays out, and the network key is rotated (key 1 at dora and emil, not at fred);
    `network rekey` rotates it again, only at the owner's word; an open network refuses removal and rotation, saying
    why and what to do instead."""
    dora, emil, fred = three
    emil_id = ctl(emil.socket, "status", "--json").json()["node_id"]
    fred_id = ctl(fred.socket, "status", "--json").json()["node_id"]
    ctl(dora.socket, "network", "create", "lab", "--owned")
    for d in (emil, fred):
        j = ctl(d.socket, "network", "join", ctl(dora.socket, "network", "invite", "lab").out.strip())
        assert j.rc == 0, (j.out, j.err)
    wait_until(lambda: peer_json(emil.socket, fred_id) is not None and peer_json(fred.socket, emil_id) is not None, 30,
               "emil and fred meet")
    no = ctl(fred.socket, "network", "remove", "lab", emil_id[:12])
    assert no.rc != 0 and "only the owner or an admin" in no.err and "fix:" in no.err, no.err
    r = ctl(dora.socket, "--json", "network", "remove", "lab", fred_id[:12])
    assert r.rc == 0, r.err
    assert check_result("network.remove", r.json()) == {"network": r.json()["network"], "peer": fred_id, "removed": True,
                                                        "epoch": 1}
    wait_until(lambda: peer_json(dora.socket, fred_id) is None and peer_json(emil.socket, fred_id) is None, 5, "fred gone at dora and emil")
    wait_until(lambda: _epoch(emil.socket) == 1, 5, "emil takes the new key")
    assert _epoch(dora.socket) == 1 and _epoch(fred.socket) == 0  # fred was never told
    assert "owned by" in ctl(emil.socket, "network", "list").out and ", key 1" in ctl(emil.socket, "network", "list").out
    # fred keeps trying with its certificate, which has not expired: refused (counted), still out
    wait_until(lambda: _counter(dora.socket, "drop.cert_revoked") > 0, 15, "fred's handshakes refused at dora")
    assert peer_json(dora.socket, fred_id) is None and peer_json(emil.socket, fred_id) is None
    assert peer_json(dora.socket, emil_id) is not None  # the others stay
    no = ctl(emil.socket, "network", "rekey", "lab")
    assert no.rc != 0 and "only the owner" in no.err and "fix:" in no.err, no.err
    k = ctl(dora.socket, "network", "rekey", "lab")
    assert k.rc == 0 and "now uses key 2" in k.out and "7 days more" in k.out, (k.out, k.err)
    assert check_result("network.rekey", ctl(dora.socket, "--json", "network", "rekey", "lab").json())["epoch"] == 3
    wait_until(lambda: _epoch(emil.socket) == 3, 5, "emil takes the key again")
    dora_id = ctl(dora.socket, "status", "--json").json()["node_id"]
    assert ctl(emil.socket, "ping", dora_id[:12], "-c", "1").rc == 0  # and still talks to dora
    ctl(dora.socket, "network", "create", "open", "--open")
    o = ctl(dora.socket, "network", "remove", "open", emil_id[:12])
    assert o.rc != 0 and "is open" in o.err and "omertactl network create NAME" in o.err, o.err
    o = ctl(dora.socket, "network", "rekey", "open")
    assert o.rc != 0 and "is open" in o.err and "omertactl network create NAME" in o.err, o.err


def _counter(sock: Path, name: str) -> int:
    return int(ctl(sock, "status", "--json").json()["counters"].get(name, 0))


def _epoch(sock, name: str = "lab") -> int:  # type: ignore[no-untyped-def]
    return next(n["epoch"] for n in ctl(sock, "network", "list", "--json").json()["networks"] if n["name"] == name)


def test_network_invites_lists_open_invites_and_revoke_invite_cancels_one(three) -> None:
    """dora lists her open invites (token, uses left, expiry, name, tags); emil uses one of two uses; dora revokes it:
    it leaves the list, and fred's join with it is refused with "revoked" and the fix, and fred stays outside; a token
    that matches nothing is refused with where to look; an open network has no invites to list."""
    dora, emil, fred = three
    ctl(dora.socket, "network", "create", "lab")  # owned by default (its first invite: one use, 24 h)
    invite = ctl(dora.socket, "network", "invite", "lab", "--uses", "2", "--expires", "2h", "--name", "lap",
                 "--tags", "web").out.strip()
    listed = check_result("network.invites", ctl(dora.socket, "--json", "network", "invites", "lab").json())["invites"]
    assert len(listed) == 2
    mine = listed[0]  # the sooner to expire
    assert (mine["uses"], mine["uses_left"], mine["name"], mine["tags"]) == (2, 2, "lap", ["web"])
    assert time.time() + 7000 < mine["expires"] < time.time() + 7300 and len(mine["token"]) == 32
    table = ctl(dora.socket, "network", "invites", "lab").out
    assert "TOKEN" in table and mine["token"] in table and "2/2" in table and "web" in table, table

    j = ctl(emil.socket, "network", "join", invite)
    assert j.rc == 0, (j.out, j.err)
    wait_until(lambda: ctl(dora.socket, "--json", "network", "invites", "lab").json()["invites"][0]["uses_left"] == 1, 10,
               "one use spent")

    none = ctl(dora.socket, "network", "revoke-invite", "lab", "ffffffffffff")
    assert none.rc != 0 and "match" in none.err and "network invites lab" in none.err, none.err
    r = ctl(dora.socket, "--json", "network", "revoke-invite", "lab", mine["token"][:10])
    assert r.rc == 0, r.err
    assert check_result("network.revoke_invite", r.json())["token"] == mine["token"]
    left = ctl(dora.socket, "--json", "network", "invites", "lab").json()["invites"]
    assert [i["token"] for i in left] == [listed[1]["token"]]

    f = ctl(fred.socket, "network", "join", invite)
    assert f.rc != 0 and "revoked" in f.err and "fix:" in f.err and "ask an admin" in f.err, (f.out, f.err)
    assert ctl(fred.socket, "network", "list", "--json").json()["networks"] == []

    ctl(dora.socket, "network", "create", "open", "--open")
    assert ctl(dora.socket, "--json", "network", "invites", "open").json()["invites"] == []


def test_an_invite_sent_in_band_is_listed_and_joined_with_network_accept(three) -> None:
    """dora and emil share an open network; dora sends emil an invite to her owned network in-band (no string to copy);
    emil's `network offers` lists it (and `events` told it), `network accept` joins with it (enrolled, connected) and
    the offer is gone; an invite to a node with no session, and an offer that does not exist, are refused with the
    fix."""
    dora, emil, fred = three
    home = ctl(dora.socket, "network", "create", "home", "--open").out
    j = ctl(emil.socket, "network", "join", next(x for x in home.splitlines() if x.startswith("omerta1-")))
    assert j.rc == 0, (j.out, j.err)
    emil_id = ctl(emil.socket, "status", "--json").json()["node_id"]
    ctl(dora.socket, "network", "create", "lab")
    sent = check_result("network.invite", ctl(dora.socket, "--json", "network", "invite", "lab", "--to", emil_id[:12]).json())
    assert sent["sent_to"] == emil_id and sent["invite"].startswith("omerta2-") and len(sent["offer"]) == 12
    wait_until(lambda: ctl(emil.socket, "--json", "network", "offers").json()["offers"], 5, "the offer at emil")
    [o] = check_result("network.offers", ctl(emil.socket, "--json", "network", "offers").json())["offers"]
    assert (o["offer"], o["name"], o["owned"]) == (sent["offer"], "lab", True) and o["expires"] > time.time() + 3600
    table = ctl(emil.socket, "network", "offers").out
    assert sent["offer"] in table and "lab" in table and "owned" in table and "network accept" in table, table
    assert "invite" not in o  # the invite itself (it holds the key) is handed out by network.accept only
    assert emil.log_text().count(f"omertactl network accept {sent['offer']}") == 1  # the daemon's log says how to take it
    a = ctl(emil.socket, "network", "accept", sent["offer"][:6])
    assert a.rc == 0 and "joined network lab" in a.out and "connected to the inviter" in a.out, (a.out, a.err)
    assert ctl(emil.socket, "--json", "network", "offers").json()["offers"] == []
    lab = next(n for n in ctl(emil.socket, "network", "list", "--json").json()["networks"] if n["name"] == "lab")
    assert lab["owner"] == ctl(dora.socket, "status", "--json").json()["node_id"]
    fred_id = ctl(fred.socket, "status", "--json").json()["node_id"]
    before = ctl(dora.socket, "--json", "network", "invites", "lab").json()["invites"]
    no = ctl(dora.socket, "network", "invite", "lab", "--to", fred_id[:12])  # fred shares no network with dora
    assert no.rc == 5 and "unknown peer" in no.err and "fix:" in no.err, no.err
    assert ctl(dora.socket, "--json", "network", "invites", "lab").json()["invites"] == before  # refused first: no token made
    again = ctl(dora.socket, "network", "invite", "lab", "--to", emil_id[:12])  # emil is in lab already: sent, ignored there
    assert again.rc == 0 and "network accept" in again.out, (again.out, again.err)
    wait_until(lambda: _counter(emil.socket, "invite.offers_ignored") == 1, 5, "emil to ignore the offer")
    assert ctl(emil.socket, "--json", "network", "offers").json()["offers"] == []
    gone = ctl(emil.socket, "network", "accept", sent["offer"])
    assert gone.rc != 0 and "network offers" in gone.err and "fix:" in gone.err, gone.err


def test_the_owner_names_an_admin_who_then_invites(three) -> None:
    """dora (owner) names emil an admin with `network admin`: dora's peers show emil as admin, and emil's invite admits
    fred; emil cannot name admins, nor can dora name one twice."""
    dora, emil, fred = three
    emil_id = ctl(emil.socket, "status", "--json").json()["node_id"]
    ctl(dora.socket, "network", "create", "lab")
    assert ctl(emil.socket, "network", "join", ctl(dora.socket, "network", "invite", "lab").out.strip()).rc == 0
    r = ctl(dora.socket, "--json", "network", "admin", "lab", emil_id[:12])
    assert r.rc == 0 and check_result("network.admin", r.json()) == {"network": r.json()["network"], "peer": emil_id,
                                                                       "role": "admin"}, r.err
    wait_until(lambda: (peer_json(dora.socket, emil_id) or {}).get("role") == "admin", 10, "emil shown as admin at dora")
    again = ctl(dora.socket, "network", "admin", "lab", emil_id[:12])
    assert again.rc != 0 and "already admin" in again.err, again.err
    dora_id = ctl(dora.socket, "status", "--json").json()["node_id"]
    no = ctl(emil.socket, "network", "admin", "lab", dora_id[:12])
    assert no.rc != 0 and "only the owner" in no.err and "fix:" in no.err, no.err
    j = ctl(fred.socket, "network", "join", ctl(emil.socket, "network", "invite", "lab").out.strip())
    assert j.rc == 0 and "joined network lab" in j.out, (j.out, j.err)


def test_another_admin_the_invite_names_enrols_the_joiner_when_the_inviter_is_away(three) -> None:
    """dora's invite names emil, an admin, as another to ask (an omerta3- invite); dora stops; fred's `network join`
    is answered by emil within the join's wait, and fred is connected to emil."""
    dora, emil, fred = three
    emil_id = ctl(emil.socket, "status", "--json").json()["node_id"]
    ctl(dora.socket, "network", "create", "lab")
    assert ctl(emil.socket, "network", "join", ctl(dora.socket, "network", "invite", "lab").out.strip()).rc == 0
    assert ctl(dora.socket, "network", "admin", "lab", emil_id[:12]).rc == 0
    wait_until(lambda: (peer_json(dora.socket, emil_id) or {}).get("role") == "admin", 10, "emil shown as admin at dora")
    invite = ctl(dora.socket, "network", "invite", "lab").out.strip()
    assert invite.startswith("omerta3-"), invite
    dora.stop()
    j = ctl(fred.socket, "--json", "network", "join", invite, "--wait", "20")
    res = check_result("network.join", j.json())
    assert j.rc == 0 and res["enrolled_by"] == emil_id and res["connected"], (j.out, j.err)
    assert (peer_json(fred.socket, emil_id) or {}).get("connected"), ctl(fred.socket, "peers").out
    lab = next(n for n in ctl(fred.socket, "network", "list", "--json").json()["networks"] if n["name"] == "lab")
    assert lab["owner"] == res["inviter"]  # (dora, the owner, made the invite)
