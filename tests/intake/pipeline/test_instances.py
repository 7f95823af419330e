"""Two instances on one store: concurrent COMMIT 2s on one ticket, and on one recipient.

Each instance is its own ``build_app`` (own engine, own connections), the way two daemons
share one PostgreSQL; SQLite runs the same races between threads of one file. A barrier
lines the two up on each ticket, so without the row lock the lost update is the rule,
not the exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.replies.outbox import ReplyKind
from intake.replies.render import RenderedReply
from intake.settings import Settings
from store.db import session_scope
from store.models import OutboxMessage, OutboxStatus, Ticket
from tests.conftest import COMPLETE_BODY, make_mail

# A fault-injection test: pytest -m fault runs these with tests/faults.
pytestmark = pytest.mark.fault

TICKETS = 50
# A report without serial number and software version: two fields for two follow-ups.
PARTIAL_BODY = "".join(
    line + "\n"
    for line in COMPLETE_BODY.splitlines()
    if not line.startswith(("Serial Number", "SW Version"))
)
SUPPLIES = {"serial_number": "Serial Number: MX-{n:04d}", "software_version": "SW Version: 17.{n}"}


def stored(app: App, raw: bytes, mail_from: str = "jane@acme.example") -> int:
    item = prepare_inbound(raw, Envelope("smtp", "test", mail_from), app.pipeline.clock())
    return app.pipeline.ingest([item])[0].inbound_id


def instances(make_settings: Callable[..., Settings], db_url: str, count: int = 2) -> list[App]:
    settings = make_settings(db_url)
    return [build_app(settings) for _ in range(count)]


def race(apps: Sequence[App], work: Sequence[Sequence[int]]) -> None:
    """``apps[k]`` processes ``work[k]`` in order; all meet at a barrier before each step."""
    barrier = threading.Barrier(len(apps))

    def run(app: App, ids: Sequence[int]) -> list[str]:
        results = []
        for inbound_id in ids:
            barrier.wait(timeout=120)
            results.append(app.pipeline.process(inbound_id).result.value)
        return results

    with ThreadPoolExecutor(len(apps)) as pool:
        outcomes = list(pool.map(run, apps, work))
    assert all(result == "follow_up" for results in outcomes for result in results), outcomes


def test_follow_ups_racing_on_two_instances_lose_no_field(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    one, two = instances(make_settings, db_url)
    # Different requesters: the reply budget of one address plays no part here.
    senders = [f"user{n}@acme.example" for n in range(TICKETS)]
    numbers = []
    for n, sender in enumerate(senders):
        subject = f"Acme Corp – Denver – Echo {n} – P3"
        raw = make_mail(subject=subject, body=PARTIAL_BODY, sender=sender)
        outcome = one.pipeline.process(stored(one, raw, sender))
        assert outcome.result == "ticket_created", outcome
        numbers.append(outcome.ticket_number)
    work: dict[str, list[int]] = {field: [] for field in SUPPLIES}
    for n, (number, sender) in enumerate(zip(numbers, senders, strict=True)):
        for field, line in SUPPLIES.items():
            subject = f"Re: Acme Corp – Denver – Echo {n} – P3 [{number}]"
            raw = make_mail(subject=subject, body=line.format(n=n) + "\n", sender=sender)
            work[field].append(stored(one, raw, sender))
    race([one, two], list(work.values()))
    with session_scope(one.sessions) as session:
        tickets = list(session.execute(select(Ticket).order_by(Ticket.id)).scalars())
    lost = [
        t.number
        for t in tickets
        if t.missing_fields or not {"serial_number", "software_version"} <= set(t.fields)
    ]
    assert lost == [], f"{len(lost)} of {TICKETS} tickets lost a field"
    assert [t.fields["software_version"] for t in tickets] == [f"17.{n}" for n in range(TICKETS)]


def rendered(n: int, recipient: str) -> RenderedReply:
    return RenderedReply(
        message_id=f"budget-{n}@example.com",
        recipients=(recipient,),
        raw=b"Subject: re\r\n\r\nthanks\r\n",
    )


def test_the_reply_budget_holds_across_instances(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """N instances queueing to one recipient at once: exactly the hourly limit gets out."""
    apps = instances(make_settings, db_url, count=4)
    limit = apps[0].settings.intake.replies_per_hour
    outcome = apps[0].pipeline.process(stored(apps[0], make_mail()))  # a ticket to reply on
    assert outcome.result == "ticket_created"
    with session_scope(apps[0].sessions) as session:
        ticket_id = session.execute(select(Ticket.id)).scalar_one()
    barrier = threading.Barrier(len(apps))
    attempts = 3 * limit // len(apps) + 1

    def queue(k: int) -> None:
        app = apps[k]
        for i in range(attempts):
            barrier.wait(timeout=120)
            with session_scope(app.sessions, write=True) as session:
                app.pipeline.outbox.enqueue(
                    session,
                    rendered(k * 1000 + i, "Boss@globex.example"),
                    ReplyKind.AUTO_CLOSE,
                    ticket_id=ticket_id,
                    now=app.pipeline.clock(),
                )

    with ThreadPoolExecutor(len(apps)) as pool:
        list(pool.map(queue, range(len(apps))))
    with session_scope(apps[0].sessions) as session:
        rows = list(
            session.execute(
                select(OutboxMessage.status).where(OutboxMessage.message_id.like("budget-%"))
            ).scalars()
        )
    assert len(rows) == attempts * len(apps)
    assert rows.count(OutboxStatus.QUEUED) == limit


def test_an_import_on_one_instance_reaches_the_others_cached_directory(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """Processing caches the directory per version row: another host's import bumps it."""
    from intake.pipeline.customers import CustomerRecord, values_from_record
    from store import repository as repo

    reader, importer = instances(make_settings, db_url)

    def customer_of(app: App, subject: str) -> str | None:
        inbound_id = stored(app, make_mail(subject=subject, body=COMPLETE_BODY))
        number = app.pipeline.process(inbound_id).ticket_number
        with session_scope(app.sessions) as session:
            ticket = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
            return ticket.customer

    # The reader's cache now holds the empty directory: the subject's name stands.
    assert customer_of(reader, "Acme Corp – 1 Main St – No dial tone – P2") == "Acme Corp"
    record = CustomerRecord(name="Acme Holdings", domains=("acme.example",))
    with session_scope(importer.sessions) as session:
        repo.upsert_customers(session, [values_from_record(record)], importer.pipeline.clock())
    assert customer_of(reader, "Acme Corp – 2 Main St – No dial tone – P2") == "Acme Holdings"
