"""Tickets in the store: numbers from the database identity, lookups and the list filters."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import session_scope
from store.models import Ticket, TicketStatus
from tests.store.conftest import NOW, NUMBER_FORMAT, new_ticket, stored_inbound, stored_ticket


def numbers_in(sessions: sessionmaker[Session], count: int) -> list[str]:
    """``count`` tickets, each in its own transaction, as separate messages would be."""
    numbers = []
    for _ in range(count):
        with session_scope(sessions) as session:
            ticket = stored_ticket(session)
            assert ticket.number is not None
            numbers.append(ticket.number)
    return numbers


# --- numbering ----------------------------------------------------------------------------------


def test_numbers_are_sequential_from_one(sessions: sessionmaker[Session]) -> None:
    assert numbers_in(sessions, 3) == ["TKT-000001", "TKT-000002", "TKT-000003"]


def test_the_number_is_the_formatted_identity(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ticket = stored_ticket(session)
        assert ticket.number == NUMBER_FORMAT.format(ticket.id)
    assert re.fullmatch(r"TKT-\d{6}", ticket.number or "")


@pytest.mark.parametrize(
    ("number_format", "expected"),
    [("TKT-{:06d}", "TKT-000001"), ("SR{:d}", "SR1"), ("{:08d}-NOC", "00000001-NOC")],
    ids=["default", "short", "suffix"],
)
def test_the_configured_format_shapes_the_number(
    sessions: sessionmaker[Session], number_format: str, expected: str
) -> None:
    with session_scope(sessions) as session:
        inbound = stored_inbound(session)
        ticket = repo.add_ticket(session, new_ticket(inbound.id), number_format)
    assert ticket.number == expected


def test_a_deleted_tickets_number_is_never_given_again(sessions: sessionmaker[Session]) -> None:
    """SQLite AUTOINCREMENT and a PostgreSQL sequence both never hand out an id twice."""
    first, second = numbers_in(sessions, 2)
    with session_scope(sessions) as session:
        session.execute(delete(Ticket).where(Ticket.number == second))
    assert numbers_in(sessions, 1) == ["TKT-000003"]
    with session_scope(sessions) as session:
        assert repo.ticket_by_number(session, first) is not None
        assert repo.ticket_by_number(session, second) is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_open_transactions_get_distinct_numbers(sessions: sessionmaker[Session]) -> None:
    """Two instances numbering at once (PostgreSQL: SQLite serialises its writers)."""
    with session_scope(sessions) as one, session_scope(sessions) as two:
        first = stored_ticket(one)
        second = stored_ticket(two)
        assert first.number != second.number
    with session_scope(sessions) as session:
        listed = {t.number for t in repo.list_tickets(session)}
    assert listed == {first.number, second.number}


def test_one_message_can_open_only_one_ticket(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
        repo.add_ticket(session, new_ticket(inbound_id), NUMBER_FORMAT)
    with pytest.raises(IntegrityError), session_scope(sessions) as session:
        repo.add_ticket(session, new_ticket(inbound_id), NUMBER_FORMAT)
    with session_scope(sessions) as session:
        assert len(repo.list_tickets(session)) == 1


# --- lookups ------------------------------------------------------------------------------------


def test_ticket_by_number(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        stored_ticket(session, customer="Acme Corp")
        stored_ticket(session, customer="Globex")
    with session_scope(sessions) as session:
        found = repo.ticket_by_number(session, "TKT-000002")
        assert found is not None and found.customer == "Globex"
        assert repo.ticket_by_number(session, "TKT-999999") is None


def test_list_tickets_is_newest_first_and_limited(sessions: sessionmaker[Session]) -> None:
    numbers_in(sessions, 4)
    with session_scope(sessions) as session:
        assert [t.number for t in repo.list_tickets(session, limit=3)] == [
            "TKT-000004",
            "TKT-000003",
            "TKT-000002",
        ]


HOUR = timedelta(hours=1)
# (customer, priority, status, response_due_at, first_response_at) per ticket 1..5
TICKETS = [
    ("Acme Corp", 1, TicketStatus.OPEN, NOW - HOUR, None),  # 1: late, unanswered
    ("Globex", 2, TicketStatus.OPEN, NOW + HOUR, None),  # 2: not due yet
    ("acme corp", 3, TicketStatus.CLOSED, NOW - 2 * HOUR, NOW - 3 * HOUR),  # 3: answered in time
    ("Initech", 1, TicketStatus.WAITING_CUSTOMER, NOW - 2 * HOUR, NOW - HOUR),  # 4: answered late
    ("Globex", 4, TicketStatus.OPEN, None, None),  # 5: no target
]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [5, 4, 3, 2, 1]),
        ({"status": TicketStatus.OPEN}, [5, 2, 1]),
        ({"priority": 1}, [4, 1]),
        ({"customer": "ACME CORP"}, [3, 1]),
        ({"due_before": NOW}, [4, 3, 1]),
        ({"breached_at": NOW}, [4, 1]),
        ({"breached_at": NOW - 2 * HOUR}, [4]),
        ({"status": TicketStatus.OPEN, "priority": 1, "breached_at": NOW}, [1]),
    ],
    ids=[
        "all",
        "status",
        "priority",
        "customer-any-case",
        "due-before",
        "breached-now",
        "breached-earlier",
        "combined",
    ],
)
def test_list_tickets_filters(
    sessions: sessionmaker[Session], filters: dict[str, object], expected: list[int]
) -> None:
    with session_scope(sessions) as session:
        for customer, priority, status, due, answered in TICKETS:
            stored_ticket(
                session,
                customer=customer,
                priority=priority,
                status=status,
                response_due_at=due,
                first_response_at=answered,
            )
    with session_scope(sessions) as session:
        found = repo.list_tickets(session, **filters)  # type: ignore[arg-type]
        assert [t.number for t in found] == [NUMBER_FORMAT.format(n) for n in expected]


def test_tickets_waiting_since_finds_auto_close_candidates(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        waiting = TicketStatus.WAITING_CUSTOMER
        old = stored_ticket(session, status=waiting, waiting_since=NOW - 10 * HOUR)
        stored_ticket(session, status=waiting, waiting_since=NOW)  # exactly at the cut: not yet
        stored_ticket(session, status=waiting, waiting_since=None)
        stored_ticket(session, status=TicketStatus.OPEN, waiting_since=NOW - 10 * HOUR)
        older = stored_ticket(session, status=waiting, waiting_since=NOW - 20 * HOUR)
    with session_scope(sessions) as session:
        found = repo.tickets_waiting_since(session, NOW)
        assert [t.number for t in found] == [old.number, older.number]
