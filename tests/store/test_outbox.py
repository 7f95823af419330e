"""The outbox in the store: one reply per (message, kind), claims under a lease, delivery
outcomes, and the per-recipient index the reply budget counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import session_scope
from store.models import OutboxMessage, OutboxRecipient, OutboxStatus
from tests.store.conftest import NOW, new_reply, stored_inbound

LEASE = timedelta(minutes=2)
ME, OTHER = "host-a:101:aaaa", "host-b:202:bbbb"  # two sender instances
LATER = NOW + timedelta(minutes=10)


def enqueued(sessions: sessionmaker[Session], **kwargs: object) -> int:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
        reply = new_reply(inbound_message_id=inbound_id, **kwargs)  # type: ignore[arg-type]
        assert repo.enqueue_reply(session, reply)
        return reply.id


def outbox_row(sessions: sessionmaker[Session], outbox_id: int) -> OutboxMessage:
    with session_scope(sessions) as session:
        return session.get_one(OutboxMessage, outbox_id)


# --- enqueue_reply ------------------------------------------------------------------------------


def test_one_reply_of_a_kind_per_inbound_message(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
        assert repo.enqueue_reply(session, new_reply(inbound_message_id=inbound_id)) is True
    with session_scope(sessions) as session:  # processing the same message again
        assert repo.enqueue_reply(session, new_reply(inbound_message_id=inbound_id)) is False
    with session_scope(sessions) as session:
        assert len(repo.list_outbox(session)) == 1


def test_another_kind_for_the_same_message_is_queued(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
        assert repo.enqueue_reply(session, new_reply(inbound_message_id=inbound_id))
        ack = new_reply(inbound_message_id=inbound_id, kind="acknowledgement")
        assert repo.enqueue_reply(session, ack) is True
    with session_scope(sessions) as session:
        kinds = [r.kind for r in repo.list_outbox(session)]
        assert kinds == ["acknowledgement", "confirmation"]


def test_replies_without_an_inbound_message_are_all_queued(
    sessions: sessionmaker[Session],
) -> None:
    """Auto-close notices answer no message; each one is its own reply."""
    with session_scope(sessions) as session:
        assert repo.enqueue_reply(session, new_reply(kind="autoclose"))
        assert repo.enqueue_reply(session, new_reply(kind="autoclose"))
    with session_scope(sessions) as session:
        assert len(repo.list_outbox(session, OutboxStatus.QUEUED)) == 2


def test_enqueue_indexes_each_recipient_once_by_its_key(sessions: sessionmaker[Session]) -> None:
    outbox_id = enqueued(
        sessions, recipients=("Jane@Acme.Example", "<jane@acme.example>", "noc@example.com")
    )
    with session_scope(sessions) as session:
        rows = session.execute(
            select(OutboxRecipient.address, OutboxRecipient.created_at)
            .where(OutboxRecipient.outbox_id == outbox_id)
            .order_by(OutboxRecipient.address)
        ).all()
    assert [tuple(r) for r in rows] == [("jane@acme.example", NOW), ("noc@example.com", NOW)]


def recipient_rows(session: Session, outbox_id: int) -> list[str]:
    statement = (
        select(OutboxRecipient.address)
        .where(OutboxRecipient.outbox_id == outbox_id)
        .order_by(OutboxRecipient.address)
    )
    return list(session.execute(statement).scalars())


@pytest.mark.parametrize(
    ("addresses", "stored"),
    [
        ((), []),
        (("  ",), []),
        (("a@x.example", "A@X.example", "b@x.example"), ["a@x.example", "b@x.example"]),
    ],
    ids=["none", "blank", "case-duplicates"],
)
def test_record_outbox_recipients_stores_one_row_per_key(
    sessions: sessionmaker[Session], addresses: tuple[str, ...], stored: list[str]
) -> None:
    with session_scope(sessions) as session:
        reply = new_reply(recipients=())
        session.add(reply)
        session.flush()
        repo.record_outbox_recipients(session, reply.id, addresses, NOW)
        assert recipient_rows(session, reply.id) == stored


def test_recording_the_same_recipients_again_adds_no_row(
    sessions: sessionmaker[Session],
) -> None:
    outbox_id = enqueued(sessions, recipients=("jane@acme.example",))
    with session_scope(sessions) as session:
        repo.record_outbox_recipients(session, outbox_id, ["JANE@acme.example"], NOW)
        assert recipient_rows(session, outbox_id) == ["jane@acme.example"]


def test_record_outbox_recipients_returns_the_rows_added(
    sessions: sessionmaker[Session],
) -> None:
    # psycopg 3 reports rowcount -1 for INSERT … ON CONFLICT DO NOTHING: the count comes
    # from RETURNING, so it is right on both databases.
    with session_scope(sessions) as session:
        reply = new_reply(recipients=())
        session.add(reply)
        session.flush()
        record = repo.record_outbox_recipients
        first = record(session, reply.id, ["a@x.example", "B@x.example"], NOW)
        again = record(session, reply.id, ["b@x.example", "c@x.example"], NOW)
    assert (first, again) == (2, 1)


def test_recording_recipients_is_one_statement_compiled_once(
    sessions: sessionmaker[Session],
) -> None:
    """Several recipients go in one INSERT, and its compiled form is reused from the
    second reply on (a multi-row ``values([...])`` has no cache key: issue 11)."""
    seen: list[tuple[str, object]] = []

    def record(
        _conn: object, _cursor: object, sql: str, _p: object, context: Any, _m: bool
    ) -> None:
        if sql.startswith("INSERT INTO outbox_recipient "):
            seen.append((sql, context.cache_hit))

    with session_scope(sessions) as session:
        engine = session.get_bind()
        event.listen(engine, "after_cursor_execute", record)
        try:
            for _ in range(2):
                reply = new_reply(recipients=())
                session.add(reply)
                session.flush()
                addresses = ["a@x.example", "b@x.example", "c@x.example"]
                assert repo.record_outbox_recipients(session, reply.id, addresses, NOW) == 3
        finally:
            event.remove(engine, "after_cursor_execute", record)
    assert len(seen) == 2  # one statement per reply, whatever the number of recipients
    assert seen[1][1] is CacheStats.CACHE_HIT


# --- claim_outbox -------------------------------------------------------------------------------


def test_a_claim_takes_due_replies_until_the_lease_ends(sessions: sessionmaker[Session]) -> None:
    due = enqueued(sessions, next_attempt_at=NOW)
    enqueued(sessions, next_attempt_at=LATER)
    with session_scope(sessions) as session:
        claimed = repo.claim_outbox(session, NOW, LEASE, ME)
        assert [r.id for r in claimed] == [due]
    row = outbox_row(sessions, due)
    assert (row.status, row.claimed_until) == (OutboxStatus.SENDING, NOW + LEASE)


def test_a_claimed_reply_is_not_claimed_again_within_its_lease(
    sessions: sessionmaker[Session],
) -> None:
    enqueued(sessions)
    with session_scope(sessions) as session:
        assert len(repo.claim_outbox(session, NOW, LEASE, ME)) == 1
    with session_scope(sessions) as session:
        assert repo.claim_outbox(session, NOW + LEASE - timedelta(seconds=1), LEASE, ME) == []


def test_a_claim_whose_lease_ran_out_is_claimable_again(sessions: sessionmaker[Session]) -> None:
    """The sender died mid-delivery; the reply keeps its Message-ID for the second try."""
    outbox_id = enqueued(sessions)
    message_id = outbox_row(sessions, outbox_id).message_id
    with session_scope(sessions) as session:
        repo.claim_outbox(session, NOW, LEASE, ME)
    later = NOW + LEASE
    with session_scope(sessions) as session:
        [again] = repo.claim_outbox(session, later, LEASE, ME)
        assert (again.id, again.message_id) == (outbox_id, message_id)
    assert outbox_row(sessions, outbox_id).claimed_until == later + LEASE


@pytest.mark.parametrize(
    "status",
    [OutboxStatus.SENT, OutboxStatus.DEAD, OutboxStatus.SUPPRESSED],
    ids=str,
)
def test_finished_replies_are_never_claimed(
    sessions: sessionmaker[Session], status: OutboxStatus
) -> None:
    enqueued(sessions, status=status)
    with session_scope(sessions) as session:
        assert repo.claim_outbox(session, LATER, LEASE, ME) == []


def test_a_claim_is_oldest_first_and_limited(sessions: sessionmaker[Session]) -> None:
    ids = [enqueued(sessions) for _ in range(4)]
    with session_scope(sessions) as session:
        assert [r.id for r in repo.claim_outbox(session, NOW, LEASE, ME, limit=3)] == ids[:3]
    with session_scope(sessions) as session:
        assert [r.id for r in repo.claim_outbox(session, NOW, LEASE, ME)] == ids[3:]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_senders_claiming_at_once_never_share_a_reply(
    sessions: sessionmaker[Session],
) -> None:
    """FOR UPDATE SKIP LOCKED: the second sender skips what the first holds (PostgreSQL)."""
    ids = [enqueued(sessions) for _ in range(3)]
    with session_scope(sessions) as one, session_scope(sessions) as two:
        first = [r.id for r in repo.claim_outbox(one, NOW, LEASE, ME, limit=2)]
        second = [r.id for r in repo.claim_outbox(two, NOW, LEASE, OTHER)]
    assert first == ids[:2] and second == ids[2:]


# --- mark_sent / mark_delivery_failed / retry_outbox ----------------------------------------


def claimed(sessions: sessionmaker[Session]) -> int:
    outbox_id = enqueued(sessions)
    with session_scope(sessions) as session:
        repo.claim_outbox(session, NOW, LEASE, ME)
    return outbox_id


def test_mark_sent_ends_the_claim(sessions: sessionmaker[Session]) -> None:
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        repo.mark_delivery_failed(session, outbox_id, ME, "451 try later", NOW)
    with session_scope(sessions) as session:
        repo.claim_outbox(session, NOW, LEASE, ME)
        repo.mark_sent(session, outbox_id, ME, NOW + timedelta(seconds=3))
    row = outbox_row(sessions, outbox_id)
    assert (row.status, row.sent_at) == (OutboxStatus.SENT, NOW + timedelta(seconds=3))
    assert (row.claimed_until, row.last_error, row.attempts) == (None, None, 1)


@pytest.mark.parametrize(
    ("next_attempt_at", "status"),
    [(LATER, OutboxStatus.QUEUED), (None, OutboxStatus.DEAD)],
    ids=["retry-later", "give-up-dead"],
)
def test_a_failed_delivery_is_counted(
    sessions: sessionmaker[Session], next_attempt_at: datetime | None, status: OutboxStatus
) -> None:
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        error = "421 busy" + "!" * 5000
        repo.mark_delivery_failed(session, outbox_id, ME, error, next_attempt_at)
    row = outbox_row(sessions, outbox_id)
    assert (row.status, row.attempts, row.claimed_until) == (status, 1, None)
    assert row.last_error is not None and len(row.last_error) == 4000
    assert row.next_attempt_at == (next_attempt_at or NOW)  # dead keeps its last due time


def test_a_requeued_reply_waits_for_its_next_attempt(sessions: sessionmaker[Session]) -> None:
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        repo.mark_delivery_failed(session, outbox_id, ME, "421 busy", LATER)
    with session_scope(sessions) as session:
        assert repo.claim_outbox(session, LATER - timedelta(seconds=1), LEASE, ME) == []
        assert [r.id for r in repo.claim_outbox(session, LATER, LEASE, ME)] == [outbox_id]


@pytest.mark.parametrize(
    "give_up",
    [None, LATER],
    ids=["dead", "queued-after-failure"],
)
def test_retry_queues_a_reply_now_with_fresh_attempts(
    sessions: sessionmaker[Session], give_up: datetime | None
) -> None:
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        repo.mark_delivery_failed(session, outbox_id, ME, "550 no", give_up)
    retry_at = NOW + timedelta(minutes=1)
    with session_scope(sessions) as session:
        assert repo.retry_outbox(session, outbox_id, retry_at) is True
    row = outbox_row(sessions, outbox_id)
    assert (row.status, row.attempts, row.next_attempt_at, row.claimed_until) == (
        OutboxStatus.QUEUED,
        0,
        retry_at,
        None,
    )


def test_retry_refuses_a_sent_reply_and_an_unknown_id(sessions: sessionmaker[Session]) -> None:
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        repo.mark_sent(session, outbox_id, ME, NOW)
    with session_scope(sessions) as session:
        assert repo.retry_outbox(session, outbox_id, NOW) is False
        assert repo.retry_outbox(session, 4711, NOW) is False
    assert outbox_row(sessions, outbox_id).status == OutboxStatus.SENT


# --- claim ownership: only the claimant's claim records an outcome ---------------------------


def test_a_claim_names_its_owner(sessions: sessionmaker[Session]) -> None:
    outbox_id = claimed(sessions)
    row = outbox_row(sessions, outbox_id)
    assert (row.status, row.claim_owner, row.claimed_until) == (
        OutboxStatus.SENDING,
        ME,
        NOW + LEASE,
    )


def test_the_owner_renews_its_claim_and_nobody_else_can(sessions: sessionmaker[Session]) -> None:
    outbox_id = claimed(sessions)
    renewed = NOW + 2 * LEASE
    with session_scope(sessions) as session:
        assert repo.renew_outbox_claims(session, [outbox_id], OTHER, LATER + LEASE) == set()
        assert repo.renew_outbox_claims(session, [outbox_id, 4711], ME, renewed) == {outbox_id}
    assert outbox_row(sessions, outbox_id).claimed_until == renewed
    with session_scope(sessions) as session:  # renewed: not claimable at the old expiry
        assert repo.claim_outbox(session, NOW + LEASE, LEASE, OTHER) == []


def taken_over(sessions: sessionmaker[Session]) -> int:
    """ME's claim ran out and OTHER claimed the reply: ME is a late, stale sender."""
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        [row] = repo.claim_outbox(session, NOW + LEASE, LEASE, OTHER)
        assert row.id == outbox_id
    return outbox_id


