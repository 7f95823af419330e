"""Issue 13 items 3 and 4: strangers stay off tickets; inbound flood limits per sender.

In-process (ingest + process with a fixed clock): the rules live in COMMIT 2, and a
thousand mails through SMTP would only measure the listener.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.settings import Settings
from store.db import session_scope
from store.models import ChargeRow, InboundMessage, OutboxMessage, Ticket
from tests.conftest import make_mail

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
STAFF = {
    # The shipped limits, named here: tests/conftest.py lifts them for every other test.
    "intake.flood_per_address": 20,
    "intake.flood_per_domain": 100,
    "intake.staff_domains": ["provider.example"],
    "intake.flood_notify": ["noc@provider.example"],
}
PARTIAL = "Phones are dead since this morning.\n"  # serial number and more still missing
SERIALS = "Serial Numbers: X-1 / X-2\n"  # both parts the contract asks for


def make_app(make_settings: Callable[..., Settings], db: str, **overrides: Any) -> App:
    return build_app(make_settings(db, **(STAFF | overrides)))


def deliver(app: App, raw: bytes, at: datetime = NOW, mail_from: str = "x@y.example") -> str:
    app.pipeline.clock = lambda: at
    [stored] = app.pipeline.ingest([prepare_inbound(raw, Envelope("smtp", "t", mail_from), at)])
    return app.pipeline.process(stored.inbound_id).result


def tickets(app: App) -> list[Ticket]:
    with session_scope(app.sessions) as session:
        return list(session.execute(select(Ticket).order_by(Ticket.id)).scalars())


def inbound(app: App) -> list[InboundMessage]:
    with session_scope(app.sessions) as session:
        return list(session.execute(select(InboundMessage).order_by(InboundMessage.id)).scalars())


def outbox(app: App, kind: str) -> list[OutboxMessage]:
    with session_scope(app.sessions) as session:
        statement = select(OutboxMessage).where(OutboxMessage.kind == kind)
        return list(session.execute(statement.order_by(OutboxMessage.id)).scalars())


def first_mail(**extra: str) -> bytes:
    return make_mail(body=PARTIAL, message_id="<start@acme.example>", headers=extra or None)


def citing_reply(sender: str, body: str) -> bytes:
    """A reply that cites the customer's own Message-ID (no token of ours)."""
    return make_mail(
        subject="Re: Acme Corp – Denver – No dial tone – P1",
        sender=sender,
        body=body,
        headers={"In-Reply-To": "<start@acme.example>", "References": "<start@acme.example>"},
    )


