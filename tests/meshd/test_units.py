"""Unit tests of the daemon's pieces: registry, schema decoding, errors, config, paths, EventHub,
sd_notify, log formatting, and the generated API document."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from omerta_mesh.meshd import config as config_mod
from omerta_mesh.meshd import paths as paths_mod
from omerta_mesh.meshd import schema as s
from omerta_mesh.meshd.api import DaemonAPI
from omerta_mesh.meshd.dbus_codec import args_to_params, in_args, to_vardict, unwrap
from omerta_mesh.meshd.errors import DEFAULT_FIX, ApiError, Code
from omerta_mesh.meshd.events import EventHub, SubscriptionClosed
from omerta_mesh.meshd.registry import READ, WRITE, dbus_member, methods, spec_map
from omerta_mesh.meshd.systemd import FieldsFormatter, Notifier

ROOT = Path(__file__).resolve().parents[2]
NODE = "a" * 52


def test_registry_declares_every_operation_once_with_access() -> None:
    specs = spec_map(DaemonAPI)
    assert {n for n, sp in specs.items() if sp.access is WRITE} == {
        "network.create", "network.join", "network.leave", "network.invite", "network.remove", "network.revoke_invite", "network.rekey",
        "network.accept", "network.admin", "network.own", "network.accept_owner",
        "channel.send", "channel.receive",
        "daemon.reload", "daemon.shutdown",
        "serve.add", "serve.remove", "forward.add", "forward.remove", "exit.offer", "exit.use",
        "routes.advertise", "routes.withdraw", "routes.accept", "routes.unaccept",
    }
    assert {n for n, sp in specs.items() if sp.access is READ} == {
        "status.get", "peers.list", "peers.get", "ping", "netcheck.run", "network.list", "network.invites", "network.offers",
        "events.subscribe", "events.unsubscribe",
        "ip.get",
        "serve.list", "streams.list", "forward.list",
        "ssh.known_hosts", "metrics.get", "exit.status", "dns.get", "routes.list", "rules.list",
    }
    for sp in methods(DaemonAPI):
        assert sp.doc and all(f.metadata.get("doc") for f, _ in s.request_fields(sp.request)) and sp.result.__dataclass_fields__
    assert dbus_member("peers.list") == "PeersList" and dbus_member("netcheck.run") == "NetcheckRun"


def test_decode_request() -> None:
    req = s.decode_request(s.PingRequest, {"peer": "abcdefgh", "count": 3, "interval": 1})
    assert req == s.PingRequest(peer="abcdefgh", count=3, interval=1.0)
    assert s.decode_request(s.PingRequest, ["abcdefgh", 2]).count == 2
    assert s.decode_request(s.Empty, None) == s.Empty()
    for params, needle in [
        ({"peer": "x", "timeout": float("nan")}, "'timeout' must be a number"),
        ({"peer": "x", "interval": 1000}, "between 0.01 and 60"),
        ({"peer": None}, "'peer' must be a string"),
        ({"count": 1}, "missing required parameter 'peer'"),
        (7, "params must be an object"),
    ]:
        with pytest.raises(ApiError) as ei:
            s.decode_request(s.PingRequest, params)
        assert ei.value.code is Code.INVALID_PARAMS and needle in ei.value.message


def test_error_codes_are_stable_and_each_has_a_fix() -> None:
    assert len({int(c) for c in Code}) == len(Code)
    assert all(DEFAULT_FIX[c] for c in Code)
    pinned = {"PERMISSION_DENIED": 1001, "PEER_NOT_FOUND": 1002, "FRAME_TOO_LARGE": 1008, "SUBSCRIBER_TOO_SLOW": 1010, "INTERNAL": -32603}
    assert {k: int(Code[k]) for k in pinned} == pinned
    assert ApiError(Code.PEER_NOT_FOUND, "x").dbus_name() == "org.omerta.Mesh1.Error.PeerNotFound"


def test_dbus_codec_round_trip() -> None:
    ping = spec_map(DaemonAPI)["ping"]
    assert in_args(ping) == [("peer", "s"), ("count", "x"), ("interval", "d"), ("timeout", "d"), ("network", "s")]  # no progress
    assert args_to_params(ping, ["p", 1, 1.0, 2.0, ""]) == {"peer": "p", "count": 1, "interval": 1.0, "timeout": 2.0}
    value = {"a": 1, "b": [1, "x", {"c": True}], "d": None, "e": 2.5, "f": [], "g": ["x", "y"]}
    assert unwrap(to_vardict(value)) == {"a": 1, "b": [1, "x", {"c": True}], "e": 2.5, "f": [], "g": ["x", "y"]}
    assert to_vardict(value)["g"].signature == "as" and to_vardict(value)["b"].signature == "av"  # typed where it can be
    from omerta_mesh.meshd import schema as sch
    from omerta_mesh.meshd.dbus_codec import encode_fields, out_args
    peer = sch.PeerInfo("b", "n" * 52, "n" * 12, "w", "net", None, None, 12, None, 1, 2, True)
    enc = encode_fields(sch.PeersListResult, sch.to_json(sch.PeersListResult([peer])))
    assert enc["peers"].signature == "aa{sv}" and enc["peers"].value[0]["rtt_ms"].signature == "d"  # 12 -> 12.0: the schema's type
    assert "endpoint" not in enc["peers"].value[0] and unwrap(enc)["peers"][0]["rtt_ms"] == 12.0
    assert out_args(sch.NetworkCreateResult) == [("network", "s"), ("name", "s"), ("invite", "s")]
    assert out_args(sch.PingResult) == [("result", "a{sv}")]


def test_embedded_default_config_and_refusals(tmp_path: Path) -> None:
    cfg = config_mod.load(None)
    assert cfg.node.port == 51888 and cfg.api.group == "omerta" and cfg.dbus.enabled == "auto" and cfg.node.key_grace == 7 * 86400
    assert cfg.node.owner_transition == 14 * 86400
    f = tmp_path / "meshd.toml"
    f.write_text('[node]\nport = 4000\n[names]\nalice = "%s"\n' % NODE)
    cfg2 = config_mod.load(f)
    assert cfg2.node.port == 4000 and cfg2.node.listen == "0.0.0.0" and "alice" in cfg2.name_map()
    for text, needle in [
        ("[node]\nprot = 1\n", "unknown key 'node.prot'"),
        ("[node]\nport = 'x'\n", "node.port = 'x' has the wrong type"),
        ("[nodes]\n", "unknown section [nodes]"),
        ("[log]\nlevel = 'loud'\n", "log.level"),
        ('[names]\nbob = "nope"\n', "names.bob"),
        ('[node]\nbootstrap = ["x@1.2.3.4:5"]\n', "node.bootstrap"),
        ("[node\n", "not valid TOML"),
        ("[node]\nkey_grace = 5\n", "node.key_grace = 5 is not 60 to 2592000 seconds"),
        ("[node]\nowner_transition = 1728001\n", "node.owner_transition = 1728001 is not 1 to 1728000 seconds (20 days"),
        ("[node]\nowner_transition = 0\n", "node.owner_transition = 0 is not 1 to"),
    ]:
        f.write_text(text)
        with pytest.raises(config_mod.ConfigError) as ei:
            config_mod.load(f)
        assert str(f) in str(ei.value) and needle in str(ei.value)
    with pytest.raises(config_mod.ConfigError, match="no such file"):
        config_mod.load(tmp_path / "missing.toml")
    live, restart = config_mod.diff(cfg, cfg2)
    assert live == ["names"] and restart == ["node.port"]


def test_default_config_printed_is_the_one_used() -> None:
    r = subprocess.run([sys.executable, "-m", "omerta_mesh.meshd.main", "--print-default-config"], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT / "daemon"), "PATH": "/usr/bin:/bin"}, timeout=30)
    assert r.returncode == 0 and r.stdout == config_mod.DEFAULT_TOML


def test_paths_flags_then_systemd_then_defaults(tmp_path: Path) -> None:
    p = paths_mod.resolve(None, None, None, None, env={})
    assert p.state == Path("/var/lib/omerta") and p.runtime == Path("/run/omerta")
    assert p.socket("") == Path("/run/omerta/meshd.sock")
    (tmp_path / "meshd.toml").write_text("")
    env = {"STATE_DIRECTORY": "/x/state:/y", "RUNTIME_DIRECTORY": "/x/run", "CONFIGURATION_DIRECTORY": str(tmp_path)}
    p = paths_mod.resolve(None, None, None, None, env=env)
    assert (p.state, p.runtime, p.config) == (Path("/x/state"), Path("/x/run"), tmp_path / "meshd.toml")
    p = paths_mod.resolve("/c.toml", "/s", "/r", "/k.sock", env=env)
    assert (p.config, p.state, p.runtime, p.socket("/cfg.sock")) == (Path("/c.toml"), Path("/s"), Path("/r"), Path("/k.sock"))
    assert paths_mod.resolve(None, None, "/r", None, env={}).socket("/cfg.sock") == Path("/cfg.sock")


async def test_event_hub_snapshot_seq_bounds_and_cut_off() -> None:
    hub = EventHub(queue_limit=4)
    hub.publish("a")
    sub = hub.subscribe()
    assert hub.seq == 1
    hub.publish("b", x=1)
    assert [e["seq"] for e in await sub.get()] == [2]
    for i in range(5):  # one more than the queue holds, nobody reading
        hub.publish("c", i=i)
    assert sub.closed and "too slow" in sub.closed and hub.cut_off == 1 and hub.subscribers == 0
    with pytest.raises(SubscriptionClosed):
        await sub.get()
    lossy = hub.subscribe(limit=3, drop_oldest=True)
    for i in range(10):
        hub.publish("d", i=i)
    assert [e["i"] for e in await lossy.get()] == [7, 8, 9] and lossy.dropped == 7
    hub.publish("e")
    hub.close_all("stopping")
    assert [e["type"] for e in await lossy.get()] == ["e"]  # queued events are still handed out
    with pytest.raises(SubscriptionClosed):
        await asyncio.wait_for(lossy.get(), 1)


def _receiver(tmp_path: Path, abstract: bool) -> tuple[socket.socket, str]:
    r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        r.bind("\0omerta-unit-notify")
        return r, "@omerta-unit-notify"
    r.bind(str(tmp_path / "n"))
    return r, str(tmp_path / "n")


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_utf8_datagrams(tmp_path: Path, abstract: bool) -> None:
    r, addr = _receiver(tmp_path, abstract)
    n = Notifier({"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "3000000"})
    n.ready("3 peers: 2 direct, 1 relayed")
    assert r.recv(4096).decode().split("\n")[:2] == ["READY=1", "STATUS=3 peers: 2 direct, 1 relayed"]
    n.status("peers: Zoë, 東京")  # not Latin-1: sent as UTF-8, not dropped
    assert r.recv(4096).decode() == "STATUS=peers: Zoë, 東京"
    n.status("peers: Zoë, 東京")  # unchanged: not repeated
    n.watchdog()
    assert r.recv(4096) == b"WATCHDOG=1" and n.watchdog_interval == 1.5
    n.close()
    r.close()
    assert Notifier({}).enabled is False and Notifier({}).notify("READY=1") is False
    other = Notifier({"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # the watchdog is for another process
    other.close()


def test_log_format_carries_structured_fields_and_journal_priority() -> None:
    rec = logging.LogRecord("omerta_mesh.x", logging.WARNING, __file__, 1, "peer %s gone", ("p1",), None)
    rec.PEER = "abc"
    assert FieldsFormatter(journal=True).format(rec) == "<4>omerta_mesh.x: peer p1 gone PEER=abc"
    assert FieldsFormatter(journal=False).format(rec).endswith("WARNING omerta_mesh.x: peer p1 gone PEER=abc")


def test_api_doc_is_generated_from_the_registry() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "docs/gen_api.py"), "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = (ROOT / "docs/api.md").read_text()
    for sp in methods(DaemonAPI):
        assert f"| `{sp.name}` | `{sp.dbus_name}` | {sp.access.value} |" in doc


def test_jsonrpcserver_imports_cleanly_under_warnings_as_errors() -> None:
    r = subprocess.run([sys.executable, "-W", "error", "-c", "import omerta_mesh.meshd.rpc_server, omerta_mesh.meshd.dbus_service"],
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "daemon"), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert r.returncode == 0, r.stderr


def test_core_events_become_json_events() -> None:
    from omerta_mesh.core import events as ev
    from omerta_mesh.core.ids import NetworkId, NodeId
    from omerta_mesh.meshd.events import CORE_EVENTS, core_event_json

    net, peer = NetworkId(bytes(10)), NodeId(bytes(range(32)))
    name_of = lambda n: "alice"  # noqa: E731
    assert core_event_json(ev.PeerConnected(net, peer, ("10.0.0.1", 5), True), name_of) == (
        "peer.connected", {"node_id": str(peer), "name": "alice", "network": str(net), "endpoint": "10.0.0.1:5", "initiator": True})
    assert core_event_json(ev.PongReceived(net, peer, 7, 0.0125, ("::1", 9)), name_of)[1]["rtt_ms"] == 12.5
    assert core_event_json(ev.PathChanged(net, peer, None, ("::1", 9), "direct", "first"), name_of)[1] == {
        "node_id": str(peer), "name": "alice", "network": str(net), "old": None, "new": "[::1]:9", "kind": "direct", "reason": "first"}
    assert core_event_json(ev.PeerLeft(net, peer), name_of) == ("peer.left", {"node_id": str(peer), "name": "alice", "network": str(net)})
    assert core_event_json(ev.ChannelMessage(net, peer, "chat", b"secret"), name_of) is None  # data never published
    for cls_name in CORE_EVENTS:  # every mapped core event exists and converts to plain JSON
        cls = getattr(ev, cls_name, None)
        assert cls is not None, f"CORE_EVENTS maps {cls_name}, which the core does not have"
        import dataclasses
        import json

        def value(name: str) -> object:
            addr = "old" in name or "new" in name or "endpoint" in name
            return {"network": net, "peer": peer}.get(name, ("1.2.3.4", 1) if addr else "x")

        args = {f.name: value(f.name) for f in dataclasses.fields(cls)}
        args = {k: (1.0 if k == "rtt" else 1 if k.endswith("_id") else True if k == "initiator" else v) for k, v in args.items()}
        kind, fields = core_event_json(cls(**args), name_of)
        assert kind == CORE_EVENTS[cls_name] and json.loads(json.dumps(fields)) == fields


def test_membership_events_become_json_events_naming_who_and_by_whom() -> None:
    from omerta_mesh.core import events as ev
    from omerta_mesh.core.ids import NetworkId, NodeId
    from omerta_mesh.meshd.events import CORE_EVENTS, core_event_json

    net, carol, alice = NetworkId(bytes(10)), NodeId(bytes(range(32))), NodeId(bytes(range(1, 33)))
    name_of = {carol: "carol", alice: "alice"}.__getitem__
    assert core_event_json(ev.MemberRemoved(net, carol, alice), name_of) == ("member.removed", {
        "node_id": str(carol), "name": "carol", "network": str(net), "by": str(alice), "by_name": "alice"})
    assert core_event_json(ev.MemberRemoved(net, None, alice), name_of) == ("member.removed", {  # a token or a serial
        "node_id": None, "name": None, "network": str(net), "by": str(alice), "by_name": "alice"})
    assert core_event_json(ev.InviteRedeemed(net, carol, 2), name_of) == ("invite.redeemed", {
        "node_id": str(carol), "name": "carol", "network": str(net), "uses": 2})
    assert core_event_json(ev.InviteOffered(net, carol, NetworkId(b"w" * 10), "work", "0a1b2c3d4e5f"), name_of) == (
        "invite.offered", {"node_id": str(carol), "name": "carol", "network": str(net), "invited": str(NetworkId(b"w" * 10)),
                           "invited_name": "work", "offer": "0a1b2c3d4e5f"})
    assert core_event_json(ev.EnrolmentRefused(net, alice, "used", "ask for a new one"), name_of) == (
        "member.enrolment_refused", {"node_id": str(alice), "name": "alice", "network": str(net), "reason": "used",
                                     "fix": "ask for a new one"})
    membership = {"Enrolled": "member.enrolled", "EnrolmentRefused": "member.enrolment_refused",
                  "InviteRedeemed": "invite.redeemed", "MemberRemoved": "member.removed", "NetworkRekeyed": "network.rekeyed",
                  "InviteOffered": "invite.offered", "OwnerClaimed": "network.owner_claimed", "NetworkOwned": "network.owned",
                  "CredentialRenewed": "credential.renewed", "RenewalRefused": "credential.renewal_refused"}
    assert {k: CORE_EVENTS.get(k) for k in membership} == membership


def test_a_peer_gone_from_the_directory_keeps_its_last_name() -> None:
    from omerta_mesh.core.ids import NodeId
    from omerta_mesh.meshd import names

    carol, dave, eve = (NodeId(bytes([i]) * 32) for i in (1, 2, 3))
    gone = names.Remembered(limit=1)
    before = names.build([(carol, "carol"), (dave, "dave")], {}, [carol, dave])
    gone.update(before)
    after = names.build([(dave, "dave")], {}, [dave])  # carol removed: no record, no peer
    assert after.name_of(carol) == carol.short()
    gone.update(after)
    assert gone.name_of(after, carol) == "carol" and gone.name_of(after, dave) == "dave"
    assert gone.name_of(after, eve) == eve.short()  # never shown: its short id
    gone.update(names.build([], {}, []))  # dave goes too: the oldest (carol) is forgotten beyond the limit
    assert gone.gone == {dave: "dave"}


async def test_parts_not_started_yet_answer_busy_naming_the_part(tmp_path: Path) -> None:
    """The parts the daemon starts after its API (TUN, DNS, firewall, routes, exits, forwards) answer BUSY until
    they exist, each naming itself (one helper, DaemonAPI._started)."""
    from omerta_mesh.meshd.api import CallContext
    from omerta_mesh.meshd.auth import Caller
    from omerta_mesh.node import MeshNode

    cfg = config_mod.default()
    node = MeshNode(host="127.0.0.1", port=0, state_dir=str(tmp_path / "state"))
    api = DaemonAPI(node, cfg, EventHub(cfg.api.subscriber_queue), name="t", version="test", endpoints=lambda: [])
    ctx = CallContext(Caller.internal(), "internal")
    await node.start()
    try:
        for method, params, part in [("ip.get", {}, "the virtual network is"), ("dns.get", {}, "mesh DNS is"),
                                     ("rules.list", {}, "the firewall is"), ("routes.list", {}, "subnet routes are"),
                                     ("exit.status", {}, "exit nodes are"), ("forward.list", {}, None),
                                     ("forward.remove", {"local": 1}, "forwards are")]:
            if part is None:  # listing what is not there yet is an empty list, not a refusal
                assert await api.call(method, params, ctx) == {"forwards": []}
                continue
            with pytest.raises(ApiError) as e:
                await api.call(method, params, ctx)
            assert e.value.code is Code.BUSY and e.value.message == f"{part} not started yet", (method, e.value.message)
            assert e.value.fix == "wait for the daemon to finish starting"
    finally:
        await node.close()
