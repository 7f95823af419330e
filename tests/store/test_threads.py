"""A ticket's messages in the store: finding the ticket by Message-ID, its thread, ping."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import make_engine, make_session_factory, session_scope
from store.models import InboundMessage, InboundStatus, OutboxMessage, OutboxStatus
from tests.conftest import free_port
from tests.store.conftest import new_reply, stored_inbound, stored_ticket


def inbound_on(session: Session, ticket_id: int | None) -> InboundMessage:
    row = stored_inbound(session)
    row.ticket_id = ticket_id
    session.flush()
    return row


def reply_on(session: Session, ticket_id: int | None, message_id: str) -> OutboxMessage:
    reply = new_reply()
    reply.ticket_id, reply.message_id = ticket_id, message_id
    session.add(reply)
    session.flush()
    return reply


# --- ping --------------------------------------------------------------------------------------


def test_ping_answers_on_a_live_store(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.ping(session)


def test_ping_raises_when_the_database_does_not_answer() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        with pytest.raises(OperationalError), session_scope(make_session_factory(engine)) as s:
            repo.ping(s)
    finally:
        engine.dispose()


# --- ticket_id_by_message_ids: threading by References / In-Reply-To -------------------------


def test_no_message_ids_find_no_ticket(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        stored_ticket(session)
        assert repo.ticket_id_by_message_ids(session, []) is None
        assert repo.ticket_id_by_message_ids(session, ["<unknown@x.example>"]) is None


def test_a_customer_message_id_finds_its_ticket(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        known = inbound_on(session, ticket_id).message_id
        found = repo.ticket_id_by_message_ids(session, ["<other@x.example>", known])
        assert found == ticket_id


def test_our_reply_is_better_evidence_than_a_customer_message_id(
    sessions: sessionmaker[Session],
) -> None:
    """RFC 5322 §3.6.4 asks a client only for uniqueness; our own Message-IDs we trust."""
    with session_scope(sessions) as session:
        ours, theirs = stored_ticket(session).id, stored_ticket(session).id
        reply_on(session, ours, "<shared@example.com>")
        row = inbound_on(session, theirs)
        row.message_id = "<shared@example.com>"
        session.flush()
        assert repo.ticket_id_by_message_ids(session, ["<shared@example.com>"]) == ours


def test_the_newest_match_wins(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        older, newer = stored_ticket(session).id, stored_ticket(session).id
        first = inbound_on(session, older).message_id
        second = inbound_on(session, newer).message_id
        assert repo.ticket_id_by_message_ids(session, [first, second]) == newer


def test_messages_on_no_ticket_are_skipped(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        reply_on(session, None, "<notice@example.com>")
        on_ticket = inbound_on(session, ticket_id).message_id
        ignored = inbound_on(session, None).message_id
        ids = ["<notice@example.com>", ignored, on_ticket]
        assert repo.ticket_id_by_message_ids(session, ids) == ticket_id
        assert repo.ticket_id_by_message_ids(session, [ignored]) is None


# --- inbound_for_ticket / outbox_for_ticket ---------------------------------------------------


def test_a_tickets_messages_are_its_own(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        mine, other = stored_ticket(session).id, stored_ticket(session).id
        inbound = [inbound_on(session, mine).id for _ in range(2)]
        inbound_on(session, other)
        replies = [reply_on(session, mine, f"<r{n}@example.com>").id for n in range(2)]
        reply_on(session, other, "<other@example.com>")
    with session_scope(sessions) as session:
        assert [m.id for m in repo.inbound_for_ticket(session, mine)] == inbound
        assert [r.id for r in repo.outbox_for_ticket(session, mine)] == replies
        assert repo.inbound_for_ticket(session, 4711) == []
        assert repo.outbox_for_ticket(session, 4711) == []


def test_a_thread_keeps_insertion_order_after_its_rows_change(
    sessions: sessionmaker[Session],
) -> None:
    """The docstrings promise insertion order; without ORDER BY, PostgreSQL returns heap
    order, and an UPDATE writes a row's new version after the others."""
    with session_scope(sessions) as session:
        ticket_id = stored_ticket(session).id
        inbound = [inbound_on(session, ticket_id).id for _ in range(3)]
        replies = [reply_on(session, ticket_id, f"<r{n}@example.com>").id for n in range(3)]
    with session_scope(sessions) as session:  # the first message is processed, the reply sent
        session.get_one(InboundMessage, inbound[0]).status = InboundStatus.PROCESSED
        session.get_one(OutboxMessage, replies[0]).status = OutboxStatus.SENT
    with session_scope(sessions) as session:
        assert [m.id for m in repo.inbound_for_ticket(session, ticket_id)] == inbound
        assert [r.id for r in repo.outbox_for_ticket(session, ticket_id)] == replies
