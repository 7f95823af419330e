"""The group-commit writer (COMMIT 1 for SMTP) through its public methods, on a real store.

Items are queued before the writer starts, so what waits together is known exactly; a
commit counter on the engine shows how many transactions (fsyncs) the writer used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from sqlalchemy import event, func, select, text

from intake.app import App, build_app
from intake.edges.groupcommit import GroupCommitWriter
from intake.errors import StoreError
from intake.logs import configure_logging
from intake.pipeline.core import Envelope, prepare_inbound
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage
from tests.conftest import make_mail

NOW = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
Outcome = repo.Stored | BaseException


@pytest.fixture(autouse=True)
def log_lines() -> Iterator[io.StringIO]:
    """Logs as the daemon writes them (JSON), into a buffer; the old setup comes back after."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging("INFO", "json", buffer)
    yield buffer
    structlog.configure(**saved)


def events(buffer: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in lines if line["event"] == name]


@pytest.fixture
def app(make_settings: Callable[..., Settings], db_url: str) -> Iterator[App]:
    built = build_app(make_settings(db_url))
    yield built
    built.engine.dispose()


@pytest.fixture
def commits(app: App) -> list[int]:
    """One entry per transaction committed on the app's engine from now on."""
    seen: list[int] = []
    event.listen(app.engine, "commit", lambda _conn: seen.append(1))
    return seen


def item(raw: bytes | None = None) -> repo.NewInbound:
    return prepare_inbound(raw or make_mail(), Envelope("smtp", "127.0.0.1:2525"), NOW)


async def queue_then_start(
    writer: GroupCommitWriter, items: list[repo.NewInbound], *, stop: bool = False
) -> list[Outcome]:
    """Queue every item while the writer is not running, start it (and stop it at once)."""
    tasks = [asyncio.create_task(writer.store(one)) for one in items]
    await asyncio.sleep(0)  # a yield, not a wait: each task runs up to its queue.put
    writer.start()
    if stop:
        writer.stop()  # must still answer everything queued before it
    try:
        return list(await asyncio.gather(*tasks, return_exceptions=True))
    finally:
        writer.stop()


def stored_count(app: App) -> int:
    with session_scope(app.sessions) as session:
        statement = select(func.count()).select_from(InboundMessage)
        return int(session.execute(statement).scalar_one())


def test_every_caller_gets_its_own_row(app: App) -> None:
    items = [item() for _ in range(3)]
    outcomes = asyncio.run(queue_then_start(GroupCommitWriter(app.pipeline), items))
    assert all(isinstance(o, repo.Stored) and not o.duplicate for o in outcomes)
    ids = [o.inbound_id for o in outcomes if isinstance(o, repo.Stored)]
    assert len(set(ids)) == 3
    with session_scope(app.sessions) as session:
        for one, inbound_id in zip(items, ids, strict=True):
            row = repo.get_inbound(session, inbound_id)
            assert row is not None and row.idempotency_key == one.idempotency_key


def test_waiting_messages_share_one_commit(app: App, commits: list[int]) -> None:
    items = [item() for _ in range(5)]
    outcomes = asyncio.run(queue_then_start(GroupCommitWriter(app.pipeline), items))
    assert len(commits) == 1
    assert all(isinstance(o, repo.Stored) for o in outcomes) and stored_count(app) == 5


@pytest.mark.parametrize(
    ("max_batch", "waiting", "expected_commits"),
    [(2, 5, 3), (5, 5, 1), (1, 3, 3)],
    ids=["groups-of-two", "exactly-one-group", "one-by-one"],
)
def test_max_batch_bounds_a_group(
    app: App, commits: list[int], max_batch: int, waiting: int, expected_commits: int
) -> None:
    writer = GroupCommitWriter(app.pipeline, max_batch=max_batch)
    outcomes = asyncio.run(queue_then_start(writer, [item() for _ in range(waiting)]))
    assert len(commits) == expected_commits
    assert all(isinstance(o, repo.Stored) for o in outcomes) and stored_count(app) == waiting


def test_the_same_message_twice_in_one_group_is_one_row(app: App) -> None:
    twice = item()
    first, second = asyncio.run(queue_then_start(GroupCommitWriter(app.pipeline), [twice, twice]))
    assert isinstance(first, repo.Stored) and isinstance(second, repo.Stored)
    assert second == repo.Stored(first.inbound_id, duplicate=True) and not first.duplicate
    assert stored_count(app) == 1


