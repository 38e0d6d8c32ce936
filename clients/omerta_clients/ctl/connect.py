"""omertactl connect PEER PORT: a mesh stream to a port a peer exposes, spliced with stdin/stdout (a ProxyCommand).

The daemon's stream socket (next to its JSON-RPC socket: ``meshd.sock`` -> ``meshd.streams.sock``) takes one
request, frames as JSON-RPC's (4-byte big-endian length, JSON), and answers with the stream as a file
descriptor (SCM_RIGHTS), or an error with its reason and fix: a Unix socket spliced with a mesh stream, or, when
the virtual network reaches the peer, a kernel TCP socket through the peer's stream gate (``--via`` chooses). The
bytes then flow between that descriptor and stdin/stdout, never through JSON-RPC. EOF on stdin half-closes the
stream; the command ends when the peer has closed its side and stdin is done (or the stream is gone).
``--fdpass`` hands the descriptor on to ssh instead (``ProxyUseFdpass``: omerta-ssh does this) and exits.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import select
import socket
import threading
from pathlib import Path
from typing import Any

from ..errors import ClientError, RpcError
from ..rpc import HEADER, connect_error, encode_frame, frame_length
from .common import PEER_HELP, Ctx, add_command

EXAMPLES = """\
The peer must expose the port (`omertactl serve add PORT` on it); the daemon there connects the stream to
its 127.0.0.1:PORT (or ::1). Opening a stream needs root or the omerta group, like every change. With TUN up
at both ends the stream is kernel TCP to the peer's mesh IP (its stream gate, TCP 51888), else a mesh stream.

examples:
  omertactl connect bravo 22                       talk to bravo's sshd on stdin/stdout
  ssh -o ProxyCommand='omertactl connect %h %p' bravo
  echo hello | omertactl connect bravo 7           (half-closes after the input, prints the answer)
  omertactl connect --via stream bravo 22          the mesh stream even when kernel TCP on the mesh would do
"""
CHUNK = 65536
VIAS = ("auto", "stream", "tcp")


def stream_socket(rpc_socket: str) -> str:
    """The stream socket next to the daemon's JSON-RPC socket (the daemon's rule: meshd/streams.py)."""
    p = Path(rpc_socket)
    return str(p.with_name(p.stem + ".streams" + p.suffix))


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "connect", help="a stream to a peer's exposed port on stdin/stdout (ssh ProxyCommand)",
                    description="Open a mesh stream to PORT on PEER and splice it with stdin/stdout.", examples=EXAMPLES)
    p.add_argument("peer", metavar="PEER", help=PEER_HELP)
    p.add_argument("port", metavar="PORT", type=int, help="the TCP port on the peer (it must be exposed there)")
    p.add_argument("--network", metavar="NETWORK", help="the network, when the peer is in several")
    p.add_argument("--via", choices=VIAS, default="auto",
                   help="tcp: kernel TCP to the peer's mesh IP (needs TUN at both ends); stream: the mesh stream (works "
                        "everywhere); auto (default): tcp when the virtual network reaches the peer, else stream")
    p.add_argument("--fdpass", action="store_true",
                   help="pass the connection to ssh instead of copying it (ssh -o ProxyUseFdpass=yes; stdout must be the "
                        "socket ssh gives its ProxyCommand)")
    p.set_defaults(func=run)


def open_stream(sock_path: str, peer: str, port: int, network: str | None = None, timeout: float = 30.0,
                via: str = "auto") -> tuple[socket.socket, dict]:
    """Ask the daemon for a stream: (the connected socket, the result: ``via`` says which path it took); RpcError
    with the daemon's reason."""
    path = stream_socket(sock_path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise connect_error(path, e) from None
    try:
        try:
            s.sendall(encode_frame({"peer": peer, "port": port, "network": network, "via": via}))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered (a refusal) and closed before reading: its answer is still there to read
        buf, fds = b"", array.array("i")
        while len(buf) < HEADER or len(buf) < HEADER + frame_length(buf):
            data, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
            if not data:
                raise ClientError(f"the daemon closed {path} without an answer", "see the daemon's log (journalctl -u omerta-meshd)")
            buf += data
        doc: Any = json.loads(buf[HEADER:HEADER + frame_length(buf)])
    except socket.timeout:
        raise ClientError(f"no answer on {path} within {timeout:g} s", "check the peer is running and reachable") from None
    finally:
        s.close()
    if "error" in doc:
        for fd in fds:
            os.close(fd)
        raise RpcError(doc["error"])
    if not fds:
        raise ClientError("the daemon answered without a stream", "check the daemon and omertactl versions match")
    for fd in fds[1:]:
        os.close(fd)
    return socket.socket(fileno=fds[0]), doc["result"]


def splice(sock: socket.socket, infd: int, outfd: int) -> None:
    """stdin -> stream (EOF: half-close) and stream -> stdout, until the stream ended and stdin is done or the
    stream is gone both ways."""
    sock.setblocking(True)

    def up() -> None:
        try:
            while data := os.read(infd, CHUNK):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=up, daemon=True)
    t.start()
    try:
        while data := sock.recv(CHUNK):
            view = memoryview(data)
            while view:
                view = view[os.write(outfd, view):]
    except OSError:
        pass
    try:
        os.close(outfd)  # the reader sees EOF (ssh: the connection ended)
    except OSError:
        pass
    poller = select.poll()
    poller.register(sock.fileno(), 0)  # POLLHUP is always reported: the daemon closed its end
    while t.is_alive():
        if any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(200)):
            break
    sock.close()


def pass_fd(sock: socket.socket, outfd: int) -> None:
    """Hand the connection to the process at the other end of ``outfd`` (a Unix socket: ssh's ProxyUseFdpass)."""
    try:
        out = socket.socket(fileno=os.dup(outfd))
    except OSError as e:
        raise ClientError(f"--fdpass needs stdout to be a Unix socket ({e.strerror or e})",
                          "use it only as ssh's ProxyCommand with -o ProxyUseFdpass=yes; drop --fdpass otherwise") from None
    try:
        if out.family != socket.AF_UNIX:
            raise ClientError("--fdpass needs stdout to be a Unix socket", "use it only as ssh's ProxyCommand with "
                              "-o ProxyUseFdpass=yes; drop --fdpass otherwise")
        out.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))])
    finally:
        out.close()
        sock.close()


def run(ctx: Ctx, args: argparse.Namespace) -> int:
    sock, _result = open_stream(ctx.socket, args.peer, args.port, args.network, max(ctx.timeout, 20.0), args.via)
    if args.fdpass:
        pass_fd(sock, 1)
    else:
        splice(sock, 0, 1)
    return 0
