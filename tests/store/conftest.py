"""Fixtures for the store tests: a fresh schema per test on SQLite and on PostgreSQL.

The rows are built here with every required column and nothing else, so each test says
only what matters to it. Times are fixed (``NOW``): the store never reads the clock.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import create_schema, make_engine, make_session_factory, session_scope
from store.models import InboundMessage, OutboxMessage, OutboxStatus, Ticket

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NUMBER_FORMAT = "TKT-{:06d}"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    create_schema(engine)
    yield make_session_factory(engine)
    engine.dispose()


def dialect_of(sessions: sessionmaker[Session]) -> str:
    with session_scope(sessions) as session:
        return session.get_bind().dialect.name


def lock_waiters(sessions: sessionmaker[Session]) -> int:
    """PostgreSQL sessions of this database waiting for a row lock right now."""
    with session_scope(sessions) as session:
        statement = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return int(session.execute(statement).scalar_one())


def new_inbound(
    raw: bytes = b"Subject: hello\r\n\r\nbody\r\n",
    *,
    key: str | None = None,
    origin: str = "smtp",
    origin_ref: str | None = None,
    received_at: datetime = NOW,
) -> repo.NewInbound:
    return repo.NewInbound(
        idempotency_key=key or hashlib.sha256(raw).hexdigest(),
        message_id=f"<{uuid.uuid4().hex}@acme.example>",
        origin=origin,
        origin_ref=origin_ref,
        envelope_from="jane@acme.example",
        envelope_to=("support@example.com",),
        raw=raw,
        received_at=received_at,
    )


def stored_inbound(
    session: Session,
    *,
    origin: str = "smtp",
    origin_ref: str | None = None,
    received_at: datetime = NOW,
) -> InboundMessage:
    """A stored inbound row (unique content, so a new key) ready for status changes."""
    raw = f"Subject: {uuid.uuid4().hex}\r\n\r\nbody\r\n".encode()
    item = new_inbound(raw, origin=origin, origin_ref=origin_ref, received_at=received_at)
    stored = repo.store_inbound(session, item)
    row = repo.get_inbound(session, stored.inbound_id)
    assert row is not None
    return row


def new_ticket(inbound_message_id: int, **overrides: object) -> Ticket:
    values: dict[str, object] = {
        "subject": "Acme Corp – Denver – No dial tone – P1",
        "customer": "Acme Corp",
        "priority": 1,
        "message_id": f"<{uuid.uuid4().hex}@acme.example>",
        "policy_name": "standard",
        "policy_version": "1",
        "inbound_message_id": inbound_message_id,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return Ticket(**values)


def stored_ticket(session: Session, **overrides: object) -> Ticket:
    inbound = stored_inbound(session)
    return repo.add_ticket(session, new_ticket(inbound.id, **overrides), NUMBER_FORMAT)


def new_reply(
    *,
    inbound_message_id: int | None = None,
    kind: str = "confirmation",
    recipients: tuple[str, ...] = ("jane@acme.example",),
    status: str = OutboxStatus.QUEUED,
    next_attempt_at: datetime = NOW,
    created_at: datetime = NOW,
) -> OutboxMessage:
    return OutboxMessage(
        message_id=f"<{uuid.uuid4().hex}@example.com>",
        kind=kind,
        inbound_message_id=inbound_message_id,
        sender="support@example.com",
        recipients=list(recipients),
        raw=b"Subject: re\r\n\r\nthanks\r\n",
        status=status,
        attempts=0,
        next_attempt_at=next_attempt_at,
        created_at=created_at,
    )
