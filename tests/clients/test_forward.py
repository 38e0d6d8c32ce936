"""Port forwards (issue 13, items 4 and 6): real daemons alfa and bravo on loopback, `omertactl forward|streams` as
subprocesses, real TCP servers on bravo's host and real TCP clients of alfa's listener.

* a forward to a port bravo exposes carries 4 MB both ways (an echo server: same SHA-256), on 127.0.0.1 and on
  ::1; `omertactl streams` lists the open stream with its forward and the forward with its connection; when
  the connection ends, the forward's byte counts are the bytes carried;
* a forward to a port bravo does not expose: the local connection is closed, and the forward counts the error
  with bravo's reason ("port P not exposed on bravo");
* remove closes the listener (a new connection is refused by the kernel) and the open connection;
* a persisted forward and a [[forward]] from meshd.toml come back after a restart and work; one made without
  --persist does not come back; a damaged forwards.json stops the start with the file, the cause and the fix;
* a peer that is down when the forward is made: a connection then fails with the reason, one made after it is
  back works;
* bad arguments, a local port already in use, and nobody get clear errors (cause and fix, exit codes);
* the limits: a connection past MAX_CONNECTIONS open ones is closed and counted with the reason; a forward past
  MAX_FORWARDS is refused (BUSY) with the fix;
* the monitor (omerta-top) shows the open stream and the forward in its streams and forwards panel.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from clients.ctlharness import Echo, check_result, ctl, free_port, wait_until
from meshd.harness import DaemonProc, refused, wait_connected
from meshd.rpcclient import RpcError
from omerta_clients.tui.app import Monitor
from omerta_mesh.meshd import config as config_mod
from omerta_mesh.meshd.forward import MAX_CONNECTIONS, MAX_FORWARDS


def forward(a: DaemonProc, *args: str) -> dict:
    r = ctl(a.socket, "forward", *args, "--json")
    assert r.rc == 0, r
    return check_result("forward.add", r.json())


def listed(d: DaemonProc) -> list[dict]:
    return check_result("forward.list", ctl(d.socket, "forward", "list", "--json").json())["forwards"]


def echo_through(host: str, port: int, size: int) -> bytes:
    """Send ``size`` random bytes to host:port while reading the answer; returns what came back."""
    payload = os.urandom(size)
    with socket.create_connection((host, port), timeout=60) as c:
        def send() -> None:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = bytearray()
        while data := c.recv(1 << 20):
            got += data
        t.join(10)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest(), f"{len(got)} of {size} bytes came back"
    return bytes(got)


def exposed_echo(b: DaemonProc, server_of) -> int:
    """A real echo server on bravo's host, exposed to streams; its port."""
    port = server_of(Echo)
    assert ctl(b.socket, "serve", "add", str(port)).rc == 0
    return port


def opened(local: int, host: str = "127.0.0.1") -> socket.socket:
    """A connection through the forward on ``local``, with one round trip made (the stream is open)."""
    c = socket.create_connection((host, local), timeout=20)
    c.sendall(b"ping\n")
    assert c.recv(5) == b"ping\n"
    return c


def closed_without_data(host: str, port: int, timeout: float = 30) -> float:
    """Connect, and wait for the forward to close the connection without a byte; seconds it took."""
    t0 = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as c:
        try:
            assert c.recv(100) == b""
        except ConnectionResetError:
            pass
    return time.monotonic() - t0


