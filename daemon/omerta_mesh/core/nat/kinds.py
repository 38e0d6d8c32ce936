"""The NAT kinds by name: the one table of what each named kind of NAT router does (RFC 4787 terms).

``NatVerdict.label`` names a verdict with these names; the simulator's NAT presets (``sim/nat.py``) derive from it; the
real nftables lab (``tests/netns/labnat.py``), the connectivity design (``tests/nat_design.py``) and the
netns matrix's expected verdicts use the same kinds: ``tests/test_shared_rules.py`` pins every copy to
this table.
"""

from __future__ import annotations

from .classify import Allocation, Filtering, Mapping

#: kind -> (mapping, filtering, port allocation as NatVerdict.allocation states it)
NAT_KINDS: dict[str, tuple[Mapping, Filtering, Allocation]] = {
    "full-cone": (Mapping.EIM, Filtering.EIF, Allocation.PRESERVING),
    "restricted": (Mapping.EIM, Filtering.ADF, Allocation.PRESERVING),
    "port-restricted": (Mapping.EIM, Filtering.APDF, Allocation.PRESERVING),
    "symmetric-sequential": (Mapping.APDM, Filtering.APDF, Allocation.SEQUENTIAL),
    "symmetric-random": (Mapping.APDM, Filtering.APDF, Allocation.RANDOM),
}
#: a node with no NAT in front of it
PUBLIC = "public"
#: every kind a node can be behind, the public one first
ALL_KINDS: tuple[str, ...] = (PUBLIC, *NAT_KINDS)
