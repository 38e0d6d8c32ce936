"""meshd/refresher.py: a step that raises is logged and the next one still runs; stop ends the task."""

from __future__ import annotations

import asyncio
import logging

import pytest

from omerta_mesh.meshd import refresher


def test_a_failing_step_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def main() -> asyncio.Task:
        again = asyncio.Event()

        async def step() -> None:
            calls.append(len(calls))
            if len(calls) == 1:
                raise RuntimeError("boom")
            again.set()

        task = refresher.start(0.01, step, logging.getLogger("omerta_mesh.test"), "test part")
        await asyncio.wait_for(again.wait(), 10)
        await refresher.stop(task)
        assert task.done()  # (stop waited for it to end)
        await refresher.stop(None)  # never started: nothing to do
        return task

    with caplog.at_level(logging.ERROR, "omerta_mesh.test"):
        task = asyncio.run(main())
    assert task.cancelled() and len(calls) >= 2
    assert [r.getMessage() for r in caplog.records] == ["test part refresh failed"]
    assert caplog.records[0].exc_info is not None and "boom" in str(caplog.records[0].exc_info[1])
