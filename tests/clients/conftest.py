"""Fixtures for the client tests: one three-daemon mesh shared by the whole directory (it is only read
from, or used for traffic that leaves no state), fresh daemons for tests that change networks, a fresh pair
alfa and bravo in one network (streams and forwards), and real TCP servers."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import pytest

from clients.ctlharness import Mesh3, node_id, prepare, serve_tcp, start_all, started
from meshd.harness import DaemonProc, join

PAIR_SEEDS = {"alfa": b"S" * 32, "bravo": b"T" * 32}


@pytest.fixture(scope="session")
def mesh3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh3]:
    m = Mesh3(tmp_path_factory.mktemp("mesh3"))
    try:
        yield m.start()
    finally:
        m.close()


@pytest.fixture
def two_daemons(tmp_path: Path) -> Iterator[tuple[DaemonProc, DaemonProc]]:
    with started(tmp_path, "dora", "emil") as (dora, emil):
        yield dora, emil


@pytest.fixture
def server_of() -> Iterator:
    """``server_of(handler)``: a real TCP server on 127.0.0.1 (or ``host``); its port. Shut down at the end."""
    made = []

    def make(handler: type, host: str = "127.0.0.1") -> int:
        made.append(serve_tcp(handler, host))
        return int(made[-1].server_address[1])

    yield make
    for s in made:
        s.shutdown()
        s.server_close()


@contextlib.contextmanager
def running_pair(base: Path, alfa: str = "", bravo: str = "", network: str | None = "home") -> Iterator[tuple[DaemonProc, DaemonProc]]:
    """alfa and bravo (names in each other's config, ``alfa`` and ``bravo`` added to their meshd.toml), both in
    ``network`` unless it is None; their logs must hold no traceback."""
    ids = {n: node_id(s) for n, s in PAIR_SEEDS.items()}
    a, b = (prepare(base, n, s, ids) for n, s in PAIR_SEEDS.items())
    for d, text in ((a, alfa), (b, bravo)):
        conf = d.dir / "meshd.toml"
        conf.write_text(conf.read_text() + text)
    try:
        start_all([a, b])
        if network is not None:
            join(a, b, network)
        yield a, b
        for d in (a, b):
            d.stop()
            assert "Traceback" not in d.log_text(), d.log_text()
    finally:
        a.close()
        b.close()


@pytest.fixture
def pair_config() -> tuple[str, str]:
    """What ``pair`` adds to alfa's and bravo's meshd.toml: nothing; a test module overrides this fixture."""
    return "", ""


@pytest.fixture
def pair(tmp_path: Path, pair_config: tuple[str, str]) -> Iterator[tuple[DaemonProc, DaemonProc]]:
    """alfa and bravo (names in each other's config) in one network "home"; their logs must hold no traceback."""
    with running_pair(tmp_path, *pair_config) as ab:
        yield ab


@pytest.fixture
def pair_with(tmp_path: Path) -> Callable[..., ContextManager[tuple[DaemonProc, DaemonProc]]]:
    """``with pair_with(alfa_text, bravo_text, network="home") as (a, b)``: ``pair`` with other configs, in a test."""
    return functools.partial(running_pair, tmp_path)
