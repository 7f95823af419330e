"""The processing worker stops when asked, not at its next sweep (intake.pipeline.worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from intake.app import build_app
from intake.pipeline.worker import ProcessingWorker
from intake.settings import Settings


@pytest.mark.timeout(120)
def test_stop_ends_the_worker_without_waiting_out_the_sweep_interval(
    make_settings: Callable[..., Settings],
) -> None:
    """A daemon's SIGTERM reaches the worker while it waits for the next id; an hour-long
    sweep interval must not hold the shutdown (systemd would kill it at TimeoutStopSec)."""
    app = build_app(make_settings())
    worker = ProcessingWorker(app.pipeline, app.sessions, sweep_interval=3600.0)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        while not worker._queue._getters:  # type: ignore[attr-defined]  # waiting for an id
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(running, 60)  # far below the interval: no sweep was waited for

    asyncio.run(main())
    app.engine.dispose()
