"""Auto-close notices take the one enqueue path: budget, bounce suppression, signed ids."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.replies.tokens import Token, read_token
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import OutboxMessage
from tests.conftest import make_mail

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 10:00 MST, business hours
# 48 business hours later on the managed-PBX clock (see test_policy_pipeline).
CLOSE_AT = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
JANE = "jane@acme.example"
INCOMPLETE = "Phones are dead.\n"  # missing fields: the ticket waits on the customer


def waiting_ticket(
    make_settings: Callable[..., Settings], db: str, **overrides: object
) -> tuple[App, str]:
    app = build_app(make_settings(db, **{"intake.policy": "managed-pbx", **overrides}))
    return app, process(app, make_mail(body=INCOMPLETE), MONDAY)


def process(app: App, raw: bytes, at: datetime) -> str:
    app.pipeline.clock = lambda: at
    item = prepare_inbound(raw, Envelope("smtp", "t", JANE), at)
    outcome = app.pipeline.process(app.pipeline.ingest([item])[0].inbound_id)
    assert outcome.ticket_number is not None, outcome
    return outcome.ticket_number


def notice(app: App) -> OutboxMessage:
    with session_scope(app.sessions) as session:
        row = session.execute(
            select(OutboxMessage).where(OutboxMessage.kind == "auto_close")
        ).scalar_one()
        session.expunge(row)
        return row


def ticket_status(app: App, number: str) -> str:
    with session_scope(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        return ticket.status


def bounced(app: App) -> None:
    with session_scope(app.sessions) as session:
        repo.record_bounce(
            session, JANE, "5.1.1", True, CLOSE_AT - timedelta(days=1), timedelta(days=7)
        )


def answered_ten_minutes_ago(app: App) -> None:
    process(app, make_mail(), CLOSE_AT - timedelta(minutes=10))  # its confirmation counts


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (bounced, "bouncing until"),
        (answered_ten_minutes_ago, "1 automatic replies in the last hour (limit 1)"),
    ],
    ids=["permanently-bouncing", "over-the-hourly-budget"],
)
def test_auto_close_notice_is_suppressed_like_any_reply(
    make_settings: Callable[..., Settings],
    db_url: str,
    arrange: Callable[[App], None],
    reason: str,
) -> None:
    app, number = waiting_ticket(make_settings, db_url, **{"intake.replies_per_hour": 1})
    arrange(app)
    assert app.autocloser.run_once(CLOSE_AT) == [number]
    assert ticket_status(app, number) == "closed"  # closing never waits on the notice
    row = notice(app)
    assert row.status == "suppressed"
    assert row.last_error is not None and row.last_error.startswith(f"{JANE}: {reason}")


def test_auto_close_notice_within_budget_is_queued(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app, number = waiting_ticket(make_settings, db_url)
    assert app.autocloser.run_once(CLOSE_AT) == [number]
    row = notice(app)
    assert (row.status, row.recipients, row.last_error) == ("queued", [JANE], None)


def test_auto_close_notice_carries_a_verified_token_and_threads(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app, number = waiting_ticket(make_settings, db_url)
    app.autocloser.run_once(CLOSE_AT)
    message_id = notice(app).message_id
    thread = app.pipeline.thread
    assert read_token(thread.secret, message_id, thread.domains) == Token(number, "auto-close")
    answer = make_mail(
        subject="Re: closed?", body="Still broken.\n", headers={"In-Reply-To": f"<{message_id}>"}
    )
    assert process(app, answer, CLOSE_AT + timedelta(hours=1)) == number
    assert ticket_status(app, number) == "open"  # the answer reopened it


def test_a_retried_auto_close_sends_the_same_message_id(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app, number = waiting_ticket(make_settings, db_url)
    with app.sessions() as session:  # a run that crashed before its commit
        assert app.autocloser.close_due(session, CLOSE_AT) == [number]
        crashed = session.execute(
            select(OutboxMessage.message_id).where(OutboxMessage.kind == "auto_close")
        ).scalar_one()
        session.rollback()
    with session_scope(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        assert ticket.status == "waiting_customer"  # nothing of the crashed run remains
    assert app.autocloser.run_once(CLOSE_AT + timedelta(minutes=5)) == [number]
    assert notice(app).message_id == crashed


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_ticket_answered_while_the_auto_closer_ran_stays_open(
    make_settings: Callable[..., Settings], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another instance's follow-up lands between the auto-closer's list and its close."""
    app, number = waiting_ticket(make_settings, db_url)
    listed = repo.tickets_waiting_since

    def list_then_the_customer_answers(*args: object) -> list[object]:
        candidates = listed(*args)  # type: ignore[arg-type]
        with session_scope(app.sessions) as other:  # the follow-up's COMMIT 2, elsewhere
            ticket = repo.ticket_by_number(other, number)
            assert ticket is not None
            ticket.status, ticket.waiting_since = "open", None
        return list(candidates)

    monkeypatch.setattr(repo, "tickets_waiting_since", list_then_the_customer_answers)
    assert app.autocloser.run_once(CLOSE_AT) == []
    assert ticket_status(app, number) == "open"
    with session_scope(app.sessions) as session:
        kinds = session.execute(select(OutboxMessage.kind)).scalars().all()
    assert "auto_close" not in kinds
