"""Firewall rules as data (vnet/fwrules.py): ``[[rules]]`` parsing and its errors, the nft script they compile
to, and (as root, in a namespace of its own) that real nft takes the script, keeps counters across a member
change, deletes what is no longer wanted and never touches the exit node's objects."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import uuid

import pytest

from omerta_mesh.meshd import config
from omerta_mesh.vnet import fwrules
from omerta_mesh.vnet.fwrules import NetChain, RuleError, parse_rules

ip = ipaddress.ip_address
RULES = [
    {"network": "home", "from": "bravo", "to": "22/tcp", "action": "allow"},
    {"from": "any", "to": "icmp", "action": "deny"},
    {"from": "tag:ops", "to": "6000-6010/udp", "action": "allow"},
    {"from": "any", "to": "any/tcp", "action": "deny"},
]
BRAVO = [ip("100.64.0.2"), ip("fd4d:7e57::2")]


def chain(rules=None, key="abcdefabcdef", device="om-home") -> NetChain:
    return NetChain(key, device, tuple(parse_rules(rules or RULES)))


def test_rules_parse_with_their_positions_protocols_and_ports() -> None:
    r = parse_rules(RULES)
    assert [(x.index, x.network, x.source, x.proto, x.ports, x.action) for x in r] == [
        (1, "home", "bravo", "tcp", (22, 22), "allow"), (2, "", "any", "icmp", None, "deny"),
        (3, "", "tag:ops", "udp", (6000, 6010), "allow"), (4, "", "any", "tcp", None, "deny")]
    assert r[0].applies_to("home", "x" * 52) and not r[0].applies_to("work", "x" * 52)
    assert r[1].applies_to("anything", "y" * 52)
    assert parse_rules([{"network": "abcdefgh", "from": "A", "to": "any", "action": "deny"}])[0].applies_to("", "abcdefghij")
    assert config.build({"rules": RULES}, "meshd.toml").rules == r
    assert config.build({}, "meshd.toml").rules == []


@pytest.mark.parametrize("table, words", [
    ({"from": "any", "to": "22/tcp"}, ["#1", "action missing", 'action = "allow"']),
    ({"from": "any", "to": "22/tcp", "action": "permit"}, ["#1", "'permit'", '"allow" or "deny"']),
    ({"from": "any", "to": "22/sctp", "action": "allow"}, ["#1", "'22/sctp'", '"PORT/tcp"']),
    ({"from": "any", "to": "70000/tcp", "action": "allow"}, ["#1", "1-65535"]),
    ({"from": "any", "to": "20-10/tcp", "action": "allow"}, ["#1", "LO must not be above HI"]),
    ({"from": "any", "to": "ssh/tcp", "action": "allow"}, ["#1", "'ssh'", '"22/tcp"']),
    ({"from": "two words", "to": "any", "action": "deny"}, ["#1", "not a peer", '"tag:NAME" or "any"']),
    ({"from": "tag:", "to": "any", "action": "deny"}, ["#1", "not a tag", "tag:NAME"]),
    ({"from": "any", "to": 22, "action": "allow"}, ["#1", "to = 22", "a string"]),
    ({"from": "any", "to": "any", "action": "allow", "port": "22"}, ["#1", "unknown key 'port'", "from, to, action"]),
])
def test_bad_rules_name_the_table_the_cause_and_the_fix(table: dict, words: list[str]) -> None:
    with pytest.raises(RuleError) as e:
        parse_rules([table])
    assert all(w in str(e.value) for w in words), str(e.value)
    with pytest.raises(config.ConfigError, match=r"^meshd\.toml: \[\[rules\]\] #2: "):  # through the config, counted from 1
        config.build({"rules": [RULES[0], table]}, "meshd.toml")
    with pytest.raises(config.ConfigError, match="array of tables"):
        config.build({"rules": {"from": "any"}}, "meshd.toml")


def test_the_chain_is_answers_then_rules_in_order_then_ping_then_a_counted_drop() -> None:
    c = chain()
    text = fwrules.sync_script([c], {1: BRAVO, 3: []}, {})
    body = [line.split(c.chain + " ", 1)[1] for line in text.splitlines() if line.startswith(f"add rule inet omerta {c.chain}")]
    r = parse_rules(RULES)
    assert body == [
        "ct state established,related accept",
        f'ip saddr @rules_s1_4 tcp dport 22 counter name "{r[0].counter}" accept',
        f'ip6 saddr @rules_s1_6 tcp dport 22 counter name "{r[0].counter}" accept',
        f'icmp type echo-request counter name "{r[1].counter}" drop',
        f'icmpv6 type echo-request counter name "{r[1].counter}" drop',
        f'ip saddr @rules_s3_4 udp dport 6000-6010 counter name "{r[2].counter}" accept',
        f'ip6 saddr @rules_s3_6 udp dport 6000-6010 counter name "{r[2].counter}" accept',
        f'meta l4proto tcp counter name "{r[3].counter}" drop',
        "icmp type echo-request accept", "icmpv6 type echo-request accept",
        f'counter name "{c.drops}" drop',
    ]
    assert 'add rule inet omerta rules_input iifname "om-home" jump rules_n_abcdefabcdef' in text
    assert "add element inet omerta rules_s1_4 { 100.64.0.2 }" in text and "{ fd4d:7e57::2 }" in text
    assert "add element inet omerta rules_s3" not in text  # a tag matches nobody: its sets stay empty
    assert "exit_" not in text and "delete" not in text


def test_a_changed_rule_gets_a_new_counter_and_stale_objects_are_deleted() -> None:
    old, new = parse_rules(RULES), parse_rules([{**RULES[0], "to": "2222/tcp"}, *RULES[1:]])
    assert old[0].counter != new[0].counter and old[1].counter == new[1].counter
    owned = fwrules.wanted([chain()]) | {"chain": {"rules_input", "rules_n_abcdefabcdef", "rules_n_gone00000000"}}
    text = fwrules.sync_script([chain([{**RULES[0], "to": "2222/tcp"}, *RULES[1:]])], {1: BRAVO}, owned)
    assert f"delete counter inet omerta {old[0].counter}" in text
    assert "delete chain inet omerta rules_n_gone00000000" in text and f"delete counter inet omerta {old[1].counter}" not in text
    # nothing wanted: every rules_* object goes (chains flushed first, then deleted), nothing is added
    gone = fwrules.sync_script([], {}, owned).splitlines()
    assert gone[0] == "add table inet omerta" and not any(x.startswith("add ") for x in gone[1:])
    assert gone.index("flush chain inet omerta rules_input") < gone.index("delete chain inet omerta rules_input")
    assert fwrules.sync_script([], {}, {}) == "add table inet omerta\n"


def test_owned_and_counters_read_only_our_objects_from_a_listing() -> None:
    listing = {"nftables": [{"metainfo": {}}, {"table": {"name": "omerta"}},
                            {"counter": {"name": "rules_c1_000001", "packets": 3, "bytes": 180}},
                            {"counter": {"name": "other", "packets": 9, "bytes": 9}},
                            {"set": {"name": "exit_members4"}}, {"set": {"name": "rules_s1_4"}},
                            {"chain": {"name": "exit_forward"}}, {"chain": {"name": "rules_input"}},
                            {"rule": {"chain": "rules_input"}}]}
    assert fwrules.owned(listing) == {"chain": {"rules_input"}, "set": {"rules_s1_4"}, "counter": {"rules_c1_000001"}}
    assert fwrules.counters(listing) == {"rules_c1_000001": (3, 180)}
    assert fwrules.owned(None) == {"chain": set(), "set": set(), "counter": set()}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a network namespace for nft")
@pytest.mark.skipif(shutil.which("nft") is None, reason="the nft program is not installed")
def test_real_nft_takes_the_scripts_and_leaves_the_exit_alone() -> None:
    ns = f"fw{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)

    def nft(*args: str, script: str | None = None) -> str:
        r = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=script, capture_output=True, text=True)
        assert r.returncode == 0, (r.stderr, script)
        return r.stdout

    def listing() -> dict:
        return json.loads(nft("-j", "list", "table", "inet", "omerta"))

    try:
        nft("-f", "-", script="add table inet omerta\nadd chain inet omerta exit_forward\n")
        c = chain()
        nft("-f", "-", script=fwrules.sync_script([c], {1: BRAVO, 3: []}, fwrules.owned(listing())))
        nft("-f", "-", script=fwrules.sync_script([c], {1: BRAVO, 3: []}, fwrules.owned(listing())))  # idempotent
        assert fwrules.owned(listing()) == fwrules.wanted([c])
        # a member change (and a second network) keeps the counter objects; a rule removed loses its counter
        c2 = chain(RULES[:2])
        w = chain(RULES[:1], "111111111111", "om-work")
        nft("-f", "-", script=fwrules.sync_script([c2, w], {1: BRAVO[:1]}, fwrules.owned(listing())))
        assert fwrules.owned(listing()) == fwrules.wanted([c2, w])
        assert "100.64.0.2" in nft("list", "set", "inet", "omerta", "rules_s1_4")
        assert "fd4d" not in nft("list", "set", "inet", "omerta", "rules_s1_6")
        nft("-f", "-", script=fwrules.sync_script([], {}, fwrules.owned(listing())))
        assert fwrules.owned(listing()) == {"chain": set(), "set": set(), "counter": set()}
        assert "exit_forward" in nft("list", "table", "inet", "omerta")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_a_tag_rule_matches_the_mesh_ips_of_members_whose_certificate_carries_the_tag() -> None:
    [rule] = parse_rules([{"from": "tag:ops", "to": "22/tcp", "action": "allow"}])
    home, work = "a" * 52, "b" * 52
    members = [(home, "alice", ip("100.64.0.2"), ip("fd4d:7e57::2")), (home, "bob", ip("100.64.0.3"), None),
               (home, "carol", ip("100.64.0.4"), None), (work, "alice", ip("100.65.0.2"), None)]
    tags = {(home, "alice"): ("web", "OPS"), (home, "bob"): ("web",), (work, "alice"): ("ops",)}
    # alice carries ops in home (compared without case); bob only web; carol has no certificate (an open network)
    assert fwrules.tag_sources(rule, members, tags, {home[:12]}) == [ip("100.64.0.2"), ip("fd4d:7e57::2")]
    assert fwrules.tag_sources(rule, members, tags, {home[:12], work[:12]}) == [ip("100.64.0.2"), ip("100.65.0.2"),
                                                                              ip("fd4d:7e57::2")]
    assert fwrules.tag_sources(rule, members, {}, {home[:12], work[:12]}) == []  # nobody has tags: nobody matches
    text = fwrules.sync_script([chain([{"from": "tag:ops", "to": "22/tcp", "action": "allow"}])],
                               {1: fwrules.tag_sources(rule, members, tags, {home[:12]})}, {})
    assert "add element inet omerta rules_s1_4 { 100.64.0.2 }" in text and "add element inet omerta rules_s1_6 { fd4d:7e57::2 }" in text


def test_tags_come_only_from_verified_certificates_in_signed_records() -> None:
    """core.views.member_tags (what the daemon's firewall asks): a member's tags from the credential in its signed
    record while the check accepts it; a certificate that expired no longer tags anyone; open networks: none."""
    from omerta_mesh.core import views as core_views
    from omerta_mesh.core.config import DEFAULT_CONFIG
    from omerta_mesh.core.network import Network
    from omerta_mesh.core.wire.certs import Certificate, Role, encode_credential, sign_certificate
    from omerta_mesh.sim.harness import SimMesh

    sim = SimMesh("fw-tags", config=DEFAULT_CONFIG.with_(cert_clock_skew=0.0))
    owner, alice, bob = (sim.add_node(x) for x in ("owner", "alice", "bob"))
    oid = owner.mesh.identity
    net = Network(sim.entropy.random_bytes(32), "owned", owner=oid.node_id)
    open_net = Network(sim.entropy.random_bytes(32), "open")
    now = sim.now

    def cred(node, role, tags, until):  # type: ignore[no-untyped-def]
        c = Certificate(role, net.id, node.mesh.node_id, oid.node_id, 1, int(now), int(now + until), node.name, tags)
        return encode_credential([sign_certificate(oid, c)])

    for node, role, tags, until in ((owner, Role.OWNER, (), 86400), (alice, Role.MEMBER, ("ops", "web"), 86400),
                                    (bob, Role.MEMBER, ("ops",), 60)):
        node.mesh.add_network(net, now)
        node.mesh.add_network(open_net, now)
        node.mesh.set_credential(net.id, cred(node, role, tags, until), now)
    for node in (alice, bob):
        sim.introduce(node, owner, net)
        sim.introduce(node, owner, open_net)
    sim.run_for(10)
    got = core_views.member_tags(owner.mesh, sim.now)
    assert got == {(net.id, alice.mesh.node_id): ("ops", "web"), (net.id, bob.mesh.node_id): ("ops",)}
    view = {p.node: p.cert for p in core_views.node_view(owner.mesh, sim.now).peers if p.network == net.id}
    assert view[alice.mesh.node_id] is not None and view[alice.mesh.node_id].not_after == int(now + 86400)
    # bob's certificate expires: bob goes out of everyone's reach (else it renews the certificate at two thirds of its
    # lifetime through the owner, directly or relayed: core/member/renewal.py); alice still holds bob's record, and
    # its tags no longer count
    assert core_views.member_tags(alice.mesh, sim.now)[(net.id, bob.mesh.node_id)] == ("ops",)
    for other in (owner, alice):
        sim.internet.block(bob.host.ip, other.host.ip)
    sim.run_for(70)
    held = {p.node: p.cert for p in core_views.node_view(alice.mesh, sim.now).peers if p.network == net.id}
    assert bob.mesh.node_id in held and bob.mesh.counters["renew.renewed"] == 0
    assert core_views.member_tags(alice.mesh, sim.now) == {}