@pytest.mark.parametrize(
    "outcome",
    [
        lambda s, i: repo.mark_sent(s, i, ME, LATER),
        lambda s, i: repo.mark_delivery_failed(s, i, ME, "451 late", LATER),
        lambda s, i: repo.mark_delivery_failed(s, i, ME, "550 late", None),
        lambda s, i: bool(repo.renew_outbox_claims(s, [i], ME, LATER)),
    ],
    ids=["sent", "failed-retry", "failed-dead", "renew"],
)
def test_a_stale_owner_changes_nothing_once_another_claimed(
    sessions: sessionmaker[Session], outcome: object
) -> None:
    outbox_id = taken_over(sessions)
    with session_scope(sessions) as session:
        assert outcome(session, outbox_id) is False  # type: ignore[operator]
    row = outbox_row(sessions, outbox_id)
    assert (row.status, row.claim_owner, row.attempts) == (OutboxStatus.SENDING, OTHER, 0)


def test_a_late_failure_cannot_reset_a_row_another_owner_sent(
    sessions: sessionmaker[Session],
) -> None:
    outbox_id = taken_over(sessions)
    with session_scope(sessions) as session:
        assert repo.mark_sent(session, outbox_id, OTHER, NOW + LEASE) is True
    with session_scope(sessions) as session:
        assert repo.mark_delivery_failed(session, outbox_id, ME, "451 late", LATER) is False
        assert repo.mark_delivery_failed(session, outbox_id, OTHER, "451 late", LATER) is False
    row = outbox_row(sessions, outbox_id)
    assert (row.status, row.sent_at, row.attempts) == (OutboxStatus.SENT, NOW + LEASE, 0)
    with session_scope(sessions) as session:
        assert repo.claim_outbox(session, LATER + LEASE, LEASE, ME) == []


