"""omertactl against real daemons on loopback: every command, for people and with --json (which must be
the API result, matching the schema), and the exit codes a script relies on."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess

import pytest

from clients.ctlharness import CLIENT_ENV, SHARED, Lines, check_event, check_result, ctl, ctl_cmd, ctl_popen, wait_until

# ---------------------------------------------------------------------- read commands
MESH_ROW = r"^lab\s+\w{16}\s+1\s+1\s+100\.\d+\.\d+\.\d+, fd[0-9a-f:]+\s+-\s+open\s*$"  # mesh IPs; no device (TUN off)


def test_status(mesh3) -> None:
    r = ctl(mesh3.sock("alice"), "status")
    assert r.rc == 0, r.err
    assert "alice" in r.out and mesh3.ids["alice"] in r.out and "2 peers: 2 direct, 0 relayed" in r.out
    assert re.search(r"NAT\s+\S", r.out) and "home" in r.out and "uptime" in r.out
    j = ctl(mesh3.sock("alice"), "status", "--json")
    st = check_result("status.get", j.json())
    assert st["node_id"] == mesh3.ids["alice"] and st["name"] == "alice"
    assert "udp.sent" in ctl(mesh3.sock("alice"), "status", "-v").out  # --verbose lists the counters


def test_peers_table_and_json(mesh3) -> None:
    r = ctl(mesh3.sock("alice"), "peers")
    assert r.rc == 0, r.err
    header, *rows = r.out.splitlines()
    assert header.split() == ["NAME", "ID", "MESH", "IP", "PATH", "ENDPOINT", "RTT", "LOSS", "NAT", "HANDSHAKE", "IN", "OUT"]
    assert sorted(row.split()[0] for row in rows) == ["bob", "carol"]
    for row in rows:
        name = row.split()[0]
        assert mesh3.ids[name][:12] in row and " direct " in row and "127.0.0.1:" in row and " ago" in row, row
    j = check_result("peers.list", ctl(mesh3.sock("alice"), "--json", "peers").json())
    assert {p["name"]: p["node_id"] for p in j["peers"]} == {"bob": mesh3.ids["bob"], "carol": mesh3.ids["carol"]}
    # global options go before or after the command
    assert ctl(mesh3.sock("alice"), "peers", "--json").json()["peers"][0]["node_id"] == j["peers"][0]["node_id"]


def test_peer_by_name_unique_prefix_ambiguous_prefix_and_unknown(mesh3) -> None:
    bob, carol = mesh3.ids["bob"], mesh3.ids["carol"]
    common = os.path.commonprefix([bob, carol])
    assert len(common) >= SHARED and len(common) < 8
    sock = mesh3.sock("alice")
    by_name = ctl(sock, "peer", "bob")
    assert by_name.rc == 0, by_name.err
    assert bob in by_name.out and "path" in by_name.out and "why direct" in by_name.out
    assert "this node's NAT" in by_name.out and "evidence" in by_name.out and "peer's NAT" in by_name.out
    for prefix in (bob[:8], bob[:8].upper()):  # 8+ characters (the one rule, in the daemon), any case
        r = ctl(sock, "peer", prefix, "--json")
        assert r.rc == 0, (prefix, r.err)
        assert check_result("peers.get", r.json())["node_id"] == bob
    assert ctl(sock, "peers", "carol", "--json").json()["node_id"] == carol  # `peers PEER` is `peer PEER`
    short = ctl(sock, "peer", common)  # shorter than 8: not taken as a prefix, even where it is unique
    assert short.rc == 5 and short.out == "" and "8 characters" in short.err and "fix:" in short.err
    assert ctl(sock, "ping", bob[:7]).rc == 5  # every command resolves peers the same way
    for unknown in ("dave", "zzzzzzzz", "a" * 52):  # a name, a prefix, a full id
        r = ctl(sock, "peer", unknown)
        assert r.rc == 5 and r.out == "" and "unknown peer" in r.err and "omertactl peers" in r.err, (unknown, r)


def test_ping_says_which_path_answered(mesh3) -> None:
    r = ctl(mesh3.sock("alice"), "ping", "bob", "-c", "2", "-i", "0.05")
    assert r.rc == 0, r.err
    pongs = [x for x in r.out.splitlines() if x.startswith("pong from bob")]
    assert len(pongs) == 2 and all("via direct 127.0.0.1:" in x and re.search(r"time=\d+\.\d+ ms", x) for x in pongs), r.out
    assert "2 probes sent, 2 answered, 0% loss" in r.out and "answered via direct" in r.out
    j = check_result("ping", ctl(mesh3.sock("alice"), "--json", "ping", "carol", "-c", "2", "-i", "0.05").json())
    assert j["received"] == 2 and j["node_id"] == mesh3.ids["carol"] and {p["path"] for p in j["probes"]} == {"direct"}
    bad = ctl(mesh3.sock("alice"), "ping", "bob", "-c", "1000")  # the daemon refuses: a usage error
    assert bad.rc == 2 and "count" in bad.err


def test_netcheck(mesh3) -> None:
    r = ctl(mesh3.sock("alice"), "netcheck")
    assert r.rc == 0, r.err
    for word in ("NAT", "mapping", "filtering", "public endpoints", "evidence", "relay latency"):
        assert word in r.out, word
    j = check_result("netcheck.run", ctl(mesh3.sock("alice"), "netcheck", "--json").json())
    assert j["status"] in ("classified", "unknown") and all(e in r.out for e in j["public_endpoints"])


# ---------------------------------------------------------------------- channels and events
def test_send_and_listen(mesh3) -> None:
    with ctl_popen(mesh3.sock("bob"), "listen", "chat", "-n", "2", "--for", "20") as listen, \
            ctl_popen(mesh3.sock("carol"), "--json", "listen", "chat", "-n", "1", "--for", "20") as listen_json:
        out, out_json = Lines(listen.stdout), Lines(listen_json.stdout)
        Lines(listen.stderr).until("listening on channel chat")
        Lines(listen_json.stderr).until("listening on channel chat")
        s = ctl(mesh3.sock("alice"), "send", "bob", "chat", "hello bob")
        assert s.rc == 0 and "sent 9 bytes to bob on channel chat" in s.out and "delivered" in s.out, s.err
        sent = ctl(mesh3.sock("alice"), "send", "--json", mesh3.ids["bob"][:8], "chat", "-", stdin="from stdin")
        j = check_result("channel.send", sent.json())
        assert j["delivered"] is True and j["bytes"] == 10
        assert ctl(mesh3.sock("alice"), "send", "carol", "chat", "hi carol", "--no-wait").rc == 0
        assert listen.wait(20) == 0 and listen_json.wait(20) == 0
        text = out.rest()
        assert re.search(r"alice: hello bob$", text, re.M) and re.search(r"alice: from stdin$", text, re.M), text
        (res,) = [check_result("channel.receive", json.loads(x)) for x in out_json.rest().splitlines()]
        assert [(m["peer"], m["data"]) for m in res["messages"]] == [("alice", "hi carol")]
    nothing = ctl(mesh3.sock("bob"), "listen", "quiet", "-n", "1", "--for", "0.3")
    assert nothing.rc == 6 and nothing.out == ""  # asked for a message, none came: a timeout


def test_events_snapshot_then_deltas(mesh3) -> None:
    with ctl_popen(mesh3.sock("alice"), "events", "-n", "2", "--for", "20") as human, \
            ctl_popen(mesh3.sock("alice"), "events", "--json", "-n", "2", "--for", "20") as js:
        js_lines, human_lines = Lines(js.stdout), Lines(human.stdout)
        sub = check_result("events.subscribe", json.loads(js_lines.next()))
        assert {p["name"] for p in sub["snapshot"]["peers"]} == {"bob", "carol"}
        human_lines.until("events (Ctrl-C to stop)")
        snapshot = "".join(human_lines.seen)
        assert "bob" in snapshot and "carol" in snapshot and "alice" in snapshot  # who we are and the peer table
        assert ctl(mesh3.sock("alice"), "ping", "carol", "-c", "2", "-i", "0.05").rc == 0  # two peer.pong events
        assert js.wait(20) == 0 and human.wait(20) == 0  # -n 2: two events, then exit 0
        evs = [check_event(json.loads(x)) for x in js_lines.rest().splitlines()[1:]]
        assert len(evs) == 2 and all(e["seq"] > sub["seq"] for e in evs)
        assert any(e["type"] == "peer.pong" and e["name"] == "carol" for e in evs), evs
        assert re.search(r"#\d+ peer\.pong carol \d+\.\d+ ms via 127\.0\.0\.1:\d+", human_lines.rest()), human_lines.seen
    quiet = ctl(mesh3.sock("alice"), "events", "--for", "0.2")
    assert quiet.rc == 0 and "events (Ctrl-C to stop)" in quiet.out


# ---------------------------------------------------------------------- networks (fresh daemons)
def test_network_create_join_list_invite_leave(two_daemons) -> None:
    dora, emil = two_daemons
    c = ctl(dora.socket, "network", "create", "lab", "--open")
    assert c.rc == 0, c.err
    invite = next(x for x in c.out.splitlines() if x.startswith("omerta1-"))
    assert "created network lab" in c.out and "omertactl network join omerta1-" in c.out
    work = check_result("network.create", ctl(dora.socket, "network", "create", "work", "--json").json())
    assert work["invite"].startswith("omerta2-")  # owned by default: a one-time token
    assert [n["owner"] for n in ctl(dora.socket, "network", "list", "--json").json()["networks"] if n["name"] == "work"] == [
        ctl(dora.socket, "status", "--json").json()["node_id"]]
    j = ctl(emil.socket, "network", "join", invite)
    assert j.rc == 0 and "joined network lab" in j.out and "connected to the inviter" in j.out, j.err
    jj = check_result("network.join", ctl(emil.socket, "--json", "network", "join", work["invite"]).json())
    assert jj["connected"] and jj["network"] == work["network"]
    lst = ctl(dora.socket, "network", "list")
    assert lst.rc == 0 and re.search(MESH_ROW, lst.out, re.M) and "work" in lst.out, lst.out
    assert ctl(dora.socket, "network").out == lst.out  # no subcommand: the list
    nets = check_result("network.list", ctl(dora.socket, "network", "list", "--json").json())
    assert sorted(n["name"] for n in nets["networks"]) == ["lab", "work"]
    inv = ctl(dora.socket, "network", "invite", "lab")
    assert inv.rc == 0 and inv.out.strip().startswith("omerta1-") and len(inv.out.strip().splitlines()) == 1
    check_result("network.invite", ctl(dora.socket, "network", "invite", "work", "--json").json())
    wait_until(lambda: len(ctl(dora.socket, "peers", "--json").json()["peers"]) == 2, what="emil in both networks")
    table = ctl(dora.socket, "peers").out
    assert table.splitlines()[0].split()[2] == "NETWORK" and "lab" in table and "work" in table
    lv = ctl(emil.socket, "network", "leave", "lab")
    assert lv.rc == 0 and "left network lab" in lv.out
    check_result("network.leave", ctl(emil.socket, "network", "leave", "work", "--json").json())
    again = ctl(emil.socket, "network", "leave", "lab")
    assert again.rc == 5 and "unknown network" in again.err and "omertactl network list" in again.err
    bad = ctl(emil.socket, "network", "join", "omerta1-garbage")
    assert bad.rc == 1 and "fix:" in bad.err and "invite" in bad.err


# ---------------------------------------------------------------------- failures and exit codes
def test_daemon_not_running(tmp_path) -> None:
    for args in (["status"], ["--json", "peers"], ["ping", "bob"], ["monitor"]):
        r = ctl(tmp_path / "nothing.sock", *args)
        assert r.rc == 3 and r.out == "", (args, r)
        assert "daemon not running" in r.err and "systemctl start omerta-meshd" in r.err
    stale = tmp_path / "stale.sock"  # a socket file nobody listens on (a crashed daemon's)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    r = ctl(stale, "status")
    assert r.rc == 3 and "connection refused" in r.err
    env = {**CLIENT_ENV, "OMERTA_SOCKET": str(tmp_path / "from-env.sock")}
    r = ctl(None, "status", env=env)
    assert r.rc == 3 and "from-env.sock" in r.err


@pytest.mark.root("omertactl as nobody")
def test_permission_denied_as_nobody(mesh3, tmp_path) -> None:
    sock = mesh3.sock("alice")
    r = ctl(sock, "status", "--json", user="nobody")
    assert r.rc == 0 and r.json()["name"] == "alice", r  # anyone may read
    assert ctl(sock, "ping", "bob", user="nobody").rc == 0
    for args in (["network", "create", "intruder"], ["send", "bob", "chat", "hi"], ["listen", "chat", "-n", "1"]):
        r = ctl(sock, *args, user="nobody")
        assert r.rc == 4 and r.out == "", (args, r)
        assert r.err.splitlines()[0].startswith("omertactl: permission denied:") and "omerta" in r.err and "usermod" in r.err
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    r = ctl(locked / "meshd.sock", "status", user="nobody")
    assert r.rc == 4 and "permission denied: cannot open" in r.err and "omerta group" in r.err


def test_usage_errors() -> None:
    assert ctl(None).rc == 2
    r = ctl(None, "ping")
    assert r.rc == 2 and "PEER" in r.err
    assert ctl(None, "frobnicate").rc == 2


# ---------------------------------------------------------------------- help and completion
def test_help_documents_exit_codes_and_every_command_has_help() -> None:
    r = ctl(None, "--help")
    assert r.rc == 0
    for code, words in [("3", "daemon is not running"), ("4", "permission denied"), ("5", "not found"), ("6", "timeout")]:
        assert re.search(rf"^\s+{code}\s+.*{words}", r.out, re.M), code
    assert "OMERTA_SOCKET" in r.out
    for cmd in ("status", "peers", "peer", "ping", "netcheck", "network", "send", "listen", "events", "monitor", "completion"):
        h = ctl(None, cmd, "--help")
        assert h.rc == 0 and "--json" in h.out and "--socket" in h.out, cmd
        assert re.search(rf"^\s+{cmd}\s+\S", r.out, re.M), cmd  # listed under commands, not just named in the text
    for sub in ("create", "join", "leave", "list", "invite"):
        assert ctl(None, "network", sub, "--help").rc == 0


def test_bash_completion(mesh3, tmp_path) -> None:
    script = ctl(None, "completion", "bash").out
    (tmp_path / "omertactl.bash").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "omertactl.bash")]).returncode == 0
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "omertactl").write_text(f'#!/bin/sh\nexec {" ".join(ctl_cmd(None))} "$@"\n')
    os.chmod(bindir / "omertactl", 0o755)

    def complete(*words: str) -> list[str]:
        prog = (f"source {tmp_path / 'omertactl.bash'}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                f"COMP_CWORD={len(words) - 1}; _omertactl; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        env = {**CLIENT_ENV, "PATH": f"{bindir}:{os.environ['PATH']}"}
        return subprocess.run(["bash", "-c", prog], capture_output=True, text=True, env=env, timeout=30).stdout.split()

    assert "network" in complete("omertactl", "net") and "netcheck" in complete("omertactl", "net")
    assert {"create", "join", "leave", "list", "invite"} <= set(complete("omertactl", "network", ""))
    assert "--count" in complete("omertactl", "ping", "--c")
    sock = str(mesh3.sock("alice"))
    assert {"bob", "carol"} <= set(complete("omertactl", "--socket", sock, "ping", ""))
    assert "home" in complete("omertactl", "--socket", sock, "network", "invite", "")


def test_status_and_peers_show_routes_exit_and_dns(mesh3) -> None:
    """The status rows and the peers columns for the exit node and subnet routes (TUN off here: the acceptance is
    settled but nothing is in force; in force on real kernels: tests/netns/test_exit.py, test_subnets.py)."""
    sock, bob = mesh3.sock("alice"), mesh3.ids["bob"]
    ctl(sock, "routes", "accept", "bob", "10.9.0.0/24")
    try:
        out = ctl(sock, "status").out
        assert re.search(r"exit node\s+not offering; using none \(0 members offer one\); TUN is off", out), out
        assert re.search(r"routes\s+advertising none; 10\.9\.0\.0/24 from bob: not advertised .*\(command\)", out), out
        assert re.search(r"dns\s+enabled \(.*TUN is off", out), out  # (where it answers and resolved: tests/netns/test_dns.py)
        st = check_result("status.get", ctl(sock, "status", "--json").json())
        assert st["routes"]["accepted"][0]["prefix"] == "10.9.0.0/24" and st["exit"]["using"] is None
        header, *rows = ctl(sock, "peers").out.splitlines()
        assert header.split()[-1] == "ROUTES" and "EXIT" not in header  # (no peer offers an exit)
        assert re.search(r"^bob .* 10\.9\.0\.0/24 accepted$", "\n".join(r.rstrip() for r in rows), re.M), rows
        [pb] = [p for p in check_result("peers.list", ctl(sock, "peers", "--json").json())["peers"] if p["node_id"] == bob]
        assert (pb["routes"], pb["routes_accepted"], pb["routes_active"], pb["exit_used"]) == ([], ["10.9.0.0/24"], [], False)
    finally:
        ctl(sock, "routes", "unaccept", "bob", "10.9.0.0/24")
    assert "ROUTES" not in ctl(sock, "peers").out
