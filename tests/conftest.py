"""Shared pytest setup: the root marker skips with a reason; hypothesis without a database in a read-only checkout."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

ROOT_REASON = "network namespaces, TUN, nftables"

if not os.access(os.getcwd(), os.W_OK):
    # a checkout this user may not write (e.g. the suite run as nobody in CI): hypothesis's default database,
    # ./.hypothesis, is unusable, and its warning about that is an error here (filterwarnings = error); one run
    # keeps its examples in memory
    settings.register_profile("read-only-checkout", database=None)
    settings.load_profile("read-only-checkout")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.root("why")`` (or a bare ``root``: namespaces, TUN, nftables) skips unless root, saying why."""
    if os.geteuid() == 0:
        return
    for item in items:
        marker = item.get_closest_marker("root")
        if marker is not None:
            why = marker.args[0] if marker.args else ROOT_REASON
            item.add_marker(pytest.mark.skip(reason=f"needs root ({why}); CI runs as root"))
