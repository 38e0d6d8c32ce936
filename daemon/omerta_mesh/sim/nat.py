"""A UDP NAT box that follows RFC 4787: mapping, filtering, port allocation, timeouts, hairpinning.

The box is a pure translation engine; ``SimInternet`` feeds it packets with the virtual time.

Mapping behaviour (which outbound flows share an external port), RFC 4787 section 4.1:

* ``EIM``  endpoint-independent: one mapping per internal ``ip:port`` for every destination;
* ``ADM``  address-dependent: one mapping per internal ``ip:port`` and destination IP;
* ``APDM`` address-and-port-dependent: one mapping per internal ``ip:port`` and destination ``ip:port``.

Filtering behaviour (which remotes may send in through a mapping), section 5:

* ``EIF``  any remote;  ``ADF``  remotes whose IP the mapping has sent to;
* ``APDF`` remotes whose exact ``ip:port`` the mapping has sent to.

Port allocation: ``PRESERVE`` keeps the internal port when free, else takes the next free one;
``SEQUENTIAL`` hands out ``first_port``, ``first_port + step``, ... (skipping ports in use); ``RANDOM`` draws
from the seeded entropy. A mapping expires ``timeout`` seconds after its last refresh (outbound traffic
always refreshes; inbound only with ``inbound_refresh``). Expired mappings are removed lazily as the clock
is seen to move. The table is bounded: when full, the least recently refreshed mapping is evicted.
Filter state lives as long as its mapping.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from omerta_mesh.core.entropy import Entropy, SeededEntropy
from omerta_mesh.core.nat.classify import Allocation
from omerta_mesh.core.nat.kinds import NAT_KINDS

from .trace import Address, DropReason

MappingKey = tuple[Any, ...]


class MappingBehavior(enum.Enum):
    """RFC 4787 mapping behaviour."""

    EIM = "endpoint-independent"
    ADM = "address-dependent"
    APDM = "address-and-port-dependent"


class FilteringBehavior(enum.Enum):
    """RFC 4787 filtering behaviour."""

    EIF = "endpoint-independent"
    ADF = "address-dependent"
    APDF = "address-and-port-dependent"


class PortAllocation(enum.Enum):
    """How the NAT picks the external port of a new mapping."""

    PRESERVE = "preserve"
    SEQUENTIAL = "sequential"
    RANDOM = "random"


@dataclass
class NatMapping:
    """One live mapping: ``internal`` is seen outside as ``(nat public ip, external_port)``."""

    internal: Address
    external_port: int
    key: MappingKey
    created_at: float
    refreshed_at: float
    remotes: set[Address] = field(default_factory=set)  # destinations sent to (filter state)
    remote_ips: set[str] = field(default_factory=set)


M, F, P = MappingBehavior, FilteringBehavior, PortAllocation
_ALLOC = {Allocation.PRESERVING: P.PRESERVE, Allocation.SEQUENTIAL: P.SEQUENTIAL, Allocation.RANDOM: P.RANDOM}
#: the named kinds (core/nat/kinds.py, the one table) as the simulator's NAT behaviours
PRESETS: dict[str, tuple[MappingBehavior, FilteringBehavior, PortAllocation]] = {
    kind: (M[m.name], F[f.name], _ALLOC[a]) for kind, (m, f, a) in NAT_KINDS.items()}


class NatBox:
    """An RFC 4787 UDP NAT. Attach it with ``SimInternet.add_nat``; hosts go ``behind`` it."""

    def __init__(
        self,
        mapping: MappingBehavior = MappingBehavior.EIM,
        filtering: FilteringBehavior = FilteringBehavior.APDF,
        port_alloc: PortAllocation = PortAllocation.PRESERVE,
        *,
        port_step: int = 1,
        port_range: tuple[int, int] = (1024, 65535),
        first_port: int | None = None,
        timeout: float = 30.0,
        inbound_refresh: bool = False,
        hairpin: bool = False,
        max_mappings: int = 4096,
        entropy: Entropy | None = None,
        name: str = "nat",
        public_ip: str | None = None,
        subnet: str | None = None,
    ) -> None:
        lo, hi = port_range
        if not (1 <= lo <= hi <= 65535):
            raise ValueError(f"bad port_range {port_range!r}")
        if port_step == 0 or max_mappings <= 0 or timeout <= 0:
            raise ValueError("port_step must be non-zero; max_mappings and timeout must be > 0")
        if max_mappings > hi - lo + 1:
            raise ValueError("max_mappings exceeds the number of ports in port_range")
        self.mapping = mapping
        self.filtering = filtering
        self.port_alloc = port_alloc
        self.port_step = port_step
        self.port_range = (lo, hi)
        self.timeout = float(timeout)
        self.inbound_refresh = inbound_refresh
        self.hairpin = hairpin
        self.max_mappings = max_mappings
        self.name = name
        self.ip: str | None = public_ip  # address on the outside (public, or private under a nested NAT)
        self.subnet = ipaddress.ip_network(subnet) if subnet else None
        self._entropy_given = entropy is not None
        self._entropy: Entropy = entropy if entropy is not None else SeededEntropy(f"nat:{name}")
        self._next_seq = first_port if first_port is not None else lo
        if not lo <= self._next_seq <= hi:
            raise ValueError("first_port outside port_range")
        self._by_key: dict[MappingKey, NatMapping] = {}
        self._by_port: OrderedDict[int, NatMapping] = OrderedDict()  # least recently refreshed first
        self.evicted = 0
        self.expired = 0
        # set by SimInternet when attached
        self.realm: NatBox | None = None
        self.link: Any = None

    @classmethod
    def preset(cls, kind: str, **overrides: Any) -> "NatBox":
        """A NAT of a named kind: full-cone, restricted, port-restricted, symmetric-sequential/-random."""
        try:
            mapping, filtering, alloc = PRESETS[kind]
        except KeyError:
            raise ValueError(f"unknown NAT preset {kind!r}; known: {', '.join(PRESETS)}") from None
        return cls(mapping, filtering, alloc, **overrides)

    def __repr__(self) -> str:
        return (
            f"NatBox({self.name!r}, {self.mapping.name}+{self.filtering.name}, {self.port_alloc.name}, "
            f"ip={self.ip}, subnet={self.subnet}, hairpin={self.hairpin})"
        )

    # ---------------------------------------------------------------- attachment (SimInternet)

    def attach(self, public_ip: str, subnet: str, entropy: Entropy) -> None:
        """Give the box its outside address, inside subnet and (unless one was passed) entropy."""
        self.ip = public_ip
        self.subnet = ipaddress.ip_network(subnet)
        if not self._entropy_given:
            self._entropy = entropy

    @property
    def lan_ip(self) -> str:
        """The box's own address on its inside network (first host of the subnet)."""
        if self.subnet is None:
            raise ValueError("NAT has no subnet yet")
        return str(next(iter(self.subnet.hosts())))

    def owns_inside(self, ip: str) -> bool:
        """True when ``ip`` is in this NAT's inside subnet."""
        return self.subnet is not None and ipaddress.ip_address(ip) in self.subnet

    # ---------------------------------------------------------------- translation

    def outbound(self, src: Address, dst: Address, now: float) -> Address:
        """Translate an inside->outside packet; returns the external source address. Never refuses."""
        if self.ip is None:
            raise ValueError("NAT has no public address; attach it first")
        self.expire(now)
        key = self._key(src, dst)
        m = self._by_key.get(key)
        if m is None:
            m = self._create(src, key, now)
        m.refreshed_at = now
        self._by_port.move_to_end(m.external_port)
        m.remotes.add(dst)
        m.remote_ips.add(dst[0])
        return (self.ip, m.external_port)

    def inbound(self, src: Address, dst: Address, now: float) -> tuple[Address | None, DropReason | None]:
        """Translate an outside->inside packet to ``dst`` (our public address): (internal, None) or a drop."""
        self.expire(now)
        m = self._by_port.get(dst[1]) if dst[0] == self.ip else None
        if m is None:
            return None, DropReason.NO_MAPPING
        if not self._allowed(m, src):
            return None, DropReason.NAT_FILTERED
        if self.inbound_refresh:
            m.refreshed_at = now
            self._by_port.move_to_end(m.external_port)
        return m.internal, None

    def _allowed(self, m: NatMapping, src: Address) -> bool:
        if self.filtering is FilteringBehavior.EIF:
            return True
        if self.filtering is FilteringBehavior.ADF:
            return src[0] in m.remote_ips
        return src in m.remotes

    def _key(self, src: Address, dst: Address) -> MappingKey:
        if self.mapping is MappingBehavior.EIM:
            return (src,)
        if self.mapping is MappingBehavior.ADM:
            return (src, dst[0])
        return (src, dst)

    def _create(self, src: Address, key: MappingKey, now: float) -> NatMapping:
        if len(self._by_port) >= self.max_mappings:
            _port, oldest = self._by_port.popitem(last=False)
            del self._by_key[oldest.key]
            self.evicted += 1
        port = self._allocate(src[1])
        m = NatMapping(internal=src, external_port=port, key=key, created_at=now, refreshed_at=now)
        self._by_key[key] = m
        self._by_port[port] = m
        return m

    def _allocate(self, wanted: int) -> int:
        lo, hi = self.port_range
        span = hi - lo + 1
        if self.port_alloc is PortAllocation.PRESERVE:
            start = wanted if lo <= wanted <= hi else lo
            return self._scan(start, 1)
        if self.port_alloc is PortAllocation.SEQUENTIAL:
            port = self._scan(self._next_seq, self.port_step)
            self._next_seq = lo + (port - lo + self.port_step) % span
            return port
        for _ in range(16):
            port = lo + self._entropy.randbelow(span)
            if port not in self._by_port:
                return port
        return self._scan(lo + self._entropy.randbelow(span), 1)

    def _scan(self, start: int, step: int) -> int:
        """The first free port at ``start``, ``start + step``, ... wrapping in the range."""
        lo, hi = self.port_range
        span = hi - lo + 1
        off = start - lo
        for _ in range(span):
            port = lo + off % span
            if port not in self._by_port:
                return port
            off += step
        for port in range(lo, hi + 1):  # a step sharing a factor with span can miss free ports
            if port not in self._by_port:
                return port
        raise RuntimeError("no free NAT port (cannot happen: max_mappings <= ports)")  # pragma: no cover

    # ---------------------------------------------------------------- state

    def expire(self, now: float) -> int:
        """Drop mappings idle for ``timeout`` seconds or more; returns how many were removed."""
        n = 0
        while self._by_port:
            port, m = next(iter(self._by_port.items()))
            if now - m.refreshed_at < self.timeout:
                break
            del self._by_port[port]
            del self._by_key[m.key]
            n += 1
        self.expired += n
        return n

    def mappings(self, now: float | None = None) -> list[NatMapping]:
        """Live mappings (expiring old ones first when ``now`` is given), least recently refreshed first."""
        if now is not None:
            self.expire(now)
        return list(self._by_port.values())

    def mapping_for(self, internal: Address, now: float | None = None) -> list[NatMapping]:
        """Live mappings whose inside address is ``internal``."""
        return [m for m in self.mappings(now) if m.internal == internal]
