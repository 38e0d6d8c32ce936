"""Regression (issue 10, fault 9): the small CLI and documentation faults, each against a real daemon.

* `listen --timeout` (documented to exit 6 when nothing arrives) hung;
* `--json` errors were plain text (now a JSON object on stderr: code, message, fix);
* the README said UDP 51820, the default is 51888;
* the CLI took 4-character id prefixes, the API and D-Bus 8 (one rule: 8, in core.ids);
* `ping -c 0` and a 2 MB `send` got the generic "pass the parameters the method declares" fix;
* a regular file given as `--socket` was called "a stale socket";
* docs/api.md said NAT classification does not exist;
* `omertactl --version`, `reload` and `shutdown` were missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from clients.ctlharness import ctl, start_all
from meshd.harness import DaemonProc

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProc, DaemonProc]]:
    base = tmp_path_factory.mktemp("issue10cli")
    a, b = DaemonProc(base, "a"), DaemonProc(base, "b")
    try:
        start_all([a, b])
        net = a.call("network.create", name="n")
        assert b.call("network.join", invite=net["invite"], wait=10)["connected"]  # type: ignore[index]
        yield a, b
    finally:
        a.close()
        b.close()


def test_listen_timeout_exits_6_when_nothing_arrives(pair) -> None:
    a, _ = pair
    for args in (["listen", "quiet", "--timeout", "1"], ["listen", "quiet", "-n", "1", "--timeout", "1"]):
        t0 = time.monotonic()
        r = ctl(a.socket, *args, timeout=30)
        assert r.rc == 6 and r.out == "", (args, r)
        assert time.monotonic() - t0 < 15, args  # it returns, about a second later
        assert "no message" in r.err and "fix:" in r.err


def test_json_errors_are_a_json_object_on_stderr(pair, tmp_path) -> None:
    a, _ = pair
    r = ctl(a.socket, "--json", "peer", "nobody-here")
    assert r.rc == 5 and r.out == ""
    err = json.loads(r.err)
    assert err["code"] == "PEER_NOT_FOUND" and "nobody-here" in err["message"] and err["fix"]
    down = ctl(tmp_path / "none.sock", "status", "--json")
    assert down.rc == 3 and json.loads(down.err)["code"] == "DAEMON_NOT_RUNNING"
    usage = ctl(a.socket, "--json", "ping", "b", "-c", "many")  # an argument error, before any daemon call
    assert usage.rc == 2 and json.loads(usage.err)["code"] == "USAGE" and "many" in json.loads(usage.err)["message"]


def test_readme_names_the_default_udp_port() -> None:
    from omerta_mesh.meshd.config import default

    port = default().node.port
    readme = (ROOT / "README.md").read_text()
    assert f"default {port}" in readme and "51820" not in readme


def test_id_prefix_is_8_characters_in_the_cli_as_in_the_api(pair) -> None:
    a, b = pair
    b_id = b.call("status.get")["node_id"]  # type: ignore[index]
    assert ctl(a.socket, "peer", b_id[:8], "--json").json()["node_id"] == b_id
    short = ctl(a.socket, "peer", b_id[:7])
    assert short.rc == 5 and "8 characters" in short.err
    with a.client() as c:
        with pytest.raises(Exception) as ei:
            c.call("peers.get", {"peer": b_id[:7]})
        assert getattr(ei.value, "name", "") == "PEER_NOT_FOUND"


def test_limits_are_named_in_the_fix(pair) -> None:
    a, b = pair
    r = ctl(a.socket, "ping", "b", "-c", "0")
    assert r.rc == 2 and "pass the parameters the method declares" not in r.err
    assert re.search(r"fix: .*count.*1.*100", r.err), r.err
    big = ctl(a.socket, "send", b.call("status.get")["node_id"], "chat", "-", stdin="x" * 2_000_000)  # type: ignore[index]
    assert big.rc == 2 and "pass the parameters the method declares" not in big.err, big.err
    assert re.search(r"fix: .*(limit|at most).*\d", big.err), big.err


def test_a_regular_file_as_socket_is_not_called_stale(tmp_path) -> None:
    f = tmp_path / "not-a-socket"
    f.write_text("hello")
    r = ctl(f, "status")
    assert r.rc == 3 and "stale" not in r.err and "not a socket" in r.err


def test_api_doc_describes_nat_classification() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    assert "until NAT classification" not in text and "classification exists" not in text
    assert subprocess.run([sys.executable, str(ROOT / "docs/gen_api.py"), "--check"], capture_output=True, timeout=60).returncode == 0


def test_version_reload_and_shutdown(tmp_path) -> None:
    v = ctl(None, "--version")
    assert v.rc == 0 and re.match(r"omertactl \S+", v.out), v
    d = DaemonProc(tmp_path, "solo")
    try:
        d.start()
        r = ctl(d.socket, "reload", "--json")
        assert r.rc == 0 and set(r.json()) == {"changed", "restart_required"}, r
        assert "reloaded" in ctl(d.socket, "reload").out
        s = ctl(d.socket, "shutdown")
        assert s.rc == 0 and "stopping" in s.out, s
        assert d.proc is not None and d.proc.wait(15) == 0
    finally:
        d.close()
