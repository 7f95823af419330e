"""The outbound budget and bounce suppression, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from intake.replies.budget import BudgetSettings, check_budget
from intake.settings import IntakeSettings
from store import repository as repo
from store.db import create_schema, make_engine, make_session_factory, session_scope
from store.models import OutboxMessage, OutboxStatus

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = BudgetSettings(per_hour=3, per_day=5, bounce_suppression=timedelta(days=7))
JANE = "jane@acme.example"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    create_schema(engine)
    yield make_session_factory(engine)
    engine.dispose()


def reply(
    session: Session,
    at: datetime,
    recipients: tuple[str, ...] = (JANE,),
    status: str = OutboxStatus.SENT,
    inbound_message_id: int | None = None,
) -> None:
    row = OutboxMessage(
        message_id=f"{uuid.uuid4().hex}@example.com",
        kind="confirmation",
        inbound_message_id=inbound_message_id,
        sender="support@example.com",
        recipients=list(recipients),
        raw=b"x",
        status=status,
        attempts=0,
        next_attempt_at=at,
        created_at=at,
    )
    if inbound_message_id is not None:
        assert repo.enqueue_reply(session, row)  # indexes the recipients itself
        return
    # enqueue_reply allows one reply per (inbound message, kind), and NULL matches NULL
    # there; replies without an inbound message (auto-close notices) are added directly.
    session.add(row)
    session.flush()
    repo.record_outbox_recipients(session, row.id, row.recipients, row.created_at)


def replies(session: Session, count: int, at: datetime, address: str = JANE) -> None:
    for _ in range(count):
        reply(session, at, (address,))


def decide(session: Session, *recipients: str, now: datetime = NOW) -> dict[str, str]:
    decision = check_budget(session, recipients or (JANE,), now, SETTINGS)
    assert set(decision.allowed).isdisjoint(decision.suppressed)
    return decision.suppressed


# --- the hour and the day -----------------------------------------------------------------


def test_one_below_the_hourly_limit_is_allowed(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_hour - 1, NOW - timedelta(minutes=10))
        assert decide(session) == {}


def test_the_hourly_limit_suppresses(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_hour, NOW - timedelta(minutes=10))
        assert decide(session) == {JANE: "3 automatic replies in the last hour (limit 3)"}


def test_a_reply_exactly_one_hour_old_has_left_the_window(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_hour - 1, NOW - timedelta(minutes=10))
        replies(session, 1, NOW - timedelta(hours=1))
        assert decide(session) == {}
        assert decide(session, now=NOW - timedelta(seconds=1)) != {}


def test_one_below_the_daily_limit_is_allowed(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_day - 1, NOW - timedelta(hours=5))
        assert decide(session) == {}


def test_the_daily_limit_suppresses(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_day, NOW - timedelta(hours=5))
        assert decide(session) == {JANE: "5 automatic replies in the last day (limit 5)"}


def test_a_reply_exactly_one_day_old_has_left_the_window(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_day - 1, NOW - timedelta(hours=5))
        replies(session, 1, NOW - timedelta(days=1))
        assert decide(session) == {}


def test_suppressed_replies_do_not_count(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        for _ in range(SETTINGS.per_hour):
            reply(session, NOW - timedelta(minutes=1), status=OutboxStatus.SUPPRESSED)
        assert decide(session) == {}


def test_each_recipient_has_its_own_budget(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_hour, NOW - timedelta(minutes=1))
        decision = check_budget(session, [JANE, "bob@acme.example"], NOW, SETTINGS)
        assert decision.allowed == ("bob@acme.example",)
        assert list(decision.suppressed) == [JANE]


def test_a_reply_to_several_counts_for_each(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        for _ in range(SETTINGS.per_hour):
            reply(session, NOW - timedelta(minutes=1), (JANE, "Bob@Acme.Example"))
        assert set(decide(session, JANE, "bob@acme.example")) == {JANE, "bob@acme.example"}


def test_addresses_compare_case_insensitively(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        replies(session, SETTINGS.per_hour, NOW - timedelta(minutes=1), "Jane@ACME.example")
        decision = check_budget(session, ["JANE@acme.EXAMPLE", JANE], NOW, SETTINGS)
        assert decision.allowed == ()
        assert list(decision.suppressed) == ["JANE@acme.EXAMPLE"]  # once, first spelling


def test_a_second_reply_to_one_inbound_message_is_suppressed(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        inbound = repo.store_inbound(
            session,
            repo.NewInbound("k1", "m1@acme.example", "smtp", None, JANE, (), b"x", NOW),
        ).inbound_id
        first = check_budget(session, [JANE], NOW, SETTINGS, inbound_message_id=inbound)
        assert first.allowed == (JANE,)
        reply(session, NOW, inbound_message_id=inbound)
        assert repo.count_recent_replies(session, JANE.upper(), NOW - timedelta(hours=1)) == 1
        second = check_budget(session, [JANE], NOW, SETTINGS, inbound_message_id=inbound)
        assert second.allowed == ()
        assert "already answered" in second.suppressed[JANE]


# --- bounces ------------------------------------------------------------------------------


def test_a_permanent_bounce_suppresses_for_the_period(sessions: sessionmaker[Session]) -> None:
    period = SETTINGS.bounce_suppression
    with session_scope(sessions) as session:
        state = repo.record_bounce(session, "Jane@Acme.Example", "5.1.1", True, NOW, period)
        assert (state.address, state.bounces, state.permanent) == (JANE, 1, True)
        assert repo.suppressed_until(session, JANE, NOW) == NOW + period
        reason = decide(session, now=NOW + period - timedelta(seconds=1))[JANE]
        assert reason.startswith("bouncing until 2026-11-29 12:00 UTC")
        assert repo.suppressed_until(session, JANE, NOW + period) is None
        assert decide(session, now=NOW + period) == {}


def test_a_temporary_bounce_does_not_suppress(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        state = repo.record_bounce(session, JANE, "4.2.2", False, NOW, SETTINGS.bounce_suppression)
        assert (state.bounces, state.permanent, state.last_status) == (1, False, "4.2.2")
        assert repo.suppressed_until(session, JANE, NOW) is None
        assert decide(session) == {}


def test_a_temporary_bounce_keeps_an_earlier_suppression(
    sessions: sessionmaker[Session],
) -> None:
    period = SETTINGS.bounce_suppression
    with session_scope(sessions) as session:
        repo.record_bounce(session, JANE, "5.1.1", True, NOW, period)
        later = NOW + timedelta(days=1)
        state = repo.record_bounce(session, JANE.upper(), "4.4.1", False, later, period)
        assert state.bounces == 2
        assert repo.suppressed_until(session, JANE, later) == NOW + period


def test_a_later_permanent_bounce_extends_the_suppression(
    sessions: sessionmaker[Session],
) -> None:
    period = SETTINGS.bounce_suppression
    with session_scope(sessions) as session:
        repo.record_bounce(session, JANE, "5.1.1", True, NOW, period)
        later = NOW + timedelta(days=2)
        repo.record_bounce(session, JANE, "5.1.1", True, later, period)
    with session_scope(sessions) as session:
        assert repo.suppressed_until(session, JANE, NOW) == later + period
        state = repo.get_recipient_state(session, JANE)
        assert state is not None and state.bounces == 2


def test_bounce_suppression_is_case_insensitive(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.record_bounce(session, "JANE@acme.example", None, True, NOW, timedelta(hours=1))
        assert JANE in decide(session, "Jane@Acme.Example".lower())
        assert "Jane@ACME.EXAMPLE" in decide(session, "Jane@ACME.EXAMPLE")


# --- settings -----------------------------------------------------------------------------


def test_budget_settings_from_the_config() -> None:
    intake = IntakeSettings(replies_per_hour=2, replies_per_day=9, bounce_suppression_days=0.5)
    assert BudgetSettings.from_intake(intake) == BudgetSettings(2, 9, timedelta(hours=12))
    assert BudgetSettings.from_intake(IntakeSettings()) == BudgetSettings()


@pytest.mark.parametrize(
    "bad",
    [{"replies_per_hour": 0}, {"replies_per_day": 0}, {"bounce_suppression_days": 0}],
    ids=["hour", "day", "suppression"],
)
def test_budget_settings_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        IntakeSettings(**bad)  # type: ignore[arg-type]


def test_the_budget_is_one_query_for_every_recipient(sessions: sessionmaker[Session]) -> None:
    """Suppression, hour and day counts and "already answered": one SELECT (plus, on
    PostgreSQL, one statement taking the advisory lock of every recipient), not three or
    four per recipient."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    with session_scope(sessions) as session:
        replies(session, 2, NOW - timedelta(minutes=10))
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:
            decision = check_budget(
                session, (JANE, "bob@acme.example"), NOW, SETTINGS, inbound_message_id=4711
            )
        finally:
            event.remove(engine, "before_cursor_execute", count)
        postgres = engine.dialect.name == "postgresql"
        if postgres:  # both recipients' locks are held, until the transaction ends
            held = session.execute(
                text(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
                )
            ).scalar_one()
            assert held == 2
    assert decision.allowed == (JANE, "bob@acme.example")
    locks = [s for s in statements if "pg_advisory_xact_lock" in s]
    assert len(locks) == (1 if postgres else 0)
    assert len(statements) - len(locks) == 1
