"""vnet/dnsanswer.py: the mesh DNS answers and the rate limit, with real dnspython messages (no sockets)."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.vnet.dnsanswer import Dropped, Member, NameTable, RateLimit, Reply, answer, label

A4, A6 = ipaddress.ip_address("100.64.1.2"), ipaddress.ip_address("fd00::2")
B4 = ipaddress.ip_address("100.64.1.3")
TABLE = NameTable.build([
    Member("aaaaaaaaaaaa", "Bravo", "n1", "home", A4, A6),
    Member("bbbbbbbbbbbb", "charlie", "n1", "home", B4, None),
    Member("cccccccccccc", "charlie", "n1", "home", ipaddress.ip_address("100.64.1.4"), None),  # a collision
    Member("dddddddddddd", "bravo", "n2", "work", ipaddress.ip_address("100.65.0.9"), None),  # bravo twice: no bare name
    Member("eeeeeeeeeeee", "solo", "n2", "work", ipaddress.ip_address("100.65.0.10"), None),
], [ipaddress.ip_network("100.64.0.0/16"), ipaddress.ip_network("fd00::/48")])


def ask(name: str, rdtype: str = "A", **kw) -> tuple[str, list[str], dns.message.Message]:
    r = answer(dns.message.make_query(name, rdtype).to_wire(), TABLE, **kw)
    assert isinstance(r, Reply)
    m = dns.message.from_wire(r.wire)
    return r.outcome, [rd.to_text() for rrset in m.answer for rd in rrset], m


def test_names_answers_and_refusals() -> None:
    assert ask("bravo.home.mesh")[:2] == ("answer", ["100.64.1.2"])
    assert ask("BRAVO.Home.mesh.", "AAAA")[:2] == ("answer", ["fd00::2"])
    assert ask("charlie.home.mesh", "AAAA")[:2] == ("nxdomain", [])  # collided: only the suffixed names exist
    assert ask("charlie-bbbbbbbb.home.mesh")[:2] == ("answer", ["100.64.1.3"])
    assert ask("charlie-cccccccc.home.mesh")[:2] == ("answer", ["100.64.1.4"])
    assert ask("solo")[:2] == ("answer", ["100.65.0.10"]) and ask("solo.mesh")[1] == ["100.65.0.10"]
    assert ask("bravo")[0] == "refused"  # bravo is in two networks: not a bare name
    outcome, records, m = ask("bravo-bbbb.home.mesh")
    assert outcome == "nxdomain" and m.rcode() == dns.rcode.NXDOMAIN and m.authority  # (with the SOA)
    assert ask("home.mesh")[0] == "nodata" and ask("charlie-bbbbbbbb.home.mesh", "AAAA")[0] == "nodata"
    assert ask("example.com")[0] == "refused" and ask("1.1.1.1.in-addr.arpa", "PTR")[0] == "refused"
    assert ask("2.1.64.100.in-addr.arpa", "PTR")[:2] == ("answer", ["bravo.home.mesh."])
    assert ask("99.1.64.100.in-addr.arpa", "PTR")[0] == "nxdomain"  # inside a mesh prefix, nobody's
    assert ask("bravo.home.mesh", "ANY")[1] == ["100.64.1.2", "fd00::2"]


def test_malformed_queries_are_refused_or_dropped() -> None:
    q = dns.message.make_query("bravo.home.mesh", "A").to_wire()
    assert answer(b"", TABLE) == Dropped("short") and answer(q[:11], TABLE) == Dropped("short")
    assert answer(q[:2] + bytes([q[2] | 0x80]) + q[3:], TABLE) == Dropped("response")
    assert answer(q + b"\0" * 5000, TABLE) == Dropped("oversized")
    r = answer(q[:12] + b"\xff" * 30, TABLE)
    assert isinstance(r, Reply) and r.outcome == "formerr" and r.wire[:2] == q[:2]
    assert dns.message.from_wire(r.wire).rcode() == dns.rcode.FORMERR
    notify = dns.message.make_query("bravo.home.mesh", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert answer(notify.to_wire(), TABLE).outcome == "notimp"  # type: ignore[union-attr]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_never_raises(data: bytes) -> None:
    r = answer(data, TABLE)
    if isinstance(r, Reply):
        assert dns.message.from_wire(r.wire).id == int.from_bytes(data[:2], "big")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["A", "AAAA", "PTR", "TXT", "ANY"]))
def test_fuzz_names(name: str, rdtype: str) -> None:
    try:
        q = dns.message.make_query(name or ".", rdtype).to_wire()
    except Exception:
        return  # not a name dnspython can put in a query
    assert isinstance(answer(q, TABLE), Reply)


def test_labels() -> None:
    assert label("Bob's Laptop") == "bob-s-laptop" and label("bob#3fk2q7ab") == "bob-3fk2q7ab" and label("ü!") == ""
    assert len(label("x" * 100)) == 63


def test_rate_limit_per_source_and_bounded() -> None:
    rl = RateLimit(per_source=100, total=1000, max_sources=8)
    got = sum(rl.allow("10.0.0.1", 0.0) for _ in range(1000))
    assert got == 200  # the burst
    assert rl.allow("10.0.0.2", 0.0)  # another source is not starved
    assert sum(rl.allow("10.0.0.1", 0.5) for _ in range(100)) == 50  # refilled at 100/s
    for i in range(100):
        rl.allow(f"10.1.0.{i}", 1.0)
    assert len(rl) == 8
    total = RateLimit(per_source=1000, total=10)
    assert sum(total.allow(f"s{i}", 5.0) for i in range(100)) == 20  # everyone together: the global bucket
