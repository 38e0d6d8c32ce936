"""Membership that can be taken back, on real kernels (issue 16; docs/membership.md): real omerta-meshd daemons in
the netns lab, an owned network driven by omertactl in each node's namespace, as a user would.

One lab for the module (the checks run in order, removal last): O creates the owned network "lab" on a public address
(relay-capable); B, a plain member on a public address, joins as the lab is built; A sits behind a port-restricted
nftables NAT, X behind a full-cone NAT of its own.

1. a one-time tagged invite (`network invite lab --uses 1 --expires 1h --tags nat,web`) admits A across its NAT: A
   connects to O and to B, each side's `peers` shows the other's role, tags and certificate expiry, O sees A at its
   NAT's public address; X's join with the same invite is refused "used" (exit 1, with the fix) and leaves X outside;
   the spent invite leaves O's `network invites`;
2. an invite made with `--expires 2s` is listed while valid, then refused "expired" once past it; an invite cancelled
   with `network revoke-invite` is refused "revoked";
3. X joins with a fresh invite and meets every member; O removes it (`network remove lab X`): within 5 s of the
   command it is gone from the peers of O, A and B, and X has no session left; pings and messages to it fail; its own
   handshakes are refused and counted (`drop.cert_revoked` in `omertactl status --json`); its old invite and a new one
   are refused "revoked"; a stream of channel messages A -> B (across A's NAT) flows before, during and after the
   removal with none lost, and A still pings B.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from meshd.rpcclient import RpcError
from netns.lab import Lab
from netns.test_mesh_matrix import Meshd, Stream, host_of, say, start_all, wait_for

pytestmark = pytest.mark.root

REFUSED = 1  # omertactl's exit code for a refusal (omerta_clients/errors.py: ERROR)
NOT_FOUND = 5  # ... for an unknown peer
CTL_ENV = {**os.environ, "COLUMNS": "200"}  # (tables unwrapped)


@dataclass
class Owned:
    lab: Lab
    Own: Meshd  # O, the owner
    A: Meshd
    B: Meshd
    X: Meshd
    t0: float


def ctl(d: Meshd, *args: str) -> subprocess.CompletedProcess:
    """omertactl in d's namespace, on d's socket; text output captured."""
    return d.lab.exec(d.host, [sys.executable, "-m", "omerta_clients.ctl.main", "--socket", str(d.socket), *args],
                      timeout=60, env=CTL_ENV)


def ctl_json(d: Meshd, *args: str) -> Any:
    r = ctl(d, "--json", *args)
    assert r.returncode == 0, f"omertactl {' '.join(args)} at {d.name}: exit {r.returncode}\n{r.stdout}{r.stderr}"
    return json.loads(r.stdout)


def networks(d: Meshd) -> list[dict]:
    return d.call("network.list")["networks"]


def connected(a: Meshd, b: Meshd) -> bool:
    return bool((p := a.peer(b)) and p["connected"])


def links(ds: tuple[Meshd, ...]) -> dict[str, str | None]:
    """Each ordered pair's path (None: no session), for messages."""
    return {f"{a.name}->{b.name}": (p["path"] if (p := a.peer(b)) and p["connected"] else None)
            for a in ds for b in ds if a is not b}


def meshed(ds: tuple[Meshd, ...]) -> bool:
    return all(connected(a, b) for a in ds for b in ds if a is not b)


def counter(d: Meshd, name: str) -> int:
    return int(d.call("status.get")["counters"].get(name, 0))


def join(d: Meshd, invite: str) -> subprocess.CompletedProcess:
    return ctl(d, "network", "join", invite)


def invites(d: Meshd) -> list[dict]:
    return ctl_json(d, "network", "invites", "lab")["invites"]


def refused(r: subprocess.CompletedProcess, word: str) -> bool:
    """omertactl refused with exit 1, the refusal's word and a fix."""
    return r.returncode == REFUSED and word in r.stderr and "fix:" in r.stderr


def error_of(call: Callable[[], Any]) -> str | None:
    """The name of the RpcError ``call`` raised (None: it returned)."""
    try:
        call()
    except RpcError as e:
        return e.name
    return None


def logs(*ds: Meshd) -> str:
    counters = {d.name: {k: v for k, v in d.call("status.get")["counters"].items() if k.startswith(("enrol", "drop.", "member"))}
                for d in ds if d.alive()}
    return f"\ncounters: {counters}\n" + "\n".join(f"--- {d.name}'s log (tail):\n{d.log(4000)}" for d in ds)


