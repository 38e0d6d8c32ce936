"""omerta-ssh across the netns NAT lab (issue 13, the first must-show): real omerta-meshd daemons, a real sshd in
the far host's namespace, real ssh and scp, for a direct pair, a punched pair (two port-restricted NATs) and a
relayed pair (port-restricted and random symmetric NAT: punching cannot work, relay R carries them).

The far daemon publishes the sshd's host key in its signed peer record (``[ssh] host_keys``) and exposes port 22
to mesh streams (``[serve] ports``); from the near host's namespace, with an empty known_hosts:

* ``omerta-ssh root@B`` runs a command there (its output has B's own address) with strict host key checking
  (omerta-ssh's KnownHostsCommand answers the key B signed), and known_hosts stays empty;
* the pair's path is what its kind says (``peers.list``: direct, punched, relay via R), before and after the copy;
* a stream to a port B does not expose, and to one it exposes where nothing listens, is refused with the reason,
  across that path;
* ``scp -S omerta-ssh`` of 100 MB of random data arrives with the same SHA-256 (``sha256sum`` run on B through
  omerta-ssh); the time is printed; both ends have TUN, so the copy and the checksum went as kernel TCP on the
  virtual network through B's stream gate (meshd/meshtcp.py: A's ``streams.tcp_opened``, B's
  ``streams.gate_bytes_in``; no fall back to the mesh stream); the refusals are checked both ways (``--via stream``);
* B's sshd restarted with a freshly generated host key (B's record still holds the old one): ssh refuses, loudly
  (exit status 255, "REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed").

That ``nobody`` cannot open streams, and the refusal on loopback, are in tests/clients/test_connect.py.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

from meshd.rpcclient import RpcError
from netns.lab import Lab
from netns.test_mesh_matrix import Meshd, say, wait_for
from netns.test_vnet import pair
from sshd import MISSING, Sshd, keygen, omerta_ssh_script

pytestmark = pytest.mark.root
SIZE = 100 << 20
WANT = {"direct": "direct", "punched": "punched", "relayed": "relay via R"}


def paths(a: Meshd, b: Meshd) -> tuple[str | None, str | None]:
    return a.path_to(b), b.path_to(a)


def host_keys(a: Meshd, peer: str) -> list[str]:
    """The known_hosts lines ``a`` has for ``peer`` (none while gossip has not brought its record)."""
    try:
        return a.call("ssh.known_hosts", peer=peer)["lines"]
    except RpcError:
        return []


def gate_counters(a: Meshd, b: Meshd) -> tuple[int, int, int]:
    """(streams A opened as kernel TCP, bytes B's stream gate passed in, A's falls back to the mesh stream)."""
    ca, cb = a.call("status.get")["counters"], b.call("status.get")["counters"]
    return ca.get("streams.tcp_opened", 0), cb.get("streams.gate_bytes_in", 0), ca.get("streams.tcp_fallback", 0)


@pytest.mark.parametrize("kind", ["direct", "punched", "relayed"])
def test_omerta_ssh_runs_a_command_copies_100_mb_and_refuses_a_swapped_host_key(lab: Lab, tmp_path: Path, capsys,
                                                                                  kind: str) -> None:
    if MISSING is not None:
        pytest.skip(MISSING)
    t0 = time.monotonic()
    sshd = Sshd(tmp_path / "ssh", port=22)
    d = sshd.d
    far = f'[ssh]\nhost_keys = ["{d / "host.pub"}"]\n\n[serve]\nports = [22, 2223]\n'  # (nothing listens on 2223)
    a, b = pair(lab, tmp_path, kind == "relayed", kind == "punched", far)
    sshd.start(popen=functools.partial(lab.run, b.host))
    known_hosts = d / "known_hosts"
    known_hosts.write_text("")
    env = {**os.environ, "OMERTA_SOCKET": str(a.socket)}
    opts = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]

    def omerta_ssh(*command: str, timeout: float = 60):
        argv = [sys.executable, "-m", "omerta_clients.ssh.main", *sshd.ssh_opts(), *opts, "root@B", *command]
        return lab.exec(a.host, argv, env=env, timeout=timeout)

    try:
        # B's record, with its host key, has reached A
        assert wait_for(lambda: host_keys(a, "B"), 20), a.log()
        r = omerta_ssh("echo over-omerta-ssh; hostname -I")
        assert r.returncode == 0, (r.stderr, sshd.log_text()[-2000:], a.log(), b.log())
        assert r.stdout.startswith("over-omerta-ssh\n") and b.host.ip in r.stdout.split(), r.stdout  # it ran on B
        assert known_hosts.read_text() == ""
        assert wait_for(lambda: paths(a, b) == (WANT[kind], WANT[kind]), 30), paths(a, b)

        for port, why in ((2222, "port 2222 not exposed on B"), (2223, "port 2223 refused the connection on B")):
            for via in ("auto", "stream"):  # (auto: B's stream gate answers; stream: the mesh stream's reset)
                r = lab.exec(a.host, [sys.executable, "-m", "omerta_clients.ctl.main", "connect", "--via", via, "B", str(port)],
                             env=env, input="x")
                assert r.returncode != 0 and why in r.stderr, (via, r)
        before = gate_counters(a, b)

        data = os.urandom(SIZE)
        digest = hashlib.sha256(data).hexdigest()
        (d / "payload").write_bytes(data)
        del data
        copied = d / "copied"
        t_scp = time.monotonic()
        r = lab.exec(a.host, ["scp", "-q", *sshd.ssh_opts("-P"), *opts, "-S", omerta_ssh_script(d), d / "payload",
                              f"root@B:{copied}"], env=env, timeout=600)
        took = time.monotonic() - t_scp
        assert r.returncode == 0, (r.stderr, sshd.log_text()[-2000:])
        r = omerta_ssh("sha256sum", str(copied))
        assert r.returncode == 0 and r.stdout.split()[0] == digest, (r, digest)
        assert paths(a, b) == (WANT[kind], WANT[kind])  # the copy went the pair's way all along
        after = gate_counters(a, b)  # ... as kernel TCP on the virtual network, through B's stream gate
        assert after[0] >= before[0] + 2 and after[1] >= before[1] + SIZE and after[2] == before[2], (before, after)
        assert known_hosts.read_text() == ""

        # B's sshd gets a key B never signed (the record still holds the old one): refused, loudly
        keygen(d, "fresh_host")
        sshd.start(d / "fresh_host")
        r = omerta_ssh("echo must-not-run")
        assert r.returncode == 255 and "must-not-run" not in r.stdout, r
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr and "Host key verification failed" in r.stderr, r.stderr
        assert known_hosts.read_text() == ""
    finally:
        sshd.stop()
    say(capsys, f"\n{kind} ({WANT[kind]}): scp of {SIZE >> 20} MB through omerta-ssh in {took:.1f} s "
                f"({SIZE / took / 1e6:.1f} MB/s), SHA-256 equal; a swapped host key refused; {time.monotonic() - t0:.1f} s in all")
