"""``GET /metrics`` over HTTP for Prometheus, served from the daemon's own event loop (``[metrics] listen``).

Off by default. ``listen = "127.0.0.1:9464"`` serves it on loopback; any other address is refused when the
configuration is read unless ``allow_remote = true`` says so too (``meshd/config.py``), so the node's peers and
traffic are never readable from the LAN or the mesh by accident.

Why not ``prometheus_client.start_http_server``: it serves from a thread (a ``wsgiref`` server), and the
collector reads the daemon's live state (the core's tables, the API's dicts), which only the event loop's
thread may touch: a scrape in another thread would race the loop (a dict changing size mid-iteration, a
peer half-updated) or need locks the sans-I/O core does not have. Here a scrape is one callback on the loop
between two packets, reading one consistent instant, and the server closes with the daemon. The text itself
still comes from ``prometheus_client`` (``Exporter.encode``: text 0.0.4, or OpenMetrics when the scraper's
``Accept`` asks for it).

The server speaks just enough HTTP/1.1 for a scraper and ``curl``: one request per connection (``Connection:
close``), ``GET`` and ``HEAD``; a request head over ``MAX_HEAD`` bytes or not complete within ``HEAD_TIMEOUT``
seconds gets 400/408 and is closed, as is a connection still open after ``CLIENT_TIMEOUT`` (a client that does
not read its answer); at most ``MAX_CLIENTS`` connections at once (more are closed unread).
Counters: ``metrics.http_requests``, ``metrics.http_refused`` (bad, slow or surplus requests), ``metrics.http_clients``
(connections open now).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING

from . import schema as s
from . import views
from .config import MetricsConfig, parse_listen
from .localserve import admit, listen, stop_serving

if TYPE_CHECKING:  # pragma: no cover
    from .api import DaemonAPI

log = logging.getLogger("omerta_mesh.meshd.metrics")
MAX_HEAD = 8192
HEAD_TIMEOUT = 5.0
CLIENT_TIMEOUT = 15.0  # a whole connection, answer included: a client that does not read it gives its place up
MAX_CLIENTS = 16
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout"}


class MetricsServer:
    def __init__(self, api: "DaemonAPI", config: MetricsConfig) -> None:
        self.api = api
        self.cfg = config
        self.stats: Counter[str] = Counter()
        self.problem: str | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if not self.cfg.listen:
            return
        host, port = parse_listen(self.cfg.listen)  # (validated with the config: loopback unless allow_remote)
        got = await listen(self._client, host, port, "metrics.listen", limit=MAX_HEAD)
        if isinstance(got, str):
            self.problem = got
            log.error("metrics endpoint %s", got)
            return
        self._server = got
        log.info("metrics on %s", self.url())

    async def close(self) -> None:
        await stop_serving(self._server, self._clients)
        self._server = None

    def url(self) -> str:
        if self._server is None or not self._server.sockets:
            return ""
        return f"http://{views.ep(self._server.sockets[0].getsockname()[:2])}/metrics"

    def feature(self) -> s.FeatureInfo:
        if not self.cfg.listen:
            return s.FeatureInfo(False, False, "off")
        if self._server is None:
            return s.FeatureInfo(True, False, self.problem or "not started yet")
        return s.FeatureInfo(True, True, self.url())

    def counters(self) -> dict[str, int]:
        if not self.cfg.listen:
            return {}
        return {f"metrics.{k}": v for k, v in sorted(self.stats.items())} | {"metrics.http_clients": len(self._clients)}

    # ------------------------------------------------------------------ one request
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (me := admit(self._clients, MAX_CLIENTS, writer)) is None:
            self.stats["http_refused"] += 1
            return
        try:
            await asyncio.wait_for(self._answer(reader, writer), CLIENT_TIMEOUT)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.TimeoutError):
            self.stats["http_refused"] += 1
            writer.transport.abort()
        finally:
            self._clients.discard(me)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except (TimeoutError, asyncio.TimeoutError):
            return await self._send(writer, 408, f"no complete request head within {HEAD_TIMEOUT:g} s\n")
        except asyncio.LimitOverrunError:
            return await self._send(writer, 400, f"request head over {MAX_HEAD} bytes\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return await self._send(writer, 400, "not an HTTP/1.x request line\n")
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return await self._send(writer, 405, "use GET /metrics\n", head_only=False, extra="Allow: GET, HEAD\r\n")
        if target != "/metrics":
            return await self._send(writer, 404, "metrics are at /metrics\n", head_only=method == "HEAD")
        accept = next((v.strip() for k, _, v in (x.partition(":") for x in lines[1:]) if k.strip().lower() == "accept"), "")
        body, content_type = self.api.metrics.encode(accept)  # on the loop: one consistent instant
        self.stats["http_requests"] += 1
        await self._send(writer, 200, body, head_only=method == "HEAD", content_type=content_type)

    async def _send(self, writer: asyncio.StreamWriter, code: int, body: bytes | str, head_only: bool = False,
                    content_type: str = "text/plain; charset=utf-8", extra: str = "") -> None:
        if code != 200:
            self.stats["http_refused"] += 1
        data = body.encode() if isinstance(body, str) else body
        writer.write((f"HTTP/1.1 {code} {REASONS[code]}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
                      f"Connection: close\r\n{extra}\r\n").encode("latin-1") + (b"" if head_only else data))
        await writer.drain()
