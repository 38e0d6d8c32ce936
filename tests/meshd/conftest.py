"""Fixtures for omerta-meshd tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from meshd.harness import DaemonProc


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator:
    made: list[DaemonProc] = []

    def make(name: str = "d", **kw: object) -> DaemonProc:
        d = DaemonProc(tmp_path, name, **kw)  # type: ignore[arg-type]
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    """One daemon for the many small RPC tests of a module."""
    d = DaemonProc(tmp_path_factory.mktemp("meshd"), "shared").start()
    yield d
    d.close()
