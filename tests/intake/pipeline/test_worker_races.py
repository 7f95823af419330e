"""A message named twice — by an edge's hand-over and by a sweep's read — is processed once
(intake.pipeline.worker): the second name was given before the first attempt committed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

import intake.pipeline.core as core
from intake.app import App, build_app
from intake.pipeline.core import Envelope, Outcome, Result, prepare_inbound
from intake.pipeline.worker import ProcessingWorker
from intake.settings import Settings
from tests.conftest import make_mail, wait_for

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def store_one(app: App) -> int:
    envelope = Envelope("smtp", "t", "x@y.example")
    (stored,) = app.pipeline.ingest([prepare_inbound(make_mail(), envelope, NOW)])
    return stored.inbound_id


@dataclass
class Counted:
    """The app, a worker whose outcomes are counted in order, and the pipeline's clock."""

    app: App
    worker: ProcessingWorker
    outcomes: list[Result]
    now: list[datetime]


@pytest.fixture
def counted(make_settings: Callable[..., Settings]) -> Iterator[Counted]:
    app = build_app(make_settings())
    now = [NOW]
    app.pipeline.clock = lambda: now[0]
    outcomes: list[Result] = []

    def done(outcome: Outcome, _seconds: float) -> None:
        outcomes.append(outcome.result)

    worker = ProcessingWorker(app.pipeline, app.sessions, 3600.0, on_done=done)
    yield Counted(app, worker, outcomes, now)
    app.engine.dispose()


@pytest.mark.timeout(120)
def test_a_handed_over_id_the_sweep_processed_first_is_not_tried_again(
    counted: Counted,
) -> None:
    """The listener hands an id over, the sweep reads it as due and processes it before the
    worker takes the hand-over from its queue: the queued name is stale."""
    counted.worker.submit(store_one(counted.app))
    stop = asyncio.Event()
    stop.set()  # run: the starting sweep, then the drain of the queue
    asyncio.run(counted.worker.run(stop))
    assert counted.outcomes == [Result.TICKET_CREATED]


@pytest.mark.timeout(120)
def test_an_id_the_sweep_read_before_its_commit_is_not_tried_again(
    counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's read names an id while its hand-over is being processed; that attempt
    commits before the sweep gets to start it."""
    worker, outcomes = counted.worker, counted.outcomes
    inbound_id = store_one(counted.app)
    read = threading.Event()
    real_read = worker._due_ids

    def read_then_let_the_attempt_finish() -> list[int]:
        due = real_read()
        read.set()
        wait_for(lambda: len(outcomes) == 1, 60)  # the hand-over's attempt has committed
        return due

    monkeypatch.setattr(worker, "_due_ids", read_then_let_the_attempt_finish)

    async def main() -> None:
        sweeping = asyncio.create_task(worker.sweep())
        await asyncio.to_thread(read.wait, 60)
        worker.submit(inbound_id)
        await worker._start(*worker._queue.get_nowait())
        assert await sweeping == 1  # the sweep did name it
        await worker._settle()

    asyncio.run(main())
    assert outcomes == [Result.TICKET_CREATED]


@pytest.mark.timeout(120)
def test_a_failed_id_due_again_is_retried_by_the_next_sweep(
    counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remembering finishes never hides a later read: a message whose attempt failed is
    retried by the first sweep after its backoff, although it finished a moment ago."""
    real_render = core.render_confirmation
    calls: list[int] = []

    def fail_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("injected: the first render fails")
        return real_render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(core, "render_confirmation", fail_once)
    store_one(counted.app)
    worker = counted.worker

    async def main() -> None:
        assert await worker.sweep() == 1
        assert await worker.sweep() == 0  # failed, its backoff not passed
        counted.now[0] = NOW + timedelta(days=1)
        assert await worker.sweep() == 1

    asyncio.run(main())
    assert counted.outcomes == [Result.FAILED, Result.TICKET_CREATED]
