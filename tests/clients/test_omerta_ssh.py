"""omerta-ssh and host keys vouched for by the mesh identity (issue 13, item 3): real daemons, a real sshd on
loopback with its own host key, real ssh. The daemon of the sshd's node publishes the key in its signed record
(``[ssh] host_keys``) and exposes the sshd's port to mesh streams (``serve.add``); the other answers
``ssh.known_hosts``; ``omerta-ssh`` (its transport ``omertactl connect``, a mesh stream) runs a command with an
empty known_hosts and strict checking, and is refused, loudly, once sshd's host key is swapped for another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from clients.ctlharness import CLIENT_ENV, check_result, ctl, node_id, prepare, start_all, wait_until
from meshd.harness import DaemonProc, join
from sshd import MISSING, USER, Sshd, keygen, omerta_ssh_script

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
SEEDS = {"ana": b"A" * 32, "ben": b"B" * 32}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict]:
    sshd = Sshd(tmp_path / "ssh")
    d = sshd.d
    keygen(d, "other_host")
    ids = {n: node_id(s) for n, s in SEEDS.items()}
    ana, ben = (prepare(tmp_path, n, SEEDS[n], {}) for n in ("ana", "ben"))
    for dp, keys in ((ana, "[]"), (ben, f'["{d / "host.pub"}"]')):
        conf = Path(dp.extra[1])
        conf.write_text(conf.read_text().replace("[names]", f"[ssh]\nhost_keys = {keys}\n\n[names]"))
    try:
        start_all([ana, ben])
        join(ana, ben, "lab")
        sshd.start()
        ben.call("serve.add", port=sshd.port)  # ben's sshd is reachable by mesh streams (omertactl connect)
        yield {"d": d, "ana": ana, "ben": ben, "ids": ids, "sshd": sshd}
    finally:
        sshd.stop()
        for dp in (ana, ben):
            dp.close()


def known_hosts(ana: DaemonProc, peer: str) -> dict:
    return ana.call("ssh.known_hosts", peer=peer)  # type: ignore[return-value]


def test_known_hosts_answers_the_key_the_peer_signed(lab: dict) -> None:
    ana, d, ben_id = lab["ana"], lab["d"], lab["ids"]["ben"]
    wait_until(lambda: known_hosts(ana, "ben")["lines"], 10, "ben's record with its host key")
    res = check_result("ssh.known_hosts", known_hosts(ana, "ben"))
    kind, b64, _comment = (d / "host.pub").read_text().split()
    assert res == {"node_id": ben_id, "name": "ben", "lines": [f"{ben_id} {kind} {b64}"]}
    assert known_hosts(ana, ben_id[:10]) == res  # an id prefix names it too
    # ana publishes none ([ssh] host_keys = [])
    assert lab["ben"].call("ssh.known_hosts", peer="ana")["lines"] == []  # type: ignore[index]
    r = ctl(lab["ben"].socket, "ssh-known-hosts", "ana")
    assert r.rc == 0 and r.out == "" and "ana publishes no SSH host keys" in r.err, r  # said on stderr, nothing on stdout
    # omertactl ssh-known-hosts prints the lines (KnownHostsCommand), --json the result unchanged
    r = ctl(ana.socket, "ssh-known-hosts", "ben")
    assert r.rc == 0 and r.out == f"{ben_id} {kind} {b64}\n", r
    assert ctl(ana.socket, "ssh-known-hosts", "--json", ben_id).json() == res
    r = ctl(ana.socket, "ssh-known-hosts", "nobody-here")
    assert r.rc != 0 and "nobody-here" in r.err and r.out == ""


def ssh_opts(lab: dict, port_flag: str = "-p") -> list[str]:
    """The test's ssh options: no user config, its own key, an empty known_hosts, the sshd's port (no ProxyCommand:
    omerta-ssh's mesh stream is the transport); ``port_flag="-P"`` for scp."""
    return [*lab["sshd"].ssh_opts(port_flag), "-o", f"UserKnownHostsFile={lab['d'] / 'known_hosts'}",
            "-o", "GlobalKnownHostsFile=/dev/null"]


def omerta_ssh(lab: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**CLIENT_ENV, "OMERTA_SOCKET": str(lab["ana"].socket)}
    return subprocess.run([sys.executable, "-m", "omerta_clients.ssh.main", *ssh_opts(lab), *args], env=env, capture_output=True,
                          text=True, timeout=30)


def test_omerta_ssh_checks_strictly_against_the_signed_key(lab: dict) -> None:
    """An empty known_hosts and strict checking: the command runs (the key came from ben's signed record) and
    known_hosts stays empty; with sshd's host key swapped for another, ssh refuses it loudly."""
    d, ana = lab["d"], lab["ana"]
    (d / "known_hosts").write_text("")
    wait_until(lambda: known_hosts(ana, "ben")["lines"], 10, "ben's record with its host key")
    user = USER
    r = omerta_ssh(lab, f"{user}@ben", "echo", "over-omerta-ssh")
    assert r.returncode == 0 and r.stdout == "over-omerta-ssh\n", (r, lab["sshd"].log_text()[-2000:])
    assert (d / "known_hosts").read_text() == ""
    # scp -S omerta-ssh: scp passes its ssh options through, omerta-ssh finds the destination after scp's "--"
    script = omerta_ssh_script(d)
    data = os.urandom(1 << 20)
    (d / "payload").write_bytes(data)
    for mode in ([], ["-O"]):  # SFTP (scp's default) and the legacy scp protocol
        (d / "copied").unlink(missing_ok=True)
        r = subprocess.run(["scp", *mode, "-q", *ssh_opts(lab, "-P"), "-S", str(script), str(d / "payload"), f"{user}@ben:{d / 'copied'}"],
                           env={**CLIENT_ENV, "OMERTA_SOCKET": str(ana.socket)}, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and (d / "copied").read_bytes() == data, (mode, r)
    # plain ssh over the same mesh stream, without the daemon's KnownHostsCommand: refused (strict, the key is unknown)
    connect = f"{sys.executable} -m omerta_clients.ctl.main --socket {ana.socket} connect {lab['ids']['ben']} %p"
    plain = subprocess.run(["ssh", *ssh_opts(lab), "-o", "StrictHostKeyChecking=yes", "-o", f"ProxyCommand={connect}",
                            f"{user}@ben", "true"],
                           env=CLIENT_ENV, capture_output=True, text=True, timeout=30)
    assert plain.returncode == 255 and "Host key verification failed" in plain.stderr, plain
    # sshd now presents a key ben never signed: refused, loudly
    lab["sshd"].start(d / "other_host")
    r = omerta_ssh(lab, f"{user}@ben", "echo", "must-not-run")
    assert r.returncode == 255 and "must-not-run" not in r.stdout, r
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr and "Host key verification failed" in r.stderr, r.stderr
    assert (d / "known_hosts").read_text() == ""


def test_omerta_ssh_refuses_a_name_that_is_no_peer(lab: dict) -> None:
    r = omerta_ssh(lab, "root@no-such-peer", "true")
    assert r.returncode != 0 and "no-such-peer" in r.stderr, r