def test_a_forward_carries_bytes_both_ways_and_streams_lists_it(pair, server_of) -> None:
    a, b = pair
    port = exposed_echo(b, server_of)
    f = forward(a, "0", f"bravo:{port}")
    assert (f["bind"], f["peer"], f["name"], f["port"], f["kept_in"], f["listening"]) == ("127.0.0.1", "bravo", "bravo", port, None, True)
    assert f["local"] > 0 and f["node_id"] == b.call("status.get")["node_id"]  # type: ignore[index]
    echo_through("127.0.0.1", f["local"], 4 << 20)

    # an open connection: `omertactl streams` shows its stream (with the forward) and the forward
    with opened(f["local"]):
        res = check_result("streams.list", ctl(a.socket, "streams", "--json").json())
        [st] = res["streams"]
        [fw] = res["forwards"]
        assert (st["direction"], st["port"], st["name"], st["forward"]) == ("out", port, "bravo", f"127.0.0.1:{f['local']}")
        assert (fw["local"], fw["connections"], fw["connections_total"]) == (f["local"], 1, 2)
        text = ctl(a.socket, "streams").out
        assert "forwards" in text and f"127.0.0.1:{f['local']}" in text and "bravo" in text, text
    wait_until(lambda: listed(a)[0]["connections"] == 0, 10, "the connection to end")
    [fw] = listed(a)
    carried = (4 << 20) + 5
    assert (fw["bytes_in"], fw["bytes_out"], fw["errors"], fw["last_error"]) == (carried, carried, 0, None), fw
    assert ctl(a.socket, "forward", "list").out.count("bravo") == 1

    # IPv6 loopback
    f6 = forward(a, "--bind", "::1", "0", f"bravo:{port}")
    assert f6["bind"] == "::1"
    echo_through("::1", f6["local"], 1 << 20)
    assert f"[::1]:{f6['local']}" in ctl(a.socket, "forward", "list").out


def test_a_forward_to_a_port_not_exposed_closes_the_connection_and_counts_the_reason(pair, server_of) -> None:
    a, b = pair
    port = server_of(Echo)
    f = forward(a, "0", f"bravo:{port}")
    closed_without_data("127.0.0.1", f["local"])
    [fw] = listed(a)
    assert fw["errors"] == 1 and fw["last_error"] == f"port {port} not exposed on bravo", fw
    assert f"port {port} not exposed on bravo" in ctl(a.socket, "forward", "list").out
    assert f"port {port} not exposed on bravo" in a.log_text()
    # exposed now: the same forward works (nothing about the peer is kept between connections)
    assert ctl(b.socket, "serve", "add", str(port)).rc == 0
    echo_through("127.0.0.1", f["local"], 1000)


def test_remove_closes_the_listener_and_its_connections(pair, server_of) -> None:
    a, b = pair
    f = forward(a, "0", f"bravo:{exposed_echo(b, server_of)}")
    with opened(f["local"]) as c:
        r = ctl(a.socket, "forward", "remove", str(f["local"]), "--json")
        assert r.rc == 0, r
        gone = check_result("forward.remove", r.json())
        assert (gone["local"], gone["bytes_in"], gone["bytes_out"], gone["connections_total"]) == (f["local"], 5, 5, 1)
        try:
            assert c.recv(10) == b""  # the open connection is closed too
        except ConnectionResetError:
            pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", f["local"]), timeout=5).close()
    assert listed(a) == []
    wait_until(lambda: all(ctl(d.socket, "streams", "--json").json()["streams"] == [] for d in (a, b)), 10,
               "the removed forward's stream to be gone on both daemons")
    r = ctl(a.socket, "forward", "remove", str(f["local"]))
    assert r.rc == 1 and f"no forward on local port {f['local']}" in r.err and "omertactl forward list" in r.err, r


