"""Helpers for the operations pages' tests: a daemon whose relay can refuse, a message
that quarantines for real (the store refuses its ticket), a dead reply, directory rows."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from intake.pipeline.customers import CustomerRecord, values_from_record
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import InboundStatus, OutboxStatus
from tests.conftest import RunningDaemon, Sink, make_mail, wait_for
from tests.intake.web.board_support import BOUND, Browser

TOKEN = "0123456789abcdef-ops-token"
POISON = "Poisonville"  # a ticket whose location carries it is refused by the store
BODY_MARKER = "Body-only-marker-7781: the body is never shown"
# SQLite refuses the ticket row (as tests/faults/test_privacy.py does): processing fails
# at COMMIT 2 and, with one attempt allowed, the message is quarantined with its error.
REFUSE = (
    "CREATE TRIGGER refuse_poison BEFORE INSERT ON ticket"
    f" WHEN NEW.location LIKE '%{POISON}%'"
    " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
)


def ops_settings(make_settings: Callable[..., Settings], sink: Sink, **extra: Any) -> Settings:
    """SQLite, the relay at ``sink``, one processing attempt, the API on, fast retries."""
    return make_settings(
        **{
            "outbound.relay_host": sink.host,
            "outbound.relay_port": sink.port,
            "outbound.backoff_initial": 0.1,
            "outbound.backoff_max": 0.3,
            "intake.max_attempts": 1,
            "web.api_token": TOKEN,
            **extra,
        }
    )


def refuse_poison(daemon: RunningDaemon, refuse: bool = True) -> None:
    with daemon.app.engine.begin() as conn:
        conn.execute(text(REFUSE if refuse else "DROP TRIGGER refuse_poison"))


def smtp_send(daemon: RunningDaemon, raw: bytes) -> None:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=30) as client:
        client.sendmail("jane@acme.example", ["support@example.com"], raw)


def quarantine_one(daemon: RunningDaemon, hostile_header: str = "<script>x</script>") -> int:
    """Mail a report the store refuses to ticket; its id once it is quarantined."""
    message_id = f"<poison.{datetime.now().timestamp()}@acme.example>"
    raw = make_mail(
        subject=f"Acme Corp – 1 {POISON} Rd – <b>Dead</b> lines – P1",
        body=f"{BODY_MARKER}\n",
        message_id=message_id,
        headers={"X-Probe": hostile_header},
    )
    smtp_send(daemon, raw)

    def quarantined() -> int | None:
        with session_scope(daemon.app.sessions) as session:
            rows = repo.list_inbound(session, InboundStatus.QUARANTINED)
            return next((r.id for r in rows if r.message_id == message_id.strip("<>")), None)

    found: int = wait_for(quarantined, BOUND)
    return found


def reply_status(daemon: RunningDaemon, outbox_id: int) -> str:
    with session_scope(daemon.app.sessions) as session:
        row = repo.get_outbox(session, outbox_id)
        assert row is not None
        return row.status


def dead_reply(daemon: RunningDaemon) -> int:
    """The id of the first reply the (refusing) relay killed."""

    def dead() -> int | None:
        with session_scope(daemon.app.sessions) as session:
            rows = repo.list_outbox(session, OutboxStatus.DEAD)
            return rows[-1].id if rows else None

    found: int = wait_for(dead, BOUND)
    return found


def add_customers(daemon: RunningDaemon, *records: CustomerRecord) -> None:
    values = [values_from_record(r) for r in records]
    with session_scope(daemon.app.sessions, write=True) as session:
        repo.upsert_customers(session, values, datetime.now(UTC))


def add_mailbox_state(daemon: RunningDaemon, name: str, owner: str, uidvalidity: int) -> None:
    """A mailbox another instance polls: leased by ``owner``, last SELECT ok."""
    now = datetime.now(UTC)
    with session_scope(daemon.app.sessions, write=True) as session:
        assert repo.acquire_mailbox_lease(session, name, owner, now, now + timedelta(minutes=5))
        repo.record_mailbox_ok(session, name, now, uidvalidity)


def page_csrf(staff: Browser, path: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', staff.get(path))
    assert match, f"no CSRF token on {path}"
    return match.group(1)
