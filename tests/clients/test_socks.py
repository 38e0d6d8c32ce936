"""The SOCKS5 gateway end to end (issue 13, item 5): two real daemons on loopback, a python http.server on
bravo's side (127.0.0.1, exposed with serve.add), real curl through alfa's gateway, and a raw SOCKS client for
the replies curl does not show and for bad input.

* `curl --socks5-hostname` fetches the page by bravo's name, by bravo.<network>, and (`--socks5`, so ATYP IPv4
  and IPv6) by bravo's mesh IPs; `omertactl connect`'s stream socket takes bravo.<network> and mesh IPs too;
  `omertactl status` shows the gateway;
* an unexposed port gets REP 0x05, a name outside the mesh 0x02, UDP ASSOCIATE and BIND 0x07, a bad address type
  0x08, a stopped peer 0x04, each counted;
* bad versions, an empty host name, a truncated request, a client that sends nothing and one client too many are
  closed and counted, the daemon keeps serving, and its file descriptors and client count return to where they were;
* logins (RFC 1929) when users are configured; a gateway on a non-loopback address without users is not started,
  and status and the log say why;
* without a login only users who may write (root, the daemon's user, its group) open streams, as on the stream
  socket: curl run as `nobody` is refused (REP 0x02, counted, one rate-limited log line naming the uid), a client
  that is gone before the gateway looks is refused as unknown, `nobody` listed in the group passes, and a gateway
  with users lets `nobody` in with the password.
"""

from __future__ import annotations

import functools
import http.server
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

from clients.ctlharness import check_result, ctl, wait_until
from meshd.asuser import TempGroup, run_as
from meshd.harness import DaemonProc
from omerta_clients.ctl.connect import open_stream