def test_an_expired_claim_nobody_took_is_still_the_owners(sessions: sessionmaker[Session]) -> None:
    """Recording that delivery is the truth; refusing it would only send the reply again."""
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        assert repo.mark_sent(session, outbox_id, ME, LATER) is True
    assert outbox_row(sessions, outbox_id).status == OutboxStatus.SENT


def test_retry_refuses_a_reply_being_sent_but_frees_a_dead_senders_claim(
    sessions: sessionmaker[Session],
) -> None:
    outbox_id = claimed(sessions)
    with session_scope(sessions) as session:
        assert repo.retry_outbox(session, outbox_id, NOW) is False  # ME holds a live claim
    with session_scope(sessions) as session:
        assert repo.retry_outbox(session, outbox_id, NOW + LEASE) is True
    row = outbox_row(sessions, outbox_id)
    assert (row.status, row.claim_owner, row.claimed_until) == (OutboxStatus.QUEUED, None, None)


def test_list_outbox_by_status_newest_first(sessions: sessionmaker[Session]) -> None:
    ids = [enqueued(sessions) for _ in range(3)]
    with session_scope(sessions) as session:
        session.get_one(OutboxMessage, ids[1]).status = OutboxStatus.SENT
    with session_scope(sessions) as session:
        assert [r.id for r in repo.list_outbox(session)] == ids[::-1]
        assert [r.id for r in repo.list_outbox(session, OutboxStatus.QUEUED)] == [ids[2], ids[0]]
        assert [r.id for r in repo.list_outbox(session, OutboxStatus.SENT)] == [ids[1]]
        assert len(repo.list_outbox(session, limit=2)) == 2


