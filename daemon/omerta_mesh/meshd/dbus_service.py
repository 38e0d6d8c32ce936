"""The D-Bus face: org.omerta.Mesh1 at /org/omerta/Mesh1, generated from the method registry.

* ``org.omerta.Mesh1``: the read methods (CamelCase of the JSON-RPC names: ``peers.list`` -> ``PeersList``),
  read-only properties (``NodeId``, ``Status``, ``StatusText``, ``PeerCount``, ``ConnectedPeers``,
  ``ApiVersion``, ``ApiRevision``), and the signals ``Events(aa{sv})`` and ``EventsDropped(t)``.
* ``org.freedesktop.DBus.ObjectManager`` on the same object, over one object per network and per peer
  (``dbus_objects``), kept in line with the node after events (at most every ``OBJECTS_GAP`` s) and every
  ``OBJECTS_REFRESH`` s for the counters (bytes, RTT).
* ``org.omerta.Mesh1.Admin``: the write methods. The bus policy (packaging/dbus/org.omerta.Mesh1.conf)
  lets everyone call the first, only root and the ``omerta`` group the second, and only root own the name;
  the same rules as the JSON-RPC socket.

Every method is one line into ``DaemonAPI.call_spec``; an ``ApiError`` becomes the D-Bus error
``org.omerta.Mesh1.Error.<Name>`` with the text "<message> (fix: <fix>)". Argument and result types
are derived from the schema by ``dbus_codec``.

Events are coalesced into ``Events`` signals of at most ``dbus.signal_batch`` events, at most
``dbus.signal_rate`` per second, and only when the bus connection's write queue is empty: dbus-fast drops
the whole bus connection when a send hits EAGAIN during a burst. What does not fit is dropped oldest-first
and counted in an ``EventsDropped`` signal. Clients line deltas up with ``EventsSubscribe``'s snapshot by
``seq``.

The face outlives its bus connection. When the connection is lost (the bus daemon restarted), or the bus
is not there when omerta-meshd starts, it logs that once and tries again after 0.5 s, 1 s, 2 s ... up to
every 30 s (``retry_delay``); each success exports both objects again and owns the name again. Events
published while no bus is connected are counted in the ``EventsDropped`` signal sent with the first
``Events`` signal after the face is back. ``status.get`` reports the face as the ``dbus`` feature (up, or why not and
when the next try is) and counts ``dbus.disconnects`` and ``dbus.reconnects``. JSON-RPC serves throughout.
"""

import asyncio
import enum
import inspect
import logging
import time
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
from .dbus_objects import ObjectTree, TreeBus
from .errors import ApiError, internal
from .events import SubscriptionClosed
from .registry import API_REVISION, API_VERSION, DBUS_ADMIN_IFACE, DBUS_IFACE, DBUS_NAME, DBUS_PATH, READ, WRITE, MethodSpec
from .schema import FeatureInfo, StatusResult, to_json

log = logging.getLogger("omerta_mesh.meshd.dbus")

EMITTER_QUEUE = 8192
BACKOFF_FIRST = 0.5  # seconds before the first try after a loss
BACKOFF_MAX = 30.0  # the longest wait between two tries
ATTEMPT_TIMEOUT = 10.0  # one try: connect, authenticate, export, own the name
OBJECTS_GAP = 0.25  # seconds between two syncs of the object tree (events in between are coalesced)
OBJECTS_REFRESH = 5.0  # seconds: the tree is synced this often without events, for counters and RTT
VarDict = Annotated[dict, DBusSignature("a{sv}")]
VarDictList = Annotated[list, DBusSignature("aa{sv}")]


