"""Fixtures for the netns NAT lab: ``lab`` builds real namespaces and nftables NAT routers (see lab.py, labns.py, labnat.py)."""

from __future__ import annotations

import pytest

from netns.lab import Lab, requirements_missing, sweep, sweep_stale


@pytest.fixture(scope="session")
def lab_session():
    """Once per session: clear leftovers of dead runs first, sweep everything of ours at the end."""
    why = requirements_missing()
    if why is None:
        sweep_stale()
    yield why
    if why is None:
        sweep()


@pytest.fixture
def lab(lab_session, tmp_path):
    """A fresh lab per test, torn down (processes, namespaces, veths, bridges) even if the test fails."""
    if lab_session is not None:
        pytest.skip(lab_session)
    with Lab(workdir=tmp_path) as the_lab:
        yield the_lab
