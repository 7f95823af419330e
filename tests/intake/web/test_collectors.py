"""The scrape-time collectors over a real store: mailboxes and leases, charges, a dead store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from intake.app import build_app, utc_now
from intake.pipeline.core import Envelope, prepare_inbound
from intake.settings import Settings
from intake.web.collectors import StoreCollector
from store import repository as repo
from store.db import make_engine, make_session_factory, session_scope
from tests.conftest import free_port, make_mail

OURS, THEIRS, FAILING = (
    "a@imap.example:993/INBOX",
    "c@imap.example:993/INBOX",
    "b@imap.example:993/INBOX",
)


def scrape(collector: StoreCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_mailboxes_leases_charges_and_the_backlog_as_the_store_has_them(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(make_settings())
    now = utc_now()
    with session_scope(app.sessions) as session:
        repo.record_mailbox_ok(session, OURS, now, 7)
        repo.acquire_mailbox_lease(session, OURS, "me", now, now + timedelta(seconds=60))
        repo.acquire_mailbox_lease(session, THEIRS, "other", now, now + timedelta(seconds=60))
        repo.record_mailbox_failure(session, FAILING, "refused", now - timedelta(hours=1))
    incomplete = make_mail(body="Phones are down, please call me.")  # missing information
    [stored] = app.pipeline.ingest([prepare_inbound(incomplete, Envelope("smtp"), now)])
    app.pipeline.process(stored.inbound_id)
    app.pipeline.ingest([prepare_inbound(make_mail(), Envelope("smtp"), now - timedelta(hours=2))])

    seen = scrape(StoreCollector(app.sessions, lambda: now, [OURS, THEIRS, FAILING], "me"))
    app.engine.dispose()
    assert seen[("intake_mailbox_up", (("mailbox", OURS),))] == 1
    assert seen[("intake_mailbox_up", (("mailbox", FAILING),))] == 0
    since = ("intake_mailbox_failing_since_timestamp_seconds", (("mailbox", FAILING),))
    assert seen[since] == (now - timedelta(hours=1)).timestamp()
    assert seen[("intake_mailbox_lease_held", (("mailbox", OURS),))] == 1
    assert seen[("intake_mailbox_lease_held", (("mailbox", THEIRS),))] == 0  # another's lease
    expires = ("intake_mailbox_lease_expires_timestamp_seconds", (("mailbox", OURS),))
    assert seen[expires] == (now + timedelta(seconds=60)).timestamp()
    charge = (("currency", "USD"), ("kind", "missing_information"), ("status", "applied"))
    assert seen[("intake_charges", charge)] == 1
    assert seen[("intake_charges_amount", charge)] == 100.0
    assert seen[("intake_received_backlog", ())] == 1
    assert seen[("intake_received_oldest_age_seconds", ())] == 2 * 3600
    assert seen[("intake_replies", (("status", "queued"),))] == 1
    assert seen[("intake_store_up", ())] == 1


def test_a_store_that_does_not_answer_is_store_up_0_not_a_failed_scrape() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    seen = scrape(StoreCollector(make_session_factory(engine), utc_now, []))
    assert seen == {("intake_store_up", ()): 0}
