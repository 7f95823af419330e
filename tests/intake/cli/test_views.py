"""intake.cli.views: the shapes the CLI prints, from rows built in memory (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from intake.app import build_app
from intake.cli.views import (
    charge_view,
    is_breached,
    mailbox_view,
    outbox_view,
    stored_directory,
    ticket_view,
)
from intake.settings import load_settings
from intake.web.checks import mailbox_problems
from store.models import ChargeRow, MailboxState, OutboxMessage, Ticket

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
NOW_ISO = "2026-11-22T12:00:00Z"


def ticket(**values: object) -> Ticket:
    base: dict[str, object] = {
        "number": "TKT-000007",
        "subject": "Acme – Denver – down – P1",
        "customer": "Acme Corp",
        "priority": 1,
        "status": "open",
        "missing_fields": ["serial_number"],
        "fields": {},
        "findings": [],
        "deadlines": {},
        "policy_name": "standard",
        "policy_version": "2026-11-22",
        "billable_hourly": False,
        "created_at": NOW,
    }
    return Ticket(**(base | values))


@pytest.mark.parametrize(
    ("due", "answered", "now", "breached"),
    [
        (None, None, NOW, False),
        (NOW, None, NOW - HOUR, False),
        (NOW, None, NOW, False),
        (NOW, None, NOW + HOUR, True),
        (NOW, NOW - HOUR, NOW + HOUR, False),
        (NOW, NOW + HOUR, NOW + 2 * HOUR, True),
    ],
    ids=[
        "no-target",
        "not-due-yet",
        "due-this-instant",
        "late-unanswered",
        "answered-in-time",
        "answered-late",
    ],
)
def test_is_breached(
    due: datetime | None, answered: datetime | None, now: datetime, breached: bool
) -> None:
    assert is_breached(ticket(response_due_at=due, first_response_at=answered), now) is breached


def test_ticket_view_short_and_full() -> None:
    row = ticket(response_due_at=NOW + HOUR, closed_at=NOW, timezone="America/Denver")
    short = ticket_view(row)
    assert short["breached"] is None  # no `now`, no verdict
    assert (short["response_due"], short["created_at"]) == ("2026-11-22T13:00:00Z", NOW_ISO)
    assert "subject" not in short
    full = ticket_view(row, full=True, now=NOW)
    assert full["breached"] is False and full["policy"] == "standard 2026-11-22"
    assert (full["closed_at"], full["first_response_at"]) == (NOW_ISO, None)
    assert full["charges"] == [] and full["timezone"] == "America/Denver"


def test_charge_view_money_is_a_two_place_string() -> None:
    row = ChargeRow(
        id=3,
        kind="missing_information",
        amount=Decimal("100"),
        currency="USD",
        status="applied",
        reason="r",
        created_at=NOW,
    )
    view = charge_view(row)
    assert (view["amount"], view["ticket"], view["created_at"]) == ("100.00", None, NOW_ISO)


def test_outbox_view() -> None:
    row = OutboxMessage(
        id=1,
        message_id="<m@example.com>",
        kind="confirmation",
        status="dead",
        recipients=["jane@acme.example"],
        attempts=10,
        next_attempt_at=NOW,
        sent_at=None,
        last_error="550",
    )
    view = outbox_view(row)
    assert (view["next_attempt_at"], view["sent_at"], view["recipients"]) == (
        NOW_ISO,
        None,
        ["jane@acme.example"],
    )


@pytest.mark.parametrize(
    ("failing_since", "last_ok_at", "state"),
    [(NOW, NOW - HOUR, "failing"), (None, NOW, "ok"), (None, None, "unknown")],
    ids=["failing", "ok", "unknown"],
)
def test_mailbox_view_state(
    failing_since: datetime | None, last_ok_at: datetime | None, state: str
) -> None:
    row = MailboxState(name="a@h:993/INBOX", failing_since=failing_since, last_ok_at=last_ok_at)
    assert mailbox_view(row)["state"] == state


MAILBOX = "alice@imap.example:993/INBOX"


@pytest.mark.parametrize(
    ("name", "failing_for", "problems"),
    [
        (MAILBOX, timedelta(seconds=601), 1),
        (MAILBOX, timedelta(seconds=600), 0),
        (MAILBOX, None, 0),
        ("other@imap.example:993/INBOX", timedelta(days=1), 0),
    ],
    ids=["failing-too-long", "at-the-limit", "healthy", "not-configured"],
)
def test_mailbox_problems(name: str, failing_for: timedelta | None, problems: int) -> None:
    since = NOW - failing_for if failing_for is not None else None
    rows = [MailboxState(name=name, failing_since=since, last_error="refused")]
    found = mailbox_problems(rows, [MAILBOX], 600.0, NOW)
    assert len(found) == problems
    assert all(p.startswith(f"IMAP {MAILBOX} failing since ") for p in found)


def test_stored_directory_is_empty_without_a_store(tmp_path: Path) -> None:
    settings = load_settings(None, {"database.url": f"sqlite:///{tmp_path / 'absent.db'}"})
    assert stored_directory(build_app(settings, dry_run=True)) == ()
    assert not (tmp_path / "absent.db").exists()  # a dry run creates no store


def test_stored_directory_is_empty_for_a_store_without_tables(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    settings = load_settings(None, {"database.url": f"sqlite:///{tmp_path / 'empty.db'}"})
    assert stored_directory(build_app(settings, dry_run=True)) == ()
