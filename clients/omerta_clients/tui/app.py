"""omerta-top (also `omertactl monitor`): a live rich screen driven by the daemon's event subscription.

One asyncio loop runs:

* the session: connect, ``events.subscribe`` (the snapshot), then fold every ``events.event`` into the
  model; when the link drops, say so on screen and subscribe again (a fresh snapshot) once it is back;
* a poller: ``peers.list`` and ``streams.list`` every second (byte counters -> throughput; open streams and
  port forwards) and ``status.get`` now and then;
* a pinger: one mesh ping per connected peer every ``--ping-interval`` seconds; the daemon's
  ``peer.pong`` events carry the RTT samples for the sparklines, the results count towards loss;
* the keyboard: stdin in raw (non-canonical, no echo) mode, read when readable through the loop, never
  blocking it; q quits, arrow keys or j/k select the peer shown in the detail pane;
* the painter: redraws the rich ``Live`` screen when something changed, at most ``--refresh`` apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import termios
from typing import Callable, Iterator

from rich.console import Console, RenderableType
from rich.live import Live

from .. import errors
from ..ctl.common import add_socket
from ..errors import ClientError
from ..rpc import AsyncClient, default_socket
from . import views
from .model import Model, parse_keys

DESCRIPTION = ("A live view of this node's peers: path, RTT with sparklines, throughput, loss, this node's NAT, open mesh "
               "streams and port forwards, and the event log.")
EPILOG = f"""\
keys: q quit, up/down or j/k select a peer (its detail pane is shown below the table)

The RTT figures come from mesh pings the monitor sends (--ping-interval; 0 turns them off), throughput
from the byte counters between two polls. Everything else follows the daemon's event stream.

