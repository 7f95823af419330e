"""Follow-ups through the pipeline: assessed under the ticket's own policy, not today's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.pipeline.customers import CustomerRecord, values_from_record
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage, Ticket
from tests.conftest import make_mail

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
ACME = CustomerRecord(name="Acme Corp", domains=("acme.example",), policy="standard")


def deliver(app: App, raw: bytes, at: datetime) -> tuple[str, int]:
    app.pipeline.clock = lambda: at
    [stored] = app.pipeline.ingest(
        [prepare_inbound(raw, Envelope("smtp", "t", "jane@acme.example"), at)]
    )
    return app.pipeline.process(stored.inbound_id).result, stored.inbound_id


def point_acme_at(app: App, policy: str) -> None:
    record = CustomerRecord(name=ACME.name, domains=ACME.domains, policy=policy)
    with session_scope(app.sessions) as session:
        repo.upsert_customers(session, [values_from_record(record)], MONDAY)


def test_a_follow_up_is_assessed_under_the_policy_its_ticket_was_opened_under(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = build_app(make_settings(db_url, **{"intake.policy": "standard"}))
    point_acme_at(app, "standard")
    opened = make_mail(message_id="<open@acme.example>", body="Phones are dead.\n")
    assert deliver(app, opened, MONDAY)[0] == "ticket_created"
    with session_scope(app.sessions) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.policy_name == "standard"
        missing = list(ticket.missing_fields)
    assert {"serial_number", "software_version"} <= set(missing)

    point_acme_at(app, "cloud-services")  # the directory moves the customer meanwhile
    thanks = make_mail(
        subject="Re: x",
        headers={"In-Reply-To": "<open@acme.example>"},
        body="thanks\n",
        message_id="<thanks@acme.example>",
    )
    result, inbound_id = deliver(app, thanks, MONDAY + timedelta(hours=1))
    assert result == "follow_up"
    with session_scope(app.sessions) as session:
        row = session.get_one(InboundMessage, inbound_id)
        assert row.changes["supplied"] == []
        assert row.changes["still_missing"] == missing
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.missing_fields == missing
        assert ticket.policy_name == "standard"


def test_a_field_only_the_tickets_policy_knows_is_supplied_after_the_customer_moved(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = build_app(make_settings(db_url, **{"intake.policy": "standard"}))
    point_acme_at(app, "standard")
    opened = make_mail(message_id="<open@acme.example>", body="Phones are dead.\n")
    deliver(app, opened, MONDAY)
    point_acme_at(app, "cloud-services")  # a policy without a serial number field
    answer = make_mail(
        subject="Re: x",
        headers={"In-Reply-To": "<open@acme.example>"},
        body="Serial Number: board MX-0042, appliance MXA-0042\n",
        message_id="<serial@acme.example>",
    )
    result, inbound_id = deliver(app, answer, MONDAY + timedelta(hours=1))
    assert result == "follow_up"
    with session_scope(app.sessions) as session:
        assert session.get_one(InboundMessage, inbound_id).changes["supplied"] == ["serial_number"]
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.fields["serial_number"] == "board: MX-0042; appliance: MXA-0042"
        assert "serial_number" not in ticket.missing_fields