GATEWAY = '\n[socks]\nlisten = "127.0.0.1:0"\nmax_clients = 4\nhandshake_timeout = 2\nconnect_timeout = 2\n'
NOBODY = ("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups")  # no supplementary groups at all


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A python http.server on 127.0.0.1 serving a page with a random token: (port, token)."""
    root = tmp_path / "www"
    root.mkdir()
    token = os.urandom(8).hex()
    (root / "index.html").write_text(f"hello from bravo {token}\n")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], token
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def pair_config() -> tuple[str, str]:
    """``pair`` (conftest.py): alfa with its gateway, and bravo."""
    return GATEWAY, ""


def gateway_port(d: DaemonProc) -> int:
    f = d.call("status.get")["socks"]  # type: ignore[index]
    assert f["enabled"] and f["active"], f
    m = re.match(r"127\.0\.0\.1:(\d+) ", f["detail"])
    assert m, f
    return int(m.group(1))


def counters(d: DaemonProc) -> dict[str, int]:
    return d.call("status.get")["counters"]  # type: ignore[index,return-value]


def curl(gw: int, url: str, *opts: str, runas: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*runas, "curl", "-sS", "--max-time", "30", *opts, url], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()})


def request(host: str, port: int, cmd: int = 1) -> bytes:
    h = host.encode()
    return bytes([5, cmd, 0, 3, len(h)]) + h + port.to_bytes(2, "big")


def exchange(gw: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` and read until the gateway closes the connection (socket.timeout if it does not)."""
    with socket.create_connection(("127.0.0.1", gw), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except ConnectionResetError:  # closed with bytes of ours unread
            pass
        return got


def reply_code(gw: int, host: str, port: int, cmd: int = 1) -> int:
    got = exchange(gw, b"\x05\x01\x00" + request(host, port, cmd))
    assert got[:2] == b"\x05\x00" and len(got) >= 4, got
    return got[3]


def fds(d: DaemonProc) -> int:
    assert d.proc is not None
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def test_curl_fetches_a_page_from_a_peer_by_name_and_mesh_ip_and_refusals_have_their_codes(pair, web) -> None:
    a, b = pair
    port, token = web
    gw = gateway_port(a)
    assert b.call("serve.add", port=port)["changed"]  # type: ignore[index]

    r = curl(gw, f"http://bravo:{port}/", "--socks5-hostname", f"127.0.0.1:{gw}")
    assert r.returncode == 0 and r.stdout == f"hello from bravo {token}\n", r
    r = curl(gw, f"http://bravo.home:{port}/", "--socks5-hostname", f"127.0.0.1:{gw}")
    assert r.returncode == 0 and token in r.stdout, r
    [ips] = check_result("ip.get", a.call("ip.get", peer="bravo"))["addresses"]
    for ip in (ips["ipv4"], f"[{ips['ipv6']}]"):  # --socks5: curl sends the address itself (ATYP 1 and 4)
        r = curl(gw, f"http://{ip}:{port}/", "--socks5", f"127.0.0.1:{gw}")
        assert r.returncode == 0 and token in r.stdout, (ip, r)
    for peer in ("bravo.home", ips["ipv4"]):  # omertactl connect resolves by the same rule (meshd/destination.py)
        conn, _ = open_stream(str(a.socket), peer, port)
        with conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            page = b""
            while chunk := conn.recv(4096):
                page += chunk
        assert token.encode() in page, (peer, page)
    c = counters(a)
    assert c["socks.connected"] == 4 and c["socks.accepted"] == 4, c
    text = ctl(a.socket, "status").out
    assert re.search(rf"socks\s+active \(127\.0\.0\.1:{gw} \(no login", text), text
    assert reply_code(gw, "BRAVO.home.", port) == 0  # a name in other letter case (browsers lowercase host names), root dot

    # refusals: curl fails, and the raw reply says which
    assert b.call("serve.remove", port=port)["changed"]  # type: ignore[index]
    r = curl(gw, f"http://bravo:{port}/", "--socks5-hostname", f"127.0.0.1:{gw}")
    assert r.returncode != 0 and not r.stdout, r
    assert reply_code(gw, "bravo", port) == 5  # connection refused: port not exposed on bravo
    r = curl(gw, "http://example.com/", "--socks5-hostname", f"127.0.0.1:{gw}")
    assert r.returncode != 0 and not r.stdout, r
    assert reply_code(gw, "example.com", 80) == 2  # not allowed: no exit node
    assert reply_code(gw, "alfa", port) == 2  # ourselves: not a peer
    assert reply_code(gw, "bravo.nowhere", port) == 2
    assert reply_code(gw, "bravo", port, cmd=3) == 7  # UDP ASSOCIATE: these daemons run without TUN
    assert reply_code(gw, "bravo", port, cmd=2) == 7  # BIND
    assert reply_code(gw, "bravo", 0) == 2
    got = exchange(gw, b"\x05\x01\x00\x05\x01\x00\x09")  # (only what is read: no reset on close)
    assert got == b"\x05\x00\x05\x08\x00\x01" + bytes(6)
    c = counters(a)
    assert (c["socks.refused"], c["socks.not_mesh"], c["socks.udp_refused"], c["socks.bad_command"], c["socks.bad_port"],
            c["socks.bad_atyp"]) == (2, 4, 1, 1, 1, 1), c
    assert b.call("serve.add", port=port)["changed"]  # type: ignore[index]
    b.stop()  # a peer that does not answer: host unreachable after connect_timeout
    assert reply_code(gw, "bravo", port) == 4
    assert counters(a)["socks.unreachable"] == 1


def test_bad_input_is_closed_and_counted_and_nothing_leaks(pair, web) -> None:
    a, b = pair
    port, token = web
    gw = gateway_port(a)
    assert b.call("serve.add", port=port)["changed"]  # type: ignore[index]
    assert token in curl(gw, f"http://bravo:{port}/", "--socks5-hostname", f"127.0.0.1:{gw}").stdout
    wait_until(lambda: counters(a)["socks.clients"] == 0, what="the first client to be gone")
    before = fds(a)

    assert exchange(gw, b"\x04\x01\x00\x50\x7f\x00\x00\x01bob\x00") == b""  # SOCKS4: closed, no answer
    assert exchange(gw, b"GET / HTTP/1.1\r\nHost: bravo\r\n\r\n") == b""
    assert exchange(gw, b"\x05\x01\x00\x04\x01\x00\x03") == b"\x05\x00\x05\x01\x00\x01" + bytes(6)
    assert exchange(gw, b"\x05\x02\x01\x02") == b"\x05\xff"  # no acceptable method
    assert exchange(gw, b"\x05\x01\x00\x05\x01\x00\x03\x00") == b"\x05\x00\x05\x01\x00\x01" + bytes(6)  # length 0
    assert exchange(gw, b"\x05\x01\x00" + request("b" * 255, port)) == b"\x05\x00\x05\x02\x00\x01" + bytes(6)  # huge: not mesh
    assert exchange(gw, b"\x05\x01\x00\x05\x01\x00\x03\x20bra") == b"\x05\x00"  # truncated, then EOF
    with socket.create_connection(("127.0.0.1", gw), timeout=10) as slow:  # a slow loris: closed at the deadline
        slow.sendall(b"\x05")
        assert slow.recv(16) == b""
    c = counters(a)
    assert (c["socks.bad_version"], c["socks.no_acceptable_method"], c["socks.bad_hostname"], c["socks.truncated"],
            c["socks.handshake_timeout"], c["socks.not_mesh"]) == (3, 1, 1, 1, 1, 1), c

    # one client too many: four connected (streams to the web server, which waits for their requests), the fifth is closed
    held = []
    try:
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", gw), timeout=10)
            held.append(s)
            s.sendall(b"\x05\x01\x00" + request("bravo", port))
            got = b""
            while len(got) < 12 and (chunk := s.recv(12 - len(got))):
                got += chunk
            assert got == b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6)
        assert counters(a)["socks.clients"] == 4
        assert exchange(gw, b"\x05\x01\x00" + request("bravo", port)) == b""
        assert counters(a)["socks.too_many_clients"] == 1
    finally:
        for s in held:
            s.close()
    wait_until(lambda: counters(a)["socks.clients"] == 0 and not a.call("streams.list")["streams"],  # type: ignore[index]
               what="the held clients and their streams to be gone")
    r = curl(gw, f"http://bravo:{port}/", "--socks5-hostname", f"127.0.0.1:{gw}")
    assert r.returncode == 0 and token in r.stdout, r
    wait_until(lambda: counters(a)["socks.clients"] == 0 and fds(a) == before, what=f"alfa's descriptors back to {before}")
    assert not b.call("streams.list")["streams"]  # type: ignore[index]


