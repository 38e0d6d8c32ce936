"""Regression (issue 13): omerta-ssh to a peer whose name has a capital letter failed.

omerta-ssh gave ssh ``KnownHostsCommand=omertactl ssh-known-hosts %H``. ssh also asks that command for the name it
connects to, lowercased: for a peer named ``Ben`` it ran ``ssh-known-hosts ben``, which names no peer, and ssh
gave up ("KnownHostsCommand failed", exit status 255) before connecting. Found by the netns lab test
(tests/netns/test_ssh_lab.py, peers A and B). Now the command names the peer's node id. Real daemons on
loopback, a real sshd, real ssh.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clients.ctlharness import CLIENT_ENV, node_id, prepare, start_all, wait_until
from meshd.harness import join
from sshd import MISSING, USER, Sshd

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def test_omerta_ssh_reaches_a_peer_named_with_a_capital(tmp_path: Path) -> None:
    sshd = Sshd(tmp_path / "ssh")
    ana, ben = prepare(tmp_path, "ana", b"a" * 32, {}), prepare(tmp_path, "Ben", b"b" * 32, {})
    conf = Path(ben.extra[1])
    conf.write_text(conf.read_text() + f'\n[ssh]\nhost_keys = ["{sshd.d / "host.pub"}"]\n\n[serve]\nports = [{sshd.port}]\n')
    try:
        start_all([ana, ben])
        join(ana, ben, "lab")
        sshd.start()
        wait_until(lambda: ana.call("ssh.known_hosts", peer="Ben")["lines"], 10, "Ben's record with its host key")  # type: ignore[index]
        (tmp_path / "known_hosts").write_text("")
        r = subprocess.run([sys.executable, "-m", "omerta_clients.ssh.main", *sshd.ssh_opts(), "-o",
                            f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "-o", "GlobalKnownHostsFile=/dev/null",
                            f"{USER}@Ben", "echo", "reached"],
                           env={**CLIENT_ENV, "OMERTA_SOCKET": str(ana.socket)}, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout == "reached\n", r
        assert node_id(b"b" * 32) in ana.call("ssh.known_hosts", peer="Ben")["lines"][0]  # type: ignore[index]
    finally:
        sshd.stop()
        ana.close()
        ben.close()
