"""Port forwards (issue 13, item 4): a local TCP listener whose every connection becomes a mesh stream to a
port a peer exposes (``omertactl forward [--bind ADDR] LOCALPORT PEER:PORT``; ``forward.add|remove|list``).

* **A connection.** Each connection accepted on BIND:LOCAL (127.0.0.1 unless told; IPv6 too) resolves PEER as
  the SOCKS gateway and ``omertactl connect`` do (a name, ``NAME.NETWORK``, node id, id prefix or mesh IP:
  ``destination.resolve``; ``--network`` wins), opens a session with it if there is none (``MeshNode.connect``),
  opens a stream to PORT (``StreamHub.open``) and splices the two
  (``StreamHub.attach``: the credit window bounds what the daemon holds, per connection and direction).
  Nothing about the peer is kept between connections, so a forward outlives the peer's path changes (the
  stream rides the session's reliable channel whichever path carries it: direct, punched, relayed) and a peer
  that is away when the forward is made: a connection made while it cannot be reached fails, a later one works.
* **Failures.** A connection that gets no stream (the peer unknown or unreachable, the port not exposed there,
  the stream limits, too many connections) is closed (FIN: no byte was ever read from it) and counted in the
  forward's ``errors`` with ``last_error``, the reason verbatim ("port 22 not exposed on bravo"). A new reason
  is logged as a warning, a repeat at debug level, so a client retrying in a loop cannot flood the journal.
* **Bounds.** At most ``MAX_FORWARDS`` forwards, and ``MAX_CONNECTIONS`` open connections per forward (one more
  is closed at once and counted). Anyone who can connect to the bind address uses the forward; making one is
  a write (root, the daemon's user, the ``api.group``).
* **Kept.** ``[[forward]]`` tables in meshd.toml are the admin's: started with the daemon, never rewritten
  (removing one through the API lasts until the next start). ``persist`` forwards are kept in
  ``<state>/forwards.json`` (written atomically before the call returns) and come back at every start. The
  rest last until the daemon stops. A kept forward whose listener cannot be opened at start (the port taken)
  is listed with ``listening = false`` and the reason; the daemon starts anyway.
* **Removal** closes the listener and resets the forward's open streams ("forward ... removed on NAME").
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import UsageError
from ..core.ids import NodeId
from ..io.store import atomic_write, damaged
from ..io.streams import Spliced, StreamRefused
from . import destination
from . import schema as s
from .config import ForwardConfig, forward_problem
from .errors import ApiError, Code

if TYPE_CHECKING:  # pragma: no cover
    from .api import DaemonAPI

log = logging.getLogger("omerta_mesh.meshd.forward")
FORWARDS_FILE = "forwards.json"
MAX_FORWARDS = 64
MAX_CONNECTIONS = 64  # per forward (core max_streams_per_peer is 64 too: one peer's streams)
OPEN_TIMEOUT = 10.0  # seconds a connection waits for a session and the peer's answer


def label(bind: str, local: int) -> str:
    return f"[{bind}]:{local}" if ":" in bind else f"{bind}:{local}"


@dataclass(eq=False)
class Forward:
    spec: ForwardConfig
    kept_in: str | None  # "config", "state" or None
    server: asyncio.AbstractServer | None = None
    node: NodeId | None = None  # what spec.peer resolved to last
    created: float = field(default_factory=time.monotonic)
    conns: set[asyncio.Task[Any]] = field(default_factory=set)
    streams: list[Spliced] = field(default_factory=list)
    accepted: int = 0
    done_in: int = 0  # bytes of the connections that ended
    done_out: int = 0
    errors: int = 0
    last_error: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.spec.bind, self.spec.local)

    @property
    def label(self) -> str:
        return label(*self.key)

    def info(self, name_of: Callable[[NodeId], str]) -> s.ForwardInfo:
        f = self.spec
        return s.ForwardInfo(
            f.bind, f.local, f.peer, str(self.node) if self.node else None, name_of(self.node) if self.node else f.peer, f.port,
            f.network or None, self.kept_in, self.server is not None, len(self.conns), self.accepted,
            self.done_in + sum(x.bytes_in for x in self.streams), self.done_out + sum(x.bytes_out for x in self.streams),
            round(time.monotonic() - self.created, 3), self.errors, self.last_error)


class Forwards:
    """The daemon's forwards, keyed by (bind address, local port)."""

    def __init__(self, api: "DaemonAPI", configured: list[ForwardConfig], state_dir: Path | None) -> None:
        self.api = api
        self.configured = list(configured)
        self.path = state_dir / FORWARDS_FILE if state_dir is not None else None
        self.forwards: dict[tuple[str, int], Forward] = {}

    # ------------------------------------------------------------------ kept forwards
    def _load(self) -> list[ForwardConfig]:
        if self.path is None or not self.path.exists():
            return []
        try:
            doc = json.loads(self.path.read_bytes())
            kept = [ForwardConfig(**d) for d in doc["forwards"]]
            for f in kept:
                if (why := forward_problem(f)) is not None or f.local == 0:
                    raise ValueError(why or "local = 0")
        except (ValueError, KeyError, TypeError) as e:
            raise damaged(self.path, e, "fix or remove it (`omertactl forward --persist` writes it again)") from None
        return kept

    def _save(self, kept: list[ForwardConfig]) -> None:
        if self.path is not None:
            atomic_write(self.path, json.dumps({"version": 1, "forwards": [asdict(f) for f in kept]}).encode())

    def _kept(self) -> list[ForwardConfig]:
        return [f.spec for f in self.forwards.values() if f.kept_in == "state"]

    async def start(self) -> None:
        """Open the configured and persisted forwards (one that cannot listen is listed with the reason)."""
        for spec, kept_in in [(f, "config") for f in self.configured] + [(f, "state") for f in self._load()]:
            fwd = Forward(spec, kept_in)
            if fwd.key in self.forwards:
                log.warning("forward %s in %s is also in the config; the config's is used", fwd.label, self.path)
                continue
            self.forwards[fwd.key] = fwd
            try:
                await self._listen(fwd)
            except ApiError as e:
                fwd.errors, fwd.last_error = 1, e.message
                log.error("forward %s -> %s:%d not started: %s (%s)", fwd.label, spec.peer, spec.port, e.message, e.fix)

    # ------------------------------------------------------------------ the API's verbs
    async def add(self, req: s.ForwardAddRequest) -> Forward:
        spec = ForwardConfig(req.local, req.peer.strip(), req.port, req.bind.strip().strip("[]"), (req.network or "").strip())
        if (why := forward_problem(spec)) is not None:
            raise ApiError(Code.INVALID_PARAMS, why)
        spec = replace(spec, bind=str(ipaddress.ip_address(spec.bind)))  # one spelling per address (::1, not 0::1)
        if req.persist and spec.local == 0:
            raise ApiError(Code.INVALID_PARAMS, "a persistent forward needs a fixed local port, not 0",
                           "pass the local port the forward should have after every restart")
        if len(self.forwards) >= MAX_FORWARDS:
            raise ApiError(Code.BUSY, f"this daemon has {MAX_FORWARDS} forwards, the most it keeps",
                           "remove one first (`omertactl forward remove LOCALPORT`)")
        fwd = Forward(spec, "state" if req.persist else None)
        if spec.local and (old := self.forwards.get(fwd.key)) is not None:
            raise ApiError(Code.REFUSED, f"{fwd.label} already forwards to {old.spec.peer}:{old.spec.port}",
                           f"remove it first (`omertactl forward remove {spec.local}`), or choose another local port")
        fwd.node, _ = destination.resolve(self.api, spec.peer, spec.network)  # a peer unknown now is refused now (offline: fine)
        await self._listen(fwd)
        if req.persist:
            try:
                self._save([*self._kept(), fwd.spec])
            except BaseException:
                await self._stop(fwd, "it could not be kept")
                raise
        self.forwards[fwd.key] = fwd
        log.info("forward %s -> %s:%d added%s", fwd.label, spec.peer, spec.port, " (kept in the state directory)" if req.persist else "")
        return fwd

    async def remove(self, local: int, bind: str | None) -> Forward:
        hits = [f for f in self.forwards.values() if f.spec.local == local and (bind is None or f.spec.bind == bind.strip())]
        if not hits:
            where = label(bind, local) if bind else f"local port {local}"
            raise ApiError(Code.REFUSED, f"no forward on {where}", "list the forwards with `omertactl forward list`")
        if len(hits) > 1:
            raise ApiError(Code.INVALID_PARAMS, f"{len(hits)} forwards listen on port {local}: {', '.join(f.label for f in hits)}",
                           "say which with --bind ADDRESS")
        fwd = hits[0]
        if fwd.kept_in == "state":
            self._save([f for f in self._kept() if f is not fwd.spec])  # (StateNotSaved: nothing changed)
        del self.forwards[fwd.key]
        await self._stop(fwd, f"forward {fwd.label} removed on {self.api.name}")
        log.info("forward %s -> %s:%d removed", fwd.label, fwd.spec.peer, fwd.spec.port)
        return fwd

    def list(self) -> list[Forward]:
        return sorted(self.forwards.values(), key=lambda f: (f.spec.local, f.spec.bind))

    def of_stream(self) -> dict[int, str]:
        """id(Spliced) -> the label of the forward it serves."""
        return {id(x): f.label for f in self.forwards.values() for x in f.streams}

    async def close(self) -> None:
        for fwd in list(self.forwards.values()):
            await self._stop(fwd, "the daemon stopped")

    # ------------------------------------------------------------------ listening
    async def _listen(self, fwd: Forward) -> None:
        spec = fwd.spec
        try:
            fwd.server = await asyncio.start_server(lambda r, w: self._connection(fwd, r, w), spec.bind, spec.local,
                                                    reuse_address=True, backlog=MAX_CONNECTIONS)
        except OSError as e:
            raise bind_error(fwd.label, spec.local, e) from None
        if spec.local == 0:  # the kernel's choice: the forward is known by it from now on
            port = fwd.server.sockets[0].getsockname()[1]
            fwd.spec = replace(spec, local=port)

    async def _stop(self, fwd: Forward, reason: str) -> None:
        if fwd.server is not None:
            fwd.server.close()
            fwd.server = None
        for x in list(fwd.streams):
            self.api.node.streams.reset(x, reason)
        for t in list(fwd.conns):
            t.cancel()
        if fwd.conns:
            await asyncio.wait(list(fwd.conns), timeout=2.0)

    # ------------------------------------------------------------------ one connection
    async def _connection(self, fwd: Forward, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if fwd.server is None or len(fwd.conns) >= MAX_CONNECTIONS:
            self._failed(fwd, f"more than {MAX_CONNECTIONS} connections at once" if fwd.server else "the forward is gone")
            writer.close()
            return
        me = asyncio.current_task()
        assert me is not None, "a connection is served in a task of its own"
        fwd.conns.add(me)
        fwd.accepted += 1
        x: Spliced | None = None
        try:
            try:
                x = await self._open(fwd)
            except (ApiError, StreamRefused, UsageError, TimeoutError) as e:
                self._failed(fwd, e.message if isinstance(e, ApiError) else str(e))
                return
            except Exception:  # a bug: logged in full, counted, and the daemon goes on
                log.exception("forward %s: opening a stream failed", fwd.label)
                self._failed(fwd, "internal error in omerta-meshd; details are in the daemon log")
                return
            if not self.api.node.streams.attach(x, reader, writer):
                self._failed(fwd, "the stream was reset as it opened")
                return
            fwd.streams.append(x)
            await asyncio.wait(x.tasks)  # (wait, not gather: a cancelled connection leaves the splice to reset)
        except asyncio.CancelledError:  # the forward is going away (_stop); the task ends quietly (asyncio's server
            pass  # would log a cancelled connection task as an error)
        finally:
            fwd.conns.discard(me)
            if x is not None and x in fwd.streams:
                fwd.streams.remove(x)
                fwd.done_in += x.bytes_in
                fwd.done_out += x.bytes_out
            else:
                writer.close()

    async def _open(self, fwd: Forward) -> Spliced:
        api, spec = self.api, fwd.spec
        node, net = destination.resolve(api, spec.peer, spec.network)
        fwd.node = node
        await api.node.connect(node, net, timeout=OPEN_TIMEOUT)
        return await api.node.streams.open(node, spec.port, net, timeout=OPEN_TIMEOUT)

    def _failed(self, fwd: Forward, why: str) -> None:
        fwd.errors += 1
        level = logging.DEBUG if why == fwd.last_error else logging.WARNING
        fwd.last_error = why
        log.log(level, "forward %s -> %s:%d: connection closed: %s", fwd.label, fwd.spec.peer, fwd.spec.port, why)


def bind_error(where: str, port: int, e: OSError) -> ApiError:
    """A listener that could not be opened, in words, with the fix."""
    if e.errno == errno.EADDRINUSE:
        return ApiError(Code.REFUSED, f"cannot listen on {where}: the address is already in use",
                        f"choose another local port, or stop what listens there (`ss -ltnp 'sport = :{port}'` shows it)")
    if e.errno == errno.EADDRNOTAVAIL:
        return ApiError(Code.REFUSED, f"cannot listen on {where}: that address is not one of this host's",
                        "bind to 127.0.0.1 (the default), ::1, or an address `ip addr` lists")
    if e.errno == errno.EACCES:
        return ApiError(Code.REFUSED, f"cannot listen on {where}: ports below 1024 need privilege",
                        "choose a local port of 1024 or more")
    return ApiError(Code.REFUSED, f"cannot listen on {where}: {e.strerror or e}", "choose another local address or port")

