"""Policies through the pipeline: stored deadlines, pending charges, notices, auto-close."""

from __future__ import annotations

import email
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.pipeline.customers import CustomerRecord, values_from_record
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow, OutboxMessage, Ticket
from tests.conftest import make_mail

SATURDAY = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)  # 10:00 PST: off-hours
MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 09:00 PST: business hours


def app_for(make_settings: Callable[..., Settings], db: str, policy: str) -> App:
    trusted = {"intake.trusted_authserv_ids": ["mx.example.com"]}
    return build_app(make_settings(db, **{"intake.policy": policy}, **trusted))


# What our MTA (authserv-id mx.example.com) adds when acme.example's DKIM signature verifies.
ACME_SIGNED = {
    "Authentication-Results": "mx.example.com; dkim=pass header.d=acme.example; spf=none"
}


def process(app: App, raw: bytes, at: datetime) -> Ticket:
    app.pipeline.clock = lambda: at  # processed the moment it arrived
    stored = app.pipeline.ingest(
        [prepare_inbound(raw, Envelope("smtp", "t", "j@acme.example"), at)]
    )
    outcome = app.pipeline.process(stored[0].inbound_id)
    assert outcome.result == "ticket_created"
    with session_scope(app.sessions) as session:
        ticket = repo.ticket_by_number(session, outcome.ticket_number or "")
        assert ticket is not None
        return ticket


def confirmation_text(app: App, ticket: Ticket) -> str:
    with session_scope(app.sessions) as session:
        row = session.execute(
            select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)
        ).scalar_one()
        raw = row.raw
    body = email.message_from_bytes(raw, policy=default).get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_deadlines_are_stored_with_the_policy_version(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "voip-hotline")
    ticket = process(app, make_mail(subject="Acme – Denver – Calls fail to Canada – P2"), MONDAY)
    assert ticket.response_due_at == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 8 business h
    assert ticket.deadlines["response"] == "2026-11-24T01:00:00+00:00"
    assert ticket.deadlines["reason_for_outage"] == "2026-11-27T17:00:00+00:00"
    assert (ticket.policy_name, ticket.policy_version) == ("voip-hotline", "2026-11-22")
    assert ticket.timezone == "America/Los_Angeles"
    text = confirmation_text(app, ticket)
    assert "Response by Mon 23 Nov 2026 17:00 PST (01:00 UTC) (8 business hours)" in text
    assert "Severe problems that cause a partial service outage" in text


def test_off_hours_p1_records_a_pending_charge_that_staff_settle(
    make_settings: Callable[..., Settings], db_url: str, tmp_path: Path
) -> None:
    settings = make_settings(db_url, **{"intake.policy": "voip-hotline"})
    app = build_app(settings)
    ticket = process(app, make_mail(), SATURDAY)
    with session_scope(app.sessions) as session:
        [charge] = session.execute(select(ChargeRow)).scalars()
        charge_id = charge.id
        assert (charge.kind, str(charge.amount), charge.status) == (
            "off_hours_emergency",
            "200.00",
            "pending",
        )
    text = confirmation_text(app, ticket)
    assert "200.00 USD (pending" in text and "two-hour minimum" in text
    assert "Response by Sat 21 Nov 2026 14:00 PST (22:00 UTC) (4 hours)" in text

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "intake", *args, "--database", settings.database.url],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )

    pending = json.loads(cli("charges", "list", "--status", "pending", "--json").stdout)
    assert [c["id"] for c in pending] == [charge_id]
    assert (
        cli("charges", "settle", str(charge_id), "--waive", "--note", "carrier fault").returncode
        == 0
    )
    again = cli("charges", "settle", str(charge_id), "--bill")
    assert again.returncode == 1 and "not pending" in again.stderr
    with session_scope(app.sessions) as session:
        settled = session.get(ChargeRow, charge_id)
        assert settled is not None and settled.status == "waived"
        assert settled.settled_note == "carrier fault"


