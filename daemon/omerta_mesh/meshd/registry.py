"""The method registry: each DaemonAPI operation declared once, with its name, access level and types.

``@api_method("peers.list", READ, PeersListRequest, PeersListResult)`` marks a DaemonAPI coroutine; both
IPC faces are generated from ``methods()``: JSON-RPC uses the dotted name, D-Bus the CamelCase of it
(``peers.list`` -> ``PeersList``) on ``org.omerta.Mesh1`` for read methods and ``org.omerta.Mesh1.Admin``
for write methods, so the bus policy can admit everyone to the first and only the group to the second.
"""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass
from typing import Callable

API_VERSION = 1
# counts additive changes within API_VERSION (2: status.dbus, netcheck hairpinning, peer.punch_finished;
# 3: ip.get, status.vnet, mesh IPs in peers.list/peers.get/network.list/status networks;
# 4: forward.add|remove|list, forwards in streams.list, StreamInfo.forward;
# 5: status.socks; 6: metrics.get, status.metrics;
# 7: D-Bus object tree (ObjectManager, one object per network and per peer), results typed from the schema;
# 8: dns.get, status.dns; 9: exit.status|offer|use; 10: rules.list; 11: routes.list|advertise|withdraw|accept|unaccept;
# 12: status.write_group; 13: status.exit|routes|dns_resolved|dns_servers, peers' routes|routes_accepted|routes_active|
# exit_offered|exit_used, exit.status using_name, the source of routes.list's accepted pairs;
# 14: exit.use allow_lan, exit.status families|allow_lan|lan (IPv6 exits); 15: StreamInfo.via, stream null for a
# peer's kernel TCP through the stream gate; 16: owned networks: network.create owned, network.invite uses|expires|
# name|tags, network.join of omerta2- invites (enrolment), peers' role|tags|cert_expires, networks' owner;
# 17: network.remove; 18: network.invites, network.revoke_invite; 19: the membership events member.enrolled|
# enrolment_refused|removed, invite.redeemed, network.rekeyed, credential.renewed|renewal_refused, by/by_name fields);
# 20: network.rekey, networks' epoch, network.remove epoch; 21: in-band invites: network.invite to (sent_to, offer),
# network.offers, network.accept, the invite.offered event; 22: network.admin; 23: open networks becoming owned:
# network.own, network.accept_owner, networks' claim_owner|owned_from|claims_waiting, the network.owner_claimed and
# network.owned events, network.join enrolled_by (omerta3- invites name other admins)
API_REVISION = 23

DBUS_NAME = "org.omerta.Mesh1"
DBUS_PATH = "/org/omerta/Mesh1"
DBUS_IFACE = "org.omerta.Mesh1"
DBUS_ADMIN_IFACE = "org.omerta.Mesh1.Admin"
DBUS_NETWORK_IFACE = "org.omerta.Mesh1.Network"  # at /org/omerta/Mesh1/network/<network id>
DBUS_PEER_IFACE = "org.omerta.Mesh1.Peer"  # at /org/omerta/Mesh1/peer/<network id>_<node id>


class Access(enum.Enum):
    READ = "read"
    WRITE = "write"


READ, WRITE = Access.READ, Access.WRITE


@dataclass(frozen=True)
class MethodSpec:
    name: str
    access: Access
    request: type
    result: type
    doc: str
    attr: str
    streams: bool = False

    @property
    def dbus_name(self) -> str:
        return dbus_member(self.name)


def dbus_member(dotted: str) -> str:
    return "".join(w[:1].upper() + w[1:] for part in dotted.split(".") for w in part.split("_"))


def api_method(name: str, access: Access, request: type, result: type, streams: bool = False) -> Callable[[Callable], Callable]:
    def mark(fn: Callable) -> Callable:
        doc = inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        fn.__api_spec__ = MethodSpec(name, access, request, result, doc, fn.__name__, streams)  # type: ignore[attr-defined]
        return fn

    return mark


def methods(api_cls: type) -> list[MethodSpec]:
    specs = [v.__api_spec__ for v in vars(api_cls).values() if hasattr(v, "__api_spec__")]
    return sorted(specs, key=lambda s: s.name)


def spec_map(api_cls: type) -> dict[str, MethodSpec]:
    return {s.name: s for s in methods(api_cls)}
