"""store.notify: which transactions send ``NOTIFY intake_board`` on PostgreSQL, and when.

A plain psycopg connection LISTENs on the channel, as the board's listener does; each case
is one transaction through ``session_scope`` on an engine from ``make_engine``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from store import notify
from store import repository as repo
from store.db import create_schema, make_engine, make_session_factory, session_scope
from store.models import Ticket
from tests.store.conftest import NOW, stored_ticket

BOUND = 30.0


@pytest.fixture
def pg_sessions(pg_server_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(pg_server_url)
    with engine.begin() as connection:  # a clean schema, as the db_url fixture makes one
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    create_schema(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def listener(pg_server_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(notify.libpq_url(pg_server_url), autocommit=True) as connection:
        connection.execute(f"LISTEN {notify.CHANNEL}")
        yield connection


def notices(listener: psycopg.Connection[Any], pg_server_url: str) -> int:
    """The board notices that arrived before a marker sent now from another connection.

    PostgreSQL delivers notifications in the order their transactions committed, so the
    marker bounds the count without a time window.
    """
    marker = uuid.uuid4().hex
    with psycopg.connect(notify.libpq_url(pg_server_url), autocommit=True) as other:
        other.execute("SELECT pg_notify(%s, %s)", (notify.CHANNEL, marker))
    count = 0
    for notice in listener.notifies(timeout=BOUND):
        if notice.payload == marker:
            return count
        count += 1
    raise AssertionError(f"the marker did not arrive within {BOUND}s")


def new_ticket(session: Session) -> None:
    stored_ticket(session)


def ticket_update(session: Session) -> None:
    session.execute(update(Ticket).values(updated_at=NOW + timedelta(minutes=1)))


def charge(session: Session) -> None:
    ticket = stored_ticket(session)
    repo.add_charge(
        session,
        ledger_key=uuid.uuid4().hex,
        ticket_id=ticket.id,
        kind="after_hours",
        amount=Decimal("10.00"),
        currency="USD",
        reason="test",
        status="applied",
        now=NOW,
    )


WRITES: list[tuple[str, Callable[[Session], None]]] = [
    ("new-ticket-orm-flush", new_ticket),
    ("ticket-core-update", ticket_update),
    ("charge-insert-on-conflict", charge),
]


@pytest.mark.parametrize("write", [w[1] for w in WRITES], ids=[w[0] for w in WRITES])
def test_a_committed_board_write_notifies_once(
    pg_server_url: str,
    pg_sessions: sessionmaker[Session],
    listener: psycopg.Connection[Any],
    write: Callable[[Session], None],
) -> None:
    with session_scope(pg_sessions, write=True) as session:
        write(session)
        session.flush()
        assert notices(listener, pg_server_url) == 0  # nothing before COMMIT
    assert notices(listener, pg_server_url) == 1  # one per transaction, however many rows


def test_a_rolled_back_write_a_read_and_other_tables_notify_nothing(
    pg_server_url: str, pg_sessions: sessionmaker[Session], listener: psycopg.Connection[Any]
) -> None:
    with pytest.raises(RuntimeError), session_scope(pg_sessions, write=True) as session:
        stored_ticket(session)
        session.flush()
        raise RuntimeError("rolled back")
    with session_scope(pg_sessions) as session:
        repo.queue_tickets(session, statuses=["open"])
    with session_scope(pg_sessions, write=True) as session:
        repo.record_mailbox_ok(session, "jane@imap.example:993/INBOX", NOW, 7)
    assert notices(listener, pg_server_url) == 0
    with session_scope(pg_sessions, write=True) as session:  # the control: this one does
        stored_ticket(session)
    assert notices(listener, pg_server_url) == 1
