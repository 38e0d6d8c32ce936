"""The host's side of key rotation (docs/membership.md 6): an owned network's key across restarts.

* After a ``NetworkRekeyed`` the network's entry in networks.json gets the new key and epoch (its id is kept), the
  owner's signed rotation (told to members that were away, at their first session) and the previous keys still
  accepted, each with the wall-clock end of its grace; the rest of the entry (credential, origin) stays.
* At start ``restore_rotation`` gives the core the rotation and the previous keys back (``Rotation.restore``), so a
  member that was away during the rotation still gets in under the old key, and learns the new one, after a restart.
"""

from __future__ import annotations

import dataclasses
import logging

from ..core import events as ev
from ..core.mesh import Mesh
from .store import NetworkState, StateNotSaved, StateStore

log = logging.getLogger("omerta_mesh.io.rekeystate")


def save_rotation(e: ev.Event, mesh: Mesh, store: StateStore | None, now: float) -> None:
    """After a ``NetworkRekeyed``: write the network's new key now (a failed write is logged: the core holds the key
    for this run; after a restart under the old one, a member tells this node the rotation again within the grace)."""
    if not isinstance(e, ev.NetworkRekeyed) or store is None or (net := mesh.networks.get(e.network.raw)) is None:
        return
    entry = dataclasses.replace(store.network_state(net.id) or NetworkState(net), network=net, rekey=mesh.credentials.rekey(net.id),
                                previous=tuple(mesh.rotation.previous(net.id, now)))
    try:
        store.save_networks([entry if n.id == net.id else n for n in mesh.networks.values()])
    except StateNotSaved as err:
        log.error("network %s: its new key (epoch %d) was not saved: %s", net.id, net.epoch, err)


def restore_rotation(mesh: Mesh, st: NetworkState, now: float) -> None:
    """Give the core what the last rotation left (nothing for a network at its first key)."""
    if st.rekey or st.previous:
        mesh.rotation.restore(st.network.id, st.rekey, list(st.previous), now)
