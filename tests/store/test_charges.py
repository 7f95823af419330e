"""The charge ledger: one line per ledger key (invariant 6), listing and settling."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow
from tests.store.conftest import NOW, stored_ticket


def charge(
    session: Session,
    ticket_id: int,
    ledger_key: str,
    *,
    amount: str = "100.00",
    status: str = "applied",
    kind: str = "missing_information",
) -> bool:
    return repo.add_charge(
        session,
        ledger_key=ledger_key,
        ticket_id=ticket_id,
        kind=kind,
        amount=Decimal(amount),
        currency="USD",
        reason="$100 additional charge: no serial number",
        status=status,
        now=NOW,
    )


def test_a_new_ledger_key_writes_one_exact_line(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        assert charge(session, ticket_id, "in:1:missing_information", amount="123.45") is True
    with session_scope(sessions) as session:
        [row] = repo.list_charges(session)
        assert (row.ledger_key, row.ticket_id, row.kind) == (
            "in:1:missing_information",
            ticket_id,
            "missing_information",
        )
        assert row.amount == Decimal("123.45") and isinstance(row.amount, Decimal)
        assert (row.currency, row.status, row.created_at) == ("USD", "applied", NOW)
        assert row.ticket.number == "TKT-000001"


def test_the_same_ledger_key_never_charges_twice(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        assert charge(session, ticket_id, "in:1:off_hours", amount="250.00") is True
    with session_scope(sessions) as session:  # reprocessing the message, later
        assert charge(session, ticket_id, "in:1:off_hours", amount="999.00") is False
    with session_scope(sessions) as session:
        [row] = repo.list_charges(session)
        assert row.amount == Decimal("250.00")


def test_different_ledger_keys_are_different_lines(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        assert charge(session, ticket_id, "in:1:missing_information")
        assert charge(session, ticket_id, "in:1:off_hours", kind="off_hours")
    with session_scope(sessions) as session:
        assert [c.kind for c in repo.list_charges(session)] == ["off_hours", "missing_information"]
        ticket = repo.ticket_by_number(session, "TKT-000001")
        assert ticket is not None and [c.kind for c in ticket.charges] == [
            "missing_information",
            "off_hours",
        ]


def test_list_charges_by_status_newest_first(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        for index, status in enumerate(["applied", "pending", "pending", "applied"]):
            charge(session, ticket_id, f"key-{index}", status=status)
    with session_scope(sessions) as session:
        assert [c.ledger_key for c in repo.list_charges(session, "pending")] == ["key-2", "key-1"]
        assert len(repo.list_charges(session)) == 4
        assert len(repo.list_charges(session, limit=3)) == 3


def pending_charge(sessions: sessionmaker[Session], status: str = "pending") -> int:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        charge(session, ticket_id, "in:1:off_hours", status=status)
        [row] = repo.list_charges(session)
        return row.id


@pytest.mark.parametrize("outcome", ["billed", "waived"], ids=str)
def test_settling_a_pending_charge_records_outcome_note_and_time(
    sessions: sessionmaker[Session], outcome: str
) -> None:
    charge_id = pending_charge(sessions)
    settled_at = NOW + timedelta(days=1)
    with session_scope(sessions) as session:
        row = repo.settle_charge(session, charge_id, outcome, "fault determined", settled_at)
        assert row is not None and row.id == charge_id
    with session_scope(sessions) as session:
        stored = session.get_one(ChargeRow, charge_id)
        assert (stored.status, stored.settled_note, stored.settled_at) == (
            outcome,
            "fault determined",
            settled_at,
        )


@pytest.mark.parametrize("status", ["applied", "billed", "waived"], ids=str)
def test_only_a_pending_charge_can_be_settled(sessions: sessionmaker[Session], status: str) -> None:
    charge_id = pending_charge(sessions, status=status)
    with session_scope(sessions) as session:
        assert repo.settle_charge(session, charge_id, "waived", None, NOW) is None
    with session_scope(sessions) as session:
        stored = session.get_one(ChargeRow, charge_id)
        assert (stored.status, stored.settled_at) == (status, None)


def test_a_settled_charge_cannot_be_settled_again(sessions: sessionmaker[Session]) -> None:
    charge_id = pending_charge(sessions)
    with session_scope(sessions) as session:
        repo.settle_charge(session, charge_id, "billed", None, NOW)
    with session_scope(sessions) as session:
        assert repo.settle_charge(session, charge_id, "waived", "changed my mind", NOW) is None
        assert session.get_one(ChargeRow, charge_id).status == "billed"


def test_settling_an_unknown_charge_is_none(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.settle_charge(session, 4711, "billed", None, NOW) is None


@pytest.mark.parametrize("status", ["applied", "billed"], ids=str)
def test_waive_adds_one_credit_line_and_keeps_the_original(
    sessions: sessionmaker[Session], status: str
) -> None:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        charge(session, ticket_id, "in:1:missing_information", amount="100.00", status=status)
        [original] = repo.list_charges(session)
        credit = repo.waive_charge(session, original.id, "all details were given", NOW)
        assert credit is not None
        credit_id = credit.id
    with session_scope(sessions) as session:
        credit_row, original_row = repo.list_charges(session)
        assert (credit_row.id, credit_row.kind, credit_row.amount) == (
            credit_id,
            "waiver",
            Decimal("-100.00"),
        )
        assert (credit_row.reverses_id, credit_row.ticket_id) == (original_row.id, ticket_id)
        assert credit_row.reason == "all details were given"
        assert (original_row.status, original_row.amount) == (status, Decimal("100.00"))
        # A second waiver of the same line, in a later transaction, writes nothing.
        assert repo.waive_charge(session, original_row.id, "again", NOW) is None
        assert repo.waive_charge(session, credit_row.id, "credit of a credit", NOW) is None
    with session_scope(sessions) as session:
        assert len(repo.list_charges(session)) == 2
