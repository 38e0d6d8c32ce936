"""The driver never sends a datagram to a mesh IP (a path through the tunnel would loop), and a node never
advertises the addresses of its virtual network as endpoints."""

from __future__ import annotations

import asyncio
import ipaddress

from omerta_mesh.node import MeshNode


def test_datagrams_to_mesh_prefixes_are_refused_and_counted() -> None:
    async def go() -> tuple[int, list]:
        async with MeshNode(host="127.0.0.1", watch_addresses=False) as node:
            sent: list = []
            assert node.driver is not None
            node.driver.udp.sendto = lambda data, dst, local=None: sent.append(dst)  # type: ignore[method-assign]
            node.set_mesh_prefixes([ipaddress.ip_network("100.70.0.0/16"), ipaddress.ip_network("fd12:3456:789a::/48")])
            for dst, data in ((("100.70.3.4", 1), b"x"), (("fd12:3456:789a::5", 1), b"x"), (("100.71.3.4", 1), b"y"),
                              (("127.0.0.1", 9), b"y")):
                node.core.tx.raw(dst, None, data)
            node.driver.flush()
            return node.driver.blocked_sends, sent

    blocked, sent = asyncio.run(go())
    assert blocked == 2 and sent == [("100.71.3.4", 1), ("127.0.0.1", 9)]


def test_mesh_ips_are_not_advertised(monkeypatch) -> None:
    from omerta_mesh import node as node_mod

    async def fake_local(strict: bool = False) -> list[str]:
        return ["192.0.2.7", "100.70.9.9", "fd12:3456:789a::9", "2001:db8::7"]

    monkeypatch.setattr(node_mod, "local_addresses", fake_local)

    async def go() -> list:
        async with MeshNode(host="0.0.0.0", ipv6=True, watch_addresses=False) as node:
            node.set_mesh_prefixes([ipaddress.ip_network("100.70.0.0/16"), ipaddress.ip_network("fd12:3456:789a::/48")])
            eps, _ips = await node._read_addresses()
            return [h for h, _ in eps]

    hosts = asyncio.run(go())
    assert "192.0.2.7" in hosts and "2001:db8::7" in hosts
    assert "100.70.9.9" not in hosts and "fd12:3456:789a::9" not in hosts
