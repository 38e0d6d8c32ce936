"""The NAT kinds by name: the one table of what each named kind of NAT router does (RFC 4787 terms).

``NatVerdict.label`` names a verdict with these names; the simulator's NAT presets (``sim/nat.py``), the
real nftables lab (``tests/netns/labnat.py``), the connectivity design (``tests/nat_design.py``) and the
netns matrix's expected verdicts use the same kinds: ``tests/test_shared_rules.py`` pins every copy to
this table.
"""

from __future__ import annotations

from .classify import Filtering, Mapping

#: kind -> (mapping, filtering, port allocation as NatVerdict.allocation states it)
NAT_KINDS: dict[str, tuple[Mapping, Filtering, str]] = {
    "full-cone": (Mapping.EIM, Filtering.EIF, "preserving"),
    "restricted": (Mapping.EIM, Filtering.ADF, "preserving"),
    "port-restricted": (Mapping.EIM, Filtering.APDF, "preserving"),
    "symmetric-sequential": (Mapping.APDM, Filtering.APDF, "sequential"),
    "symmetric-random": (Mapping.APDM, Filtering.APDF, "random"),
}
#: a node with no NAT in front of it
PUBLIC = "public"
#: every kind a node can be behind, the public one first
ALL_KINDS: tuple[str, ...] = (PUBLIC, *NAT_KINDS)
