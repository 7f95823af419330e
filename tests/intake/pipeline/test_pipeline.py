"""ingest/process on SQLite and PostgreSQL: idempotency, the ledger, retries, quarantine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from structlog.testing import capture_logs

from intake.app import App, build_app
from intake.pipeline.core import Envelope, Outcome, prepare_inbound
from intake.replies.render import make_template_environment
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow, InboundMessage, OutboxMessage, Ticket
from tests.conftest import make_mail

NOW = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


@pytest.fixture
def app(make_settings: Callable[..., Settings], db_url: str) -> App:
    built = build_app(make_settings(db_url, **{"intake.max_attempts": 3}))
    built.pipeline.clock = lambda: NOW
    return built


def store(app: App, raw: bytes, mail_from: str | None = "jane@acme.example") -> repo.Stored:
    return app.pipeline.ingest([prepare_inbound(raw, Envelope("smtp", "test", mail_from), NOW)])[0]


def count(app: App, model: type) -> int:
    with session_scope(app.sessions) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_ingest_is_idempotent_per_message_id_and_content(app: App) -> None:
    raw = make_mail(message_id="<a@acme.example>")
    first, again = store(app, raw), store(app, raw)
    other = store(app, make_mail(message_id="<a@acme.example>", subject="X – Y – other – P3"))
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert first.inbound_id == again.inbound_id != other.inbound_id


def test_redelivery_through_another_hop_is_the_same_message(app: App) -> None:
    raw = make_mail(message_id="<hop@acme.example>")
    relayed = (
        b"Received: from mx2.example by mx1.example; Sun, 22 Nov 2026 10:00:00 +0000\r\n" + raw
    )
    assert store(app, raw).inbound_id == store(app, relayed).inbound_id


def test_process_creates_ticket_charge_and_reply_once(app: App) -> None:
    stored = store(app, make_mail(body="Nothing works.\n"))
    first = app.pipeline.process(stored.inbound_id)
    second = app.pipeline.process(stored.inbound_id)
    assert first.result == "ticket_created" and first.ticket_number == "TKT-000001"
    assert second.result == "already_done"
    assert [count(app, m) for m in (Ticket, ChargeRow, OutboxMessage)] == [1, 1, 1]
    with session_scope(app.sessions) as session:
        charge = session.execute(select(ChargeRow)).scalar_one()
        assert (charge.amount, charge.currency) == (Decimal("100.00"), "USD")
        assert isinstance(charge.amount, Decimal)


def test_ledger_key_refuses_a_second_charge_for_the_same_message(app: App) -> None:
    stored = store(app, make_mail(body="Nothing works.\n"))
    app.pipeline.process(stored.inbound_id)
    with session_scope(app.sessions) as session:
        row = session.execute(select(ChargeRow)).scalar_one()
        written = repo.add_charge(
            session,
            ledger_key=row.ledger_key,
            ticket_id=row.ticket_id,
            kind=row.kind,
            amount=row.amount,
            currency=row.currency,
            reason=row.reason,
            status=row.status,
            now=NOW,
        )
    assert written is False and count(app, ChargeRow) == 1


def test_ticket_numbers_are_unique_and_formatted(app: App) -> None:
    numbers = [
        app.pipeline.process(
            store(app, make_mail(subject=f"C – L – issue {i} – P3")).inbound_id
        ).ticket_number
        for i in range(5)
    ]
    assert numbers == [f"TKT-{i:06d}" for i in range(1, 6)]


def test_complete_report_has_no_charge(app: App) -> None:
    outcome = app.pipeline.process(store(app, make_mail()).inbound_id)
    assert outcome.result == "ticket_created"
    assert count(app, ChargeRow) == 0
    with session_scope(app.sessions) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.missing_fields == []
        assert ticket.fields["serial_number"] == "board: MX-0042-7781; appliance: MXA-0042-7782"
        assert ticket.policy_name == "standard"


@pytest.mark.parametrize(
    ("headers", "mail_from"),
    [
        ({"Auto-Submitted": "auto-replied"}, "jane@acme.example"),
        ({"Precedence": "bulk", "List-Id": "<ops.lists.example>"}, "jane@acme.example"),
        ({}, ""),
        ({"X-Loop": "support@example.com"}, "jane@acme.example"),
    ],
    ids=["auto-submitted", "list", "null-sender", "our-own-loop"],
)
def test_machine_mail_is_recorded_never_answered(
    app: App, headers: dict[str, str], mail_from: str
) -> None:
    stored = store(app, make_mail(headers=headers), mail_from=mail_from)
    outcome = app.pipeline.process(stored.inbound_id)
    assert outcome.result == "ignored" and outcome.classification != "human"
    assert [count(app, m) for m in (Ticket, OutboxMessage)] == [0, 0]
    with session_scope(app.sessions) as session:
        row = session.get(InboundMessage, stored.inbound_id)
        assert row is not None and row.status == "ignored" and row.raw


def test_failing_message_is_retried_then_quarantined_without_blocking_others(
    app: App, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-templates"
    broken.mkdir()
    (broken / "confirmation.txt.j2").write_text("{{ no_such_variable }}")
    (broken / "confirmation.html.j2").write_text("x")
    good_templates = app.pipeline.templates
    app.pipeline.templates = make_template_environment(broken)

    bad = store(app, make_mail(subject="Bad – message – fails – P3"))
    results = [app.pipeline.process(bad.inbound_id).result for _ in range(3)]
    assert results == ["failed", "failed", "quarantined"]
    assert count(app, Ticket) == 0  # a failed COMMIT 2 left nothing behind

    app.pipeline.templates = good_templates
    good = store(app, make_mail(subject="Good – message – works – P3"))
    assert app.pipeline.process(good.inbound_id).result == "ticket_created"
    with session_scope(app.sessions) as session:
        [row] = repo.list_inbound(session, "quarantined")
        assert row.id == bad.inbound_id and row.attempts == 3
        assert "UndefinedError" in (row.last_error or "")
        assert repo.requeue_inbound(session, bad.inbound_id)
    assert app.pipeline.process(bad.inbound_id).result == "ticket_created"


def test_due_messages_include_new_and_backed_off_failures(app: App) -> None:
    stored = store(app, make_mail())
    with session_scope(app.sessions) as session:
        assert repo.due_inbound_ids(session, NOW) == [stored.inbound_id]
    app.pipeline.process(stored.inbound_id)
    with session_scope(app.sessions) as session:
        assert repo.due_inbound_ids(session, NOW) == []


def test_unparseable_garbage_is_still_ticketed_with_findings(app: App) -> None:
    raw = b"\xff\xfe\x00garbage without headers\r\n\r\n\x80\x81 body"
    stored = store(app, raw)
    outcome = app.pipeline.process(stored.inbound_id)
    # No From: nobody to answer, but the message is kept and a ticket records it.
    assert outcome.result == "ticket_created"
    assert count(app, OutboxMessage) == 0
    with session_scope(app.sessions) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        codes = {f["code"] for f in ticket.findings}
        assert {"subject_unreadable", "no_reply_address", "not_a_mail"} <= codes
        assert ticket.charges == []  # no header section: nobody gave or omitted details


def test_two_workers_processing_one_message_make_one_ticket(app: App) -> None:
    import threading

    stored = store(app, make_mail(body="Nothing works.\n"))
    results: list[str] = []
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        results.append(app.pipeline.process(stored.inbound_id).result)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A loser on SQLite may see the writer lock and count a retryable failure; the
    # retry then finds the message done. Either way: one ticket, one charge, one reply.
    assert "ticket_created" in results
    assert app.pipeline.process(stored.inbound_id).result == "already_done"
    assert [count(app, m) for m in (Ticket, ChargeRow, OutboxMessage)] == [1, 1, 1]


def test_a_late_failure_never_resets_a_finished_message(app: App) -> None:
    stored = store(app, make_mail())
    assert app.pipeline.process(stored.inbound_id).result == "ticket_created"
    with session_scope(app.sessions) as session:
        row = repo.record_failure(session, stored.inbound_id, "late loser", NOW)
        assert (row.status, row.attempts) == ("processed", 0)
    with session_scope(app.sessions) as session:
        assert repo.due_inbound_ids(session, NOW) == []


def test_a_deterministic_integrity_error_is_retried_then_quarantined_and_logged(
    app: App,
) -> None:
    # A number format without a placeholder gives every ticket the same number: the
    # second ticket clashes on the unique ticket number every time it is tried.
    app.pipeline.number_format = "TKT-CLASH"
    assert app.pipeline.process(store(app, make_mail()).inbound_id).result == "ticket_created"
    clash = store(app, make_mail(subject="C – L – second – P3"))
    with capture_logs() as logs:
        results = [app.pipeline.process(clash.inbound_id).result for _ in range(3)]
    assert results == ["failed", "failed", "quarantined"]
    failed = [e for e in logs if e["event"] == "message.failed"]
    assert [e["inbound_id"] for e in failed] == [clash.inbound_id] * 3
    assert all("IntegrityError" in e["error"] for e in failed)
    assert all("TKT-CLASH" not in e["error"] for e in failed)  # no SQL parameters logged
    processed = [e["outcome"] for e in logs if e["event"] == "message.processed"]
    assert processed == ["failed", "failed", "quarantined"]
    with session_scope(app.sessions) as session:
        [row] = repo.list_inbound(session, "quarantined")
        assert (row.id, row.attempts) == (clash.inbound_id, 3)
        assert "IntegrityError" in (row.last_error or "")
    assert count(app, Ticket) == 1


def test_an_integrity_error_after_another_worker_finished_reads_as_already_done(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = store(app, make_mail())
    finish = app.pipeline._process

    def lose_the_race(inbound_id: int, *reader: object) -> Outcome:
        finish(inbound_id, *reader)  # type: ignore[arg-type]  # the other worker commits ...
        raise IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(app.pipeline, "_process", lose_the_race)
    with capture_logs() as logs:
        outcome = app.pipeline.process(stored.inbound_id)
    assert outcome.result == "already_done"
    assert [e["event"] for e in logs if e["event"].startswith("message.")] == [
        "message.processed",  # the winner's line
        "message.already_done",
    ]
    with session_scope(app.sessions) as session:
        row = session.get_one(InboundMessage, stored.inbound_id)
        assert (row.status, row.attempts, row.last_error) == ("processed", 0, None)


def test_the_processed_line_names_the_checks_that_hit_and_missed(app: App) -> None:
    stored = store(app, make_mail(subject="Acme – Denver – No dial tone", body="Dead.\n"))
    with capture_logs() as logs:
        app.pipeline.process(stored.inbound_id)
    [line] = [e for e in logs if e["event"] == "message.processed"]
    assert {"subject_priority", "required_fields", "known_customer"} <= set(line["checks_hit"])
    assert {"subject_grammar", "reply_address"} <= set(line["checks_missed"])
    assert set(line["checks_hit"]).isdisjoint(line["checks_missed"])
