"""Two real daemons in two temp dirs on loopback: join one network, see each other, and every JSON-RPC
method of the registry is called over the real socket."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from clients.ctlharness import wait_until
from meshd.rpcclient import RpcClient, RpcError
from omerta_mesh.meshd.api import DaemonAPI
from omerta_mesh.meshd.registry import methods


class Recorder:
    """Calls methods over a daemon's socket and records which ones succeeded."""

    def __init__(self, client: RpcClient, seen: set[str]) -> None:
        self.client, self.seen = client, seen

    def __call__(self, method: str, **params: object) -> dict:
        result = self.client.call(method, **params)
        self.seen.add(method)
        return result


@pytest.mark.parametrize("loop", ["auto", "asyncio"])  # auto: uvloop when installed
def test_two_daemons_join_and_every_method_works_over_the_socket(daemon_factory, loop: str, request) -> None:
    a = daemon_factory("a", extra=["--loop", loop, "--audit-encryption"]).start()
    b = daemon_factory("b", extra=["--loop", loop, "--relay"]).start()
    seen: set[str] = set()
    ca, cb = a.client(), b.client()
    for c in (ca, cb):  # closed if an assertion fails too (an unclosed socket fails whichever test collects it)
        request.addfinalizer(c.close)
    A, B = Recorder(ca, seen), Recorder(cb, seen)

    # B subscribes first: snapshot, then deltas with larger seq numbers
    sub = B("events.subscribe")
    assert sub["snapshot"]["peers"] == [] and sub["snapshot"]["status"]["networks"] == []

    net = A("network.create", name="home")
    assert net["invite"].startswith("omerta1-") and net["name"] == "home"
    joined = B("network.join", invite=net["invite"], wait=10)
    assert joined == {"network": net["network"], "name": "home", "inviter": A("status.get")["node_id"], "connected": True,
                      "enrolled_by": None}  # (an open network: nobody enrols)

    a_id, b_id = A("status.get")["node_id"], B("status.get")["node_id"]
    wait_until(lambda: any(p["connected"] for p in A("peers.list")["peers"]), 10, "A to see B connected")
    [pa] = A("peers.list")["peers"]
    [pb] = B("peers.list", network=net["network"])["peers"]
    assert pa["node_id"] == b_id and pb["node_id"] == a_id
    assert pa["path"] == pb["path"] == "direct" and pa["connected"] and pb["connected"]
    assert pb["endpoint"] is not None and pb["last_handshake_s"] is not None and pb["bytes_out"] > 0
    assert pb["name"] == A("status.get")["name"]  # the name A gives itself (its host name), from its signed record

    # events: network.joined then peer.connected, with increasing seq after the snapshot's
    evs = []
    while not any(e["type"] == "peer.connected" for e in evs):
        n = cb.next_notification("events.event")
        assert n["params"]["subscription"] == sub["subscription"]
        evs.append(n["params"]["event"])
    assert [e["type"] for e in evs][:1] == ["network.joined"]
    assert all(e["seq"] > sub["seq"] for e in evs) and [e["seq"] for e in evs] == sorted(e["seq"] for e in evs)
    assert next(e for e in evs if e["type"] == "peer.connected")["node_id"] == a_id
    assert B("events.unsubscribe", subscription=sub["subscription"]) == {"ok": True}
    with pytest.raises(RpcError) as ei:
        cb.call("events.unsubscribe", subscription=sub["subscription"])
    assert ei.value.name == "SUBSCRIPTION_NOT_FOUND"

    # ping with streamed progress: one notification per probe, before the response
    rid = 99
    params = {"peer": a_id[:10], "count": 3, "interval": 0.05, "progress": "tok"}
    cb.send_obj({"jsonrpc": "2.0", "id": rid, "method": "ping", "params": params})
    progress = [cb.next_notification("progress") for _ in range(3)]
    resp = cb.wait_response(rid)
    seen.add("ping")
    assert [p["params"]["token"] for p in progress] == ["tok"] * 3
    assert [p["params"]["value"]["seq"] for p in progress] == [1, 2, 3]
    res = resp["result"]
    assert res["sent"] == 3 and res["received"] == 3 and res["loss"] == 0 and res["rtt_min_ms"] >= 0
    assert res["probes"] == [p["params"]["value"] for p in progress] and res["node_id"] == a_id
    assert B("peers.list")["peers"][0]["rtt_ms"] is not None  # RTT from the pings
    assert f'peer="{a_id[:12]}"' in B("metrics.get")["text"]  # (tests/meshd/test_metrics.py reads them in full)

    detail = B("peers.get", peer=a_id)
    assert detail["node_id"] == a_id and detail["networks"][0]["sessions"] and detail["networks"][0]["endpoints"]
    d0 = detail["networks"][0]
    # the path with its evidence, and why it is what it is (both NAT verdicts)
    [current] = [x for x in d0["paths"] if x["current"]]
    assert current["kind"] == "direct" and current["state"] == "up" and current["rtt_ms"] is not None
    assert d0["path"] in ("direct", "punched") and d0["why"] and d0["own_nat"]["evidence"]
    assert d0["peer_nat"]["type"] in ("public", "unknown")  # from A's signed record (it may predate A's verdict)
    # mesh IPs (TUN off in tests: the addresses are still assigned and shown, and why TUN is off)
    wait_until(lambda: B("peers.get", peer=a_id)["networks"][0]["ipv4"], 10, "B to know A's mesh IP")
    own, theirs = B("ip.get"), B("ip.get", peer=a_id)
    d0 = B("peers.get", peer=a_id)["networks"][0]
    assert own["vnet"]["active"] is False and "enabled = false" in own["vnet"]["detail"]
    assert own["addresses"][0]["ipv4"].startswith("100.") and own["addresses"][0]["device"] is None
    assert theirs["addresses"][0]["ipv4"] == d0["ipv4"] != own["addresses"][0]["ipv4"] and theirs["node_id"] == a_id
    # A's SSH host keys (this host's /etc/ssh ones, if any), named by A's node id, also by its mesh IP
    kh = B("ssh.known_hosts", peer=a_id)
    host_keys = {" ".join(f.read_text().split()[:2]) for f in Path("/etc/ssh").glob("ssh_host_*_key.pub")}
    assert kh["node_id"] == a_id and all(line.startswith(a_id + " ") for line in kh["lines"])
    assert {line.split(" ", 1)[1] for line in kh["lines"]} <= host_keys  # this host's keys, nothing else
    if Path("/etc/ssh/ssh_host_ed25519_key.pub").exists():  # an Ed25519 key always fits the record
        assert kh["lines"], "A's Ed25519 host key was not published"
    assert B("ssh.known_hosts", peer=d0["ipv4"]) == B("ssh.known_hosts", peer=d0["ipv6"]) == kh
    # exit nodes (TUN off here: refused, saying why; the lab test is tests/netns/test_exit.py)
    exits = B("exit.status")
    assert exits == {"offering": False, "using": None, "state": "", "offered_by": [], "error": own["vnet"]["detail"], "using_name": None,
                     "families": [], "allow_lan": False, "lan": []}
    for method, params in (("exit.offer", {}), ("exit.use", {"peer": a_id})):
        with pytest.raises(RpcError, match="TUN is off|does not offer"):
            B(method, **params)
    assert B("exit.offer", offer=False)["offering"] is False and B("exit.use", peer=None)["using"] is None
    # subnet routes (TUN off here: advertising refused; accepting is kept for later; netns: test_subnets.py)
    assert B("routes.list") == {"advertised": [], "accepted": [], "offered": [], "error": own["vnet"]["detail"]}
    with pytest.raises(RpcError, match="TUN is off"):
        B("routes.advertise", prefix="10.9.0.0/24")
    seen.add("routes.advertise")  # (refused over the socket here; it works in tests/netns/test_subnets.py)
    assert B("routes.withdraw", prefix="10.9.0.0/24")["advertised"] == []  # (not advertised: nothing to do)
    with pytest.raises(RpcError, match="default route"):
        B("routes.accept", peer=a_id, prefix="0.0.0.0/0")
    [acc] = B("routes.accept", peer=a_id, prefix="10.9.0.0/24")["accepted"]
    assert acc["state"].startswith("not advertised") and acc["source"] == "command" and acc["node_id"] == a_id
    # ... and status and peers show them (the exit in use, routes in force: tests/netns/test_exit.py, test_subnets.py)
    st, [pa] = B("status.get"), B("peers.list")["peers"]
    assert st["exit"] == exits and st["routes"] == B("routes.list") and st["routes"]["accepted"] == [acc]
    assert (pa["routes"], pa["routes_accepted"], pa["routes_active"]) == ([], ["10.9.0.0/24"], [])
    assert (pa["exit_offered"], pa["exit_used"]) == (False, False)
    assert (st["dns_resolved"], st["dns_servers"]) == (B("dns.get")["resolved"], [])  # no devices: answers nowhere
    assert B("routes.unaccept", peer=a_id, prefix="10.9.0.0/24")["accepted"] == []
    assert B("rules.list") == {"active": False, "rules": [], "filtered": [], "error": own["vnet"]["detail"]}  # (netns: test_rules.py)
    assert B("dns.get")["dns"]["active"] is False  # (no devices here: mesh DNS is tests/netns/test_dns.py's)

    # serve: no port exposed by default; add and remove change the set (streams: tests/clients/test_connect.py)
    assert A("serve.list") == {"ports": [], "configured": []}
    assert A("serve.add", port=2222) == {"port": 2222, "changed": True, "ports": [2222]}
    assert A("serve.add", port=2222)["changed"] is False and A("serve.list")["ports"] == [2222]
    assert A("serve.remove", port=2222) == {"port": 2222, "changed": True, "ports": []}
    assert A("streams.list") == {"streams": [], "forwards": []}
    # forwards: a listener made, listed, removed (the bytes they carry: tests/clients/test_forward.py)
    assert A("forward.list") == {"forwards": []}
    fwd = A("forward.add", local=0, peer=b_id, port=2222)
    assert fwd["local"] > 0 and (fwd["node_id"], fwd["listening"], fwd["connections"]) == (b_id, True, 0)
    assert [f["local"] for f in A("streams.list")["forwards"]] == [f["local"] for f in A("forward.list")["forwards"]] == [fwd["local"]]
    assert A("forward.remove", local=fwd["local"])["local"] == fwd["local"] and A("forward.list") == {"forwards": []}

    # channels: B opens its inbox, A sends (text and binary), B receives
    assert B("channel.receive", channel="chat")["messages"] == []
    sent = A("channel.send", peer=b_id, channel="chat", data="hello B", wait=True)
    assert sent["delivered"] is True and sent["bytes"] == 7
    A("channel.send", peer=b_id[:8], channel="chat", data=base64.b64encode(b"\x00\xffbin").decode(), encoding="base64", wait=True)
    got = B("channel.receive", channel="chat", timeout=5, encoding="base64")["messages"]
    assert [base64.b64decode(m["data"]) for m in got] == [b"hello B", b"\x00\xffbin"]
    assert got[0]["node_id"] == a_id and got[0]["channel"] == "chat"

    # B offers to relay: A's netcheck lists it with the RTT of A's path to it
    relays = A("netcheck.run")["relays"]
    assert [r["node_id"] for r in relays] == [b_id] and relays[0]["connected"], relays
    assert relays[0]["rtt_ms"] is not None and relays[0]["rtt_ms"] >= 0
    assert B("status.get")["relay"]["enabled"] is True
    nc = A("netcheck.run")
    # B saw A's packets come from A's own loopback address: no NAT, with that as the evidence
    assert nc["status"] == "classified" and nc["mapping"] == "none", nc
    assert any(e.startswith("127.0.0.1:") for e in nc["public_endpoints"]) and nc["evidence"], nc
    st = A("status.get")
    assert st["audit"]["enabled"] and st["counters"].get("audit.violations", 0) == 0 and st["counters"]["udp.sent"] > 0
    assert st["peers"] == {"total": 1, "connected": 1, "direct": 1, "relayed": 0}
    assert st["status_text"] == "1 peer: 1 direct, 0 relayed (1 network)"
    assert st["write_group"] == "omerta"  # [api] group (omertactl doctor's permissions phase names it)
    assert [n["network"] for n in B("network.list")["networks"]] == [net["network"]]
    inv = B("network.invite", network="home")
    assert inv["invite"].startswith("omerta1-") and inv["network"] == net["network"]
    # an open network has no invites to list or revoke, nobody to remove and no key to rotate (owned networks:
    # tests/clients/test_owned_network.py drives these four through omertactl)
    assert B("network.invites", network="home") == {"network": net["network"], "invites": []}
    assert B("network.offers") == {"offers": []}  # (in-band invites: tests/clients/test_owned_network.py)
    for method, params, match in (("network.revoke_invite", {"network": "home", "token": "abcd"}, "no open invites"),
                                  ("network.remove", {"network": "home", "peer": a_id}, "is open"),
                                  ("network.rekey", {"network": "home"}, "is open"),
                                  ("network.admin", {"network": "home", "peer": a_id}, "is open"),
                                  ("network.accept", {"offer": "abcdef"}, "no invites offered"),
                                  ("network.own", {"network": "home"}, "only its creator claims it"),  # (B joined it)
                                  ("network.accept_owner", {"network": "home", "owner": "abcd"}, "no owner claims")):
        with pytest.raises(RpcError, match=match):
            B(method, **params)
        seen.add(method)  # (refused, as meant)
    assert A("daemon.reload") == {"changed": [], "restart_required": []}

    # leave: B leaves; A is told and sees B disconnect
    other = B("network.create", name="spare")
    assert B("network.leave", network=other["network"]) == {"network": other["network"], "left": True}
    assert B("network.leave", network=net["network"])["left"]
    wait_until(lambda: not any(p["connected"] for p in A("peers.list")["peers"]), 10, "A to see B leave")
    assert B("peers.list")["peers"] == []

    assert A("daemon.shutdown") == {"ok": True}
    assert a.proc.wait(10) == 0
    assert B("daemon.shutdown") == {"ok": True}
    assert b.proc.wait(10) == 0
    ca.close()
    cb.close()
    assert "Traceback" not in a.log_text() + b.log_text()

    registry = {s.name for s in methods(DaemonAPI)}
    assert registry - seen == set(), f"methods not exercised over the socket: {registry - seen}"
