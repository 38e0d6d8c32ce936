"""The host's side of membership across restarts (docs/membership.md): what ``MeshNode`` saves after the core's
membership events and gives back at start, in one place; and open networks becoming owned (section 7).

* An open network's owner claim we follow (``OwnerClaimed``, adopted: ours or the owner's) is saved in its entry of
  networks.json (``claim``, and ``claim_credential``: the owner's certificate for us) and given back at start; when it
  is enforced (``NetworkOwned``) the entry becomes an owned network's (``owner``, ``credential``) and the claim goes.
* At start, an open network's inviter (``origin: joined``) is the node whose claim we follow; an entry an earlier version
  wrote without ``origin`` follows the first claim it sees. An open network this node created (``origin: created``)
  that was not made open on purpose (``open``: this version's ``--open``) is claimed by this node at once: the creator
  becomes its owner, and members follow within ``[node] owner_transition``. An earlier version's entry without
  ``origin`` cannot tell who created it: the log says to run ``omertactl network own NETWORK`` on the machine that did.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from ..core import events as ev
from ..core.errors import WireError
from ..core.member.migration import FIRST
from ..core.mesh import Mesh
from .enrolstate import restore_enrolment
from .rekeystate import restore_rotation, save_rotation
from .revocstate import restore_revocations, save_revocations
from .store import NetworkState, StateNotSaved, StateStore

log = logging.getLogger("omerta_mesh.io.ownership")


def restore_membership(store: StateStore, mesh: Mesh, st: NetworkState, now: float) -> None:
    """What the core needs back of a network at start besides its key and our credential."""
    net = st.network
    if net.owner is not None:  # the invites we issued and redeemed there, its revocations, a rotated key's previous ones
        restore_enrolment(store.members, mesh.enrolment, net, now + mesh.wall_offset)
        restore_revocations(store.members, mesh, net.id, now)
        restore_rotation(mesh, st, now)
        return
    migration, name = mesh.members.migration, net.name or str(net.id)
    if st.origin == "joined" or st.origin is None:
        migration.expect(net.id, st.inviter if st.origin == "joined" else FIRST)
    if st.claim:
        try:
            migration.restore(net.id, st.claim, st.claim_credential)
        except WireError as e:
            log.warning("network %s: the owner claim saved in networks.json is damaged (%s); it is left out, and the "
                        "owner's next message brings it again", name, e)
    elif st.origin == "created" and not st.stays_open:
        claim = mesh.act(now, lambda out: migration.own(net.id, now, out))
        log.info("network %s was created open on this node by an earlier version: this node owns it now; members that "
                 "run this version follow, and it is owned from %s on (members that never upgrade are left out then)",
                 name, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(claim.enforce_at)))
    elif st.origin is None:
        log.warning("network %s has no owner, and the version that joined or created it did not record who created it; "
                    "if this machine created it, run `omertactl network own %s` so that members can be removed", name, name)


def save_membership(e: ev.Event, mesh: Mesh, store: StateStore | None, now: float) -> None:
    """After a membership event of the core: what it changed, written now (a failed write is logged)."""
    save_revocations(e, mesh, store)  # a MemberRemoved: the network's revocations
    save_rotation(e, mesh, store, now)  # a NetworkRekeyed: the new key
    if store is None or not isinstance(e, (ev.OwnerClaimed, ev.NetworkOwned)) or (net := mesh.networks.get(e.network.raw)) is None:
        return
    if isinstance(e, ev.OwnerClaimed) and not e.adopted:
        return
    old = store.network_state(net.id) or NetworkState(net)
    migration = mesh.members.migration
    if isinstance(e, ev.NetworkOwned):
        entry = dataclasses.replace(old, network=net, credential=mesh.credentials.own(net.id), stays_open=False, claim=None,
                                    claim_credential=None)
    elif (claim := migration.claim(net.id)) is not None:
        entry = dataclasses.replace(old, network=net, claim=claim.encode(), claim_credential=migration.credential(net.id))
    else:
        return
    try:
        store.save_networks([entry if n.id == net.id else n for n in mesh.networks.values()])
    except StateNotSaved as err:
        log.error("network %s: its owner claim was not saved (%s); this run follows it, and the owner tells it again after a "
                  "restart", net.name or net.id, err)
