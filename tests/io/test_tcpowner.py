"""io/tcpowner.py against real loopback connections: the kernel's sock_diag names the client socket's owner.

The test's own uid comes back for IPv4, IPv6 and an IPv6 socket that dialled an IPv4 listener through
::ffff:127.0.0.1; a socket owned by `nobody` (made by a real process run with setpriv) gives nobody's uid, not that of
our own accepted end; a closed client
(whose leftover the kernel reports as uid 0) and a connection that does not exist are OwnerUnknown, never a uid.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
from typing import Iterator

import pytest

from omerta_mesh.io.tcpowner import OwnerUnknown, owner_uid


@contextlib.contextmanager
def listener(family: int, host: str) -> Iterator[socket.socket]:
    with socket.socket(family, socket.SOCK_STREAM) as srv:
        srv.bind((host, 0))
        srv.listen()
        yield srv


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize(("family", "host", "dial_family", "dial"), [
    (socket.AF_INET, "127.0.0.1", socket.AF_INET, "127.0.0.1"),
    (socket.AF_INET6, "::1", socket.AF_INET6, "::1"),
    (socket.AF_INET, "127.0.0.1", socket.AF_INET6, "::ffff:127.0.0.1"),  # the client's socket is AF_INET6
])
def test_the_clients_owner_is_this_process_user(family: int, host: str, dial_family: int, dial: str) -> None:
    if ":" in host and not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback address here")
    with listener(family, host) as srv, socket.socket(dial_family, socket.SOCK_STREAM) as client:
        client.connect((dial, srv.getsockname()[1]))
        conn, peer = srv.accept()
        with conn:
            assert owner_uid(peer, conn.getsockname()) == os.geteuid()


def test_a_closed_client_has_no_owner() -> None:
    """The kernel reports a closed socket's leftover (FIN_WAIT2, TIME_WAIT) as uid 0: that must not read as root."""
    with listener(socket.AF_INET, "127.0.0.1") as srv:
        client = socket.create_connection(srv.getsockname())
        conn, peer = srv.accept()
        with conn:
            assert owner_uid(peer, conn.getsockname()) == os.geteuid()
            client.close()
            with pytest.raises(OwnerUnknown, match="already closed, so no process owns it"):
                owner_uid(peer, conn.getsockname())


def test_a_connection_that_does_not_exist_has_no_owner() -> None:
    with listener(socket.AF_INET, "127.0.0.1") as srv, pytest.raises(OwnerUnknown, match="another host or network namespace"):
        owner_uid(("127.0.0.1", 1), srv.getsockname())


@pytest.mark.root("a client socket made by a process running as nobody")
@pytest.mark.parametrize("same_port", [False, True], ids=["ephemeral-port", "client-port-equals-server-port"])
def test_a_socket_made_by_nobody_is_owned_by_nobody(same_port: bool) -> None:
    """With the client on 127.0.0.2 and the server's port number, our accepted end (root's) has the same two ports
    as the client's socket: only the addresses tell them apart."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    with listener(socket.AF_INET, "127.0.0.1") as srv:
        server_port = srv.getsockname()[1]
        code = ("import socket, sys; port = int(sys.argv[1]); "
                "s = socket.create_connection(('127.0.0.1', port), source_address=('127.0.0.2', port) if sys.argv[2] == '1' else None); "
                "print(s.getsockname()[1], flush=True); sys.stdin.read()")
        with subprocess.Popen(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                               sys.executable, "-c", code, str(server_port), str(int(same_port))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:  # (ends at stdin's EOF)
            assert child.stdout is not None
            port = int(child.stdout.readline())
            conn, peer = srv.accept()
            with conn:
                assert peer[1] == port and (port == server_port) == same_port
                assert owner_uid(peer, conn.getsockname()) == pwd.getpwnam("nobody").pw_uid
                assert owner_uid(conn.getsockname(), peer) == os.geteuid()  # the other way round: our end, root's