def test_same_p1_in_business_hours_has_no_off_hours_charge(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "voip-hotline")
    process(app, make_mail(), MONDAY)
    with session_scope(app.sessions) as session:
        assert list(session.execute(select(ChargeRow)).scalars()) == []


def test_breached_and_due_before_filters(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "voip-hotline")
    late = process(app, make_mail(subject="A – B – old – P1"), SATURDAY)
    fresh = process(app, make_mail(subject="A – B – new – P1"), datetime.now(UTC))
    now = datetime.now(UTC)
    with session_scope(app.sessions) as session:
        breached = [t.number for t in repo.list_tickets(session, breached_at=now)]
        due_soon = [
            t.number for t in repo.list_tickets(session, due_before=now + timedelta(hours=5))
        ]
    assert breached == [late.number]
    assert set(due_soon) == {late.number, fresh.number}


def test_managed_pbx_auto_closes_after_48_business_hours(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "managed-pbx")
    ticket = process(app, make_mail(body="Phones are dead.\n"), MONDAY)  # 10:00 MST
    assert ticket.status == "waiting_customer" and ticket.waiting_since == MONDAY
    # 48 business hours of 9 h days from Mon 10:00 MST: Mon 7 h, Tue 9, (Wed 9), Thu
    # Thanksgiving (US federal), Fri 9, Mon 9, Tue 5 h → Tue 1 Dec 13:00 MST.
    assert app.autocloser.run_once(datetime(2026, 12, 1, 19, 59, tzinfo=UTC)) == []
    assert app.autocloser.run_once(datetime(2026, 12, 1, 20, 0, tzinfo=UTC)) == [ticket.number]
    assert app.autocloser.run_once(datetime(2026, 12, 9, tzinfo=UTC)) == []  # closed once
    with session_scope(app.sessions) as session:
        closed = session.get(Ticket, ticket.id)
        assert closed is not None and closed.status == "closed"
        notice = session.execute(
            select(OutboxMessage).where(OutboxMessage.kind == "auto_close")
        ).scalar_one()
        message = email.message_from_bytes(notice.raw, policy=default)
    assert message["In-Reply-To"] == f"<{ticket.message_id}>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert "48 business hours" in message.get_body(("plain",)).get_content()


def test_complete_report_is_not_waiting_and_never_auto_closes(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "managed-pbx")
    ticket = process(app, make_mail(), MONDAY)
    assert ticket.status == "open" and ticket.waiting_since is None
    assert app.autocloser.run_once(datetime(2027, 1, 1, tzinfo=UTC)) == []


