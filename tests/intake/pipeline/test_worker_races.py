"""A message named twice — by an edge's hand-over and by a sweep's read — is processed once
(intake.pipeline.worker): the second name was given before the first attempt committed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

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


def counting_worker(app: App, outcomes: list[Result]) -> ProcessingWorker:
    def done(outcome: Outcome, _seconds: float) -> None:
        outcomes.append(outcome.result)

    return ProcessingWorker(app.pipeline, app.sessions, 3600.0, on_done=done)


@pytest.mark.timeout(120)
def test_a_handed_over_id_the_sweep_processed_first_is_not_tried_again(
    make_settings: Callable[..., Settings],
) -> None:
    """The listener hands an id over, the sweep reads it as due and processes it before the
    worker takes the hand-over from its queue: the queued name is stale."""
    app = build_app(make_settings())
    app.pipeline.clock = lambda: NOW
    outcomes: list[Result] = []
    worker = counting_worker(app, outcomes)
    inbound_id = store_one(app)
    worker.submit(inbound_id)
    stop = asyncio.Event()
    stop.set()  # run: the starting sweep, then the drain of the queue
    asyncio.run(worker.run(stop))
    assert outcomes == [Result.TICKET_CREATED]
    app.engine.dispose()


@pytest.mark.timeout(120)
def test_an_id_the_sweep_read_before_its_commit_is_not_tried_again(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's read names an id while its hand-over is being processed; that attempt
    commits before the sweep gets to start it."""
    app = build_app(make_settings())
    app.pipeline.clock = lambda: NOW
    outcomes: list[Result] = []
    worker = counting_worker(app, outcomes)
    inbound_id = store_one(app)
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
    app.engine.dispose()


@pytest.mark.timeout(120)
def test_a_failed_id_due_again_is_retried_by_the_next_sweep(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remembering finishes never hides a later read: a message whose attempt failed is
    retried by the first sweep after its backoff, although it finished a moment ago."""
    import intake.pipeline.core as core

    real_render = core.render_confirmation
    calls: list[int] = []

    def fail_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("injected: the first render fails")
        return real_render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(core, "render_confirmation", fail_once)
    app = build_app(make_settings())
    now = [NOW]
    app.pipeline.clock = lambda: now[0]
    outcomes: list[Result] = []
    worker = counting_worker(app, outcomes)
    store_one(app)

    async def main() -> None:
        assert await worker.sweep() == 1
        assert await worker.sweep() == 0  # failed, its backoff not passed
        now[0] = NOW + timedelta(days=1)
        assert await worker.sweep() == 1

    asyncio.run(main())
    assert outcomes == [Result.FAILED, Result.TICKET_CREATED]
    app.engine.dispose()
