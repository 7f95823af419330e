"""The board's contract-shaped staff actions over HTTP against a real daemon: set the
priority (deadlines recomputed on the business clock), a first response by phone, settle
a pending charge; and the ticket page's field sources and closed state."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from intake.settings import Settings
from intake.web.ticket import field_text
from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow, InboundMessage, Ticket
from tests.conftest import RunningDaemon, start_daemon, stop_daemon
from tests.intake.web.board_support import Browser, send

# Monday 2026-11-30 16:00 in Los Angeles (the standard policy's zone, PST = UTC-8).
RECEIVED = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def board_daemon(make_settings: Callable[..., Settings], db_url: str) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings(db_url))
    yield running
    stop_daemon(running)


def received_at(daemon: RunningDaemon, number: str, when: datetime) -> None:
    """Date the ticket's opening message (the clock cannot be turned, the row can)."""
    with session_scope(daemon.app.sessions, write=True) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == ticket.inbound_message_id)
            .values(received_at=when)
        )


def stored(daemon: RunningDaemon, number: str) -> Ticket:
    with session_scope(daemon.app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        session.expunge(ticket)
        return ticket


def details(daemon: RunningDaemon, number: str, action: str) -> list[str]:
    with session_scope(daemon.app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        found = repo.ticket_events(session, ticket.id)
        return [e.detail or "" for e in found if e.action == action]


def test_set_priority_recomputes_the_deadlines_on_the_business_clock(
    board_daemon: RunningDaemon,
) -> None:
    number = send(board_daemon, "Acme Corp – 123 Main St, Denver CO – No dial tone – P1")
    received_at(board_daemon, number, RECEIVED)
    before = stored(board_daemon, number).deadlines
    staff = Browser(board_daemon)
    token, path = staff.csrf(number), f"/tickets/{number}"

    status, html = staff.post(f"{path}/priority", by="ann", csrf=token, priority="2")
    assert status == 200
    ticket = stored(board_daemon, number)
    # P2 under the standard policy: response 8 business hours, resolution 5 support days
    # (10 h each, Mon-Fri 08-18 Pacific), reason for outage 96 wall-clock hours; counted
    # from Mon 16:00 PST. Response: Mon 16-18 (2 h) + Tue 08-14 (6 h) = Tue 14:00 PST.
    # Resolution: 50 h = Mon 2 + Tue..Fri 40 + next Mon 08-16 (8 h) = Mon 7 Dec 16:00 PST.
    assert ticket.priority == 2
    assert ticket.response_due_at == datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    assert ticket.deadlines == {
        "response": "2026-12-01T22:00:00+00:00",
        "resolution": "2026-12-08T00:00:00+00:00",
        "reason_for_outage": "2026-12-05T00:00:00+00:00",
    }
    [detail] = details(board_daemon, number, "priority")
    assert detail.startswith("1 -> 2 (policy standard ")
    assert all(f"{name} {value}" in detail for name, value in before.items())  # old kept
    assert "<td>response</td><td>2026-12-01 22:00 UTC</td><td>2026-12-01 14:00 PST</td>" in html
    assert '<option value="2" selected>Priority 2' in html
    assert "Response within 8 business hours." in html  # the level's meaning and target

    assert staff.post(f"{path}/priority", by="ann", csrf=token, priority="7")[0] == 400
    assert staff.post(f"{path}/priority", by="ann", csrf=token, priority="high")[0] == 400
    assert staff.post(f"{path}/priority", by="ann", csrf=token, priority="2")[0] == 409
    assert staff.post(f"{path}/close", by="ann", csrf=token)[0] == 200
    assert staff.post(f"{path}/priority", by="ann", csrf=token, priority="3")[0] == 409
    assert stored(board_daemon, number).priority == 2
    assert len(details(board_daemon, number, "priority")) == 1


def test_a_first_response_by_phone_is_stamped_once(board_daemon: RunningDaemon) -> None:
    number = send(board_daemon, "Acme Corp – 123 Main St, Denver CO – No dial tone – P1")
    now = datetime.now(UTC)
    received_at(board_daemon, number, now - timedelta(hours=2))
    staff = Browser(board_daemon)
    token, path = staff.csrf(number), f"/tickets/{number}"
    assert 'action="/tickets/' + number + '/phone"' in staff.get(path)

    def phone(at: str, note: str = "") -> int:
        return staff.post(f"{path}/phone", by="bob", csrf=token, at=at, note=note)[0]

    assert phone(f"{now + timedelta(hours=1):%Y-%m-%dT%H:%M}") == 400  # in the future
    assert phone(f"{now - timedelta(hours=3):%Y-%m-%dT%H:%M}") == 400  # before it came
    assert phone("yesterday-ish") == 400
    assert stored(board_daemon, number).first_response_at is None

    at = (now - timedelta(hours=1)).replace(second=0, microsecond=0)
    assert phone(f"{at:%Y-%m-%dT%H:%M}", "called Jane back") == 200
    ticket = stored(board_daemon, number)
    assert ticket.first_response_at == at
    assert ticket.response_met is True  # P1: 4 wall-clock hours from receipt, 1 h taken
    assert details(board_daemon, number, "phone_response") == [
        f"at {at.isoformat()} (met): called Jane back"
    ]
    html = staff.get(path)
    assert f"First response {at:%Y-%m-%d %H:%M} UTC (met)" in html
    assert f'action="/tickets/{number}/phone"' not in html  # nothing left to record
    assert phone("") == 409  # answered already
    assert stored(board_daemon, number).first_response_at == at


def pending_charge(daemon: RunningDaemon, number: str, key: str) -> int:
    with session_scope(daemon.app.sessions, write=True) as session:
        ticket = repo.ticket_by_number(session, number)
        assert ticket is not None
        repo.add_charge(
            session,
            ledger_key=key,
            ticket_id=ticket.id,
            kind="after_hours",
            amount=Decimal("300.00"),
            currency="USD",
            reason="off-hours P1",
            status="pending",
            now=datetime.now(UTC),
        )
        row = session.execute(select(ChargeRow).where(ChargeRow.ledger_key == key)).scalar_one()
        return row.id


def test_settle_bills_or_waives_a_pending_charge_of_this_ticket(
    board_daemon: RunningDaemon,
) -> None:
    number = send(board_daemon, "Acme Corp – 123 Main St, Denver CO – No dial tone – P1")
    other = send(board_daemon, "Initech – 9 Elm St, Austin TX – Total outage – P1")
    billed = pending_charge(board_daemon, number, "a")
    waived = pending_charge(board_daemon, number, "b")
    theirs = pending_charge(board_daemon, other, "c")
    staff = Browser(board_daemon)
    token, path = staff.csrf(number), f"/tickets/{number}"

    def settle(charge: int, outcome: str, note: str) -> tuple[int, str]:
        form = {"charge": str(charge), "outcome": outcome, "note": note}
        return staff.post(f"{path}/settle", by="ann", csrf=token, **form)

    assert settle(billed, "billed", "")[0] == 400  # a note says why
    assert settle(billed, "refunded", "x")[0] == 400
    assert settle(theirs, "billed", "wrong ticket")[0] == 409
    status, html = settle(billed, "billed", "customer's router at fault")
    assert status == 200
    assert f"<td>{billed}</td><td>after_hours</td><td>300.00 USD</td>" in html
    assert "<td>billed: customer&#39;s router at fault</td>" in html
    assert settle(billed, "waived", "again")[0] == 409  # settled already
    assert settle(waived, "waived", "our fault")[0] == 200
    assert f"Settle charge #{billed}" not in staff.get(path)
    assert details(board_daemon, number, "settle") == [
        f"charge {billed} billed: customer's router at fault",
        f"charge {waived} waived: our fault",
    ]
    with session_scope(board_daemon.app.sessions) as session:
        row = session.get(ChargeRow, theirs)
        assert row is not None and row.status == "pending"


def test_the_ticket_page_names_each_fields_source_and_a_closed_ticket_has_no_countdown(
    board_daemon: RunningDaemon,
) -> None:
    number = send(board_daemon, "Acme Corp – 123 Main St, Denver CO – No dial tone – P1")
    staff = Browser(board_daemon)
    path = f"/tickets/{number}"
    html = staff.get(path)
    serial = re.search(r'<tr class="field field-read" data-field="serial_number">(.*?)</tr>', html)
    assert serial, "the serial number is not shown as read"
    assert "MX-0042-7781" in serial.group(1)
    assert "the opening message (" in serial.group(1)
    assert '<time class="countdown"' in html

    assert staff.post(f"{path}/close", by="ann", csrf=staff.csrf(number))[0] == 200
    html = staff.get(path)
    closed_at = stored(board_daemon, number).closed_at
    assert closed_at is not None
    assert f'closed at <time datetime="{closed_at.isoformat().replace("+00:00", "Z")}">' in html
    assert '<time class="countdown"' not in html
    assert f'action="/tickets/{number}/priority"' not in html  # reopen first


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("17.0.4", "17.0.4"),
        ({"board": "MX-1"}, "board: MX-1"),  # a multi-part field, one part read so far
        (
            [{"when": "08:15", "calling": "x2201"}, {"when": "09:00", "calling": "x2202"}],
            "when: 08:15, calling: x2201; when: 09:00, calling: x2202",
        ),
    ],
    ids=["text", "parts", "call-examples"],
)
def test_stored_field_values_read_as_text(value: object, text: str) -> None:
    assert field_text(value) == text
