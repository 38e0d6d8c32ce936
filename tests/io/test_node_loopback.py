"""MeshNode on real UDP sockets on loopback: join by invite, message integrity, requests, ping."""

from __future__ import annotations

import asyncio
import socket

import pytest

from omerta_mesh.core.errors import InviteError, UsageError
from omerta_mesh.io.udp import BindError, UdpEndpoints
from omerta_mesh.node import MeshNode, RequestFailed


def node(**kw) -> MeshNode:
    return MeshNode(host="127.0.0.1", strict_audit=True, **kw)


async def joined_pair(a: MeshNode, b: MeshNode):
    net = a.create_network("home")
    await b.join(a.invite(net.id), timeout=5)
    await a.wait_connected(b.node_id, 5)
    return net


async def test_ten_thousand_messages_both_ways_and_one_mebibyte() -> None:
    async with node() as a, node() as b:
        await joined_pair(a, b)
        qa, qb = a.subscribe("chat"), b.subscribe("chat")
        n = 10_000

        async def pump(src: MeshNode, dst: MeshNode, tag: bytes) -> None:
            for i in range(n):
                await src.send(dst.node_id, "chat", tag + b"%d" % i)

        await asyncio.gather(pump(a, b, b"a->b "), pump(b, a, b"b->a "))
        got_b = [(await asyncio.wait_for(qb.get(), 10)) for _ in range(n)]
        got_a = [(await asyncio.wait_for(qa.get(), 10)) for _ in range(n)]
        assert [m.data for m in got_b] == [b"a->b %d" % i for i in range(n)]
        assert [m.data for m in got_a] == [b"b->a %d" % i for i in range(n)]
        # authenticated: each message names the sender's node id, which the Noise handshake proved
        assert {m.peer for m in got_b} == {a.node_id} and {m.peer for m in got_a} == {b.node_id}
        big = bytes(range(256)) * 4096  # 1 MiB
        await a.send(b.node_id, "chat", big, wait=True)
        m = await asyncio.wait_for(qb.get(), 10)
        assert m.data == big
        for x in (a, b):
            assert x.mesh.counters["drop.internal_error"] == 0
            assert x.mesh.audit.violations == []
            assert x.mesh.audit.checked > n


async def test_request_response_ping_and_errors() -> None:
    async with node() as a, node() as b:
        await joined_pair(a, b)

        async def echo(peer, data: bytes) -> bytes:
            assert peer == a.node_id
            return data[::-1]

        async def broken(peer, data: bytes) -> bytes:
            raise ValueError("cannot do that")

        b.serve("echo", echo)
        b.serve("broken", broken)
        assert await a.request(b.node_id, "echo", b"hello") == b"olleh"
        with pytest.raises(RequestFailed, match="cannot do that"):
            await a.request(b.node_id, "broken", b"x")
        with pytest.raises(RequestFailed, match="no handler"):
            await a.request(b.node_id, "nobody-serves-this", b"x")
        rtt = await a.ping(b.node_id)
        assert 0 < rtt < 1.0


async def test_wrong_network_key_cannot_connect_and_bad_invite_is_refused() -> None:
    async with node() as a, node() as b, node() as outsider:
        net = a.create_network("home")
        other = outsider.create_network("elsewhere")
        # outsider knows a's node id and address but not the network key
        outsider.add_peer(other.id, a.node_id, a.endpoints)
        await asyncio.sleep(0.3)
        assert not outsider.is_connected(a.node_id)
        assert a.mesh.counters["drop.bad_mac1"] >= 1
        assert a.mesh.counters["handshake.dh_performed"] == 0
        inv = a.invite(net.id)
        broken = inv[:20] + ("a" if inv[20] != "a" else "b") + inv[21:]
        with pytest.raises(InviteError, match="mistyped"):
            await b.join(broken)


async def test_garbage_datagrams_are_counted_and_the_node_keeps_serving() -> None:
    async with node() as a, node() as b:
        await joined_pair(a, b)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for payload in (b"", b"\x00", b"\x04\x01\x00\x00" + bytes(40), b"\x01" * 188, b"\xff" * 2000, b"GET / HTTP/1.1\r\n"):
                s.sendto(payload, ("127.0.0.1", a.port))
        finally:
            s.close()
        await asyncio.sleep(0.2)
        assert a.mesh.counters.total_drops() >= 5
        assert a.mesh.counters["drop.internal_error"] == 0
        q = b.subscribe("after")
        await a.send(b.node_id, "after", b"still alive")
        assert (await asyncio.wait_for(q.get(), 5)).data == b"still alive"


async def test_port_in_use_is_a_clear_error() -> None:
    async with node() as a:
        with pytest.raises(BindError, match="already in use"):
            async with MeshNode(host="127.0.0.1", port=a.port):
                pass


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("IPv6 loopback (::1) is not configured on this machine")
    async with MeshNode(host="::1", strict_audit=True) as a, MeshNode(host="::1", strict_audit=True) as b:
        await joined_pair(a, b)
        q = b.subscribe("v6")
        await a.send(b.node_id, "v6", b"over ipv6")
        assert (await asyncio.wait_for(q.get(), 5)).data == b"over ipv6"
        assert a.endpoints[0][0] == "::1"


async def test_node_must_be_started() -> None:
    n = MeshNode(host="127.0.0.1")
    with pytest.raises(UsageError, match="not started"):
        n.create_network("x")


async def test_the_nat_probe_socket_is_never_advertised_nor_a_default_sender() -> None:
    udp = UdpEndpoints(asyncio.get_running_loop(), lambda data, src, local: None, lambda: None)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        probe = udp.bind("127.0.0.1", 0, probe=True)  # bound first: still not the default
        main = udp.bind("127.0.0.1", 0)
        assert udp.addresses == [main]
        # no local given, the probe socket's, one we do not have: main, probe, main
        for local in (None, probe, ("127.0.0.1", 1)):
            assert udp.sendto(b"x", rx.getsockname(), local)
        assert [rx.recvfrom(64)[1][1] for _ in range(3)] == [main[1], probe[1], main[1]]
        assert not udp.sendto(b"x", ("::1", 9), probe)  # no IPv6 socket: refused, not sent from IPv4
    finally:
        rx.close()
        udp.close()
