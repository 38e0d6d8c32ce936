"""The D-Bus face: org.omerta.Mesh1 at /org/omerta/Mesh1, generated from the method registry.

* ``org.omerta.Mesh1``: the read methods (CamelCase of the JSON-RPC names: ``peers.list`` -> ``PeersList``),
  read-only properties (``NodeId``, ``Status``, ``StatusText``, ``PeerCount``, ``ConnectedPeers``,
  ``ApiVersion``, ``ApiRevision``), and the signals ``Events(aa{sv})`` and ``EventsDropped(t)``.
* ``org.omerta.Mesh1.Admin``: the write methods. The bus policy (packaging/dbus/org.omerta.Mesh1.conf)
  lets everyone call the first, only root and the ``omerta`` group the second, and only root own the name;
  the same rules as the JSON-RPC socket.

Every method is one line into ``DaemonAPI.call_spec``; an ``ApiError`` becomes the D-Bus error
``org.omerta.Mesh1.Error.<Name>`` with the text "<message> (fix: <fix>)". Results are ``a{sv}``
(``dbus_codec``).

Events are coalesced into ``Events`` signals of at most ``dbus.signal_batch`` events, at most
``dbus.signal_rate`` per second, and only when the bus connection's write queue is empty: dbus-fast drops
the whole bus connection when a send hits EAGAIN during a burst. What does not fit is dropped oldest-first
and counted in an ``EventsDropped`` signal. Clients line deltas up with ``EventsSubscribe``'s snapshot by
``seq``.
"""

import asyncio
import inspect
import logging
from typing import Annotated, Any

from dbus_fast import BusType, DBusError, RequestNameReply
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature, DBusStr, DBusUInt32, DBusUInt64
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

from . import dbus_codec as codec
from . import views
from .api import CallContext, DaemonAPI
from .auth import Caller
from .errors import ApiError, internal
from .registry import API_REVISION, API_VERSION, DBUS_ADMIN_IFACE, DBUS_IFACE, DBUS_NAME, DBUS_PATH, READ, WRITE, MethodSpec
from .schema import to_json

log = logging.getLogger("omerta_mesh.meshd.dbus")

EMITTER_QUEUE = 8192
VarDict = Annotated[dict, DBusSignature("a{sv}")]
VarDictList = Annotated[list, DBusSignature("aa{sv}")]


class _Base(ServiceInterface):
    def __init__(self, name: str, service: "DbusService") -> None:
        super().__init__(name)
        self._service = service

    async def _call(self, spec: MethodSpec, args: tuple) -> dict[str, Any]:
        svc = self._service
        try:
            result = await svc.api.call_spec(spec, codec.args_to_params(spec, args), svc.ctx)
        except ApiError as e:
            raise DBusError(e.dbus_name(), f"{e.message} (fix: {e.fix})") from None
        except Exception:
            log.exception("D-Bus %s failed", spec.dbus_name)
            e = internal()
            raise DBusError(e.dbus_name(), f"{e.message} (fix: {e.fix})") from None
        return codec.to_vardict(to_json(result))


class _ReadBase(_Base):
    @dbus_signal(name="Events")
    def events_signal(self, events: VarDictList) -> VarDictList:
        return events

    @dbus_signal(name="EventsDropped")
    def dropped_signal(self, count: DBusUInt64) -> DBusUInt64:
        return count

    @dbus_property(access=PropertyAccess.READ, name="NodeId")
    def node_id_prop(self) -> DBusStr:
        return str(self._service.api.node.node_id)

    @dbus_property(access=PropertyAccess.READ, name="Status")
    def status_prop(self) -> VarDict:
        return codec.to_vardict(to_json(views.status(self._service.api)))

    @dbus_property(access=PropertyAccess.READ, name="StatusText")
    def status_text_prop(self) -> DBusStr:
        return views.status_text(self._service.api)

    @dbus_property(access=PropertyAccess.READ, name="PeerCount")
    def peer_count_prop(self) -> DBusUInt32:
        return views.peer_counts(self._service.api).total

    @dbus_property(access=PropertyAccess.READ, name="ConnectedPeers")
    def connected_prop(self) -> DBusUInt32:
        return views.peer_counts(self._service.api).connected

    @dbus_property(access=PropertyAccess.READ, name="ApiVersion")
    def api_version_prop(self) -> DBusUInt32:
        return API_VERSION

    @dbus_property(access=PropertyAccess.READ, name="ApiRevision")
    def api_revision_prop(self) -> DBusUInt32:
        return API_REVISION


