"""store.search: the full-text index on SQLite (FTS5) and PostgreSQL (GIN), and migration 0009.

Tickets are indexed the way the pipeline indexes them (``index_ticket`` with the first
mail's text, ``add_follow_up`` with a follow-up's new text) and found through the
repository's queue filter, which the board, the API and the CLI share.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store import migrate, search
from store import repository as repo
from store.db import make_engine, make_session_factory, session_scope
from store.models import InboundMessage, InboundStatus, TicketSearch, TicketStatus
from tests.conftest import make_mail
from tests.store.conftest import NUMBER_FORMAT, new_ticket, stored_inbound, stored_ticket

QUEUE = (TicketStatus.OPEN, TicketStatus.WAITING_CUSTOMER)


def open_tickets(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Three tickets by name: their number is what a search returns."""
    with session_scope(sessions, write=True) as session:
        made = {}
        for name, subject, body, follow_up in [
            (
                "dialtone",
                "Acme Corp – Zürich – No dial tone – P1",
                "Since 08:10 no phone gets a dial tone.\nBoard Serial Number: MX-0042-7781",
                "The PBX in the basement shows a red alarm LED.",
            ),
            (
                "echo",
                "Initech – Austin – Echo on calls – P3",
                "Callers hear their own voice, an echo, on every external call.",
                "",
            ),
            (
                "quoted",
                "Globex – Springfield – Fax down – P2",
                'The log says "tone a:b NEAR(x)" and then * nothing - done.',
                "",
            ),
        ]:
            ticket = stored_ticket(session, subject=subject)
            search.index_ticket(session, ticket.id, search.ticket_document(subject, body))
            if follow_up:
                search.add_follow_up(session, ticket.id, follow_up)
            made[name] = ticket.number or ""
        return made


def found(sessions: sessionmaker[Session], query: str) -> set[str]:
    with session_scope(sessions) as session:
        tickets = repo.queue_tickets(session, statuses=QUEUE, search=query)
        return {t.number or "" for t in tickets}


CASES = [
    ("dial tone", {"dialtone"}),  # subject words, ANDed
    ("Initech echo", {"echo"}),
    ("basement alarm", {"dialtone"}),  # a follow-up's words
    ("external call voice", {"echo"}),  # the first mail's body
    ("zurich", {"dialtone"}),  # diacritics folded: the subject says Zürich
    ("ZÜRICH", {"dialtone"}),
    ("Zürich", {"dialtone"}),
    ('"red alarm"', {"dialtone"}),  # a phrase, in order
    ('"alarm red"', set()),
    ("MX-0042-7781", {"dialtone"}),  # punctuation inside a term: a phrase of its words
    ("0042", {"dialtone"}),
    ("dial fax", set()),  # words are ANDed, across tickets nothing has both
    ("tone", {"dialtone", "quoted"}),
    ("nowhere", set()),
]


@pytest.mark.parametrize(("query", "names"), CASES, ids=[c[0] for c in CASES])
def test_search_finds_subject_first_mail_and_follow_up_words(
    sessions: sessionmaker[Session], query: str, names: set[str]
) -> None:
    made = open_tickets(sessions)
    assert found(sessions, query) == {made[n] for n in names}


HOSTILE = [
    ('"', set()),
    ('""', set()),
    ("*", set()),
    ("-", set()),
    ("NEAR(", {"quoted"}),  # an unclosed FTS5 NEAR group: here just the word "near"
    ("NEAR(x", {"quoted"}),
    ("a:b", {"quoted"}),  # FTS5 column filter syntax: here the phrase "a b"
    ("tone*", {"dialtone", "quoted"}),
    ('"tone a', {"quoted"}),  # an unterminated quote runs to the end
    ("AND OR NOT", set()),
    ("dial -tone", {"dialtone"}),  # no negation: "-" is not a word
    ("^tone", {"dialtone", "quoted"}),
    ("'; DROP TABLE ticket; --", set()),
    ("x" * 300, set()),
]


@pytest.mark.parametrize(("query", "names"), HOSTILE, ids=[repr(h[0])[:20] for h in HOSTILE])
def test_hostile_queries_are_words_never_syntax(
    sessions: sessionmaker[Session], query: str, names: set[str]
) -> None:
    made = open_tickets(sessions)
    assert found(sessions, query) == {made[n] for n in names}


def test_a_long_thread_is_capped_at_a_word_boundary(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions, write=True) as session:
        ticket = stored_ticket(session, subject="Acme – Denver – Noise – P2")
        search.index_ticket(
            session, ticket.id, search.ticket_document(ticket.subject, "crackle " * 10_000)
        )
        search.add_follow_up(session, ticket.id, "hiss " * 10_000)
        search.add_follow_up(session, ticket.id, "finalword")
    with session_scope(sessions) as session:
        row = session.get_one(TicketSearch, ticket.id)
        assert len(row.document) <= search.MAX_DOCUMENT
        assert row.document.split(" ")[-1] in {"hiss", "crackle"}
    assert found(sessions, "noise hiss") == {ticket.number}
    assert found(sessions, "finalword") == set()  # past the cap: the oldest text is kept


@pytest.fixture
def engine(db_url: str) -> Engine:
    return make_engine(db_url)


def test_0009_backfills_tickets_from_their_stored_mail(engine: Engine) -> None:
    """Tickets opened before 0009 are found by their subject, their first mail and their
    follow-ups once upgraded; a staff reply on the thread is not the customer's text."""
    migrate.upgrade(engine, "0008_inbound_peer_ip")
    sessions = make_session_factory(engine)
    with session_scope(sessions) as session:
        first = mail(session, "Acme Corp – Genève – Jitter – P2", "Café phones stutter badly.")
        opened = new_ticket(first.id, subject="Acme Corp – Genève – Jitter – P2")
        ticket = repo.add_ticket(session, opened, NUMBER_FORMAT)
        first.ticket_id, first.outcome = ticket.id, "ticket_created"
        reply = "The switch was rebooted at noon.\n\n> Café phones stutter badly.\n"
        follow = mail(session, "Re: Jitter", reply, outcome="follow_up")
        follow.ticket_id = ticket.id
        staff = mail(session, "Re: Jitter", "Staff here: replaced the uplink.", "staff_reply")
        staff.ticket_id = ticket.id
        number = ticket.number
    migrate.upgrade(engine)
    try:
        for query in ("geneve jitter", "cafe stutter", "switch rebooted noon"):
            assert found(sessions, query) == {number}, query
        assert found(sessions, "uplink") == set()
        with session_scope(sessions) as session:
            document = session.get_one(TicketSearch, ticket.id).document
        assert document.count("stutter") == 1  # the quoted history is not indexed twice
    finally:
        engine.dispose()


def mail(session: Session, subject: str, body: str, outcome: str | None = None) -> InboundMessage:
    row = stored_inbound(session)
    row.raw = make_mail(subject=subject, body=body, message_id=f"<{uuid.uuid4().hex}@x.example>")
    row.status, row.outcome = InboundStatus.PROCESSED, outcome
    session.flush()
    return row


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=0x7F)))
def test_ascii_text_is_cut_into_the_same_words_as_any_text(text: str) -> None:
    assert search.words(text) == search.WORD.findall(text.casefold())
