"""Staff actions in the store: set a priority, a first response by phone, settle a charge.

Each is one locked read-modify-write of the ticket and one ``ticket_event`` with who and
when; a refusal changes nothing. Run on SQLite and on PostgreSQL (``db_url``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake.pipeline.followup import apply_staff_reply
from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow, Ticket, TicketStatus
from tests.store.conftest import NOW, stored_ticket

OLD_DUE = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
OLD_DEADLINES = {
    "response": "2026-11-22T16:00:00+00:00",
    "resolution": "2026-11-24T12:00:00+00:00",
}
NEW_DEADLINES = {
    "response": datetime(2026, 11, 23, 20, 0, tzinfo=UTC),
    "resolution": datetime(2026, 11, 30, 20, 0, tzinfo=UTC),
}
LATER = NOW + timedelta(hours=1)


def ticket_with_deadlines(sessions: sessionmaker[Session], **overrides: object) -> str:
    with session_scope(sessions) as session:
        ticket = stored_ticket(
            session, response_due_at=OLD_DUE, deadlines=dict(OLD_DEADLINES), **overrides
        )
        assert ticket.number is not None
        return ticket.number


def events(sessions: sessionmaker[Session], number: str) -> list[tuple[str, str, str | None]]:
    with session_scope(sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        return [(e.actor, e.action, e.detail) for e in repo.ticket_events(session, ticket.id)]


def fetch(sessions: sessionmaker[Session], number: str) -> Ticket:
    with session_scope(sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        session.expunge(ticket)
        return ticket


# --- set priority ---------------------------------------------------------------------------


def test_set_priority_stores_the_new_deadlines_and_the_event_keeps_the_old(
    sessions: sessionmaker[Session],
) -> None:
    number = ticket_with_deadlines(sessions)
    with session_scope(sessions) as session:
        repo.set_ticket_priority(session, number, 2, NEW_DEADLINES, "standard v1", "ann", LATER)
    ticket = fetch(sessions, number)
    assert ticket.priority == 2
    assert ticket.response_due_at == datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    assert ticket.deadlines == {
        "response": "2026-11-23T20:00:00+00:00",
        "resolution": "2026-11-30T20:00:00+00:00",
    }
    assert ticket.updated_at == LATER
    assert events(sessions, number) == [
        (
            "ann",
            "priority",
            "1 -> 2 (standard v1); deadlines before: response 2026-11-22T16:00:00+00:00,"
            " resolution 2026-11-24T12:00:00+00:00",
        )
    ]


def test_a_level_without_a_response_target_clears_the_response_deadline(
    sessions: sessionmaker[Session],
) -> None:
    number = ticket_with_deadlines(sessions)
    with session_scope(sessions) as session:
        repo.set_ticket_priority(session, number, 4, {}, "standard v1", "ann", LATER)
    ticket = fetch(sessions, number)
    assert (ticket.priority, ticket.response_due_at, ticket.deadlines) == (4, None, {})


def test_set_priority_leaves_the_ledger_as_it_was(sessions: sessionmaker[Session]) -> None:
    number = ticket_with_deadlines(sessions)
    with session_scope(sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        repo.add_charge(
            session,
            ledger_key="k1",
            ticket_id=ticket.id,
            kind="after_hours",
            amount=Decimal("150.00"),
            currency="USD",
            reason="P1 after hours",
            status="applied",
            now=NOW,
        )
    with session_scope(sessions) as session:
        repo.set_ticket_priority(session, number, 3, NEW_DEADLINES, "standard v1", "ann", LATER)
    with session_scope(sessions) as session:
        rows = list(session.execute(select(ChargeRow)).scalars())
        assert [(r.kind, r.amount, r.status) for r in rows] == [
            ("after_hours", Decimal("150.00"), "applied")
        ]


@pytest.mark.parametrize(
    ("overrides", "level", "message"),
    [
        ({"status": TicketStatus.CLOSED}, 2, "is closed"),
        ({}, 1, "is priority 1 already"),
    ],
    ids=["closed", "same-level"],
)
def test_set_priority_refusals_change_nothing(
    sessions: sessionmaker[Session], overrides: dict[str, object], level: int, message: str
) -> None:
    number = ticket_with_deadlines(sessions, **overrides)
    with pytest.raises(repo.StaffActionError, match=message), session_scope(sessions) as session:
        repo.set_ticket_priority(session, number, level, NEW_DEADLINES, "p", "ann", LATER)
    ticket = fetch(sessions, number)
    assert (ticket.priority, ticket.deadlines) == (1, OLD_DEADLINES)
    assert events(sessions, number) == []


# --- first response by phone ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "met", "word"),
    [
        (OLD_DUE, True, "met"),  # at the deadline is in time, as for a mailed reply
        (OLD_DUE + timedelta(minutes=1), False, "missed"),
    ],
    ids=["by-the-deadline", "after-it"],
)
def test_a_phone_response_stamps_the_first_response_as_a_staff_reply(
    sessions: sessionmaker[Session], at: datetime, met: bool, word: str
) -> None:
    number = ticket_with_deadlines(sessions)
    now = OLD_DUE + timedelta(hours=2)
    with session_scope(sessions) as session:
        repo.record_phone_response(
            session, number, at, "told Jane", "bob", now, stamp=apply_staff_reply
        )
    ticket = fetch(sessions, number)
    assert (ticket.first_response_at, ticket.response_met) == (at, met)
    assert ticket.updated_at == now
    assert events(sessions, number) == [
        ("bob", "phone_response", f"at {at.isoformat()} ({word}): told Jane")
    ]


@pytest.mark.parametrize(
    ("at", "error", "message"),
    [
        (LATER + timedelta(seconds=1), ValueError, "in the future"),
        (NOW - timedelta(seconds=1), ValueError, "before the ticket was received"),
    ],
    ids=["future", "before-received"],
)
def test_a_phone_response_time_must_lie_between_receipt_and_now(
    sessions: sessionmaker[Session], at: datetime, error: type[Exception], message: str
) -> None:
    number = ticket_with_deadlines(sessions)  # its opening message was received at NOW
    with pytest.raises(error, match=message), session_scope(sessions) as session:
        repo.record_phone_response(session, number, at, None, "bob", LATER, apply_staff_reply)
    assert fetch(sessions, number).first_response_at is None
    assert events(sessions, number) == []


def test_a_second_first_response_is_refused(sessions: sessionmaker[Session]) -> None:
    number = ticket_with_deadlines(sessions)
    with session_scope(sessions) as session:
        repo.record_phone_response(session, number, NOW, None, "bob", LATER, apply_staff_reply)
    with (
        pytest.raises(repo.StaffActionError, match="first response already"),
        session_scope(sessions) as session,
    ):
        repo.record_phone_response(session, number, LATER, None, "ann", LATER, apply_staff_reply)
    assert fetch(sessions, number).first_response_at == NOW
    assert [e[0] for e in events(sessions, number)] == ["bob"]


def test_the_received_time_is_the_opening_messages(sessions: sessionmaker[Session]) -> None:
    number = ticket_with_deadlines(sessions, created_at=LATER)  # processed an hour later
    with session_scope(sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        assert repo.ticket_received_at(session, ticket) == NOW


# --- settle a pending charge ----------------------------------------------------------------


def pending_charge(sessions: sessionmaker[Session], number: str, key: str) -> int:
    with session_scope(sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        repo.add_charge(
            session,
            ledger_key=key,
            ticket_id=ticket.id,
            kind="after_hours",
            amount=Decimal("300.00"),
            currency="USD",
            reason="off-hours P1, pending fault",
            status="pending",
            now=NOW,
        )
        row = session.execute(select(ChargeRow).where(ChargeRow.ledger_key == key)).scalar_one()
        return row.id


@pytest.mark.parametrize("outcome", ["billed", "waived"], ids=["bill", "waive"])
def test_settling_a_tickets_pending_charge_is_recorded_on_the_ticket(
    sessions: sessionmaker[Session], outcome: str
) -> None:
    number = ticket_with_deadlines(sessions)
    charge = pending_charge(sessions, number, "p1")
    with session_scope(sessions) as session:
        repo.settle_ticket_charge(session, number, charge, outcome, "fault found", "ann", LATER)
    with session_scope(sessions) as session:
        row = session.get(ChargeRow, charge)
        assert row is not None
        assert (row.status, row.settled_note, row.settled_at) == (outcome, "fault found", LATER)
    assert events(sessions, number) == [
        ("ann", "settle", f"charge {charge} {outcome}: fault found")
    ]


def test_settling_refuses_another_tickets_charge_and_a_settled_one(
    sessions: sessionmaker[Session],
) -> None:
    number, other = ticket_with_deadlines(sessions), ticket_with_deadlines(sessions)
    theirs = pending_charge(sessions, other, "theirs")
    ours = pending_charge(sessions, number, "ours")
    with pytest.raises(repo.StaffActionError, match="is not on"), session_scope(sessions) as s:
        repo.settle_ticket_charge(s, number, theirs, "billed", "x", "ann", LATER)
    with session_scope(sessions) as session:
        repo.settle_ticket_charge(session, number, ours, "billed", "x", "ann", LATER)
    with pytest.raises(repo.StaffActionError, match="not pending"), session_scope(sessions) as s:
        repo.settle_ticket_charge(s, number, ours, "waived", "y", "ann", LATER)
    with pytest.raises(ValueError, match="outcome"), session_scope(sessions) as s:
        repo.settle_ticket_charge(s, number, ours, "refunded", "y", "ann", LATER)
    with session_scope(sessions) as session:
        mine, yours = session.get(ChargeRow, ours), session.get(ChargeRow, theirs)
        assert mine is not None and yours is not None
        assert (mine.status, yours.status) == ("billed", "pending")
    assert [e[1] for e in events(sessions, number)] == ["settle"]
    assert events(sessions, other) == []
