"""Issue 13 item 5: the confirmation reflection caps per sending IP and per From domain.

A sender who writes ``Reply-To: victim@…`` makes us mail a confirmation (carrying its
subject) to the victim. Past a cap on the distinct addresses one source has us confirm
to in an hour, tickets are still made and charged, their confirmations suppressed.
In-process (ingest + process with a fixed clock) on SQLite and PostgreSQL, and once over
real SMTP from two loopback addresses for the peer IP the listener records. The metrics
of both issue 13 limits (flood, reflection) are read from the registry the worker counts in.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.pipeline.worker import ProcessingWorker
from intake.settings import Settings
from store.db import session_scope
from store.models import InboundMessage, OutboxMessage, Ticket
from tests.conftest import make_mail, start_daemon, stop_daemon, wait_for

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
# The shipped caps, named here: tests/conftest.py lifts them for every other test. The
# flood limits stay lifted (tests/conftest.py): every mail here opens a ticket.
SHIPPED = {"intake.reflection_per_ip": 30, "intake.reflection_per_domain": 30}
ATTACKER_IP = "192.0.2.7"  # RFC 5737 documentation addresses
OTHER_IP = "198.51.100.9"


def make_app(make_settings: Callable[..., Settings], db: str, **overrides: Any) -> App:
    return build_app(make_settings(db, **(SHIPPED | overrides)))


def reflected(i: int, domain: str | None = None, victim: str | None = None) -> bytes:
    """A mail from a fresh From address (its own domain unless ``domain``) whose Reply-To
    names a victim: every one would get a confirmation without the caps."""
    return make_mail(
        sender=f"sender{i}@{domain or f'site{i}.example'}",
        headers={"Reply-To": victim or f"victim{i}@victims.example"},
    )


def ingest(app: App, mails: list[bytes], origin: str = "smtp", ip: str | None = None) -> list[int]:
    envelope = Envelope(origin, "t", "x@y.example", peer_ip=ip)
    stored = app.pipeline.ingest([prepare_inbound(m, envelope, NOW) for m in mails])
    return [s.inbound_id for s in stored]


def deliver(app: App, mails: list[bytes], *, ip: str | None = None, origin: str = "smtp") -> None:
    app.pipeline.clock = lambda: NOW
    results = [app.pipeline.process(i).result for i in ingest(app, mails, origin, ip)]
    assert set(results) == {"ticket_created"}  # the caps never keep a ticket from opening


def confirmations(app: App, status: str | None = None) -> list[OutboxMessage]:
    with session_scope(app.sessions) as session:
        statement = select(OutboxMessage).where(OutboxMessage.kind == "confirmation")
        if status is not None:
            statement = statement.where(OutboxMessage.status == status)
        return list(session.execute(statement.order_by(OutboxMessage.id)).scalars())


def count(app: App, model: type[Ticket] | type[InboundMessage]) -> int:
    with session_scope(app.sessions) as session:
        return len(session.execute(select(model.id)).all())


def test_one_ip_gets_only_the_caps_worth_of_confirmations(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = make_app(make_settings, db_url)
    with structlog.testing.capture_logs() as logs:
        deliver(app, [reflected(i) for i in range(60)], ip=ATTACKER_IP)
    assert count(app, Ticket) == 60  # every ticket made (and charged as usual)
    queued = confirmations(app, "queued")
    assert len(queued) == 30
    assert len({r for row in queued for r in row.recipients}) == 30
    spared = confirmations(app, "suppressed")
    assert len(spared) == 30
    assert all(
        row.last_error is not None
        and f"for ip:{ATTACKER_IP} in the last hour (reflection limit 30)" in row.last_error
        for row in spared
    )
    lines = [e for e in logs if e["event"] == "outbox.suppressed"]
    assert len(lines) == 30 and {e["reflection"] for e in lines} == {"ip"}
    # What the ticket's thread shows: the inbound row's change record names the reason.
    with session_scope(app.sessions) as session:
        last = session.execute(select(InboundMessage).order_by(InboundMessage.id.desc())).scalar()
        assert last is not None
        assert "reflection limit 30" in last.changes["suppressed"]["victim59@victims.example"]

    # A second IP is unaffected, and an address already confirmed for this IP is no new one.
    deliver(app, [reflected(100)], ip=OTHER_IP)
    deliver(app, [reflected(101, victim="victim0@victims.example")], ip=ATTACKER_IP)
    deliver(app, [reflected(102)], ip=ATTACKER_IP)
    latest = confirmations(app)[-3:]
    assert [row.status for row in latest] == ["queued", "queued", "suppressed"]


def test_one_from_domain_gets_only_the_caps_worth_of_confirmations(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """IMAP (and pipe) mail has no peer IP: the domain cap alone applies to it."""
    app = make_app(make_settings, db_url)
    deliver(app, [reflected(i, "acme.example") for i in range(60)], origin="imap")
    assert count(app, Ticket) == 60
    spared = confirmations(app, "suppressed")
    assert len(confirmations(app, "queued")) == 30 and len(spared) == 30
    assert all("for domain:acme.example" in (row.last_error or "") for row in spared)
    # Another domain is unaffected; a free-mail domain's users are unrelated people.
    deliver(app, [reflected(100, "other.example")], origin="imap")
    deliver(app, [reflected(200 + i, "gmail.com") for i in range(35)], origin="imap")
    assert len(confirmations(app, "queued")) == 30 + 1 + 35


def test_the_caps_count_a_rolling_hour(make_settings: Callable[..., Settings], db_url: str) -> None:
    app = make_app(make_settings, db_url, **{"intake.reflection_per_ip": 2})
    deliver(app, [reflected(i) for i in range(3)], ip=ATTACKER_IP)
    later = NOW + timedelta(hours=1, minutes=1)
    app.pipeline.clock = lambda: later
    envelope = Envelope("smtp", "t", "x@y.example", peer_ip=ATTACKER_IP)
    [stored] = app.pipeline.ingest([prepare_inbound(reflected(3), envelope, later)])
    assert app.pipeline.process(stored.inbound_id).result == "ticket_created"
    assert [row.status for row in confirmations(app)] == [
        "queued",
        "queued",
        "suppressed",
        "queued",  # the first hour's confirmations have aged out
    ]


def test_the_mta_in_front_is_exempt_from_the_ip_cap(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """Behind an MTA on this host every mail's peer is 127.0.0.1 (reflection_exempt_peers)."""
    app = make_app(make_settings, db_url, **{"intake.reflection_per_ip": 2})
    deliver(app, [reflected(i) for i in range(5)], ip="127.0.0.1")
    assert len(confirmations(app, "queued")) == 5


