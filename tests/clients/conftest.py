"""Fixtures for the client tests: one three-daemon mesh shared by the whole directory (it is only read
from, or used for traffic that leaves no state), and fresh daemons for tests that change networks."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from clients.ctlharness import Mesh3, start_all
from meshd.harness import DaemonProc


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
