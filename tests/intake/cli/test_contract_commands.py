"""``intake tickets priority`` and ``intake tickets phone``: the board's actions from the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from store import repository as repo
from store.models import InboundMessage, Ticket
from tests.intake.cli.conftest import Cli

NUMBER = "TKT-000001"


def opened_at(cli: Cli, when: datetime) -> None:
    """Date the opening message: the deadlines count from its arrival."""
    with cli.session() as session:
        session.execute(update(InboundMessage).values(received_at=when))


def test_priority_recomputes_the_deadlines_and_records_who(cli: Cli) -> None:
    cli.deliver()  # P1 in the subject
    opened_at(cli, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))  # Mon 30 Nov 16:00 PST
    result = cli("tickets", "priority", NUMBER, "3", "--by", "ann")
    # P3: 24 business hours (Mon-Fri 08-18 Pacific) = Mon 2 + Tue 10 + Wed 10 + Thu 08-10.
    assert result.stdout == f"{NUMBER}: priority 3, response due 2026-12-03T18:00:00+00:00\n"
    again = cli("tickets", "priority", NUMBER, "3")
    assert again.exit_code == 1 and "is priority 3 already" in again.stderr
    unknown = cli("tickets", "priority", NUMBER, "8")
    assert unknown.exit_code == 1 and "has no priority 8" in unknown.stderr
    with cli.session() as session:
        ticket = repo.ticket_by_number(session, NUMBER)
        assert ticket is not None
        assert ticket.priority == 3
        [event] = repo.ticket_events(session, ticket.id)
        assert (event.actor, event.action) == ("ann", "priority")
        assert (event.detail or "").startswith("1 -> 3 (policy standard ")


def test_phone_records_the_first_response_once(cli: Cli) -> None:
    cli.deliver()
    now = datetime.now(UTC)
    opened_at(cli, now - timedelta(hours=6))
    with cli.session() as session:  # as computed for that arrival: 4 h on the wall clock
        session.execute(update(Ticket).values(response_due_at=now - timedelta(hours=2)))
    late = (now - timedelta(minutes=30)).replace(microsecond=0)
    future = cli("tickets", "phone", NUMBER, "--at", (now + timedelta(hours=1)).isoformat())
    assert future.exit_code == 1 and "in the future" in future.stderr
    result = cli("tickets", "phone", NUMBER, "--at", late.isoformat(), "--note", "rang back")
    assert result.stdout == f"{NUMBER}: first response by phone recorded (missed)\n"
    again = cli("tickets", "phone", NUMBER)
    assert again.exit_code == 1 and "first response already" in again.stderr
    with cli.session() as session:
        ticket = repo.ticket_by_number(session, NUMBER)
        assert ticket is not None
        assert (ticket.first_response_at, ticket.response_met) == (late, False)
        [event] = repo.ticket_events(session, ticket.id)
        assert event.detail == f"at {late.isoformat()} (missed): rang back"
