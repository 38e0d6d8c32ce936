"""The UDP ASSOCIATE relay's own rules (meshd/socks_udp.py) on real loopback sockets, before any destination is
looked up: the idle timeout ends an association and closes its sockets, a client holds at most ``per_client``,
and only the client's address and port are heard (the first port heard when the request named none).
Relaying through a TUN to a peer, and the gateway around it, are in tests/netns/test_socks_udp.py."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any, Awaitable, Callable

import pytest

from omerta_mesh.meshd.socks_udp import Association, Refused, UdpLimits, UdpRelay
from omerta_mesh.meshd.socks_wire import Fault

BAD = b"\0\x01\0\x01\x7f\0\0\x01\0\x50"  # RSV not 0: counted before any lookup (the relay has no daemon here)


async def with_control(body: Callable[[asyncio.StreamReader, asyncio.StreamWriter, socket.socket], Awaitable[Any]]) -> Any:
    """A real TCP connection on loopback: body gets the server's end and the client's socket."""
    got: asyncio.Queue = asyncio.Queue()
    server = await asyncio.start_server(lambda r, w: got.put_nowait((r, w)), "127.0.0.1", 0)
    client = socket.create_connection(server.sockets[0].getsockname()[:2])
    try:
        reader, writer = await asyncio.wait_for(got.get(), 5)
        try:
            return await body(reader, writer, client)
        finally:
            writer.close()
    finally:
        client.close()
        server.close()


def relay(**limits: Any) -> UdpRelay:
    return UdpRelay(None, Counter(), UdpLimits(**limits))  # type: ignore[arg-type]


async def heard(r: UdpRelay, key: str, n: int) -> None:
    while r.stats[key] < n:
        await asyncio.sleep(0.01)


def test_an_idle_association_ends_and_closes_its_sockets() -> None:
    r = relay(idle=0.3)

    async def body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: socket.socket) -> None:
        a = await r.open("me", writer, 0)
        assert a.bound is not None and str(a.bound[0]) == "127.0.0.1" and r.active == {a}
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.sendto(BAD, (str(a.bound[0]), a.bound[1]))  # (a dropped datagram does not keep it alive)
        await asyncio.wait_for(heard(r, "udp_bad_header", 1), 5)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.wait_for(a.run(reader), 5)
        assert loop.time() - t0 < 1.0 and r.stats["udp_idle"] == 1 and not r.active and not r.open_by
        assert a.front is not None and a.front.is_closing() and all(t.is_closing() for t in a.back.values())
        u.close()

    asyncio.run(with_control(body))


def test_a_client_holds_at_most_per_client_and_closing_the_control_ends_one() -> None:
    r = relay(per_client=2)

    async def body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: socket.socket) -> None:
        a, b = await r.open("ann", writer, 0), await r.open("ann", writer, 0)
        with pytest.raises(Refused) as err:
            await r.open("ann", writer, 0)
        assert err.value.fault is Fault.UDP_TOO_MANY and "2 UDP associations" in str(err.value)
        c = await r.open("bob", writer, 0)  # another client is not held back
        running = asyncio.ensure_future(a.run(reader))
        client.close()  # the control connection ends: so does the association
        await asyncio.wait_for(running, 5)
        assert r.active == {b, c} and r.open_by == Counter({"ann": 1, "bob": 1})
        for x in (b, c):
            x.close()
        assert not r.active and not r.open_by

    asyncio.run(with_control(body))


def test_only_the_clients_port_is_heard() -> None:
    r = relay()

    async def body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: socket.socket) -> None:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        named: Association = await r.open("me", writer, socks[0].getsockname()[1])
        assert named.bound is not None
        to = (str(named.bound[0]), named.bound[1])
        socks[1].sendto(BAD, to)  # not the port it named
        await asyncio.wait_for(heard(r, "udp_stranger", 1), 5)
        socks[0].sendto(BAD, to)
        await asyncio.wait_for(heard(r, "udp_bad_header", 1), 5)
        free = await r.open("me", writer, 0)  # no port named: the first one heard is the client's
        assert free.bound is not None
        to = (str(free.bound[0]), free.bound[1])
        socks[2].sendto(BAD, to)
        await asyncio.wait_for(heard(r, "udp_bad_header", 2), 5)
        socks[1].sendto(BAD, to)
        await asyncio.wait_for(heard(r, "udp_stranger", 2), 5)
        assert free.client_port == socks[2].getsockname()[1] and r.stats["udp_bad_header"] == 2
        for x in (named, free):
            x.close()
        for s in socks:
            s.close()

    asyncio.run(with_control(body))
