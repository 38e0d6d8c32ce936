"""Regression (issue 10, fault 6): names did not show.

Each node's `[node] name` travels in its signed record, but `omertactl peers` showed short ids and
`omertactl peer bravo` said "no peer is named 'bravo'". Now the gossiped name names a peer everywhere (peer
lists, details, ping and send targets, events), a local `[names]` entry overrides it, two peers with one
name are both shown with an id suffix, and the bare name of two peers is refused listing the candidates.
Real daemons on loopback (no `[names]` configured at first), driven through omertactl.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from clients.ctlharness import ctl, start_all, wait_until
from meshd.dbus_harness import PrivateBus, have_dbus_daemon
from meshd.harness import DaemonProc


def named(base: Path, dirname: str, name: str) -> DaemonProc:
    d = DaemonProc(base, dirname)
    conf = d.dir / "meshd.toml"
    conf.write_text(f'[node]\nname = "{name}"\n')
    d.extra = ["--config", str(conf)]
    return d


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DaemonProc]]:
    base = tmp_path_factory.mktemp("names")
    bus = PrivateBus(base, "root") if have_dbus_daemon() else None
    ds = {"alpha": named(base, "alpha", "alpha"), "bravo1": named(base, "bravo1", "bravo"),
          "bravo2": named(base, "bravo2", "bravo"), "charlie": named(base, "charlie", "charlie")}
    if bus is not None:  # alpha also offers D-Bus: names are the same on both faces
        ds["alpha"].extra += ["--dbus-address", bus.address]
        ds["alpha"].bus = bus  # type: ignore[attr-defined]
    try:
        start_all(list(ds.values()))
        net = ds["alpha"].call("network.create", name="home")
        for k in ("bravo1", "bravo2", "charlie"):
            assert ds[k].call("network.join", invite=net["invite"], wait=10)["connected"]  # type: ignore[index]

        def named_peers() -> int:
            peers = ds["alpha"].call("peers.list")["peers"]  # type: ignore[index]
            return sum(1 for p in peers if p["connected"] and p["name"] != p["short_id"])

        wait_until(lambda: named_peers() == 3, timeout=20, what="alpha to know its three peers by name")
        yield ds
    finally:
        for d in ds.values():
            d.close()
        if bus is not None:
            bus.close()


def ids(mesh: dict[str, DaemonProc]) -> dict[str, str]:
    return {k: d.call("status.get")["node_id"] for k, d in mesh.items()}  # type: ignore[index]


def test_gossiped_names_are_shown_and_duplicates_get_an_id_suffix(mesh) -> None:
    i = ids(mesh)
    sock = mesh["alpha"].socket
    shown = {p["node_id"]: p["name"] for p in ctl(sock, "--json", "peers").json()["peers"]}
    assert shown == {i["charlie"]: "charlie", i["bravo1"]: f"bravo#{i['bravo1'][:8]}", i["bravo2"]: f"bravo#{i['bravo2'][:8]}"}
    table = ctl(sock, "peers").out
    assert "charlie" in table and f"bravo#{i['bravo1'][:8]}" in table and f"bravo#{i['bravo2'][:8]}" in table
    # the other side names alpha by its gossiped name too, in messages received and in events' snapshot
    assert {p["name"] for p in ctl(mesh["charlie"].socket, "--json", "peers").json()["peers"]} >= {"alpha"}


def test_a_unique_gossiped_name_is_a_target_for_every_command(mesh) -> None:
    i = ids(mesh)
    sock = mesh["alpha"].socket
    r = ctl(sock, "peer", "charlie", "--json")
    assert r.rc == 0 and r.json()["node_id"] == i["charlie"] and r.json()["name"] == "charlie", r.err
    p = ctl(sock, "ping", "charlie", "-c", "1")
    assert p.rc == 0 and "pong from charlie" in p.out, p
    mesh["charlie"].call("channel.receive", channel="chat")  # the daemon buffers a channel from its first read
    s = ctl(sock, "send", "charlie", "chat", "hi")
    assert s.rc == 0, s.err
    got = mesh["charlie"].call("channel.receive", channel="chat", timeout=5)["messages"]  # type: ignore[index]
    assert [(m["peer"], m["data"]) for m in got] == [("alpha", "hi")]  # the sender, by its gossiped name


def test_an_ambiguous_name_is_refused_with_the_candidates(mesh) -> None:
    i = ids(mesh)
    sock = mesh["alpha"].socket
    for cmd in (["peer", "bravo"], ["ping", "bravo"], ["send", "bravo", "chat", "x"]):
        r = ctl(sock, *cmd)
        assert r.rc == 5 and r.out == "", (cmd, r)
        assert "ambiguous" in r.err and i["bravo1"][:12] in r.err and i["bravo2"][:12] in r.err and "fix:" in r.err, r.err
    for k in ("bravo1", "bravo2"):  # the suffixed name as shown is a target
        r = ctl(sock, "peer", f"bravo#{i[k][:8]}", "--json")
        assert r.rc == 0 and r.json()["node_id"] == i[k], r.err


def test_a_local_name_overrides_the_gossiped_one(mesh, tmp_path) -> None:
    i = ids(mesh)
    a = mesh["alpha"]
    conf = a.dir / "meshd.toml"
    conf.write_text(f'[node]\nname = "alpha"\n\n[names]\nboss = "{i["bravo1"]}"\n')
    try:
        assert ctl(a.socket, "reload").rc == 0
        shown = {p["node_id"]: p["name"] for p in ctl(a.socket, "--json", "peers").json()["peers"]}
        assert shown[i["bravo1"]] == "boss" and shown[i["bravo2"]] == "bravo"  # no longer two bravos
        assert ctl(a.socket, "peer", "bravo", "--json").json()["node_id"] == i["bravo2"]
        assert ctl(a.socket, "peer", "boss", "--json").json()["node_id"] == i["bravo1"]
    finally:
        conf.write_text('[node]\nname = "alpha"\n')
        ctl(a.socket, "reload")


@pytest.mark.skipif(not have_dbus_daemon(), reason="dbus-daemon is not installed (apt-get install dbus)")
def test_dbus_names_peers_the_same_way(mesh) -> None:
    import asyncio

    from dbus_fast import DBusError
    from dbus_fast.aio import MessageBus

    from omerta_mesh.meshd.dbus_codec import unwrap
    from omerta_mesh.meshd.registry import DBUS_IFACE, DBUS_NAME, DBUS_PATH

    i = ids(mesh)
    over_rpc = {p["node_id"]: p["name"] for p in mesh["alpha"].call("peers.list")["peers"]}  # type: ignore[index]

    async def go() -> None:
        b = await MessageBus(bus_address=mesh["alpha"].bus.address).connect()
        try:
            obj = b.get_proxy_object(DBUS_NAME, DBUS_PATH, await b.introspect(DBUS_NAME, DBUS_PATH))
            iface = obj.get_interface(DBUS_IFACE)
            peers = unwrap(await iface.call_peers_list(""))["peers"]
            assert {p["node_id"]: p["name"] for p in peers} == over_rpc
            assert unwrap(await iface.call_peers_get("charlie", ""))["node_id"] == i["charlie"]
            with pytest.raises(DBusError) as ei:
                await iface.call_peers_get("bravo", "")
            assert ei.value.type.endswith("PeerAmbiguous") and i["bravo1"][:12] in ei.value.text
        finally:
            b.disconnect()

    asyncio.run(go())
