"""The monitor driven by three real daemons: alice's screen shows bob and carol with RTT figures, once
rendered to rich's recording console and once in a real terminal (tmux), where q quits it."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from rich.console import Console

from clients.ctlharness import CLIENT_ENV, ROOT, wait_until
from omerta_clients.tui.app import Monitor

RTT = r"\d+\.\d+ ms"


def peer_line(text: str, name: str) -> str:
    return next((x for x in text.splitlines() if re.search(rf"\b{name}\b.*\bdirect\b", x)), "")


def both_have_rtt(text: str) -> bool:
    return all(re.search(RTT, peer_line(text, n)) for n in ("bob", "carol"))


async def test_monitor_on_a_recording_console_shows_two_peers_with_rtt(mesh3) -> None:
    console = Console(record=True, width=160, height=45, file=io.StringIO())

    def two_rtts(m) -> bool:
        return sum(1 for r in m.peers.values() if r.connected and r.rtts) >= 2 and m.snapshots >= 1

    mon = Monitor(str(mesh3.sock("alice")), console, ping_interval=0.2, refresh=0.05, poll=0.2, stop_when=two_rtts, max_seconds=20)
    assert await mon.run() == 0
    text = console.export_text()
    assert "alice" in text.splitlines()[0]
    assert both_have_rtt(text), text
    for name in ("bob", "carol"):
        row = peer_line(text, name)
        assert mesh3.ids[name][:12] in row and "127.0.0.1:" in row and re.search(r"[▁▂▃▄▅▆▇█]", row), row
    assert "NAT:" in text and "events" in text


def test_monitor_exits_3_when_the_daemon_is_not_running(tmp_path) -> None:
    for cmd in ([sys.executable, "-m", "omerta_clients.tui.app"], [sys.executable, "-m", "omerta_clients.ctl.main", "monitor"]):
        r = subprocess.run(cmd + ["--socket", str(tmp_path / "none.sock")], capture_output=True, text=True, env=CLIENT_ENV, timeout=30)
        assert r.returncode == 3 and "daemon not running" in r.stderr, r


def top_command() -> list[str]:
    exe = shutil.which("omerta-top")
    return [exe] if exe else [sys.executable, "-m", "omerta_clients.tui.app"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI installs it: .ci/run)")
def test_monitor_in_a_real_terminal_via_tmux(mesh3, tmp_path) -> None:
    server = f"omerta-test-{os.getpid()}"
    rc_file, err_file = tmp_path / "rc", tmp_path / "stderr"
    inner = " ".join(shlex.quote(a) for a in top_command() + ["--socket", str(mesh3.sock("alice")), "--ping-interval", "0.3"])
    shell = (f"env PYTHONPATH={shlex.quote(str(ROOT / 'clients'))} TERM=xterm-256color {inner} 2> {shlex.quote(str(err_file))}; "
             f"echo $? > {shlex.quote(str(rc_file))}")
    # tmux runs the pane's command with $SHELL, else the user's login shell: nobody's is nologin, which
    # refuses it (the pane closes at once, the screen is empty). /bin/sh and no tmux.conf: the same every time.
    env = {**os.environ, "SHELL": "/bin/sh"}

    def tmux(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", server, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=10, env=env)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "top").stdout

    try:
        r = tmux("new-session", "-d", "-s", "top", "-x", "160", "-y", "45", shell)
        assert r.returncode == 0, r.stderr
        try:
            wait_until(lambda: both_have_rtt(screen()), timeout=20, what="bob and carol with RTT figures", step=0.2)
        except AssertionError:
            rc = rc_file.read_text().strip() if rc_file.exists() else "still running"
            err = err_file.read_text() if err_file.exists() else ""
            raise AssertionError(f"exit status: {rc}\nstderr:\n{err}\nscreen:\n{screen()}") from None
        text = screen()
        assert "omerta-top alice" in text and "RTT HISTORY" in text
        assert peer_line(text, "bob").startswith("›")  # the first peer is selected
        tmux("send-keys", "-t", "top", "Down")
        wait_until(lambda: peer_line(screen(), "carol").startswith("›") and "╭─ carol" in screen(), timeout=5,
                   what="the arrow key to select carol", step=0.1)
        tmux("send-keys", "-t", "top", "k")
        wait_until(lambda: "╭─ bob" in screen(), timeout=5, what="k to select bob again", step=0.1)
        tmux("send-keys", "-t", "top", "q")
        wait_until(lambda: rc_file.exists() and rc_file.read_text().strip() != "", timeout=10, what="q to quit", step=0.1)
        assert rc_file.read_text().strip() == "0"
        wait_until(lambda: tmux("has-session", "-t", "top").returncode != 0, timeout=5, what="the session to end")
    finally:
        tmux("kill-server")
        time.sleep(0.05)
