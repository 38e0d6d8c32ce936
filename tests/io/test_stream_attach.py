"""StreamHub.attach on a stream that ended while its opener awaited something else (io/streams.py): refused,
the local socket aborted, nothing left waiting. Before, the splice's down task waited forever on the gone
stream's queue and the local end stayed open (the stream socket, port forwards and the SOCKS gateway all await
between ``open`` and ``attach``)."""

from __future__ import annotations

import asyncio
import socket

from omerta_mesh.node import MeshNode


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:  # (also when the server closes under it: an open socket left to the GC warns in a later test)
        writer.close()


async def test_attaching_a_stream_reset_after_it_opened_aborts_the_socket_and_leaves_no_task() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, MeshNode(host="127.0.0.1") as a, MeshNode(host="127.0.0.1") as b:
        net = a.create_network("home")
        await b.join(a.invite(net.id), timeout=5)
        await a.wait_connected(b.node_id, 5)
        b.streams.policy = lambda p: None if p == port else "not exposed"
        s = await a.streams.open(b.node_id, port, net.id, timeout=5)
        far = next(iter(b.streams.streams.values()))
        b.streams.reset(far, "gone at once")  # the far side resets before the opener attaches its socket
        for _ in range(200):
            if (s.peer.key, s.sid) not in a.streams.streams:
                break
            await asyncio.sleep(0.01)
        assert (s.peer.key, s.sid) not in a.streams.streams

        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=ours)
        assert a.streams.attach(s, reader, writer) is False
        assert s.tasks == [] and writer.transport.is_closing()
        theirs.settimeout(5)
        assert await asyncio.to_thread(theirs.recv, 10) == b""  # the local end sees the stream gone, not silence
        theirs.close()

        s2 = await a.streams.open(b.node_id, port, net.id, timeout=5)  # and a stream that lives attaches and carries
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=ours)
        assert a.streams.attach(s2, reader, writer) is True
        theirs.settimeout(5)
        theirs.sendall(b"ping")
        assert await asyncio.to_thread(theirs.recv, 10) == b"ping"
        theirs.close()
