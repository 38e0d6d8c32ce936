"""Prometheus metrics from a real daemon pair: the HTTP endpoint read with real curl and parsed with
prometheus_client's parsers, figures that move with traffic, drops by reason after garbage datagrams,
``omertactl metrics`` (text and --json), the HTTP edges, and configurations that are refused."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from clients.ctlharness import ctl, wait_until
from meshd.harness import DaemonProc, join, refused
from omerta_mesh.meshd.metrics_http import MAX_CLIENTS

GARBAGE = {  # drop reason -> a datagram that is dropped for it (core/wire/packet.py)
    "truncated": b"\x04",
    "unknown_type": bytes([0x77, 1, 0, 0]) + bytes(40),
    "unknown_receiver": bytes([4, 1, 0, 0]) + (0xDEADBEEF).to_bytes(4, "little") + bytes(8) + bytes(48),
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    return {(x.name, tuple(sorted(x.labels.items()))): x.value for f in text_string_to_metric_families(text) for x in f.samples}


def peer_sample(text: str, name: str, peer_name: str, **labels: str) -> float:
    found = [v for (n, lv), v in samples(text).items() if n == name and dict(lv).get("peer_name") == peer_name
             and all(dict(lv).get(k) == want for k, want in labels.items())]
    assert len(found) == 1, (name, peer_name, labels, found)
    return found[0]


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=30)


def started(base: Path, name: str, conf: str) -> DaemonProc:
    d = DaemonProc(base, name)
    (d.dir / "meshd.toml").write_text(f'[node]\nname = "{name}"\n\n{conf}')
    d.extra = ["--config", str(d.dir / "meshd.toml")]
    return d.start()


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[DaemonProc, DaemonProc, str]]:
    """alfa (metrics on 127.0.0.1, any port) and bravo in one network; alfa's metrics URL."""
    a = started(tmp_path, "alfa", '[metrics]\nlisten = "127.0.0.1:0"\n')
    b = started(tmp_path, "bravo", "")
    try:
        join(a, b, "home")
        feature = a.call("status.get")["metrics"]  # type: ignore[index]
        assert feature["enabled"] and feature["active"], feature
        yield a, b, feature["detail"]
        for d in (a, b):
            assert d.stop() == 0
            assert "Traceback" not in d.log_text(), d.log_text()
    finally:
        a.close()
        b.close()


def test_curl_reads_metrics_that_move_with_traffic_and_drops_by_reason(metered) -> None:
    a, b, url = metered
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    r = curl("-i", url)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition("\n\n")  # (text mode: \r\n read as \n)
    assert head.startswith("HTTP/1.1 200") and "text/plain; version=0.0.4" in head, head
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    assert fams["omerta_drops"].type == "counter" and fams["omerta_peer_rtt_seconds"].type == "gauge"
    assert {"omerta_info", "omerta_uptime_seconds", "omerta_handshakes", "omerta_udp_received", "process_resident_memory_bytes",
            "omerta_network_members", "omerta_peer_received_bytes", "omerta_peer_path", "omerta_feature_active"} <= set(fams)
    assert peer_sample(body, "omerta_peer_connected", "bravo") == 1
    assert peer_sample(body, "omerta_peer_path", "bravo", kind="direct") == 1
    assert peer_sample(body, "omerta_peer_path", "bravo", kind="relay") == 0
    assert peer_sample(body, "omerta_peer_session_age_seconds", "bravo") >= 0
    net = {dict(lv)["network_name"]: v for (n, lv), v in samples(body).items() if n == "omerta_network_members"}
    assert net == {"home": 1}
    assert samples(body)[("omerta_feature_active", (("feature", "metrics"),))] == 1
    assert samples(body)[("omerta_handshakes_total", (("event", "completed"),))] >= 1

    # traffic: 20 messages of 1,000 bytes bravo -> alfa raise alfa's bytes and packets from bravo
    a_id = a.call("status.get")["node_id"]  # type: ignore[index]
    a.call("channel.receive", channel="load", timeout=0)  # alfa opens its inbox for the channel
    before = curl(url).stdout
    for _ in range(20):
        b.call("channel.send", peer=a_id, channel="load", data="x" * 1000, wait=True)
    after = curl(url).stdout
    got = {k: peer_sample(after, k, "bravo") - peer_sample(before, k, "bravo")
           for k in ("omerta_peer_received_bytes_total", "omerta_peer_received_packets_total", "omerta_peer_sent_packets_total")}
    assert got["omerta_peer_received_bytes_total"] >= 20 * 1000, got
    assert got["omerta_peer_received_packets_total"] >= 20 and got["omerta_peer_sent_packets_total"] >= 1, got  # (acks)

    # garbage datagrams to alfa's UDP port: counted as drops, by reason, one each
    port = int(a.call("status.get")["listen"][0].rsplit(":", 1)[1])  # type: ignore[index]
    before = samples(curl(url).stdout)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in GARBAGE.values():
            for _ in range(5):
                s.sendto(data, ("127.0.0.1", port))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = samples(curl(url).stdout)
        moved = {r: now[("omerta_drops_total", (("reason", r),))] - before[("omerta_drops_total", (("reason", r),))] for r in GARBAGE}
        if all(v >= 5 for v in moved.values()):
            break
        time.sleep(0.1)
    assert moved == dict.fromkeys(GARBAGE, 5), moved
    assert now[("omerta_drops_total", (("reason", "replayed"),))] == 0  # every reason is there, 0 until it happens
    assert a.alive()