def test_kept_forwards_come_back_after_a_restart(pair, server_of) -> None:
    a, b = pair
    port = exposed_echo(b, server_of)
    kept, declared, passing = free_port(), free_port(), free_port()
    assert forward(a, "--persist", str(kept), f"bravo:{port}")["kept_in"] == "state"
    assert forward(a, str(passing), f"bravo:{port}")["kept_in"] is None
    conf = Path(a.extra[1])
    conf.write_text(conf.read_text() + f'\n[[forward]]\nlocal = {declared}\npeer = "bravo"\nport = {port}\n')
    a.stop()
    a.start()
    assert {(f["local"], f["kept_in"], f["listening"]) for f in listed(a)} == {(kept, "state", True), (declared, "config", True)}
    b_id = b.call("status.get")["node_id"]  # type: ignore[index]
    wait_connected(a, b_id)
    echo_through("127.0.0.1", kept, 1 << 20)
    echo_through("127.0.0.1", declared, 1 << 20)
    r = ctl(a.socket, "forward", "remove", str(declared))
    assert r.rc == 0 and "declared in meshd.toml: it comes back at the next start" in r.out, r
    assert ctl(a.socket, "forward", "remove", str(kept)).rc == 0
    a.stop()
    a.start()
    assert [(f["local"], f["kept_in"]) for f in listed(a)] == [(declared, "config")]


def test_a_damaged_forwards_file_stops_the_start_and_says_how_to_fix_it(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path, "solo")
    d.state.mkdir(mode=0o700, parents=True)
    (d.state / "forwards.json").write_text('{"version": 1, "forwards": [{"local": 8022, "peer": "b", "port": 99999}]}')
    try:
        rc, log = refused(d)
    finally:
        d.close()
    assert rc == 1 and "forwards.json is damaged (port = 99999 is not a TCP port (1-65535))" in log, log
    assert "fix or remove it" in log


def test_a_peer_down_when_the_forward_is_made_fails_with_the_reason_then_works(pair, server_of) -> None:
    a, b = pair
    port = exposed_echo(b, server_of)  # (kept across bravo's restart)
    b_id = b.call("status.get")["node_id"]  # type: ignore[index]
    b.stop()
    wait_until(lambda: not any(p["connected"] for p in a.call("peers.list")["peers"]), 15, "alfa to see bravo gone")  # type: ignore[index]
    f = forward(a, "0", f"bravo:{port}")
    took = closed_without_data("127.0.0.1", f["local"])
    [fw] = listed(a)
    assert fw["errors"] == 1 and "no session with" in fw["last_error"], fw
    print(f"\nconnection while bravo was down closed after {took:.1f} s: {fw['last_error']}")
    b.start()
    wait_connected(a, b_id, 30)
    echo_through("127.0.0.1", f["local"], 1 << 20)
    assert listed(a)[0]["errors"] == 1


@pytest.mark.root("omertactl as nobody")
def test_bad_arguments_ports_in_use_and_nobody_get_clear_errors(pair) -> None:
    a, _b = pair
    for args, needle in ((["8080"], "give LOCALPORT PEER:PORT"), (["8080", "bravo"], "is not PEER:PORT"),
                         (["70000", "bravo:22"], "LOCALPORT '70000' is not a TCP port"),
                         (["8080", "bravo:0"], "PORT '0' is not a TCP port"), (["remove"], "give LOCALPORT PEER:PORT")):
        r = ctl(a.socket, "forward", *args)
        assert r.rc == 2 and needle in r.err, (args, r)
    r = ctl(a.socket, "forward", "8080", "bravo", "--json")
    assert r.rc == 2 and '"USAGE"' in r.err, r
    r = ctl(a.socket, "forward", "--bind", "localhost", "0", "bravo:22")
    assert r.rc == 2 and "'localhost' is not an IP address" in r.err and "127.0.0.1" in r.err, r
    r = ctl(a.socket, "forward", "0", "charlie:22")
    assert r.rc == 5 and "charlie" in r.err and "fix:" in r.err, r
    r = ctl(a.socket, "forward", "--persist", "0", "bravo:22")
    assert r.rc == 2 and "a persistent forward needs a fixed local port" in r.err, r
    r = ctl(a.socket, "forward", "--bind", "192.0.2.1", "0", "bravo:22")
    assert r.rc == 1 and "not one of this host's" in r.err, r
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        used = taken.getsockname()[1]
        r = ctl(a.socket, "forward", str(used), "bravo:22", "--json")
        assert r.rc == 1 and "already in use" in r.err and f"sport = :{used}" in r.err, r
    f = forward(a, "0", "bravo:22")
    r = ctl(a.socket, "forward", str(f["local"]), "bravo:23")
    assert r.rc == 1 and f"127.0.0.1:{f['local']} already forwards to bravo:22" in r.err, r
    r = ctl(a.socket, "forward", "0", "bravo:22", user="nobody")
    assert r.rc == 4 and "forward.add changes the daemon's state" in r.err, r
    r = ctl(a.socket, "forward", "remove", str(f["local"]), user="nobody")
    assert r.rc == 4, r
    assert ctl(a.socket, "forward", "list", user="nobody").rc == 0  # reading is for everyone
    assert a.alive()