class _Base(ServiceInterface):
    def __init__(self, name: str, service: "DbusService") -> None:
        super().__init__(name)
        self._service = service

    async def _call(self, spec: MethodSpec, args: tuple) -> Any:
        svc = self._service
        try:
            result = await svc.api.call_spec(spec, codec.args_to_params(spec, args), svc.ctx)
        except ApiError as e:
            raise DBusError(e.dbus_name(), f"{e.message} (fix: {e.fix})") from None
        except Exception:
            log.exception("D-Bus %s failed", spec.dbus_name)
            err = internal()
            raise DBusError(err.dbus_name(), f"{err.message} (fix: {err.fix})") from None
        return codec.encode_result(spec.result, to_json(result))


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
        return codec.encode_fields(StatusResult, to_json(views.status(self._service.api)))

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
    outs = codec.out_args(spec.result)
    fn.__signature__ = inspect.Signature(params, return_annotation="".join(sig for _, sig in outs))  # type: ignore[attr-defined]
    fn.__name__ = fn.__qualname__ = spec.dbus_name
    fn.__doc__ = spec.doc
    method = dbus_method(name=spec.dbus_name)(fn)
    for arg, (name, _) in zip(method.__dict__["__DBUS_METHOD"].introspection.out_args, outs):
        arg.name = name  # introspection names the out arguments after the result's fields
    return method


def interface_classes(specs: list[MethodSpec]) -> tuple[type, type]:
    """The two ServiceInterface classes, with one method per registry entry."""
    read = {f"m_{s.attr}": _make_method(s) for s in specs if s.access is READ}
    write = {f"m_{s.attr}": _make_method(s) for s in specs if s.access is WRITE}
    return type("Mesh1", (_ReadBase,), read), type("Mesh1Admin", (_Base,), write)



def retry_delay(failures: int) -> float:
    """Seconds to wait before the next try, after ``failures`` failed tries in a row (0 just after a loss):
    0.5, 1, 2, 4 ... and never more than 30."""
    return min(BACKOFF_FIRST * 2.0 ** min(failures, 16), BACKOFF_MAX)


class FaceState(enum.Enum):
    DOWN = "down"  # no bus connection; ``retry_at`` is the next try
    UP = "up"  # connected, both objects exported, the name owned
    CLOSED = "closed"  # the daemon is stopping


class NameRefused(RuntimeError):
    """The bus is there but will not let us own the name (the policy is missing, or another owner)."""


def describe(e: BaseException) -> str:
    if isinstance(e, EOFError):
        return "the bus closed the connection"
    if isinstance(e, TimeoutError):
        return f"no answer within {ATTEMPT_TIMEOUT:g} s"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


