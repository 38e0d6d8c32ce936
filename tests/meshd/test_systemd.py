"""systemd integration of the real daemon process: sd_notify to a fake NOTIFY_SOCKET (READY, STATUS,
WATCHDOG, RELOADING, STOPPING), SIGHUP reload, SIGTERM graceful stop, and `systemd-analyze verify`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from meshd.harness import ROOT
from meshd.rpcclient import RpcClient

UNIT = ROOT / "systemd/omerta-meshd.service"


def test_notify_ready_status_and_watchdog(daemon_factory) -> None:
    d = daemon_factory("d", env={"WATCHDOG_USEC": "200000"}, abstract_notify=True).start()
    assert d.notify is not None and d.notify.env.startswith("@")
    ready = d.notify.wait_for("READY=1")
    lines = ready.split("\n")
    assert f"MAINPID={d.proc.pid}" in lines
    assert any(line.startswith("STATUS=no networks") for line in lines)
    assert d.socket.exists()  # READY=1 only once the API socket is bound
    t0 = time.monotonic()
    d.notify.wait_for("WATCHDOG=1", timeout=2)
    d.notify.messages.clear()
    d.notify.wait_for("WATCHDOG=1", timeout=2)
    assert time.monotonic() - t0 < 1.5  # about every 100 ms (half of WATCHDOG_USEC)
    d.call("network.create", name="home")
    status = d.notify.wait_for("STATUS=0 peers: 0 direct, 0 relayed (1 network)", timeout=5)
    assert "READY" not in status


def test_no_watchdog_for_another_pid(daemon_factory) -> None:
    d = daemon_factory("d", env={"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}).start()
    time.sleep(0.4)
    assert d.notify is not None
    d.notify.sock.settimeout(0.01)
    try:
        while True:
            d.notify.messages.append(d.notify.sock.recv(65536).decode())
    except (TimeoutError, OSError):
        pass
    assert not any("WATCHDOG=1" in m for m in d.notify.messages)


def test_sighup_reloads_the_config_and_keeps_the_old_one_when_broken(daemon_factory, tmp_path: Path) -> None:
    conf = tmp_path / "meshd.toml"
    conf.write_text("[api]\nmax_batch = 8\n")
    d = daemon_factory("d", extra=["--config", str(conf)]).start()
    c = d.client()
    sub = c.call("events.subscribe")
    batch = [{"jsonrpc": "2.0", "method": "status.get", "id": i} for i in range(3)]
    c.send_obj(batch)
    assert len(c.read()) == 3

    conf.write_text("[api]\nmax_batch = 2\n[node]\nipv6 = true\nport = 4242\n")
    d.notify.messages.clear()
    d.signal(signal.SIGHUP)
    ev = c.next_notification("events.event")["params"]
    assert ev["subscription"] == sub["subscription"] and ev["event"]["type"] == "daemon.reloaded"
    # --port on the command line still wins
    assert ev["event"]["changed"] == ["api.max_batch"] and ev["event"]["restart_required"] == ["node.ipv6"]
    d.notify.wait_for("RELOADING=1")
    d.notify.wait_for("READY=1")
    c.send_obj(batch)
    assert c.read()["error"]["data"]["name"] == "INVALID_REQUEST"  # the new limit is live
    assert d.call("status.get")["listen"][0] != "127.0.0.1:4242"  # the port waits for a restart

    conf.write_text("[api]\nmax_batch = 'many'\n")
    d.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert d.alive()
    c.send_obj(batch)
    assert c.read()["error"]["data"]["name"] == "INVALID_REQUEST"  # the previous configuration stays
    assert "reload refused" in d.log_text() and "api.max_batch" in d.log_text()
    with pytest.raises(Exception) as ei:
        c.call("daemon.reload")
    assert getattr(ei.value, "name", None) == "CONFIG_INVALID"
    c.close()


def test_sigterm_stops_gracefully_tells_peers_and_saves_state(daemon_factory) -> None:
    a = daemon_factory("a").start()
    b = daemon_factory("b").start()
    net = a.call("network.create", name="n")
    assert b.call("network.join", invite=net["invite"], wait=10)["connected"]
    with RpcClient(str(b.socket)) as watcher, a.client() as a_client:
        watcher.call("events.subscribe")
        a_client.call("events.subscribe")
        a_id = a.call("status.get")["node_id"]

        a.signal(signal.SIGTERM)
        a.notify.wait_for("STOPPING=1")
        assert a.proc.wait(10) == 0
        assert not a.socket.exists()
        # subscribers of A heard it stop; the peer was told at once (not after a session timeout)
        assert a_client.next_notification("events.event")["params"]["event"]["type"] == "daemon.stopping"
        closed = a_client.next_notification("events.closed")["params"]
        assert closed["code"] == 1011 and closed["reason"] == "daemon stopping"
        t0 = time.monotonic()
        while True:
            e = watcher.next_notification("events.event")["params"]["event"]
            if e["type"] == "peer.disconnected":
                break
        assert e["node_id"] == a_id and time.monotonic() - t0 < 5
    peers = (a.state / "peers.json").read_text()
    assert b.call("status.get")["node_id"] in peers
    assert "Traceback" not in a.log_text() and "Traceback" not in b.log_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_systemd_analyze_verify_passes_on_the_unit(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text and "ExecStart=/usr/bin/omerta-meshd --foreground" in text
    # verify checks that ExecStart exists: point it at a stand-in executable, nothing else changes
    exe = tmp_path / "omerta-meshd"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    unit = tmp_path / "omerta-meshd.service"
    unit.write_text(text.replace("/usr/bin/omerta-meshd", str(exe)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "omerta-meshd" in line or "Unknown" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
    for key in ("CapabilityBoundingSet=", "ProtectSystem=strict", "StateDirectory=omerta", "RuntimeDirectory=omerta",
                "WatchdogSec=", "NoNewPrivileges=yes", "ExecReload="):
        assert key in text