@pytest.fixture(scope="module")
def owned(lab_session, tmp_path_factory) -> Iterator[Owned]:
    """The lab, its four daemons started, O's owned network "lab" with B in it; everything torn down at the end."""
    if lab_session is not None:
        pytest.skip(lab_session)
    base = tmp_path_factory.mktemp("owned")
    t0 = time.monotonic()
    with Lab(workdir=base) as lab:
        Own = Meshd(lab, lab.add_public_host("o"), base, "O", relay=True, log_level="info")
        A = Meshd(lab, host_of(lab, "a", "port-restricted"), base, "A", log_level="info")
        B = Meshd(lab, lab.add_public_host("b"), base, "B", log_level="info")
        X = Meshd(lab, host_of(lab, "x", "full-cone"), base, "X", log_level="info")
        start_all([Own, A, B, X])
        created = ctl_json(Own, "network", "create", "lab", "--owned")
        assert created["invite"].startswith("omerta2-"), created
        [net] = networks(Own)
        assert net["owner"] == Own.id, net
        invite = Own.call("network.invite", network="lab")["invite"]
        assert B.call("network.join", invite=invite, wait=10)["connected"], logs(Own, B)
        yield Owned(lab, Own, A, B, X, t0)


def ensure_member(o: Owned, d: Meshd) -> None:
    """d in the network (for a check run on its own; in module order the earlier checks have done it)."""
    if not networks(d):
        invite = o.Own.call("network.invite", network="lab")["invite"]
        assert d.call("network.join", invite=invite, wait=10)["connected"], logs(o.Own, d)


# ------------------------------------------------------------------------------------------------ 1. one use
def test_one_time_invite_admits_one_node_across_a_nat_and_refuses_the_second_as_used(owned: Owned, capsys) -> None:
    Own, A, B, X = owned.Own, owned.A, owned.B, owned.X
    nat = A.host.nat
    assert nat is not None
    r = ctl(Own, "network", "invite", "lab", "--uses", "1", "--expires", "1h", "--tags", "nat,web")
    assert r.returncode == 0, r.stderr
    invite = r.stdout.strip()
    assert invite.startswith("omerta2-"), invite
    mine = [i for i in invites(Own) if i["tags"] == ["nat", "web"]]
    assert len(mine) == 1 and (mine[0]["uses"], mine[0]["uses_left"]) == (1, 1), mine
    assert time.time() + 3500 < mine[0]["expires"] < time.time() + 3700, mine

    t = time.monotonic()
    j = join(A, invite)
    assert j.returncode == 0 and "joined network lab" in j.stdout and "connected to the inviter" in j.stdout, \
        (j.stdout, j.stderr, logs(Own, A))
    trio = (Own, A, B)
    assert wait_for(lambda: meshed(trio), 20, 0.2), f"not all connected: {links(trio)}" + logs(*trio)
    t_met = time.monotonic() - t

    # each side shows the other's verified certificate (role, tags, expiry); A is seen at its NAT's public address
    for seer in (Own, B):
        p = wait_for(lambda s=seer: (q := s.peer(A)) and q.get("cert_expires") and q, 15)
        assert p, f"A's certificate not shown at {seer.name}: {seer.peer(A)}"
        assert (p["role"], p["tags"]) == ("member", ["nat", "web"]), p
        assert time.time() < p["cert_expires"] < time.time() + 31 * 86400, p
    ep = Own.peer(A)["endpoint"]
    assert ep and ep.startswith(nat.wan_ip + ":"), f"O reaches A at {ep}, not at its NAT's address {nat.wan_ip}"
    for other, role in ((Own, "owner"), (B, "member")):
        p = wait_for(lambda o=other: (q := A.peer(o)) and q.get("cert_expires") and q, 15)
        assert p and (p["role"], p["tags"]) == (role, []), (other.name, p)
    table = ctl(B, "peers").stdout
    assert "CERT" in table.splitlines()[0] and "member nat,web until " in table, table

    # the one use is spent: X is refused with the reason and the fix, and left outside the network
    r = join(X, invite)
    assert refused(r, "used"), (r.returncode, r.stdout, r.stderr, logs(Own, X))
    assert networks(X) == [], networks(X)
    assert [i for i in invites(Own) if i["token"] == mine[0]["token"]] == []
    say(capsys, f"\nowned lab: one-time invite: A (behind a {nat.kind} NAT, seen by O at {ep}) met O and B after "
                f"{t_met:.1f} s; the second use refused (exit {r.returncode}): {r.stderr.strip().splitlines()[0]}")