def test_store_down_every_waiting_message_gets_the_error(app: App) -> None:
    """Invariant 1: nobody is told "stored" (SMTP 250) when nothing was stored."""
    with app.engine.begin() as conn:
        conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_gone"))
    writer = GroupCommitWriter(app.pipeline)
    try:
        outcomes = asyncio.run(queue_then_start(writer, [item() for _ in range(3)]))
    finally:
        with app.engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbound_message_gone RENAME TO inbound_message"))
    assert [type(o) for o in outcomes] == [StoreError] * 3
    assert stored_count(app) == 0


def test_a_failed_store_is_logged_with_its_message_id(app: App, log_lines: io.StringIO) -> None:
    broken = dataclasses.replace(item(), received_at=NOW.replace(tzinfo=None))  # store refuses
    [outcome] = asyncio.run(queue_then_start(GroupCommitWriter(app.pipeline), [broken]))
    assert isinstance(outcome, StoreError)
    [logged] = events(log_lines, "ingest.failed")
    assert logged["message_id"] == broken.message_id and logged["level"] == "error"


def test_the_failure_log_carries_no_sql_parameters(app: App, log_lines: io.StringIO) -> None:
    """Style: logs carry ids and outcomes, never field values or SQL parameters."""
    private = dataclasses.replace(item(), envelope_from="private.person@acme.example")
    with app.engine.begin() as conn:
        conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_gone"))
    try:
        asyncio.run(queue_then_start(GroupCommitWriter(app.pipeline), [private]))
    finally:
        with app.engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbound_message_gone RENAME TO inbound_message"))
    [logged] = events(log_lines, "ingest.failed")
    assert logged["message_id"] == private.message_id
    assert "private.person@acme.example" not in json.dumps(logged)


def test_the_writer_keeps_storing_after_a_failed_message(app: App) -> None:
    broken = dataclasses.replace(item(), received_at=NOW.replace(tzinfo=None))  # store refuses

    async def one_after_the_other(writer: GroupCommitWriter) -> tuple[Outcome, Outcome]:
        first = await asyncio.gather(writer.store(broken), return_exceptions=True)
        then = await asyncio.gather(writer.store(item()), return_exceptions=True)
        return first[0], then[0]

    writer = GroupCommitWriter(app.pipeline)
    writer.start()
    try:
        failed, later = asyncio.run(one_after_the_other(writer))
    finally:
        writer.stop()
    assert isinstance(failed, StoreError)
    assert isinstance(later, repo.Stored) and not later.duplicate
    assert stored_count(app) == 1


def test_one_bad_message_does_not_fail_its_neighbours(app: App) -> None:
    good = [item(), item()]
    bad = dataclasses.replace(item(), received_at=NOW.replace(tzinfo=None))  # store refuses
    outcomes = asyncio.run(
        queue_then_start(GroupCommitWriter(app.pipeline), [good[0], bad, good[1]])
    )
    assert isinstance(outcomes[1], StoreError)
    assert [type(outcomes[0]), type(outcomes[2])] == [repo.Stored, repo.Stored]
    with session_scope(app.sessions) as session:
        rows = session.execute(select(InboundMessage)).scalars()
        assert {r.idempotency_key for r in rows} == {g.idempotency_key for g in good}


@pytest.mark.parametrize(
    ("max_batch", "waiting", "expected_commits"),
    [(64, 4, 1), (2, 3, 2)],
    ids=["one-group", "stop-lands-in-the-last-group"],
)
def test_stop_answers_everything_queued_before_it(
    app: App, commits: list[int], max_batch: int, waiting: int, expected_commits: int
) -> None:
    writer = GroupCommitWriter(app.pipeline, max_batch=max_batch)
    items = [item() for _ in range(waiting)]
    outcomes = asyncio.run(queue_then_start(writer, items, stop=True))
    assert len(commits) == expected_commits  # before stored_count's own transaction
    assert all(isinstance(o, repo.Stored) for o in outcomes) and stored_count(app) == waiting


def test_stop_is_safe_before_start_and_twice(app: App) -> None:
    writer = GroupCommitWriter(app.pipeline)
    writer.stop()  # never started: nothing to wait for
    writer.start()
    writer.stop()
    writer.stop()
    writer.start()  # a stopped writer can be started again
    try:
        stored = asyncio.run(writer.store(item()))
    finally:
        writer.stop()
    assert stored.duplicate is False and stored_count(app) == 1