def _make_method(spec: MethodSpec) -> Any:
    async def fn(self: _Base, *args: Any) -> Any:
        return await self._call(spec, args)

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=sig) for n, sig in codec.in_args(spec)]
    fn.__signature__ = inspect.Signature(params, return_annotation="a{sv}")  # type: ignore[attr-defined]
    fn.__name__ = fn.__qualname__ = spec.dbus_name
    fn.__doc__ = spec.doc
    return dbus_method(name=spec.dbus_name)(fn)


def interface_classes(specs: list[MethodSpec]) -> tuple[type, type]:
    """The two ServiceInterface classes, with one method per registry entry."""
    read = {f"m_{s.attr}": _make_method(s) for s in specs if s.access is READ}
    write = {f"m_{s.attr}": _make_method(s) for s in specs if s.access is WRITE}
    return type("Mesh1", (_ReadBase,), read), type("Mesh1Admin", (_Base,), write)


class DbusService:
    def __init__(self, api: DaemonAPI, address: str = "") -> None:
        self.api = api
        self.address = address
        self.bus: MessageBus | None = None
        self.sub = api.hub.subscribe(limit=EMITTER_QUEUE, drop_oldest=True)
        self.ctx = CallContext(Caller(0, 0, 0, (), True, "dbus"), "dbus", shared_subscription=self.sub.id)
        read_cls, admin_cls = interface_classes(list(api.specs.values()))
        self.read = read_cls(DBUS_IFACE, self)
        self.admin = admin_cls(DBUS_ADMIN_IFACE, self)
        self.signals_sent = 0
        self.events_sent = 0
        self.events_dropped = 0
        self._tasks: list[asyncio.Task] = []
        self._props_due = False

    async def start(self) -> None:
        """Connect, export both interfaces and own the name; raises with the fix when that fails."""
        bus = MessageBus(bus_address=self.address) if self.address else MessageBus(bus_type=BusType.SYSTEM)
        await bus.connect()
        bus.export(DBUS_PATH, self.read)
        bus.export(DBUS_PATH, self.admin)
        reply = await bus.request_name(DBUS_NAME)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            bus.disconnect()
            raise RuntimeError(f"cannot own {DBUS_NAME} on the bus ({reply.name}): another omerta-meshd runs, or the bus policy is not installed")
        self.bus = bus
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._emit_events())]
        self.api.hooks.status_changed.append(self._status_changed)
        self.api.counter_sources.append(self._counters)

    def _counters(self) -> dict[str, int]:
        return {"dbus.signals": self.signals_sent, "dbus.events": self.events_sent, "dbus.events_dropped": self.events_dropped}

    def _writer_busy(self) -> bool:
        w = getattr(self.bus, "_writer", None)
        return w is not None and (getattr(w, "buf", None) is not None or bool(getattr(w, "messages", ())))

    async def _emit_events(self) -> None:
        cfg = self.api.config.dbus
        while True:
            items = await self.sub.get(cfg.signal_batch)
            while self.bus is not None and self._writer_busy():
                await asyncio.sleep(0.01)  # let the bus drain before adding to it
            if self.bus is None or not self.bus.connected:
                if self.bus is not None:
                    log.error("lost the D-Bus connection: the D-Bus face is off until the daemon restarts (JSON-RPC still serves)")
                return
            if self.sub.dropped:
                self.read.dropped_signal(self.sub.dropped)
                self.events_dropped += self.sub.dropped
                self.sub.dropped = 0
            self.read.events_signal([codec.to_vardict(i) for i in items])
            self.signals_sent += 1
            self.events_sent += len(items)
            cfg = self.api.config.dbus
            await asyncio.sleep(1.0 / cfg.signal_rate)

    def _status_changed(self) -> None:
        if self._props_due or self.bus is None:
            return
        self._props_due = True
        asyncio.get_running_loop().call_later(0.5, self._emit_properties)

    def _emit_properties(self) -> None:
        self._props_due = False
        if self.bus is None or not self.bus.connected:
            return
        c = views.peer_counts(self.api)
        self.read.emit_properties_changed({"StatusText": views.status_text(self.api), "PeerCount": c.total, "ConnectedPeers": c.connected})

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.sub.close("daemon stopping")
        if self._status_changed in self.api.hooks.status_changed:
            self.api.hooks.status_changed.remove(self._status_changed)
        if self._counters in self.api.counter_sources:
            self.api.counter_sources.remove(self._counters)
        if self.bus is not None:
            self.bus.disconnect()
            try:
                await asyncio.wait_for(self.bus.wait_for_disconnect(), 1.0)
            except Exception:  # disconnecting anyway
                pass
            self.bus = None