# ------------------------------------------------------------------------------------------------ 2. expiry
def test_an_expired_invite_and_a_revoked_one_are_refused(owned: Owned, capsys) -> None:
    Own, X = owned.Own, owned.X
    r = ctl(Own, "network", "invite", "lab", "--expires", "2s", "--tags", "short")
    assert r.returncode == 0, r.stderr
    short = r.stdout.strip()
    mine = [i for i in invites(Own) if i["tags"] == ["short"]]
    assert len(mine) == 1 and time.time() - 1 < mine[0]["expires"] <= time.time() + 3, mine  # listed while valid
    time.sleep(max(0.0, mine[0]["expires"] + 0.5 - time.time()))  # past its expiry
    f = join(X, short)
    assert refused(f, "expired"), (f.returncode, f.stdout, f.stderr, logs(Own, X))
    assert networks(X) == [], networks(X)
    assert [i for i in invites(Own) if i["token"] == mine[0]["token"]] == []

    cancelled = ctl(Own, "network", "invite", "lab", "--tags", "cancelled").stdout.strip()
    [tok] = [i["token"] for i in invites(Own) if i["tags"] == ["cancelled"]]
    rv = ctl(Own, "network", "revoke-invite", "lab", tok[:8])
    assert rv.returncode == 0 and f"revoked invite {tok}" in rv.stdout, (rv.stdout, rv.stderr)
    g = join(X, cancelled)
    assert refused(g, "revoked"), (g.returncode, g.stdout, g.stderr, logs(Own, X))
    assert networks(X) == [], networks(X)
    say(capsys, f"owned lab: expired invite refused: {f.stderr.strip().splitlines()[0]}; revoked invite refused: "
                f"{g.stderr.strip().splitlines()[0]}")