def test_http_edges_and_openmetrics(metered) -> None:
    a, _, url = metered
    om = curl("-H", "Accept: application/openmetrics-text; version=1.0.0", url)
    fams = {f.name: f for f in openmetrics_families(om.stdout)}  # strict: needs "# EOF", _total on counters
    assert fams["omerta_drops"].type == "counter" and fams["omerta"].type == "info"
    root = url.removesuffix("/metrics") + "/"
    assert curl("-o", "/dev/null", "-w", "%{http_code}", root).stdout == "404"
    assert curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url).stdout == "405"
    head = curl("-I", url)
    assert head.stdout.startswith("HTTP/1.1 200") and "Content-Length:" in head.stdout
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # not HTTP: 400, the connection closed
        s.sendall(b"HELLO\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # a head that never ends: 400 at 8 KiB
        s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    counters = a.call("status.get")["counters"]  # type: ignore[index]
    assert counters["metrics.http_refused"] >= 4 and counters["metrics.http_requests"] >= 2, counters

    # at most 16 connections at once: idle ones fill the places, one more is closed unread; closing them frees them
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(MAX_CLIENTS)]
    try:
        wait_until(lambda: a.call("status.get")["counters"]["metrics.http_clients"] == MAX_CLIENTS,  # type: ignore[index]
                   what="the server to hold the idle connections")
        assert curl(url).returncode != 0  # (curl: empty reply or reset)
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: a.call("status.get")["counters"]["metrics.http_clients"] == 0, what="the places to free")  # type: ignore[index]
    assert curl(url).returncode == 0


def test_omertactl_metrics_text_and_json(metered) -> None:
    a, _, _ = metered
    r = ctl(a.socket, "metrics")
    assert r.rc == 0, r.err
    assert "# TYPE omerta_drops_total counter" in r.out
    assert peer_sample(r.out, "omerta_peer_connected", "bravo") == 1
    only = ctl(a.socket, "metrics", "omerta_peer_rtt")
    assert {f.name for f in text_string_to_metric_families(only.out)} == {"omerta_peer_rtt_seconds"}
    j = ctl(a.socket, "metrics", "--json")
    assert j.rc == 0, j.err
    fams = {f["name"]: f for f in j.json()}
    drops = fams["omerta_drops"]
    assert drops["type"] == "counter" and drops["help"].startswith("Remote input dropped")
    assert {x["labels"]["reason"] for x in drops["samples"] if x["name"] == "omerta_drops_total"} >= set(GARBAGE)
    rtt = fams["omerta_peer_rtt_seconds"]["samples"][0]
    assert rtt["labels"]["peer_name"] == "bravo" and 0 < rtt["value"] < 5
    assert json.loads(ctl(a.socket, "metrics", "drops", "--json").out)[0]["name"] == "omerta_drops"


def test_metrics_off_by_default_and_in_status(daemon_factory) -> None:
    d = daemon_factory("plain").start()
    assert d.call("status.get")["metrics"] == {"enabled": False, "active": False, "detail": "off"}
    text = d.call("metrics.get")["text"]  # type: ignore[index]
    assert ("omerta_peers", (("state", "direct"),)) in {(n.removesuffix("_total"), lv) for (n, lv) in samples(text)}
    r = ctl(d.socket, "status")
    assert r.rc == 0 and "metrics" in r.out, r.err


@pytest.mark.parametrize(("conf", "needle"), [
    ('listen = "0.0.0.0:9464"', "metrics.listen = \"0.0.0.0:9464\" is not a loopback address"),
    ('listen = "[::]:9464"', "allow_remote = true"),
    ('listen = "localhost:9464"', "not ADDRESS:PORT with an IP address"),
    ('listen = "127.0.0.1:99999"', "port 0-65535"),
    ('allow_remote = "yes"', "metrics.allow_remote"),
])
def test_bad_metrics_config_is_refused(tmp_path: Path, conf: str, needle: str) -> None:
    d = DaemonProc(tmp_path, "bad")
    (d.dir / "meshd.toml").write_text(f"[metrics]\n{conf}\n")
    d.extra = ["--config", str(d.dir / "meshd.toml")]
    rc, log = refused(d)
    assert rc == 2 and needle in log, log
    d.close()


def test_a_port_in_use_leaves_the_daemon_up_and_says_why(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = started(tmp_path, "busy", f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        try:
            f = d.call("status.get")["metrics"]  # type: ignore[index]
            assert f["enabled"] and not f["active"] and f"cannot listen on 127.0.0.1:{port}" in f["detail"], f
            assert "choose another metrics.listen" in f["detail"]
            assert "omerta_uptime_seconds" in d.call("metrics.get")["text"]  # type: ignore[index]
        finally:
            d.close()


def test_the_dbus_face_has_metrics_too(tmp_path: Path) -> None:
    from meshd.dbus_harness import PrivateBus, have_dbus_daemon

    if not have_dbus_daemon():
        pytest.skip("dbus-daemon is not installed (apt-get install dbus)")
    import asyncio

    from dbus_fast.aio import MessageBus

    from omerta_mesh.meshd.registry import DBUS_IFACE, DBUS_NAME, DBUS_PATH

    bus = PrivateBus(tmp_path)
    d = DaemonProc(tmp_path, "d", extra=["--dbus-address", bus.address])
    try:
        d.start()

        async def go() -> str:
            b = await MessageBus(bus_address=bus.address).connect()
            obj = b.get_proxy_object(DBUS_NAME, DBUS_PATH, await b.introspect(DBUS_NAME, DBUS_PATH))
            text = await obj.get_interface(DBUS_IFACE).call_metrics_get()  # type: ignore[attr-defined]
            b.disconnect()
            return str(text)

        got = samples(asyncio.run(go()))
        assert got[("omerta_feature_active", (("feature", "dbus"),))] == 1  # read through the D-Bus face itself
        assert ("omerta_drops_total", (("reason", "truncated"),)) in got
    finally:
        d.close()
        bus.close()
