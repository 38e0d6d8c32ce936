"""A real sshd for the ssh tests (tests/clients, tests/netns) and bench/streams.py.

``Sshd(d)`` makes ``d`` (0700) with a host key ``d/host`` and a client key ``d/client``, the one key it
authorizes; ``start()`` (again: a restart, e.g. with another host key) runs ``sshd -D`` on 127.0.0.1 (or the
``listen`` addresses) and a free port (or ``port``), with key authentication only and SFTP, and returns once
it listens (its log says so, which works in any network namespace); ``stop`` belongs in the caller's
``finally``. ``start(popen=...)`` starts it another way, e.g. ``functools.partial(lab.run, host)`` inside a
netns lab host (kept for restarts). ``ssh_opts()`` are ssh's options for it: no user config, the client
key, batch mode, the port. ``omerta_ssh_script`` writes omerta-ssh as a command for ``scp -S``. ``MISSING``
is the skip reason when sshd, ssh or ssh-keygen is not installed, else None. ``USER`` is the user to log in as:
this process's (an sshd that is not root lets in only its own user). Not root, ``ssh_opts()`` first logs in once
directly and skips the test when sshd refuses this account (it refuses ``nobody``: "account is locked").
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from clients.ctlharness import free_port, wait_until

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
MISSING = None if SSHD and shutil.which("ssh") and shutil.which("ssh-keygen") else \
    "sshd or ssh missing: apt-get install -y openssh-server openssh-client"
USER = pwd.getpwuid(os.geteuid()).pw_name
_refused: dict[str, str | None] = {}  # USER -> sshd's refusal, once probed


def keygen(d: Path, *names: str) -> None:
    """An Ed25519 key pair ``d/NAME`` and ``d/NAME.pub`` for each name (commented with the name)."""
    for name in names:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(d / name)], check=True)


class Sshd:
    def __init__(self, d: Path, listen: tuple[str, ...] = ("127.0.0.1",), port: int | None = None) -> None:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        keygen(d, "host", "client")
        (d / "authorized_keys").write_text((d / "client.pub").read_text())
        os.chmod(d / "authorized_keys", 0o600)
        self.d, self.listen, self.port = d, listen, port or free_port()
        self.proc: subprocess.Popen | None = None
        self.popen: Callable[..., subprocess.Popen] = subprocess.Popen

    def start(self, host_key: Path | None = None, popen: Callable[..., subprocess.Popen] | None = None) -> None:
        self.stop()
        self.popen = popen or self.popen
        cfg = self.d / "sshd_config"
        cfg.write_text("".join(f"ListenAddress {f'[{a}]' if ':' in a else a}\n" for a in self.listen)
                       + f"Port {self.port}\nHostKey {host_key or self.d / 'host'}\n"
                       f"AuthorizedKeysFile {self.d / 'authorized_keys'}\nPidFile none\nUsePAM no\nStrictModes no\n"
                       "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                       "Subsystem sftp internal-sftp\n")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.log = open(self.d / "sshd.log", "ab")
        since = self.log.tell()
        self.proc = self.popen([str(SSHD), "-D", "-e", "-f", str(cfg)], stdout=self.log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"sshd exited: {self.log_text()}"
            said = (self.d / "sshd.log").read_bytes()[since:].decode(errors="replace")
            return all(f"Server listening on {a} port {self.port}." in said for a in self.listen)

        wait_until(listening, 10, "sshd to listen")

    def _skip_unless_user_may_log_in(self) -> None:
        if USER not in _refused:
            addr = self.listen[0]
            r = subprocess.run(["ssh", *self._opts("-p"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                f"{USER}@{addr}", "true"], capture_output=True, text=True, timeout=30)
            said = [line for line in self.log_text().splitlines() if f"User {USER} not allowed" in line]
            assert r.returncode == 0 or said, f"ssh {USER}@{addr} true failed: {r.stderr}\n{self.log_text()}"
            _refused[USER] = said[0] if said else None
        if _refused[USER] is not None:
            import pytest

            self.stop()
            pytest.skip(f"sshd will not let {USER} log in ({_refused[USER]}): run as root or as an ordinary user")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.log.close()
            self.proc = None

    def log_text(self) -> str:
        return (self.d / "sshd.log").read_text(errors="replace")

    def ssh_opts(self, port_flag: str = "-p") -> list[str]:
        """(``port_flag="-P"`` for scp.) Not root, the test is skipped if sshd will not let ``USER`` log in."""
        if os.geteuid() != 0 and self.popen is subprocess.Popen and self.proc is not None:
            self._skip_unless_user_may_log_in()
        return self._opts(port_flag)

    def _opts(self, port_flag: str) -> list[str]:
        return ["-F", "/dev/null", "-i", str(self.d / "client"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                port_flag, str(self.port)]


def omerta_ssh_script(d: Path) -> Path:
    """``d/omerta-ssh``: omerta-ssh as a command of its own, for ``scp -S`` (run by this interpreter; the clients
    come from the caller's PYTHONPATH)."""
    script = d / "omerta-ssh"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m omerta_clients.ssh.main \"$@\"\n")
    os.chmod(script, 0o755)
    return script
