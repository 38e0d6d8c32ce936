"""Mesh DNS answers, sans-I/O: a query's bytes and the current name table -> a response's bytes or a drop.

The names (``NameTable.build`` from the members of this node's networks and their mesh IPs):

* ``NAME.NETWORK.mesh`` -> the member's mesh IPv4 (A) and IPv6 (AAAA). NAME is the peer's shown name (its signed
  record's name, or a local ``[names]`` entry; peers sharing a name are already ``name#<id8>``), made a DNS label:
  lower case, anything but ``a-z 0-9 -`` becomes ``-``, at most 63 characters. Two members of one network whose
  labels still collide each get ``LABEL-<first 8 id characters>``; so do two networks with one label.
* ``NAME.mesh`` and the single label ``NAME``: the same, when exactly one member of one network holds the label.
* PTR for every member's mesh IP (``in-addr.arpa``, ``ip6.arpa``) -> its ``NAME.NETWORK.mesh``.

The answers (``answer``): authoritative A/AAAA/PTR; NOERROR without records (NODATA) for a name that exists with
other types; NXDOMAIN for other names under ``mesh.`` and reverse names inside the networks' prefixes; REFUSED for
everything else (this is not a recursive resolver); NOTIMP for opcodes other than QUERY; FORMERR for a query that
does not parse (or asks more or less than one question). Negative answers carry the zone's SOA (TTL 30 s).
Dropped, never answered: fewer than 12 bytes (no header to answer), responses (the QR bit: never reflect), more
than ``MAX_QUERY`` bytes. ``RateLimit`` is a per-source token bucket with a global one behind it, on a clock passed in.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network
ZONE = dns.name.from_text("mesh.")
TTL = 30  # seconds: addresses follow the records, which can change
MAX_QUERY = 4096  # bytes; a query is tens of bytes
SOA = f"mesh. hostmaster.mesh. 1 3600 600 86400 {TTL}"
_REVERSE = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


def label(text: str) -> str:
    """A peer's or network's name as one DNS label ("" when nothing is left)."""
    out = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in text.lower())
    return out.strip("-")[:63].strip("-")


@dataclass(frozen=True)
class Member:
    node: str  # node id text
    name: str  # the name it is shown as
    network: str  # network id text
    network_name: str
    v4: Address | None
    v6: Address | None


@dataclass(frozen=True)
class Host:
    v4: Address | None
    v6: Address | None
    fqdn: dns.name.Name  # NAME.NETWORK.mesh. (the PTR target)


@dataclass(frozen=True)
class NameTable:
    hosts: Mapping[dns.name.Name, Host] = field(default_factory=dict)
    reverse: Mapping[Address, dns.name.Name] = field(default_factory=dict)
    prefixes: tuple[Prefix, ...] = ()
    networks: frozenset[dns.name.Name] = frozenset()  # NETWORK.mesh.
    domains: Mapping[str, dns.name.Name] = field(default_factory=dict)  # network id -> NETWORK.mesh.

    @staticmethod
    def build(members: Iterable[Member], prefixes: Iterable[Prefix] = ()) -> "NameTable":
        members = [m for m in members if label(m.name) and (m.v4 or m.v6)]
        net_label = _unique({m.network: label(m.network_name) or m.network[:8] for m in members})
        hosts: dict[dns.name.Name, Host] = {}
        reverse: dict[Address, dns.name.Name] = {}
        bare: dict[str, list[Host]] = {}
        for net in sorted(net_label):
            here = [m for m in members if m.network == net]
            for m, lab in zip(here, _unique_list([(m.node, label(m.name)) for m in here])):
                fqdn = dns.name.from_text(f"{lab}.{net_label[net]}.mesh.")
                host = Host(m.v4, m.v6, fqdn)
                hosts[fqdn] = host
                bare.setdefault(lab, []).append(host)
                for a in (m.v4, m.v6):
                    if a is not None:
                        reverse[a] = fqdn
        for lab, held in bare.items():
            if len(held) == 1:
                hosts.setdefault(dns.name.from_text(f"{lab}.mesh."), held[0])
                hosts.setdefault(dns.name.from_text(f"{lab}."), held[0])
        domains = {k: dns.name.from_text(f"{v}.mesh.") for k, v in net_label.items()}
        return NameTable(hosts, reverse, tuple(prefixes), frozenset(domains.values()), domains)


def _unique(labels: dict[str, str]) -> dict[str, str]:
    """key -> label, where a label several keys share becomes ``label-<key[:8]>`` for each of them."""
    count: dict[str, int] = {}
    for v in labels.values():
        count[v] = count.get(v, 0) + 1
    return {k: v if count[v] == 1 else f"{v[:54]}-{label(k[:8])}" for k, v in labels.items()}


def _unique_list(pairs: list[tuple[str, str]]) -> list[str]:
    keyed = _unique(dict(pairs))
    return [keyed[k] for k, _ in pairs]


@dataclass(frozen=True)
class Reply:
    wire: bytes
    outcome: str  # answer, nodata, nxdomain, refused, formerr, notimp (counted as dns.<outcome>)


@dataclass(frozen=True)
class Dropped:
    reason: str  # short, response, oversized (counted as dns.drop.<reason>)


def answer(query: bytes, table: NameTable, tcp: bool = False) -> Reply | Dropped:
    """The response to one query (UDP: at most the client's EDNS size, else 512 bytes, then truncated)."""
    if len(query) < 12:
        return Dropped("short")
    if len(query) > MAX_QUERY:
        return Dropped("oversized")
    if query[2] & 0x80:
        return Dropped("response")
    try:
        q = dns.message.from_wire(query)
    except Exception:  # remote input never raises: dnspython raises many kinds (DNSException, ValueError, ...)
        return Reply(_formerr(query), "formerr")
    r = dns.message.make_response(q)
    r.flags &= ~dns.flags.RA
    if q.opcode() != dns.opcode.QUERY:
        return _done(r, q, dns.rcode.NOTIMP, "notimp", tcp)
    if len(q.question) != 1:
        return _done(r, q, dns.rcode.FORMERR, "formerr", tcp)
    rr = q.question[0]
    if rr.rdclass != dns.rdataclass.IN:
        return _done(r, q, dns.rcode.REFUSED, "refused", tcp)
    name, rdtype = rr.name, rr.rdtype
    if name.is_subdomain(_REVERSE[0]) or name.is_subdomain(_REVERSE[1]):
        return _reverse(r, q, name, rdtype, table, tcp)
    host = table.hosts.get(name)
    if host is None and not name.is_subdomain(ZONE):
        return _done(r, q, dns.rcode.REFUSED, "refused", tcp)
    r.flags |= dns.flags.AA
    if host is None:
        known = name == ZONE or name in table.networks
        return _negative(r, q, "nodata" if known else "nxdomain", tcp)
    wanted = [(dns.rdatatype.A, host.v4), (dns.rdatatype.AAAA, host.v6)]
    records = [(t, str(a)) for t, a in wanted if a is not None and rdtype in (t, dns.rdatatype.ANY)]
    if not records:
        return _negative(r, q, "nodata", tcp)
    for t, text in records:
        r.answer.append(dns.rrset.from_text(name, TTL, dns.rdataclass.IN, t, text))
    return _done(r, q, dns.rcode.NOERROR, "answer", tcp)


def _reverse(r: dns.message.Message, q: dns.message.Message, name: dns.name.Name, rdtype: int, table: NameTable,
             tcp: bool) -> Reply:
    try:
        addr = ipaddress.ip_address(dns.reversename.to_address(name))
    except Exception:  # a partial or malformed reverse name: not one address
        return _done(r, q, dns.rcode.REFUSED, "refused", tcp)
    if not any(addr in p for p in table.prefixes) and addr not in table.reverse:
        return _done(r, q, dns.rcode.REFUSED, "refused", tcp)
    r.flags |= dns.flags.AA
    target = table.reverse.get(addr)
    if target is None:
        return _negative(r, q, "nxdomain", tcp)
    if rdtype not in (dns.rdatatype.PTR, dns.rdatatype.ANY):
        return _negative(r, q, "nodata", tcp)
    r.answer.append(dns.rrset.from_text(name, TTL, dns.rdataclass.IN, dns.rdatatype.PTR, target.to_text()))
    return _done(r, q, dns.rcode.NOERROR, "answer", tcp)


def _negative(r: dns.message.Message, q: dns.message.Message, outcome: str, tcp: bool) -> Reply:
    r.authority.append(dns.rrset.from_text(ZONE, TTL, dns.rdataclass.IN, dns.rdatatype.SOA, SOA))
    return _done(r, q, dns.rcode.NXDOMAIN if outcome == "nxdomain" else dns.rcode.NOERROR, outcome, tcp)


def _done(r: dns.message.Message, q: dns.message.Message, rcode: dns.rcode.Rcode, outcome: str, tcp: bool) -> Reply:
    r.set_rcode(rcode)
    size = 65535 if tcp else max(512, q.payload if q.edns >= 0 else 512)
    try:
        return Reply(r.to_wire(max_size=size), outcome)
    except dns.exception.TooBig:
        r.answer.clear()
        r.authority.clear()
        r.flags |= dns.flags.TC
        return Reply(r.to_wire(), outcome)


def _formerr(query: bytes) -> bytes:
    """A bare FORMERR header for a query dnspython cannot parse (its id, opcode and RD echoed, no sections)."""
    qid, flags = struct.unpack_from("!HH", query)
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | dns.rcode.FORMERR, 0, 0, 0, 0)


class RateLimit:
    """Token buckets: ``per_source`` queries per second (burst twice that) for each source address, and
    ``total`` per second for everyone; at most ``max_sources`` buckets (the least recently seen goes first)."""

    def __init__(self, per_source: float = 100.0, total: float = 1000.0, max_sources: int = 1024) -> None:
        self.per_source, self.total, self.max_sources = per_source, total, max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # source -> (tokens, at)
        self._all = (2 * total, 0.0)

    def allow(self, source: str, now: float) -> bool:
        tokens_at = self._buckets.pop(source, (2 * self.per_source, now))
        ok, self._buckets[source] = _take(tokens_at, now, self.per_source)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        if not ok:  # (a flooding source spends only its own tokens, not everyone's)
            return False
        ok, self._all = _take(self._all, now, self.total)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)


def _take(bucket: tuple[float, float], now: float, rate: float) -> tuple[bool, tuple[float, float]]:
    tokens, at = bucket
    tokens = min(2 * rate, tokens + max(0.0, now - at) * rate)
    return (True, (tokens - 1, now)) if tokens >= 1 else (False, (tokens, now))