def test_logins_and_a_gateway_that_may_not_start(pair_with) -> None:
    with pair_with('\n[socks]\nlisten = "127.0.0.1:0"\nusers = ["ann:s3cret"]\n', '\n[socks]\nlisten = "0.0.0.0:0"\n',
                   network=None) as (a, b):
        f = b.call("status.get")["socks"]  # type: ignore[index]
        assert f["enabled"] and not f["active"] and "not started" in f["detail"] and 'users = ["USER:PASSWORD"]' in f["detail"], f
        assert "SOCKS5 gateway not started: 0.0.0.0:0 is not a loopback address" in b.log_text()
        assert re.search(r"socks\s+enabled \(not started: 0\.0\.0\.0:0", ctl(b.socket, "status").out)

        gw = gateway_port(a)
        login = b"\x05\x01\x02\x01\x03ann\x06s3cret"
        got = exchange(gw, login + request("example.com", 80))
        assert got == b"\x05\x02\x01\x00\x05\x02\x00\x01" + bytes(6)  # logged in; then no exit node
        assert exchange(gw, b"\x05\x01\x02\x01\x03ann\x05wrong") == b"\x05\x02\x01\x01"
        assert exchange(gw, b"\x05\x01\x00") == b"\x05\xff"  # a login is required
        r = curl(gw, "http://example.com/", "--socks5-hostname", f"127.0.0.1:{gw}", "--proxy-user", "ann:s3cret")
        assert r.returncode != 0 and not r.stdout
        c = counters(a)
        assert (c["socks.auth_failed"], c["socks.no_acceptable_method"], c["socks.not_mesh"]) == (1, 1, 2), c