def test_the_limits_on_connections_and_forwards_refuse_with_the_reason(pair, server_of) -> None:
    a, b = pair
    f = forward(a, "0", f"bravo:{exposed_echo(b, server_of)}")
    conns = [opened(f["local"]) for _ in range(MAX_CONNECTIONS)]
    try:
        closed_without_data("127.0.0.1", f["local"])
        [fw] = listed(a)
        want = (MAX_CONNECTIONS, 1, f"more than {MAX_CONNECTIONS} connections at once")
        assert (fw["connections"], fw["errors"], fw["last_error"]) == want, fw
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: listed(a)[0]["connections"] == 0, 15, "the connections to end")
    opened(f["local"]).close()  # room again
    for _ in range(MAX_FORWARDS - 1):
        a.call("forward.add", local=0, peer="bravo", port=22)
    with pytest.raises(RpcError) as e:
        a.call("forward.add", local=0, peer="bravo", port=22)
    assert e.value.code == 1009 and f"{MAX_FORWARDS} forwards" in str(e.value), e.value
    assert len(listed(a)) == MAX_FORWARDS


@pytest.mark.parametrize("body, needle", [
    ('[[forward]]\nlocal = 8022\npeer = "b"\n', "[[forward]] #1: port missing"),
    ('[[forward]]\nlocal = 8022\npeer = "b"\nport = 70000\n', "port = 70000 is not a TCP port"),
    ('[[forward]]\nlocal = 0\npeer = "b"\nport = 22\n', "needs a fixed local port"),
    ('[[forward]]\nlocal = 8022\npeer = "b"\nport = 22\nbind = "lo"\n', "bind = 'lo' is not an IP address"),
    ('[[forward]]\nlocal = 8022\npeer = "b"\nport = 22\nlisten = 1\n', "unknown key 'listen'"),
    ('[forward]\nlocal = 8022\n', "forward must be an array of tables"),
    ('[[forward]]\nlocal = 1\npeer = "b"\nport = 22\n[[forward]]\nlocal = 1\npeer = "c"\nport = 22\n', "forwarded twice"),
])
def test_bad_forward_tables_in_the_config_name_the_table_and_the_fix(tmp_path: Path, body: str, needle: str) -> None:
    f = tmp_path / "meshd.toml"
    f.write_text(body)
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.load(f)
    assert needle in str(e.value) and str(f) in str(e.value)


async def test_the_monitor_shows_the_open_stream_and_the_forward(pair, server_of) -> None:
    a, b = pair
    port = exposed_echo(b, server_of)
    f = forward(a, "0", f"bravo:{port}")
    with opened(f["local"]):
        console = Console(record=True, width=160, height=50, file=io.StringIO())
        mon = Monitor(str(a.socket), console, ping_interval=0, refresh=0.05, poll=0.2,
                      stop_when=lambda m: bool(m.streams and m.forwards), max_seconds=20)
        assert await mon.run() == 0
    text = console.export_text()
    assert "╭─ streams and forwards" in text, text
    label = f"127.0.0.1:{f['local']}"
    stream = next(x for x in text.splitlines() if "bravo" in x and f" {port} " in x and " out " in x)
    assert label in stream, stream
    assert any(x.lstrip("│ ").startswith(label) and "bravo" in x for x in text.splitlines()), text
