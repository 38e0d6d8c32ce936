"""Per-network firewall rules, as data: ``[[rules]]`` tables -> ``Rule`` -> an nftables script (pure).

Syntax (meshd.toml, repeatable; docs/vnet.md "Firewall rules")::

    [[rules]]
    network = "home"      # a network name or id (prefix of 8+); omitted or "": every network
    from = "bravo"        # a peer (name, node id, unique id prefix), "tag:NAME", or "any"
    to = "22/tcp"         # "PORT/PROTO", "LO-HI/PROTO", "any/PROTO" (tcp, udp), "icmp" (echo), or "any"
    action = "allow"      # or "deny"

Semantics. A network no rule applies to is not filtered at all (everything from members is allowed, as before).
A network with at least one rule is default-deny for new inbound traffic on its device: its chain accepts
conntrack's established and related packets first, then the rules in file order (the first match wins), then
ICMP echo requests (ping works unless a rule above says otherwise: ``to = "icmp"`` or ``"any"`` with ``deny``),
then drops the rest with a counter. ``from = "tag:NAME"`` matches the mesh IPs of the members of an owned
network (docs/membership.md) whose verified certificate (the credential in their signed record, checked: chain,
signatures, expiry, revocations) carries the tag NAME (compared without case): ``tag_sources``. In an open network
nobody carries tags, so such a rule matches nobody there.

Objects in ``table inet omerta`` (shared with the exit node, ``vnet/exitrules.py``, which owns ``exit_*``):
everything here is named ``rules_*``: the base chain ``rules_input`` (hook input) jumps to ``rules_n_KEY`` per
filtered device (KEY: the network id's first 12 characters); one named counter per rule, ``rules_cN_HASH`` (N its
position in the file, HASH of its text: a changed rule starts from zero, an unchanged one keeps counting across
member changes and reloads) and per network ``rules_d_KEY`` (the default drop); per rule with a peer or tag
source the sets ``rules_sN_4`` / ``rules_sN_6`` of that peer's mesh IPs, rewritten as the assignment changes.

``sync_script`` is one nft transaction that brings the table from what exists (``owned`` of a listing) to what
is wanted, deleting what is no longer wanted; with nothing wanted it deletes every ``rules_*`` object.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence, Union

TABLE = "omerta"  # table inet omerta (vnet/exitrules.py adds its chains there too)
PREFIX = "rules_"
INPUT = "rules_input"
KEYS = ("network", "from", "to", "action")
PROTOS = ("tcp", "udp")
ACTIONS = {"allow": "accept", "deny": "drop"}
_TAG = re.compile(r"tag:[a-z0-9][a-z0-9_.-]{0,62}")

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class RuleError(ValueError):
    """A ``[[rules]]`` table is wrong; the message names the table, the cause and the fix."""


@dataclass(frozen=True)
class Rule:
    index: int  # 1-based position among the [[rules]] tables
    network: str  # "" = every network
    source: str  # "any", "tag:NAME" or a peer as written
    to: str  # as written
    action: str  # "allow" | "deny"
    proto: str | None  # "tcp", "udp", "icmp" or None (any)
    ports: tuple[int, int] | None  # an inclusive range, None = every port

    @property
    def counter(self) -> str:
        text = f"{self.network}|{self.source}|{self.to}|{self.action}"
        return f"{PREFIX}c{self.index}_{zlib.crc32(text.encode()) & 0xFFFFFF:06x}"

    @property
    def has_set(self) -> bool:
        return self.source != "any"

    @property
    def is_tag(self) -> bool:
        return self.source.startswith("tag:")

    def applies_to(self, name: str, network_id: str) -> bool:
        n = self.network.strip()
        return n in ("", name, network_id) or (len(n) >= 8 and network_id.startswith(n.lower()))

    def view(self) -> dict:
        return {"index": self.index, "network": self.network, "from": self.source, "to": self.to, "action": self.action}


def tag_sources(rule: Rule, members: Iterable[tuple[str, str, Address | None, Address | None]],
                tags: Mapping[tuple[str, str], Iterable[str]], keys: Iterable[str]) -> list[Address]:
    """The mesh IPs a ``tag:NAME`` rule matches: of each member (``members``: network id, node id, its mesh IPv4
    and IPv6) in a network of ``keys`` (the filtered chains' keys, a network id's first 12 characters) whose
    verified certificate carries NAME (``tags``: (network id, node id) -> the certificate's tags; only owned
    networks have any). Sorted, IPv4 first."""
    want, nets = rule.source[len("tag:"):], set(keys)
    return sorted((a for net, node, v4, v6 in members
                   if net[:12] in nets and want in {t.lower() for t in tags.get((net, node), ())}
                   for a in (v4, v6) if a is not None), key=lambda a: (a.version, int(a)))


def parse_to(text: str) -> tuple[str | None, tuple[int, int] | None]:
    """``to`` -> (protocol, port range); ValueError saying what is accepted."""
    t = text.strip().lower()
    if t == "any":
        return None, None
    if t in ("icmp", "ping"):
        return "icmp", None
    ports, sep, proto = t.partition("/")
    if not sep or proto not in PROTOS:
        raise ValueError(f'to = {text!r} is not a destination; use "PORT/tcp", "PORT/udp", "LO-HI/tcp", "any/udp", '
                         '"icmp" or "any"')
    if ports == "any":
        return proto, None
    lo, dash, hi = ports.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        raise ValueError(f"to = {text!r}: {ports!r} is not a port or LO-HI range; e.g. \"22/tcp\" or \"6000-6010/udp\"")
    a, b = int(lo), int(hi) if dash else int(lo)
    if not 1 <= a <= b <= 65535:
        raise ValueError(f"to = {text!r}: ports are 1-65535 and LO must not be above HI")
    return proto, (a, b)


def parse_rules(doc: Any) -> list[Rule]:
    """The ``[[rules]]`` array of tables (as tomllib gives it) -> rules; RuleError naming the table and the fix."""
    if not isinstance(doc, list) or not all(isinstance(t, dict) for t in doc):
        raise RuleError('rules must be an array of tables: [[rules]] with from, to, action (and network)')
    out: list[Rule] = []
    for i, t in enumerate(doc, 1):
        where = f"[[rules]] #{i}"
        for k, v in t.items():
            if k not in KEYS:
                raise RuleError(f"{where}: unknown key {k!r}; known keys: {', '.join(KEYS)}")
            if not isinstance(v, str):
                raise RuleError(f"{where}: {k} = {v!r} has the wrong type; it is a string")
        missing = [k for k in ("from", "to", "action") if k not in t]
        if missing:
            raise RuleError(f'{where}: {", ".join(missing)} missing; a rule needs from, to and action, e.g. '
                            'from = "any", to = "22/tcp", action = "allow"')
        source, action = t["from"].strip(), t["action"].strip().lower()
        if action not in ACTIONS:
            raise RuleError(f'{where}: action = {t["action"]!r}; use "allow" or "deny"')
        if source.lower() == "any":
            source = "any"
        elif source.lower().startswith("tag:"):
            source = source.lower()
            if not _TAG.fullmatch(source):
                raise RuleError(f"{where}: from = {t['from']!r} is not a tag; a tag is tag:NAME (letters, digits, '-', "
                                "'_', '.'; at most 63)")
        elif not source or any(c.isspace() for c in source):
            raise RuleError(f'{where}: from = {t["from"]!r} is not a peer; use a peer name, node id or id prefix, '
                            '"tag:NAME" or "any"')
        try:
            proto, ports = parse_to(t["to"])
        except ValueError as e:
            raise RuleError(f"{where}: {e}") from None
        out.append(Rule(i, t.get("network", "").strip(), source, t["to"].strip(), action, proto, ports))
    return out


# ---------------------------------------------------------------------------------------------- compiling


@dataclass(frozen=True)
class NetChain:
    """One filtered network: its device and the rules that apply to it, in file order."""

    key: str  # the network id's first 12 characters (chain and counter names)
    device: str  # om-NAME
    rules: tuple[Rule, ...]

    @property
    def chain(self) -> str:
        return f"{PREFIX}n_{self.key}"

    @property
    def drops(self) -> str:
        return f"{PREFIX}d_{self.key}"


def _sets(rule: Rule) -> tuple[str, str]:
    return f"{PREFIX}s{rule.index}_4", f"{PREFIX}s{rule.index}_6"


def _lines(rule: Rule) -> list[str]:
    """The nft rule bodies for ``rule`` (one per address family when a family matters)."""
    verdict = f'counter name "{rule.counter}" {ACTIONS[rule.action]}'
    fams: list[tuple[str, str]] = []  # (source match, family) pairs
    if rule.has_set:
        s4, s6 = _sets(rule)
        fams = [(f"ip saddr @{s4} ", "4"), (f"ip6 saddr @{s6} ", "6")]
    if rule.proto == "icmp":
        fams = fams or [("", "4"), ("", "6")]
        return [f"{src}{'icmp' if fam == '4' else 'icmpv6'} type echo-request {verdict}" for src, fam in fams]
    if rule.proto is None:
        dst = ""
    elif rule.ports is None:
        dst = f"meta l4proto {rule.proto} "
    else:
        lo, hi = rule.ports
        dst = f"{rule.proto} dport {lo if lo == hi else f'{lo}-{hi}'} "
    return [f"{src}{dst}{verdict}" for src, _ in (fams or [("", "")])]


def wanted(chains: Sequence[NetChain]) -> dict[str, set[str]]:
    """The ``rules_*`` objects the chains need, by kind (chain, set, counter)."""
    rules = {r.index: r for c in chains for r in c.rules}
    out: dict[str, set[str]] = {"chain": set(), "set": set(), "counter": set()}
    if chains:
        out["chain"] = {INPUT, *(c.chain for c in chains)}
        out["counter"] = {*(r.counter for r in rules.values()), *(c.drops for c in chains)}
        out["set"] = {s for r in rules.values() if r.has_set for s in _sets(r)}
    return out


def sync_script(chains: Sequence[NetChain], sources: Mapping[int, Iterable[Address]], owned: Mapping[str, set[str]]) -> str:
    """One transaction from ``owned`` (what exists, ``owned(listing)``) to ``chains``: objects added (counters
    that exist keep their values), sets refilled from ``sources`` (rule index -> its peer's mesh IPs), our chains
    rewritten, and every ``rules_*`` object no longer wanted deleted. Empty ``chains``: only deletions."""
    want = wanted(chains)
    lines = [f"add table inet {TABLE}"]
    t = f"inet {TABLE}"
    for name in sorted(want["counter"]):
        lines.append(f"add counter {t} {name}")
    rules = {r.index: r for c in chains for r in c.rules}
    for idx in sorted(rules):
        r = rules[idx]
        if not r.has_set:
            continue
        addrs = list(sources.get(idx, ()))
        for name, kind, version in zip(_sets(r), ("ipv4_addr", "ipv6_addr"), (4, 6)):
            lines += [f"add set {t} {name} {{ type {kind}; }}", f"flush set {t} {name}"]
            if elems := ", ".join(sorted(str(a) for a in addrs if a.version == version)):
                lines.append(f"add element {t} {name} {{ {elems} }}")
    if chains:
        lines.append(f"add chain {t} {INPUT} {{ type filter hook input priority filter; policy accept; }}")
        lines += [f"add chain {t} {c.chain}" for c in chains]
    for name in sorted(want["chain"] | owned.get("chain", set())):
        lines.append(f"flush chain {t} {name}")
    for kind in ("chain", "set", "counter"):  # (chains first: they refer to the sets and counters)
        lines += [f"delete {kind} {t} {name}" for name in sorted(owned.get(kind, set()) - want[kind])]
    for c in chains:
        lines.append(f'add rule {t} {INPUT} iifname "{c.device}" jump {c.chain}')
        add = f"add rule {t} {c.chain}"
        lines.append(f"{add} ct state established,related accept")
        lines += [f"{add} {body}" for r in c.rules for body in _lines(r)]
        lines += [f"{add} icmp type echo-request accept", f"{add} icmpv6 type echo-request accept",
                  f'{add} counter name "{c.drops}" drop']
    return "\n".join(lines) + "\n"


def owned(listing: dict | None) -> dict[str, set[str]]:
    """From ``nft -j list table inet omerta``: our (``rules_*``) chains, sets and counters by kind."""
    out: dict[str, set[str]] = {"chain": set(), "set": set(), "counter": set()}
    for item in (listing or {}).get("nftables", []):
        for kind, obj in item.items():
            if kind in out and str(obj.get("name", "")).startswith(PREFIX):
                out[kind].add(obj["name"])
    return out


def counters(listing: dict | None) -> dict[str, tuple[int, int]]:
    """Our named counters' (packets, bytes) from a JSON listing."""
    return {c["name"]: (int(c.get("packets", 0)), int(c.get("bytes", 0)))
            for item in (listing or {}).get("nftables", []) if (c := item.get("counter")) and c.get("name", "").startswith(PREFIX)}
