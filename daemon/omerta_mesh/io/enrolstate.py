"""The host's side of enrolment (docs/membership.md 3.3, 3.4): what it keeps across restarts and who waits for it.

* An admin's invite tokens, the use marks it holds and the credential each node it enrolled got go in
  ``<state>/members/<network id>.json`` through the members store (io/memberstate.py), beside the revocations
  (left as they are): saved when it makes an invite and when it redeems one (``InviteRedeemed``), given back to
  the core at start.
* A joiner's credential, once an admin issued it (``Enrolled``), goes in networks.json in place of the invite it
  joined with (kept until then, so a restart asks again; dropped too when the invite is refused for good); a ``join``
  waiting for the answer is woken, or told the refusal in words (``EnrolmentRefused``: used, expired, ... and the fix).
  A renewed credential (``CredentialRenewed``, docs/membership.md 2.5) replaces the saved one the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from ..core import events as ev
from ..core.errors import UsageError
from ..core.ids import NetworkId
from ..core.member.enrolment import Enrolment
from ..core.mesh import Mesh
from ..core.network import Network
from ..core.wire.enrol import EnrolStatus
from .memberstate import Enrolled, MemberFiles
from .store import NetworkState, StateNotSaved, StateStore

log = logging.getLogger("omerta_mesh.io.enrolstate")
EnrolEvent = ev.Enrolled | ev.EnrolmentRefused | ev.InviteRedeemed | ev.CredentialRenewed
ENROL_EVENTS = (ev.Enrolled, ev.EnrolmentRefused, ev.InviteRedeemed, ev.CredentialRenewed)


def save_enrolment(files: MemberFiles, enrolment: Enrolment, network: NetworkId) -> None:
    """Write ``network``'s tokens, marks and enrolments now (StateNotSaved when the disk refuses)."""
    marks, tokens, enrolled = enrolment.export(network)
    files.update(network, marks=marks, tokens=tokens, enrolled=tuple(Enrolled(t, n, c) for t, n, c in enrolled))


def restore_enrolment(files: MemberFiles, enrolment: Enrolment, net: Network, wall: float) -> None:
    """Give the enrolment back what was saved for the owned ``net`` (expired or damaged entries are left out)."""
    st = files.load(net.id)
    left = enrolment.restore(net, st.marks, st.tokens, [(e.token_id, e.node, e.credential) for e in st.enrolled], wall)
    if left:
        log.info("members/%s.json: %d expired or unusable invite entries left out", net.id.text(), left)


class EnrolWaits:
    """``join`` calls awaiting their enrolment's answer, by network; and what each answer changes on disk."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, asyncio.Future[None]] = {}

    def expect(self, network: NetworkId) -> asyncio.Future[None]:
        fut = self._waiting[network.raw] = asyncio.get_running_loop().create_future()
        return fut

    def done(self, network: NetworkId) -> None:
        self._waiting.pop(network.raw, None)

    def on_event(self, e: EnrolEvent, mesh: Mesh, store: StateStore | None) -> None:
        try:
            if isinstance(e, ev.InviteRedeemed) and store is not None:
                save_enrolment(store.members, mesh.enrolment, e.network)
            elif store is not None and (isinstance(e, (ev.Enrolled, ev.CredentialRenewed))
                                        or isinstance(e, ev.EnrolmentRefused) and e.reason != EnrolStatus.NOT_ADMIN.word):
                net = mesh.network(e.network)  # enrolled, or refused for good: the invite is not asked again at start
                old = store.network_state(e.network) or NetworkState(net)
                entry = dataclasses.replace(old, network=net, credential=mesh.credentials.own(e.network), invite=None)
                store.save_networks([entry if n.id == e.network else n for n in mesh.networks.values()])
        except StateNotSaved as err:  # kept in memory: this run goes on; a restart enrols again (the same credential)
            log.error("enrolment in network %s not saved: %s", e.network, err)
        fut = self._waiting.get(e.network.raw)
        if fut is None or fut.done() or isinstance(e, (ev.InviteRedeemed, ev.CredentialRenewed)):
            return
        if isinstance(e, ev.Enrolled):
            fut.set_result(None)
        else:
            fut.set_exception(UsageError(f"the invite was refused by {e.peer.short()}: {e.reason}; {e.fix}"))
