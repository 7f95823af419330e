"""Reading under the time budget in worker processes (intake.pipeline.isolation)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.app import App, build_app, reading_workers
from intake.pipeline.core import Envelope, Read, Result, prepare_inbound
from intake.pipeline.customers import CustomerRecord, Directory
from intake.pipeline.isolation import (
    InlineReader,
    ProcessReader,
    Reading,
    ShippedDirectory,
    _read_in_worker,
)
from intake.policy.policy import Policy
from intake.replies.render import Drafting
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import InboundStatus, OutboxMessage
from tests.conftest import make_mail

NOW = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> App:
    built = build_app(make_settings())
    built.pipeline.clock = lambda: NOW
    return built


@pytest.fixture
def reader(app: App) -> Iterator[ProcessReader]:
    pool = ProcessReader(app.pipeline.policies, app.pipeline.identity, workers=1, timeout=60.0)
    yield pool
    pool.close()


def store(app: App, raw: bytes) -> int:
    item = prepare_inbound(raw, Envelope("smtp", "test", "jane@acme.example"), NOW)
    return app.pipeline.ingest([item])[0].inbound_id


def test_a_worker_reads_what_the_daemon_would(app: App, reader: ProcessReader) -> None:
    raw = make_mail(body="Nothing works.\nSerial: ABC123\n")
    args = (raw, "jane@acme.example", NOW, ())
    inline = InlineReader(app.pipeline.policies, app.pipeline.identity)(*args)
    pooled = reader(*args)
    assert pooled == inline
    assert pooled.assessment.policy is app.pipeline.policies.default  # the daemon's own


def test_a_worker_reads_each_new_directory_and_keeps_it_between_messages(
    app: App, reader: ProcessReader
) -> None:
    """The directory travels pickled once per version; a worker must still see a new one."""
    raw = make_mail(body="Nothing works.\nSerial: ABC123\n")
    first = Directory([CustomerRecord("Acme Corp", domains=("acme.example",))])
    second = Directory([CustomerRecord("Zenith Ltd", domains=("acme.example",))])

    def customer(directory: Directory) -> str | None:
        match = reader(raw, "jane@acme.example", NOW, directory).assessment.customer
        return match.customer.name if match else None

    assert [customer(first), customer(first)] == ["Acme Corp", "Acme Corp"]
    assert customer(second) == "Zenith Ltd"  # a re-import: the worker takes the new one
    assert customer(first) == "Acme Corp"  # an object it had before is shipped afresh


@pytest.mark.timeout(120)
def test_a_message_over_budget_is_quarantined_and_the_next_one_is_read(
    app: App, reader: ProcessReader
) -> None:
    # ~4 MB of text takes a worker far longer than a millisecond on any machine.
    slow = store(app, make_mail(body="Line of text for the budget.\n" * 150_000))
    reader.timeout = 0.001
    outcome = app.pipeline.process(slow, reader)
    assert outcome.result is Result.QUARANTINED
    with session_scope(app.sessions) as session:
        row = repo.get_inbound(session, slow)
        assert row is not None and row.status == InboundStatus.QUARANTINED
        assert row.attempts == 1 and (row.last_error or "").startswith("BudgetExceededError")
    reader.timeout = 60.0  # the killed worker was replaced: the pool still reads
    assert app.pipeline.process(store(app, make_mail())).result is Result.TICKET_CREATED
    assert app.pipeline.process(store(app, make_mail(subject="B – C – D – P2")), reader).result is (
        Result.TICKET_CREATED
    )


@pytest.mark.parametrize(
    ("configured", "expected"), [(0, 0), (3, 3), (None, -1)], ids=["inline", "three", "default"]
)
def test_intake_workers(
    make_settings: Callable[..., Settings], configured: int | None, expected: int
) -> None:
    settings = make_settings(**{"intake.workers": configured})
    workers = reading_workers(settings)
    assert workers == expected if expected >= 0 else workers >= 1


def die_once(
    raw: bytes,
    envelope_from: str | None,
    received_at: datetime,
    directory: ShippedDirectory,
    dkim_verified: tuple[str, ...] = (),
    drafting: Drafting | None = None,
) -> Reading:
    """A worker killed mid-read (the OOM killer), then, in its replacement, a normal read."""
    marker = Path(os.environ["INTAKE_TEST_DIE_MARKER"])
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return _read_in_worker(raw, envelope_from, received_at, directory, dkim_verified, drafting)


def test_a_killed_worker_is_a_failed_attempt_that_is_retried(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKE_TEST_DIE_MARKER", str(tmp_path / "died"))
    pool = ProcessReader(
        app.pipeline.policies, app.pipeline.identity, workers=1, timeout=60.0, target=die_once
    )
    try:
        inbound_id = store(app, make_mail())
        assert app.pipeline.process(inbound_id, pool).result is Result.FAILED
        with session_scope(app.sessions) as session:
            row = repo.get_inbound(session, inbound_id)
            assert row is not None and row.status == InboundStatus.FAILED and row.attempts == 1
            assert row.next_attempt_at is not None  # retried later, not quarantined
        assert app.pipeline.process(inbound_id, pool).result is Result.TICKET_CREATED
    finally:
        pool.close()


def test_a_reading_names_the_daemons_policy_instead_of_carrying_a_copy(
    app: App, reader: ProcessReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's result refers to the book's policy: the parent rebuilds no Policy from
    pickled state (that cost ~0.5 ms a message, issue 11), and gets its own object."""
    raw = make_mail(body="Nothing works.\nSerial: ABC123\n")
    rebuilt: list[object] = []
    original = Policy.__setstate__

    def spy(self: Policy, state: dict[str, Any]) -> None:
        rebuilt.append(self)
        original(self, state)

    monkeypatch.setattr(Policy, "__setstate__", spy)
    reading = reader(raw, "jane@acme.example", NOW, ())
    assert reading.assessment.policy is app.pipeline.policies.default
    assert rebuilt == []


@pytest.mark.parametrize(
    ("headers", "drafted"),
    [
        ({}, True),
        ({"In-Reply-To": "<earlier@acme.example>"}, False),
        ({"References": "<a@acme.example> <b@acme.example>"}, False),
    ],
    ids=["new-report-drafted", "reply-not-drafted", "references-not-drafted"],
)
def test_a_worker_drafts_the_confirmation_the_pipeline_sends(
    app: App, reader: ProcessReader, headers: dict[str, str], drafted: bool
) -> None:
    """Issue 11: the confirmation's body is rendered by the reading worker, outside the
    write lock; the one queued carries the ticket's number, never the placeholder. A reply
    (likely a follow-up) is not drafted, and its confirmation, if any, renders as before."""
    inbound_id = store(app, make_mail(headers=headers))
    read = app.pipeline._read(inbound_id, reader)
    assert isinstance(read, Read)
    assert (read.draft is not None) is drafted
    assert (read.document is not None) is drafted
    outcome = app.pipeline.process(inbound_id, reader)
    assert outcome.result is Result.TICKET_CREATED and outcome.ticket_number
    with session_scope(app.sessions) as session:
        (reply,) = session.scalars(select(OutboxMessage)).all()
        raw = bytes(reply.raw)
    parsed = message_from_bytes(raw, policy=default)
    text = parsed.get_body(("plain",))
    assert text is not None and f"opened ticket {outcome.ticket_number}." in text.get_content()
    if read.draft is not None:
        assert read.draft.placeholder.encode() not in raw
