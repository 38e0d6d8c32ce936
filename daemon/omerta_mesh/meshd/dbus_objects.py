"""The D-Bus object tree under /org/omerta/Mesh1: one object per network and per peer, with typed properties.

NetworkManager's and systemd's shape: the root object carries ``org.freedesktop.DBus.ObjectManager``
(``GetManagedObjects`` lists every object below with all its properties), and

* ``/org/omerta/Mesh1/network/<network id>`` carries ``org.omerta.Mesh1.Network``;
* ``/org/omerta/Mesh1/peer/<network id>_<node id>`` carries ``org.omerta.Mesh1.Peer`` (a node that is in two
  of our networks is two peers, as in ``peers.list``).

The properties are the fields of the schema's ``NetworkInfo`` and ``PeerInfo`` (what ``network.list`` and
``peers.list`` return), CamelCased and typed by ``dbus_codec`` (``rtt_ms`` -> ``RttMs`` d, ``bytes_in`` ->
``BytesIn`` x), with a few renamed (``RENAME``), plus ``State``, ``PathKind`` and ``NetworkObject`` on peers.
D-Bus has no null: a null string reads as ``""``, a null number as ``-1``.

``ObjectTree.sync`` compares what the node holds now with what is exported: objects that appeared are
exported (``InterfacesAdded``), those gone are removed (``InterfacesRemoved``), and changed properties are
sent in one ``PropertiesChanged`` per object. Both ObjectManager signals come from the root path, as the
specification says (dbus-fast would send them from the object's own path; ``TreeBus`` corrects that). The
caller (``DbusService``) decides when to sync: after events, coalesced, and every few seconds for counters.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any

from dbus_fast import Message, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_property

from . import dbus_codec as codec
from . import schema as s
from . import views
from .registry import DBUS_NETWORK_IFACE, DBUS_PATH, DBUS_PEER_IFACE, dbus_member

if TYPE_CHECKING:
    from .api import DaemonAPI

OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
MAX_CHANGES = 256  # exports, removals and PropertiesChanged per sync: a burst of peers is spread over syncs
RENAME = {"ipv4": "MeshIPv4", "ipv6": "MeshIPv6"}
NETWORK_RENAME = {**RENAME, "network": "Id", "peers": "PeerCount", "connected": "ConnectedPeers"}
PEER_RENAME = {**RENAME, "network": "NetworkId"}


@dataclasses.dataclass(frozen=True)
class Prop:
    name: str  # the D-Bus property
    field: str  # the schema field it comes from ("" for a derived one)
    sig: str
    null: Any  # what a null value reads as


def schema_props(cls: type, rename: dict[str, str]) -> list[Prop]:
    out = []
    for name, tp in codec.result_fields(cls):
        sig = codec.dbus_type(tp)
        out.append(Prop(rename.get(name, dbus_member(name)), name, sig, "" if sig == "s" else -1.0 if sig == "d" else -1))
    return out


NETWORK_PROPS = schema_props(s.NetworkInfo, NETWORK_RENAME)
PEER_PROPS = schema_props(s.PeerInfo, PEER_RENAME) + [
    Prop("State", "", "s", ""),  # "connected", or "connecting" (known, no session now)
    Prop("PathKind", "", "s", ""),  # "direct", "punched", "relay", or "none" without a session
    Prop("NetworkObject", "", "o", DBUS_PATH),  # the network's object
]


def network_path(network: str) -> str:
    return f"{DBUS_PATH}/network/{network}"


def peer_path(network: str, node: str) -> str:
    return f"{DBUS_PATH}/peer/{network}_{node}"


def _values(props: list[Prop], info: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    d = dataclasses.asdict(info)
    out = {}
    for p in props:
        v = d.get(p.field) if p.field else (extra or {}).get(p.name)
        out[p.name] = p.null if v is None else float(v) if p.sig == "d" else v
    return out


def network_values(n: s.NetworkInfo) -> dict[str, Any]:
    return _values(NETWORK_PROPS, n)


def peer_values(p: s.PeerInfo) -> dict[str, Any]:
    kind = "none" if p.path is None else "relay" if p.path.startswith("relay") else p.path
    return _values(PEER_PROPS, p, {"State": "connected" if p.connected else "connecting", "PathKind": kind,
                                   "NetworkObject": network_path(p.network)})


class TreeObject(ServiceInterface):
    """One network or peer: its property values, read by the generated getters."""

    props: list[Prop] = []

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(self.iface)
        self.values = values

    iface = ""

    def variants(self) -> dict[str, Variant]:
        return {p.name: Variant(p.sig, self.values[p.name]) for p in self.props}

    def update(self, values: dict[str, Any]) -> dict[str, Any]:
        """Take the new values; returns those that changed."""
        changed = {k: v for k, v in values.items() if self.values.get(k) != v}
        self.values = values
        return changed


def _getter(p: Prop) -> Any:
    def get(self: TreeObject) -> Any:
        return self.values[p.name]

    get.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)], return_annotation=p.sig)
    get.__name__ = get.__qualname__ = f"p_{p.name}"  # dbus-fast finds the getter by this name
    return dbus_property(access=PropertyAccess.READ, name=p.name)(get)


def _object_class(name: str, iface: str, props: list[Prop]) -> type[TreeObject]:
    ns: dict[str, Any] = {f"p_{p.name}": _getter(p) for p in props}
    ns.update(iface=iface, props=props)
    return type(name, (TreeObject,), ns)


NetworkObject = _object_class("NetworkObject", DBUS_NETWORK_IFACE, NETWORK_PROPS)
PeerObject = _object_class("PeerObject", DBUS_PEER_IFACE, PEER_PROPS)


class TreeBus(MessageBus):
    """A MessageBus that sends ObjectManager signals from the manager (the root), for tree objects only."""

    def _emit_interface_added(self, path: str, interface: ServiceInterface) -> None:
        if isinstance(interface, TreeObject) and not self._disconnected:
            self.send(Message.new_signal(DBUS_PATH, OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}",
                                         [path, {interface.name: interface.variants()}]))

    def _emit_interface_removed(self, path: str, removed_interfaces: list[str]) -> None:
        if path.startswith(DBUS_PATH + "/") and not self._disconnected:
            self.send(Message.new_signal(DBUS_PATH, OBJECT_MANAGER, "InterfacesRemoved", "oas", [path, removed_interfaces]))


class ObjectTree:
    """What is exported below the root; ``sync`` brings it in line with the node."""

    def __init__(self, api: "DaemonAPI") -> None:
        self.api = api
        self.objects: dict[str, TreeObject] = {}
        self.added = self.removed = self.changes = 0  # counted for status.get

    def wanted(self) -> dict[str, tuple[type[TreeObject], dict[str, Any]]]:
        """Path -> (object class, property values) of every network and peer now; networks first."""
        api = self.api
        view = api.node.snapshot()
        api.directory(view=view)
        want: dict[str, tuple[type[TreeObject], dict[str, Any]]] = {}
        for n in views.networks(view, api.vnet):
            want[network_path(n.network)] = (NetworkObject, network_values(n))
        for p in view.peers:
            info = views.peer_info(api, p)
            want[peer_path(info.network, info.node_id)] = (PeerObject, peer_values(info))
        return want

    def reset(self) -> None:
        """Forget what was exported (the bus connection it was on is gone)."""
        self.objects = {}

    def sync(self, bus: MessageBus) -> bool:
        """Export, remove and update objects; at most MAX_CHANGES of them. Returns whether all was done."""
        want = self.wanted()
        budget = MAX_CHANGES
        for path in sorted(set(self.objects) - set(want), reverse=True):  # peers before their network
            if budget == 0:
                return False
            bus.unexport(path)
            del self.objects[path]
            self.removed += 1
            budget -= 1
        for path, (cls, values) in want.items():
            if budget == 0:
                return False
            obj = self.objects.get(path)
            if obj is None:
                self.objects[path] = obj = cls(values)
                bus.export(path, obj)
                self.added += 1
                budget -= 1
            elif changed := obj.update(values):
                obj.emit_properties_changed(changed)
                self.changes += 1
                budget -= 1
        return True