@pytest.mark.root("curl run as nobody, a temporary group")
def test_without_a_login_only_users_who_may_write_open_streams(pair_with, web) -> None:
    port, token = web
    nobody = pwd.getpwnam("nobody").pw_uid
    group = TempGroup()
    try:
        login_gateway = '\n[socks]\nlisten = "127.0.0.1:0"\nusers = ["ann:s3cret"]\n'
        with pair_with(f'\n[api]\ngroup = "{group.name}"\n' + GATEWAY, login_gateway) as (a, b):
            for d in (a, b):  # (one host: each exposes the same web server)
                assert d.call("serve.add", port=port)["changed"]  # type: ignore[index]
            gw = gateway_port(a)
            socks = ("--socks5-hostname", f"127.0.0.1:{gw}")
            r = curl(gw, f"http://bravo:{port}/", *socks)  # root
            assert r.returncode == 0 and r.stdout == f"hello from bravo {token}\n", r

            r = curl(gw, f"http://bravo:{port}/", *socks, runas=NOBODY)
            assert r.returncode != 0 and not r.stdout, r
            assert counters(a)["socks.not_permitted"] == 1
            raw = run_as("nobody", lambda: exchange(gw, b"\x05\x01\x00" + request("bravo", port)).hex())
            assert raw == (b"\x05\x00\x05\x02\x00\x01" + bytes(6)).hex()  # method 0x00, then REP 0x02
            c = counters(a)
            assert (c["socks.not_permitted"], c["socks.connected"], c["socks.accepted"]) == (2, 1, 3), c
            refused = re.findall(rf"INFO .*SOCKS client .* refused: uid {nobody} \(nobody\) may not open mesh streams; "
                                 rf"run it as root or as a member of group {group.name}", a.log_text())
            assert len(refused) == 1, a.log_text()  # the second refusal within a minute is not logged

            # a client that is gone before the gateway looks: its socket has no owner any more (stopped daemon: no race)
            a.signal(signal.SIGSTOP)
            try:
                with socket.create_connection(("127.0.0.1", gw), timeout=10) as s:  # (the kernel accepts it)
                    s.sendall(b"\x05\x01\x00" + request("bravo", port))
            finally:
                a.signal(signal.SIGCONT)
            wait_until(lambda: counters(a).get("socks.owner_unknown") == 1, what="the closed client to be refused")
            assert re.search(r"INFO .*refused: who connected is unknown, so it may not open streams: the socket at "
                             r"127\.0\.0\.1:\d+ is already closed", a.log_text()), a.log_text()

            # the groups come from the user database: nobody listed in the group passes with no groups in its process
            subprocess.run(["gpasswd", "-a", "nobody", group.name], check=True, capture_output=True)
            r = curl(gw, f"http://bravo:{port}/", *socks, runas=NOBODY)
            assert r.returncode == 0 and token in r.stdout, r

            # a gateway with users: the login decides, whoever runs the client
            r = curl(0, f"http://alfa:{port}/", "--socks5-hostname", f"127.0.0.1:{gateway_port(b)}",
                     "--proxy-user", "ann:s3cret", runas=NOBODY)
            assert r.returncode == 0 and token in r.stdout, r
            assert "socks.not_permitted" not in counters(b) and counters(b)["socks.connected"] == 1

            r = curl(gw, f"http://bravo:{port}/", *socks)  # the gateway serves on
            assert r.returncode == 0 and token in r.stdout, r
            c = counters(a)
            assert (c["socks.not_permitted"], c["socks.owner_unknown"], c["socks.connected"]) == (2, 1, 3), c
    finally:
        group.close()  # (groupdel takes nobody's membership with it)
