"""The host's side of removal (docs/membership.md 5): an owned network's revocations across restarts.

* Saved in ``<state>/members/<network id>.json`` (io/memberstate.py ``MembersState.revocations``, the signed bytes
  as taken) whenever the core takes a new one (``MemberRemoved``: ours from ``remove_member``, or one a member
  spread), the rest of the file (tokens, marks, enrolments: io/enrolstate.py) kept as it is.
* Given back to the core at start (``Members.restore_revocations``), before the peer cache (io/peercache.py
  ``restore_peers``): a removed node is not added back from it (``add_peer`` refuses it; the entry is skipped with a
  warning) and its handshakes are refused from the first one.
"""

from __future__ import annotations

import logging

from ..core import events as ev
from ..core.ids import NetworkId
from ..core.mesh import Mesh
from .memberstate import MemberFiles
from .store import StateNotSaved, StateStore

log = logging.getLogger("omerta_mesh.io.revocstate")


def save_revocations(e: ev.Event, mesh: Mesh, store: StateStore | None) -> None:
    """After a ``MemberRemoved``: write the network's revocations now (a failed write is logged: the core holds them
    for this run, and members tell them again when sessions come up after a restart)."""
    if not isinstance(e, ev.MemberRemoved) or store is None or e.network.raw not in mesh.networks:
        return
    try:
        store.members.update(e.network, revocations=tuple(mesh.members.revocations(e.network)))
    except StateNotSaved as err:
        log.error("revocations of network %s not saved: %s", e.network, err)


def restore_revocations(files: MemberFiles, mesh: Mesh, network: NetworkId, now: float) -> None:
    """Give the core back the owned ``network``'s saved revocations (expired or damaged ones are left out)."""
    left = mesh.members.restore_revocations(network, files.load(network).revocations, now)
    if left:
        log.info("members/%s.json: %d expired or unusable revocations left out", network.text(), left)