def test_check_fills_response_due_and_deadlines(tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(make_mail())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "intake",
            "check",
            "--json",
            "--policy",
            "voip-hotline",
            "--received-at",
            "2026-11-21T18:00:00Z",
            str(mail),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    record = json.loads(result.stdout)
    assert record["response_due"] == "2026-11-21T22:00:00Z"
    assert record["deadlines"] == {
        "response": "2026-11-21T22:00:00Z",
        "resolution": "2026-11-23T18:00:00Z",
        "reason_for_outage": "2026-11-23T18:00:00Z",
    }
    assert record["in_business_hours"] is False
    assert [(c["kind"], c["amount"], c["status"]) for c in record["charges"]] == [
        ("off_hours_emergency", "200.00", "pending")
    ]


def add_customers(app: App, *records: CustomerRecord) -> None:
    with session_scope(app.sessions) as session:
        repo.upsert_customers(session, [values_from_record(r) for r in records], MONDAY)


ACME = CustomerRecord(
    name="Acme Corp",
    aliases=("ACME",),
    domains=("acme.example",),
    timezone="America/New_York",
    authorized_contacts=("it@acme.example", "backup@acme.example"),
    policy="managed-pbx",
)
GLOBEX = CustomerRecord(
    name="Globex",
    domains=("globex.example",),
    subscription_expires=date(2026, 10, 31),
    policy="subscription",
)


def test_directory_customer_gets_their_own_policy_zone_and_name(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "standard")
    add_customers(app, ACME)
    ticket = process(
        app,
        make_mail(
            subject="ACME corp. – Denver – No audio – 2",
            sender="IT Desk <it@acme.example>",
            headers=ACME_SIGNED,
        ),
        MONDAY,
    )
    assert (ticket.customer, ticket.policy_name) == ("Acme Corp", "managed-pbx")
    assert ticket.timezone == "America/New_York"  # the customer's zone, not Denver
    assert not ticket.billable_hourly
    # Mon 12:00 EST, in hours: 2 business hours → 14:00 EST.
    assert ticket.response_due_at == datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    assert {f["code"] for f in ticket.findings}.isdisjoint(
        {"unknown_customer", "unauthorized_contact"}
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authentication-Results": "evil.example; dkim=pass header.d=acme.example"},
        {"Authentication-Results": "mx.example.com; dkim=pass header.d=evil.example"},
    ],
    ids=["no-results", "untrusted-authserv-id", "unaligned-signature"],
)
def test_an_unauthenticated_authorized_contact_is_flagged_as_unauthorized(
    make_settings: Callable[..., Settings], db_url: str, headers: dict[str, str]
) -> None:
    # Issue 13: before, the From header alone made it.acme.example an authorized contact.
    app = app_for(make_settings, db_url, "standard")
    add_customers(app, ACME)
    raw = make_mail(
        subject="Acme Corp – Denver – No audio – 2",
        sender="IT Desk <it@acme.example>",
        headers=headers,
    )
    ticket = process(app, raw, MONDAY)
    assert ticket.billable_hourly
    assert "unauthorized_contact" in {f["code"] for f in ticket.findings}


def test_unauthorized_contact_is_ticketed_billable_with_a_notice(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "standard")
    add_customers(app, ACME)
    ticket = process(
        app,
        make_mail(
            subject="Acme Corp – Denver – No audio – 2", sender="Temp <contractor@acme.example>"
        ),
        MONDAY,
    )
    assert ticket.billable_hourly
    assert "unauthorized_contact" in {f["code"] for f in ticket.findings}
    assert "billable on an hourly basis" in confirmation_text(app, ticket)


def test_staff_cc_gets_a_reminder(make_settings: Callable[..., Settings], db_url: str) -> None:
    app = build_app(
        make_settings(
            db_url, **{"intake.policy": "managed-pbx", "intake.staff_domains": ["provider.example"]}
        )
    )
    ticket = process(app, make_mail(headers={"Cc": "jo@provider.example"}), MONDAY)
    assert "staff_cc" in {f["code"] for f in ticket.findings}
    assert "do not e-mail or CC individual employee" in confirmation_text(app, ticket)


def test_lapsed_subscription_is_billable_and_an_outage_goes_to_the_top(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "standard")
    add_customers(app, GLOBEX)
    ticket = process(
        app,
        make_mail(subject="Globex – HQ – Total system outage – P2", sender="ops@globex.example"),
        MONDAY,
    )
    assert ticket.policy_name == "subscription" and ticket.priority == 1
    codes = {f["code"] for f in ticket.findings}
    assert {"subscription_lapsed", "outage_escalated"} <= codes
    assert ticket.billable_hourly
    assert "billed hourly" in confirmation_text(app, ticket)


def test_unknown_customer_is_still_ticketed_with_a_finding(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url, "standard")
    add_customers(app, ACME)
    ticket = process(
        app, make_mail(subject="Nobody Inc – X – Y – P3", sender="a@nobody.example"), MONDAY
    )
    assert ticket.customer == "Nobody Inc" and ticket.policy_name == "standard"
    assert "unknown_customer" in {f["code"] for f in ticket.findings}