# ------------------------------------------------------------------------------------------------ 3. removal
def test_a_removed_member_is_cut_off_within_five_seconds_and_stays_out_while_the_others_talk(owned: Owned, capsys) -> None:
    Own, A, B, X = owned.Own, owned.A, owned.B, owned.X
    for d in (A, B):
        ensure_member(owned, d)
    old_invite = ctl(Own, "network", "invite", "lab", "--uses", "1").stdout.strip()
    j = join(X, old_invite)
    assert j.returncode == 0 and "connected to the inviter" in j.stdout, (j.stdout, j.stderr, logs(Own, X))
    everyone, rest = (Own, A, B, X), (Own, A, B)
    assert wait_for(lambda: meshed(everyone), 25, 0.2), f"not all connected: {links(everyone)}" + logs(*everyone)
    for d in rest:  # X answers pings from every member before
        assert d.call("ping", peer=X.id, count=1, timeout=3)["received"] == 1, f"{d.name} -> X: {links(everyone)}"
    before = links(everyone)
    refused_before = {d.name: counter(d, "drop.cert_revoked") for d in rest}

    with Stream(A, B, interval=0.1) as st:  # A (behind its NAT) -> B, throughout
        assert st.wait_resumed(time.monotonic(), 10) is not None, "the stream A -> B does not flow"
        time.sleep(1)
        t_rm = time.monotonic()
        r = ctl(Own, "network", "remove", "lab", "X")
        t_done = time.monotonic()
        assert r.returncode == 0 and "removed X" in r.stdout, (r.returncode, r.stdout, r.stderr)

        # cut off from every member: gone from their peers, and X itself holds no session (closed, not timed out)
        def cut_off() -> bool:
            return all(d.peer(X) is None for d in rest) and not any(p["connected"] for p in X.call("peers.list")["peers"])

        gone = wait_for(cut_off, max(0.0, t_rm + 5 - time.monotonic()), 0.05)
        t_gone = time.monotonic() - t_rm
        assert gone, (f"X not cut off 5 s after `network remove`: members' views {[d.peer(X) for d in rest]}, X's "
                      f"{links(everyone)}" + logs(*everyone))

        # messages and pings to it fail
        p = ctl(A, "ping", "X", "-c", "1", "-W", "2")
        assert p.returncode == NOT_FOUND and "X" in p.stderr, (p.returncode, p.stdout, p.stderr)
        for d, method, params in ((B, "channel.send", {"channel": "hello", "data": "still there?"}), (Own, "ping", {"timeout": 1})):
            with pytest.raises(RpcError) as e:
                d.call(method, peer=X.id, **params)
            assert e.value.name == "PEER_NOT_FOUND", (d.name, method, e.value)

        # X (still holding its unexpired certificate) tries every member at once: each refuses its handshake, counted
        with ThreadPoolExecutor(3) as pool:
            tries = list(pool.map(lambda d: error_of(lambda: X.call("ping", peer=d.id, count=1, timeout=2)), rest))
        assert tries == ["NOT_CONNECTED"] * 3, tries
        ok = wait_for(lambda: all(counter(d, "drop.cert_revoked") > refused_before[d.name] for d in rest), 10, 0.2)
        counts = {d.name: ctl_json(d, "status")["counters"].get("drop.cert_revoked", 0) for d in rest}
        assert ok, (f"X's handshakes not refused as cert_revoked everywhere: {counts} (before {refused_before}; paths "
                    f"before the removal {before})" + logs(*everyone))
        assert not any(p["connected"] for p in X.call("peers.list")["peers"]), X.call("peers.list")
        assert all(d.peer(X) is None for d in rest), [d.peer(X) for d in rest]
        t_end = time.monotonic()
        st.finish(timeout=15)
    gap = st.max_gap(t_rm, t_end)
    assert gap < 2.0, f"the stream A -> B stalled {gap:.2f} s around the removal"
    assert meshed(rest), links(rest)
    pb = ctl(A, "ping", "B", "-c", "2", "-i", "0.2", "-W", "3")
    assert pb.returncode == 0, (pb.stdout, pb.stderr)

    # the owner rotated the key after the removal: O, A and B hold key 1 (and keep talking under it); X was never told
    def epoch(d: Meshd) -> int:
        return next(n["epoch"] for n in d.call("network.list")["networks"] if n["name"] == "lab")
    assert wait_for(lambda: all(epoch(d) == 1 for d in rest), 5, 0.2), {d.name: epoch(d) for d in rest}
    assert epoch(X) == 0
    rk = ctl(Own, "network", "rekey", "lab")  # and again by hand: every member follows, A still pings B across its NAT
    assert rk.returncode == 0 and "now uses key 2" in rk.stdout, (rk.stdout, rk.stderr)
    assert wait_for(lambda: all(epoch(d) == 2 for d in rest), 5, 0.2), {d.name: epoch(d) for d in rest}
    pb = ctl(A, "ping", "B", "-c", "2", "-i", "0.2", "-W", "3")
    assert pb.returncode == 0, (pb.stdout, pb.stderr)

    # it cannot come back: neither with the invite that enrolled it nor with a new one
    assert ctl(X, "network", "leave", "lab").returncode == 0
    r_old = join(X, old_invite)
    assert refused(r_old, "revoked"), (r_old.returncode, r_old.stdout, r_old.stderr, logs(Own, X))
    r_new = join(X, Own.call("network.invite", network="lab")["invite"])
    assert refused(r_new, "revoked"), (r_new.returncode, r_new.stdout, r_new.stderr, logs(Own, X))
    assert networks(X) == [], networks(X)
    assert all(d.peer(X) is None for d in rest), [d.peer(X) for d in rest]

    # (after the previous key's grace X's handshakes fail mac1 everywhere, before any DH: the grace is at least 60 s
    # ([node] key_grace), so that is shown in the simulator, tests/sim/test_rotation.py, not in this lab)

    say(capsys, f"owned lab: X removed: cut off from O, A and B {t_gone:.2f} s after `network remove` was run (the "
                f"command took {t_done - t_rm:.2f} s); paths before {before}; its handshakes refused (drop.cert_revoked) "
                f"{counts}; A -> B stream {len(st.sent)} messages, none lost, longest gap {gap:.2f} s; pinging X: "
                f"{p.stderr.strip().splitlines()[0]}; rejoin refused: {r_old.stderr.strip().splitlines()[0]}; "
                f"lab total {time.monotonic() - owned.t0:.1f} s")