def test_the_cap_holds_across_instances(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """Two daemons on one store confirming one IP's mail at once send exactly 5."""
    apps = [make_app(make_settings, db_url, **{"intake.reflection_per_ip": 5}) for _ in range(2)]
    ids = ingest(apps[0], [reflected(i) for i in range(30)], ip=ATTACKER_IP)
    for app in apps:
        app.pipeline.clock = lambda: NOW
    start = threading.Barrier(2)

    def work(index: int) -> list[str]:
        start.wait(30)
        return [apps[index].pipeline.process(i).result for i in ids[index::2]]

    with ThreadPoolExecutor(2) as pool:
        results = [r for batch in pool.map(work, range(2), timeout=120) for r in batch]
    assert results.count("ticket_created") == 30
    assert len(confirmations(apps[0], "queued")) == 5
    assert len(confirmations(apps[0], "suppressed")) == 25


def test_flood_and_reflection_are_counted_in_their_metrics(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    app = make_app(
        make_settings,
        f"sqlite:///{tmp_path / 'metrics.db'}",
        **{
            "intake.reflection_per_ip": 2,
            "intake.reflection_per_domain": 3,
            "intake.flood_per_address": 1,
            "intake.flood_per_domain": 4,
        },
    )
    app.pipeline.clock = lambda: NOW
    ingest(app, [reflected(i) for i in range(3)], ip=ATTACKER_IP)  # ip cap: 1 suppressed
    ingest(app, [reflected(10 + i, "acme.example") for i in range(4)], "imap")  # domain: 1
    ingest(app, [reflected(10, "acme.example")], "imap")  # sender10 again: address flood
    ingest(app, [reflected(20, "acme.example")], "imap")  # the domain's fifth: domain flood
    worker = ProcessingWorker(app.pipeline, app.sessions, 60.0, metrics=app.metrics)
    assert asyncio.run(worker.sweep()) == 9

    def sample(name: str, scope: str) -> float | None:
        return app.metrics.registry.get_sample_value(name, {"scope": scope})

    assert sample("intake_reflection_suppressed_total", "ip") == 1
    assert sample("intake_reflection_suppressed_total", "domain") == 1
    assert sample("intake_flood_total", "address") == 1
    assert sample("intake_flood_total", "domain") == 1


def test_the_listener_records_the_peer_ip_the_cap_counts(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    """Over real SMTP: 6 mails from 127.0.0.2 (cap 3) and one from 127.0.0.3."""
    settings = make_settings(
        f"sqlite:///{tmp_path / 'smtp.db'}",
        **{"intake.reflection_per_ip": 3, "intake.reflection_exempt_peers": []},
    )
    daemon = start_daemon(settings)
    try:
        for source, mails in (("127.0.0.2", range(6)), ("127.0.0.3", range(6, 7))):
            with smtplib.SMTP(
                daemon.host, daemon.port, timeout=30, source_address=(source, 0)
            ) as client:
                for i in mails:
                    sender = f"sender{i}@site{i}.example"
                    client.sendmail(sender, ["support@example.com"], reflected(i))
        wait_for(lambda: len(confirmations(daemon.app)) == 7, 60)
        with session_scope(daemon.app.sessions) as session:
            rows = session.execute(select(InboundMessage.id, InboundMessage.peer_ip))
            peer_of: dict[int, str | None] = dict(rows.all())
        assert sorted(str(p) for p in peer_of.values()) == ["127.0.0.2"] * 6 + ["127.0.0.3"]
        # Which three of the first IP's six are confirmed depends on the processing order;
        # a confirmation not suppressed may be queued or already sent.
        spared = [
            (peer_of[row.inbound_message_id or 0], row.status == "suppressed")
            for row in confirmations(daemon.app)
        ]
        assert sorted(spared) == [
            *[("127.0.0.2", False)] * 3,
            *[("127.0.0.2", True)] * 3,
            ("127.0.0.3", False),
        ]
    finally:
        stop_daemon(daemon)