class DbusService:
    """The face and its connection: ``start`` tries once and then keeps the face up in the background.

    ``required`` (``dbus.enabled = true``): a bus that refuses the name at start-up is an error that
    ``start`` raises, since only the admin can fix it; every other failure is retried.
    """

    def __init__(self, api: DaemonAPI, address: str = "", required: bool = False) -> None:
        self.api = api
        self.address = address
        self.required = required
        self.where = address or "the system bus"
        self.bus: MessageBus | None = None
        self.sub = api.hub.subscribe(limit=EMITTER_QUEUE, drop_oldest=True)
        self.ctx = CallContext(Caller.internal(), "dbus", shared_subscription=self.sub.id)
        read_cls, admin_cls = interface_classes(list(api.specs.values()))
        self.read = read_cls(DBUS_IFACE, self)
        self.admin = admin_cls(DBUS_ADMIN_IFACE, self)
        self.signals_sent = 0
        self.events_sent = 0
        self.events_dropped = 0
        self.missed = 0  # events published while no bus was connected, not yet told in EventsDropped
        self.state = FaceState.DOWN
        self.reason = "not connected yet"
        self.failures = 0  # failed tries since the face was last up
        self.retry_at = 0.0  # time.monotonic() of the next try while DOWN
        self.down_since = time.monotonic()
        self.disconnects = 0
        self.reconnects = 0
        self._supervisor: asyncio.Task | None = None
        self._emitter: asyncio.Task | None = None
        self._ended: asyncio.Task | None = None  # bus.wait_for_disconnect() of the current connection
        self._props_due = False
        self.tree = ObjectTree(api)
        self._tree_due = asyncio.Event()
        self._tree_task: asyncio.Task | None = None
        api.dbus_face = self  # read by views.dbus_feature for status.get

    async def start(self) -> None:
        """Try once now; on failure keep trying in the background. Raises ``NameRefused`` only if required."""
        loop = asyncio.get_running_loop()
        self.api.hooks.status_changed.append(self._status_changed)
        self.api.counter_sources.append(self._counters)
        self._emitter = loop.create_task(self._emit_events())
        self._tree_task = loop.create_task(self._keep_tree())
        try:
            await self._connect()
        except NameRefused as e:
            if self.required:
                raise
            self._failed(e)
        except Exception as e:
            self._failed(e)
        else:
            log.info("D-Bus: %s on %s", DBUS_NAME, self.where)
        self._supervisor = loop.create_task(self._supervise())

    # ---- the connection
    async def _connect(self) -> None:
        """One try: connect, export both objects, own the name. Leaves no connection behind on failure."""
        bus: MessageBus | None = None
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT):
                bus = TreeBus(bus_address=self.address) if self.address else TreeBus(bus_type=BusType.SYSTEM)
                await bus.connect()
                bus.export(DBUS_PATH, self.read)
                bus.export(DBUS_PATH, self.admin)
                self.tree.reset()
                self._tree_due.set()  # the objects follow once the name is owned
                try:
                    reply = await bus.request_name(DBUS_NAME)
                except DBusError as e:
                    raise NameRefused(f"cannot own {DBUS_NAME} on {self.where}: {e.text}") from None
            if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
                raise NameRefused(f"cannot own {DBUS_NAME} on {self.where} ({reply.name}): another omerta-meshd runs")
        except BaseException:
            if bus is not None:
                await self._drop(bus)
            raise
        self.bus = bus
        self._ended = asyncio.get_running_loop().create_task(bus.wait_for_disconnect())
        self.state = FaceState.UP
        self.failures = 0

    @staticmethod
    async def _drop(bus: MessageBus) -> None:
        if bus.connected:
            bus.disconnect()
            try:
                await asyncio.wait_for(bus.wait_for_disconnect(), 1.0)
            except Exception:  # disconnecting anyway
                pass

    async def _supervise(self) -> None:
        """Wait for the connection to end, then try again with back-off until it is back; until cancelled."""
        while True:
            if self.state is FaceState.UP and self._ended is not None:
                await asyncio.wait({self._ended})  # not cancelled with us: close() still needs it
                e = self._ended.exception()
                self._lost(describe(e) if e is not None else "the connection was closed")
                continue
            await asyncio.sleep(max(0.0, self.retry_at - time.monotonic()))
            try:
                await self._connect()
            except Exception as e:
                self._failed(e)
                continue
            self.reconnects += 1
            log.info("D-Bus face is back: %s on %s after %.1f s (JSON-RPC served meanwhile)", DBUS_NAME, self.where,
                     time.monotonic() - self.down_since)

    def _lost(self, why: str) -> None:
        self.bus = None
        self.state = FaceState.DOWN
        self.disconnects += 1
        self.failures = 0
        self.down_since = time.monotonic()
        self.reason = f"lost the connection to {self.where}: {why}"
        delay = retry_delay(0)
        self.retry_at = time.monotonic() + delay
        log.warning("D-Bus face is off: %s; reconnecting in %g s (JSON-RPC still serves)", self.reason, delay)

    def _failed(self, e: BaseException) -> None:
        """Note a failed try and when the next one is. Logged when the reason is new (a warning only for a
        required face that cannot start; a loss has had its warning), else at debug level."""
        self.failures += 1
        reason = str(e) if isinstance(e, NameRefused) else f"cannot reach {self.where}: {describe(e)}"
        delay = retry_delay(self.failures)
        self.retry_at = time.monotonic() + delay
        news = reason != self.reason or self.failures == 1
        self.reason = reason
        loud = logging.WARNING if self.required and not self.disconnects and not self.reconnects else logging.INFO
        level = loud if news else logging.DEBUG
        log.log(level, "D-Bus: %s; try %d failed, next in %g s (JSON-RPC serves every method)", reason, self.failures, delay)

    def up(self) -> bool:
        return self.state is FaceState.UP and self.bus is not None and self.bus.connected

    def feature(self, now: float) -> FeatureInfo:
        """The face for ``status.get``: whether it is up, and if not why and when it tries again."""
        if self.state is FaceState.CLOSED:
            return FeatureInfo(True, False, "stopped")
        if self.up():
            return FeatureInfo(True, True, f"{DBUS_NAME} on {self.where}")
        wait = self.retry_at - now
        when = f"next try in {wait:.1f} s" if wait > 0 else "trying now"
        return FeatureInfo(True, False, f"{self.reason}; {when} (try {self.failures + 1})")

    def _counters(self) -> dict[str, int]:
        return {"dbus.signals": self.signals_sent, "dbus.events": self.events_sent, "dbus.events_dropped": self.events_dropped,
                "dbus.disconnects": self.disconnects, "dbus.reconnects": self.reconnects, "dbus.objects": len(self.tree.objects),
                "dbus.objects_added": self.tree.added, "dbus.objects_removed": self.tree.removed,
                "dbus.properties_changed": self.tree.changes}

    # ---- signals and properties
    def _writer_busy(self) -> bool:
        w = getattr(self.bus, "_writer", None)
        return w is not None and (getattr(w, "buf", None) is not None or bool(getattr(w, "messages", ())))

    async def _emit_events(self) -> None:
        while True:
            try:
                items = await self.sub.get(self.api.config.dbus.signal_batch)
            except SubscriptionClosed:
                return
            self._tree_due.set()
            while self.up() and self._writer_busy():
                await asyncio.sleep(0.01)  # let the bus drain before adding to it
            if not self.up():
                self.missed += len(items)  # nobody can hear them; counted in EventsDropped once the face is back
                continue
            dropped = self.sub.dropped + self.missed
            try:
                if dropped:
                    self.read.dropped_signal(dropped)
                self.read.events_signal([codec.to_vardict(i) for i in items])
            except Exception as e:  # the connection broke under us; _supervise reconnects
                log.debug("D-Bus: Events signal not sent: %s", describe(e))
                self.missed += len(items)
                continue
            self.sub.dropped = self.missed = 0
            self.events_dropped += dropped
            self.signals_sent += 1
            self.events_sent += len(items)
            await asyncio.sleep(1.0 / self.api.config.dbus.signal_rate)

    async def _keep_tree(self) -> None:
        """Sync the object tree when something happened (coalesced) and every OBJECTS_REFRESH s; until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._tree_due.wait(), OBJECTS_REFRESH)
            except TimeoutError:
                pass
            self._tree_due.clear()
            while self.up() and self._writer_busy():
                await asyncio.sleep(0.01)  # as for Events: never add to a bus connection that is still writing
            if self.up() and self.bus is not None:
                try:
                    if not self.tree.sync(self.bus):
                        self._tree_due.set()  # more to do: next round
                except Exception as e:  # the connection broke under us; _supervise reconnects (and resets the tree)
                    log.debug("D-Bus: object tree not synced: %s", describe(e))
            await asyncio.sleep(OBJECTS_GAP)

    def _status_changed(self) -> None:
        self._tree_due.set()
        if self._props_due or not self.up():
            return
        self._props_due = True
        asyncio.get_running_loop().call_later(0.5, self._emit_properties)

    def _emit_properties(self) -> None:
        self._props_due = False
        if not self.up():
            return
        c = views.peer_counts(self.api)
        try:
            self.read.emit_properties_changed(
                {"StatusText": views.status_text(self.api), "PeerCount": c.total, "ConnectedPeers": c.connected})
        except Exception as e:  # the connection broke under us; _supervise reconnects
            log.debug("D-Bus: PropertiesChanged not sent: %s", describe(e))

    async def close(self) -> None:
        """Stop the retry loop and the emitter, and leave the bus."""
        self.state = FaceState.CLOSED
        tasks = [t for t in (self._supervisor, self._emitter, self._tree_task) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.sub.close("daemon stopping")
        if self._status_changed in self.api.hooks.status_changed:
            self.api.hooks.status_changed.remove(self._status_changed)
        if self._counters in self.api.counter_sources:
            self.api.counter_sources.remove(self._counters)
        if self.bus is not None:
            await self._drop(self.bus)
            self.bus = None
        if self._ended is not None:
            self._ended.cancel()
            await asyncio.gather(self._ended, return_exceptions=True)
