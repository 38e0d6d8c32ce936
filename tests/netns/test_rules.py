"""Per-network firewall rules on real kernels (issue 15, item 4): two real daemons with TUN in the netns lab; B
has a default-deny rule set that allows port 22/tcp only.

* from A, a TCP connect to B's mesh IP on port 8080 fails (a `tag:ops` rule allows it, but the network is open: no
  member carries tags) and on port 22 succeeds; the allow rule's counter and
  the default drop counter move (rules.list, `omertactl rules --json`); ping still works (allowed by default);
* the rules removed from the file and reloaded (daemon.reload, as SIGHUP): nothing is filtered, both ports work;
* rules back and reloaded: filtered again; `kill -9` leaves the rules_* objects, the restarted daemon (without
  rules) removes them; a SIGTERM stop with rules removes them too.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from netns.lab import Lab
from netns.test_exit import ctl, omerta_table, restart
from netns.test_mesh_matrix import Meshd, say, wait_for
from netns.test_vnet import pair, ping, up

pytestmark = pytest.mark.root

RULES = ('\n[[rules]]\nfrom = "any"\nto = "22/tcp"\naction = "allow"\n'
         '[[rules]]\nfrom = "tag:ops"\nto = "8080/tcp"\naction = "allow"\n')  # an open network: the tag matches nobody
LISTEN = r"""
import socket, sys
ss = []
for port in (22, 8080):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], port)); s.listen(8); ss.append(s)
print('ready', flush=True)
sys.stdin.read()
"""
CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close(); print('open')
except OSError as e:
    print('closed', e)
"""


def reaches(a: Meshd, ip: str, port: int, timeout: float = 1.5) -> bool:
    r = a.lab.exec(a.host, ["python3", "-c", CONNECT, ip, str(port), str(timeout)], timeout=timeout + 15)
    return r.stdout.startswith("open")


def ours(d: Meshd) -> str:
    """The rules_* lines of B's table inet omerta ('' when there are none, or no table)."""
    return "\n".join(line for line in (omerta_table(d) or "").splitlines() if "rules_" in line)


def test_a_deny_rule_stops_a_port_an_allow_rule_opens_it_and_counters_move(lab: Lab, tmp_path: Path, capsys) -> None:
    a, b = pair(lab, tmp_path, relayed=False, far=RULES)
    _, (b4, b6) = up(a, b)
    srv = lab.run(b.host, ["python3", "-c", LISTEN, b4], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert srv.stdout.readline().strip() == b"ready"
        assert wait_for(lambda: b.call("rules.list")["active"], 10), b.call("rules.list")
        assert "rules_input" in ours(b)
        assert reaches(a, b4, 22)
        assert not reaches(a, b4, 8080)
        assert ping(a, b4, 1)[0]  # ICMP echo is allowed unless a rule says otherwise
        got = ctl(b, "rules")
        rule, dev = got["rules"][0], got["filtered"][0]
        assert (rule["from"], rule["to"], rule["action"]) == ("any", "22/tcp", "allow") and rule["packets"] >= 1, got
        assert dev["device"].startswith("om-") and dev["dropped_packets"] >= 1, got
        tag = got["rules"][1]  # tags come from member certificates: an open network has none, so 8080 stays closed
        assert tag["from"] == "tag:ops" and tag["sources"] == [] and "open" in tag["note"] and tag["packets"] == 0, got
        say(capsys, f"\nrules on B: 22/tcp open, 8080 closed; allow counter {rule['packets']} packets / {rule['bytes']} bytes, "
                    f"default drop {dev['dropped_packets']} packets")
        before = rule["packets"]
        assert reaches(a, b4, 22)
        assert b.call("rules.list")["rules"][0]["packets"] > before  # the counter moves with each new connection

        b.config.write_text(b.config.read_text().replace(RULES, ""))  # no rules: no filtering
        assert "rules" in b.call("daemon.reload")["changed"]
        assert wait_for(lambda: not b.call("rules.list")["active"] and not ours(b), 10), ours(b)
        assert reaches(a, b4, 8080) and reaches(a, b4, 22)

        b.config.write_text(b.config.read_text() + RULES)
        b.call("daemon.reload")
        assert wait_for(lambda: b.call("rules.list")["active"], 10)
        assert wait_for(lambda: not reaches(a, b4, 8080, 1.0), 10)
    finally:
        srv.kill()
        srv.wait(10)

    os.killpg(b.proc.pid, signal.SIGKILL)  # a crash leaves the rules
    b.proc.wait(10)
    assert "rules_input" in ours(b)
    b.config.write_text(b.config.read_text().replace(RULES, ""))
    restart(b)
    assert ours(b) == "" and omerta_table(b) is None  # stale rules removed at start (and the table left empty)
    b.config.write_text(b.config.read_text() + RULES)
    b.call("daemon.reload")
    assert wait_for(lambda: "rules_input" in ours(b), 10)
    assert b.stop() == 0
    assert omerta_table(b) is None  # removed on stop