def test_a_stranger_citing_the_customers_message_id_gets_a_new_linked_ticket(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = make_app(make_settings, db_url)
    assert deliver(app, first_mail()) == "ticket_created"
    with structlog.testing.capture_logs() as logs:
        result = deliver(app, citing_reply("Mallory <mallory@evil.example>", SERIALS))
    assert result == "ticket_created"
    original, intruder = tickets(app)
    assert intruder.requester_email == "mallory@evil.example"
    assert intruder.linked_ticket_id == original.id and intruder.parent_ticket_id is None
    # The stranger supplied nothing to the customer's ticket.
    assert "serial_number" not in original.fields
    assert "serial_number" in original.missing_fields
    assert intruder.fields["serial_number"] == "board: X-1; appliance: X-2"  # it did say one
    [line] = [e for e in logs if e["event"] == "message.processed" and e["ticket"] == "TKT-000002"]
    assert line["linked_ticket"] == original.id
    assert "References cite TKT-000001, but the sender is not on it" in line["thread_rejected"]


@pytest.mark.parametrize(
    ("sender", "copied"),
    [
        ("Bob <bob@acme.example>", {"Cc": "bob@acme.example"}),
        ("Jane Doe <jane@acme.example>", {}),
        ("Sam NOC <sam@provider.example>", {}),
    ],
    ids=["copied", "requester", "staff"],
)
def test_a_participant_still_threads_by_message_id(
    make_settings: Callable[..., Settings], db_url: str, sender: str, copied: dict[str, str]
) -> None:
    app = make_app(make_settings, db_url)
    deliver(app, first_mail(**copied))
    result = deliver(app, citing_reply(sender, SERIALS))
    # Staff without trusted Authentication-Results: a claim (issue 13), still on this ticket.
    assert result == ("staff_claim" if "provider" in sender else "follow_up")
    [ticket] = tickets(app)
    assert ticket.linked_ticket_id is None
    if "provider" not in sender:
        assert ticket.fields["serial_number"] == "board: X-1; appliance: X-2"


def test_a_thousand_mails_from_one_sender(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    """1 ticket per mail up to the limit, in each rolling hour; the rest kept as flood."""
    app = make_app(make_settings, f"sqlite:///{tmp_path / 'flood.db'}")
    mails = [make_mail(body=PARTIAL) for _ in range(1000)]
    app.pipeline.clock = lambda: NOW
    envelope = Envelope("smtp", "t", "jane@acme.example")
    stored = app.pipeline.ingest([prepare_inbound(m, envelope, NOW) for m in mails])
    results = [app.pipeline.process(s.inbound_id).result for s in stored]
    assert results.count("ticket_created") == 20 and results.count("flood") == 980
    opened = tickets(app)
    assert len(opened) == 20
    rows = inbound(app)
    assert all(r.ticket_id == opened[-1].id for r in rows if r.outcome == "flood")
    assert rows[-1].changes == {
        "flood": "20 new tickets from address:jane@acme.example in the last hour (limit 20)"
    }
    with session_scope(app.sessions) as session:
        charged = session.execute(select(func.count()).select_from(ChargeRow)).scalar_one()
        per_ticket = len(session.get_one(Ticket, opened[0].id).charges)
    assert per_ticket >= 1 and charged == 20 * per_ticket  # not multiplied by the flood
    [notice] = outbox(app, "flood_notice")
    assert notice.recipients == ["noc@provider.example"] and notice.ticket_id == opened[-1].id
    # Confirmations only for tickets (and within the reply budget): none for flood mail.
    assert {r.inbound_message_id for r in outbox(app, "confirmation")} <= {
        r.id for r in rows if r.outcome == "ticket_created"
    }

    later = NOW + timedelta(hours=1, minutes=1)  # the first hour's tickets have aged out
    for _ in range(25):
        deliver(app, make_mail(body=PARTIAL), later, "jane@acme.example")
    assert len(tickets(app)) == 40
    assert len(outbox(app, "flood_notice")) == 2  # one per window


@pytest.mark.parametrize(
    ("domain", "tickets_opened"),
    [("acme.example", 3), ("gmail.com", 5), ("provider.example", 5)],
    ids=["company-domain-limited", "free-mail-per-address-only", "staff-domain-exempt"],
)
def test_the_domain_limit_spares_free_mail(
    make_settings: Callable[..., Settings], db_url: str, domain: str, tickets_opened: int
) -> None:
    app = make_app(make_settings, db_url, **{"intake.flood_per_domain": 3})
    results = [deliver(app, make_mail(body=PARTIAL, sender=f"user{i}@{domain}")) for i in range(5)]
    assert results.count("ticket_created") == tickets_opened
    assert len(tickets(app)) == tickets_opened
    if tickets_opened == 3:  # kept on the domain's latest ticket: the senders have none
        flood = [r for r in inbound(app) if r.outcome == "flood"]
        assert {r.ticket_id for r in flood} == {tickets(app)[-1].id}


def test_the_limit_holds_across_instances(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """Two daemons on one store processing one sender's mail at once open exactly 5."""
    apps = [make_app(make_settings, db_url, **{"intake.flood_per_address": 5}) for _ in range(2)]
    envelope = Envelope("smtp", "t", "jane@acme.example")
    items = [prepare_inbound(make_mail(body=PARTIAL), envelope, NOW) for _ in range(30)]
    ids = [s.inbound_id for s in apps[0].pipeline.ingest(items)]
    for app in apps:
        app.pipeline.clock = lambda: NOW
    start = threading.Barrier(2)

    def work(index: int) -> list[str]:
        start.wait(30)
        app = apps[index]
        return [app.pipeline.process(i).result for i in ids[index::2]]

    with ThreadPoolExecutor(2) as pool:
        results = [r for batch in pool.map(work, range(2), timeout=120) for r in batch]
    assert sorted(set(results)) == ["flood", "ticket_created"]
    assert results.count("ticket_created") == 5 and len(tickets(apps[0])) == 5
    assert len(outbox(apps[0], "flood_notice")) == 1


def test_without_staff_addresses_the_log_line_is_the_one_notice(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = make_app(
        make_settings, db_url, **{"intake.flood_notify": [], "intake.flood_per_address": 2}
    )
    with structlog.testing.capture_logs() as logs:
        results = [deliver(app, make_mail(body=PARTIAL)) for _ in range(6)]
    assert results == ["ticket_created"] * 2 + ["flood"] * 4
    [line] = [e for e in logs if e["event"] == "flood.limited"]
    assert line["sender"] == "address:jane@acme.example" and line["notified"] == []
    assert outbox(app, "flood_notice") == []
