"""The connectivity design, as one table both the simulator and the real NAT lab are checked against."""

from __future__ import annotations

from omerta_mesh.core.nat.kinds import ALL_KINDS

KINDS = list(ALL_KINDS)  # the one table of NAT kinds (core/nat/kinds.py)


def design(a: str, b: str) -> str:
    """What the design predicts for a pair of NAT kinds: "direct" (possibly after a punch) or "relay"."""
    pair = {a, b}
    if pair & {"public", "full-cone"}:
        return "direct"  # one side accepts unsolicited packets
    sym = {k for k in pair if k.startswith("symmetric")}
    if not sym:
        return "direct"  # restricted / port-restricted cones punch
    if a.startswith("symmetric") and b.startswith("symmetric"):
        # both pick a new port per destination: only two sequential NATs can aim (both predict, lock step)
        return "direct" if sym == {"symmetric-sequential"} else "relay"
    other = (pair - sym).pop()
    if other == "restricted":
        return "direct"  # address-dependent filtering opens for any port of the symmetric side
    return "direct" if sym == {"symmetric-sequential"} else "relay"  # port prediction, or nothing to aim at