{errors.EXIT_CODES_HELP}"""
RETRY = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ping-interval", type=float, default=2.0, metavar="SECONDS",
                   help="ping each connected peer this often for RTT and loss (0: never; default 2)")
    p.add_argument("--refresh", type=float, default=0.5, metavar="SECONDS", help="redraw at most this often (default 0.5)")


@contextlib.contextmanager
def raw_keys(fd: int) -> Iterator[None]:
    """The terminal on ``fd`` without line buffering and echo (output processing and signals stay on)."""
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


class Monitor:
    def __init__(self, socket_path: str, console: Console, *, ping_interval: float = 2.0, refresh: float = 0.5,
                 poll: float = 1.0, keys_fd: int | None = None, stop_when: Callable[[Model], bool] | None = None,
                 max_seconds: float | None = None) -> None:
        self.socket = socket_path
        self.console = console
        self.ping_interval = ping_interval
        self.refresh = refresh
        self.poll = poll
        self.keys_fd = keys_fd
        self.stop_when = stop_when
        self.max_seconds = max_seconds
        self.model = Model()
        self.done = asyncio.Event()
        self.dirty = asyncio.Event()
        self.exit_code = 0
        self.client: AsyncClient | None = None

    def changed(self) -> None:
        self.dirty.set()
        if self.stop_when is not None and self.stop_when(self.model):
            self.done.set()

    # ---- the pieces
    async def session(self, first: AsyncClient) -> None:
        client: AsyncClient | None = first
        while not self.done.is_set():
            try:
                if client is None:
                    client = await AsyncClient.connect(self.socket)
                self.client = client
                self.model.apply_subscribe(await client.subscribe())
                self.changed()
                helpers = [asyncio.create_task(self.poller(client)), asyncio.create_task(self.pinger(client))]
                try:
                    while True:
                        ev = await client.next_event()
                        if ev is not None and self.model.apply_event(ev):
                            self.changed()
                finally:
                    for t in helpers:
                        t.cancel()
                    await asyncio.wait(helpers, timeout=2.0)
            except ClientError as e:
                self.model.error = f"{e.message} — retrying every {RETRY:g} s ({e.fix})" if e.fix else e.message
                self.changed()
            finally:
                if client is not None:
                    await client.close()
                client = self.client = None
            await asyncio.sleep(RETRY)

    async def poller(self, client: AsyncClient) -> None:
        n = 0
        loop = asyncio.get_running_loop()
        while not self.done.is_set() and client is self.client:
            self.model.apply_peers((await client.call("peers.list"))["peers"], loop.time())
            self.model.apply_streams(await client.call("streams.list"))
            sel = self.model.selected_row()
            if sel is not None:  # the detail pane explains the selected peer's path
                try:
                    d = await client.call("peers.get", {"peer": sel.node_id, "network": sel.network})
                    for entry in d.get("networks") or []:
                        self.model.apply_detail(sel.key, entry)
                except ClientError as e:
                    if e.exit_code != errors.NOT_FOUND:
                        raise
            if n % 5 == 0:
                self.model.apply_status(await client.call("status.get"))
            n += 1
            self.changed()
            await asyncio.sleep(self.poll)

    async def pinger(self, client: AsyncClient) -> None:
        if self.ping_interval <= 0:
            return
        wait = max(0.05, min(2.0, self.ping_interval))

        async def one(key: tuple[str, str]) -> None:
            try:
                res = await client.call("ping", {"peer": key[0], "network": key[1], "count": 1, "timeout": wait}, timeout=wait + 5)
                self.model.apply_ping(key, res)
            except ClientError as e:
                if e.name in ("NOT_CONNECTED", "PEER_NOT_FOUND", "TIMEOUT", "NETWORK_NOT_FOUND"):
                    self.model.apply_ping(key, None, e.message)
                else:
                    raise

        while not self.done.is_set() and client is self.client:
            keys = [r.key for r in self.model.rows() if r.connected]
            if keys:
                await asyncio.gather(*(one(k) for k in keys))
                self.changed()
            await asyncio.sleep(self.ping_interval)

    def on_keys(self) -> None:
        try:
            data = os.read(self.keys_fd, 256)  # type: ignore[arg-type]
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # the terminal went away
            self.done.set()
            return
        for k in parse_keys(data):
            if not self.model.key(k):
                self.done.set()
        self.dirty.set()

    def frame(self) -> RenderableType:
        if self.console.is_terminal:  # follow the real terminal (resizes; $COLUMNS may be stale)
            try:
                self.console.size = os.get_terminal_size(self.console.file.fileno())  # type: ignore[assignment]
            except (OSError, ValueError, AttributeError):
                pass
        w, h = self.console.size
        return views.render(self.model, w, h)

    async def painter(self, live: Live) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            live.update(self.frame(), refresh=True)
            await asyncio.sleep(self.refresh)

    # ---- the loop
    async def run(self) -> int:
        first = await AsyncClient.connect(self.socket)  # a daemon that is not there at start is an error
        loop = asyncio.get_running_loop()
        screen = self.console.is_terminal
        live = Live(self.frame(), console=self.console, screen=screen, auto_refresh=False,
                    redirect_stdout=False, redirect_stderr=False, vertical_overflow="crop")
        tasks: list[asyncio.Task] = []
        with live:
            tasks = [asyncio.create_task(self.session(first)), asyncio.create_task(self.painter(live))]
            if self.keys_fd is not None:
                loop.add_reader(self.keys_fd, self.on_keys)
            waiter = asyncio.ensure_future(self.done.wait())
            try:
                done, _ = await asyncio.wait({waiter}, timeout=self.max_seconds)
                if not done:
                    self.exit_code = errors.TIMEOUT
            finally:
                waiter.cancel()
                self.done.set()  # the helpers' loops end on their own even if a cancellation got lost
                if self.keys_fd is not None:
                    loop.remove_reader(self.keys_fd)
                for t in tasks:
                    t.cancel()
                await asyncio.wait(tasks, timeout=3.0)
                live.update(self.frame())
        return self.exit_code


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run the monitor on this terminal (``omertactl monitor`` and ``omerta-top``)."""
    console = console or Console(highlight=False)
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    mon = Monitor(args.socket, console, ping_interval=args.ping_interval, refresh=args.refresh, keys_fd=fd)
    with raw_keys(fd) if fd is not None else contextlib.nullcontext():
        return asyncio.run(mon.run())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omerta-top", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_socket(p, default_socket())
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        return run(args)
    except ClientError as e:
        errors.show(e, p.prog, sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
