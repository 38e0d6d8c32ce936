"""Fixtures for the client tests: one three-daemon mesh shared by the whole directory (it is only read
from, or used for traffic that leaves no state), fresh daemons for tests that change networks, a fresh pair
alfa and bravo in one network (streams and forwards), and real TCP servers."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from clients.ctlharness import Mesh3, node_id, prepare, serve_tcp, start_all
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
    ds = [DaemonProc(tmp_path, "dora"), DaemonProc(tmp_path, "emil")]
    try:
        start_all(ds)
        yield ds[0], ds[1]
    finally:
        for d in ds:
            d.close()


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


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[DaemonProc, DaemonProc]]:
    """alfa and bravo (names in each other's config) in one network; their logs must hold no traceback."""
    ids = {n: node_id(s) for n, s in PAIR_SEEDS.items()}
    a, b = (prepare(tmp_path, n, s, ids) for n, s in PAIR_SEEDS.items())
    try:
        start_all([a, b])
        join(a, b, "home")
        yield a, b
        for d in (a, b):
            d.stop()
            assert "Traceback" not in d.log_text(), d.log_text()
    finally:
        a.close()
        b.close()
