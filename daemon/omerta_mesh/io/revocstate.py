"""The host's side of removal (docs/membership.md 5): an owned network's revocations across restarts.

* Saved in ``<state>/members/<network id>.json`` (io/memberstate.py ``MembersState.revocations``, the signed bytes
  as taken) whenever the core takes a new one (``MemberRemoved``: ours from ``remove_member``, or one a member
  spread), the rest of the file (tokens, marks, enrolments: io/enrolstate.py) kept as it is.
* Given back to the core at start (``Members.restore_revocations``), before the peer cache: a removed node is not
  added back from it (``add_peer`` refuses it; the entry is skipped with a warning) and its handshakes are refused
  from the first one.
"""

from __future__ import annotations

import dataclasses
import logging

from ..core import events as ev
from ..core.errors import UsageError
from ..core.ids import NetworkId, NodeId
from ..core.mesh import Mesh
from .memberstate import MemberFiles
from .peercache import PEER_CACHE_MAX
from .store import StateNotSaved, StateStore

Address = tuple[str, int]
log = logging.getLogger("omerta_mesh.io.revocstate")


def save_revocations(e: ev.Event, mesh: Mesh, store: StateStore | None) -> None:
    """After a ``MemberRemoved``: write the network's revocations now (a failed write is logged: the core holds them
    for this run, and members tell them again when sessions come up after a restart)."""
    if not isinstance(e, ev.MemberRemoved) or store is None or e.network.raw not in mesh.networks:
        return
    try:
        kept = store.members.load(e.network)
        store.members.save(e.network, dataclasses.replace(kept, revocations=tuple(mesh.members.revocations(e.network))))
    except StateNotSaved as err:
        log.error("revocations of network %s not saved: %s", e.network, err)


def restore_revocations(files: MemberFiles, mesh: Mesh, network: NetworkId, now: float) -> None:
    """Give the core back the owned ``network``'s saved revocations (expired or damaged ones are left out)."""
    left = mesh.members.restore_revocations(network, files.load(network).revocations, now)
    if left:
        log.info("members/%s.json: %d expired or unusable revocations left out", network.text(), left)


def restore_peers(store: StateStore, mesh: Mesh, max_endpoints: int, now: float) -> None:
    """The peer cache's entries (checked: damaged ones skipped), as peers to reconnect to; a removed node is not."""
    for p in store.load_peers()["peers"][:PEER_CACHE_MAX]:
        nid, node = NetworkId.parse(p["network"]), NodeId.parse(p["node"])
        eps: list[Address] = [(h, port) for h, port in p["endpoints"]][:max_endpoints]
        if nid.raw in mesh.networks and eps:
            try:
                mesh.add_peer(nid, node, eps, now)
            except UsageError as e:  # e.g. our own node id, a removed node: the entry only costs a reconnect
                log.warning("peer cache: %s in network %s not restored: %s", node.short(), nid, e)