# --- reply counting (the budget) and has_reply_to ---------------------------------------------


def test_count_recent_replies_counts_after_since_for_that_address(
    sessions: sessionmaker[Session],
) -> None:
    enqueued(sessions, created_at=NOW - timedelta(hours=2))
    enqueued(sessions, created_at=NOW - timedelta(minutes=30))
    enqueued(sessions, created_at=NOW, recipients=("JANE@acme.example", "noc@example.com"))
    enqueued(sessions, created_at=NOW, recipients=("bob@acme.example",))
    with session_scope(sessions) as session:
        since = NOW - timedelta(hours=1)
        assert repo.count_recent_replies(session, "<Jane@Acme.Example>", since) == 2
        assert repo.count_recent_replies(session, "noc@example.com", since) == 1
        assert repo.count_recent_replies(session, "nobody@example.com", since) == 0
        assert repo.count_recent_replies(session, "jane@acme.example", NOW) == 0  # strictly after


def test_suppressed_replies_are_not_counted(sessions: sessionmaker[Session]) -> None:
    enqueued(sessions, status=OutboxStatus.SUPPRESSED)
    enqueued(sessions, status=OutboxStatus.DEAD)
    with session_scope(sessions) as session:
        since = NOW - timedelta(hours=1)
        assert repo.count_recent_replies(session, "jane@acme.example", since) == 1


@pytest.mark.parametrize(
    ("status", "answered"),
    [
        (OutboxStatus.QUEUED, True),
        (OutboxStatus.SENT, True),
        (OutboxStatus.DEAD, True),
        (OutboxStatus.SUPPRESSED, False),
    ],
    ids=["queued", "sent", "dead", "suppressed"],
)
def test_has_reply_to_ignores_suppressed_replies(
    sessions: sessionmaker[Session], status: OutboxStatus, answered: bool
) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
        other = stored_inbound(session).id
        repo.enqueue_reply(session, new_reply(inbound_message_id=inbound_id, status=status))
    with session_scope(sessions) as session:
        assert repo.has_reply_to(session, inbound_id) is answered
        assert repo.has_reply_to(session, other) is False
