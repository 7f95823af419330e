"""Inbound messages in the store: idempotent COMMIT 1, retries, quarantine, replay."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage, InboundStatus
from tests.conftest import wait_for
from tests.store.conftest import NOW, lock_waiters, new_inbound, stored_inbound

LATER = NOW + timedelta(minutes=5)


def count_inbound(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(InboundMessage)).scalar_one())


# --- store_inbound: invariant 2, exactly once per idempotency key ---------------------------


def test_first_store_is_new_and_keeps_every_field(sessions: sessionmaker[Session]) -> None:
    item = new_inbound(origin="imap", origin_ref="INBOX/7/42")
    with session_scope(sessions) as session:
        stored = repo.store_inbound(session, item)
    assert stored.duplicate is False
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, stored.inbound_id)
        assert row is not None
        assert (row.idempotency_key, row.message_id) == (item.idempotency_key, item.message_id)
        assert (row.origin, row.origin_ref) == ("imap", "INBOX/7/42")
        assert row.envelope_from == "jane@acme.example"
        assert row.envelope_to == ["support@example.com"]
        assert (row.raw, row.size) == (item.raw, len(item.raw))
        assert row.received_at == NOW
        assert (row.status, row.attempts) == (InboundStatus.RECEIVED, 0)


def test_same_key_twice_is_one_row_and_the_second_says_duplicate(
    sessions: sessionmaker[Session],
) -> None:
    item = new_inbound()
    with session_scope(sessions) as session:
        first = repo.store_inbound(session, item)
    with session_scope(sessions) as session:
        second = repo.store_inbound(session, item)
        assert count_inbound(session) == 1
    assert second == repo.Stored(first.inbound_id, duplicate=True)


def test_same_key_twice_in_one_transaction_is_one_row(sessions: sessionmaker[Session]) -> None:
    item = new_inbound()
    with session_scope(sessions) as session:
        first = repo.store_inbound(session, item)
        second = repo.store_inbound(session, item)
        assert count_inbound(session) == 1
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.inbound_id == second.inbound_id


def test_a_redelivery_keeps_the_first_copy(sessions: sessionmaker[Session]) -> None:
    """The key decides: whatever else differs on a re-delivery is not stored."""
    first = new_inbound(b"Subject: a\r\n\r\nfirst\r\n", key="k1", origin="smtp")
    again = new_inbound(b"Subject: a\r\n\r\nagain\r\n", key="k1", origin="pipe")
    with session_scope(sessions) as session:
        stored = repo.store_inbound(session, first)
        repo.store_inbound(session, again)
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, stored.inbound_id)
        assert row is not None and (row.raw, row.origin) == (first.raw, "smtp")


def test_different_keys_are_different_rows(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        one = repo.store_inbound(session, new_inbound(b"one", key="k1"))
        two = repo.store_inbound(session, new_inbound(b"two", key="k2"))
        assert count_inbound(session) == 2
    assert one.inbound_id != two.inbound_id
    assert not one.duplicate and not two.duplicate


def test_a_rolled_back_store_leaves_nothing(sessions: sessionmaker[Session]) -> None:
    item = new_inbound()
    with pytest.raises(RuntimeError), session_scope(sessions) as session:
        repo.store_inbound(session, item)
        raise RuntimeError("the commit never happens")
    with session_scope(sessions) as session:
        assert count_inbound(session) == 0
        assert repo.store_inbound(session, item).duplicate is False


def test_a_batch_is_stored_in_order_as_if_one_by_one(sessions: sessionmaker[Session]) -> None:
    """``store_inbounds``: new rows, a repeat within the batch and an earlier row, in order."""
    earlier = new_inbound(b"earlier", key="k0")
    with session_scope(sessions) as session:
        before = repo.store_inbound(session, earlier)
    batch = [new_inbound(b"one", key="k1"), earlier, new_inbound(b"one again", key="k1")]
    batch.append(new_inbound(b"two", key="k2"))
    with session_scope(sessions) as session:
        stored = repo.store_inbounds(session, batch)
        assert count_inbound(session) == 3
    one, again, repeat, two = stored
    assert again == repo.Stored(before.inbound_id, duplicate=True)
    assert repeat == repo.Stored(one.inbound_id, duplicate=True)
    assert not one.duplicate and not two.duplicate
    assert len({before.inbound_id, one.inbound_id, two.inbound_id}) == 3
    with session_scope(sessions) as session:
        rows = [repo.get_inbound(session, s.inbound_id) for s in (one, two)]
        assert [(r.raw, r.idempotency_key) for r in rows if r] == [(b"one", "k1"), (b"two", "k2")]


def test_an_empty_batch_stores_nothing(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.store_inbounds(session, []) == []
        assert count_inbound(session) == 0


# --- get_inbound ------------------------------------------------------------------------------


@pytest.mark.parametrize("lock", [False, True], ids=["plain", "for-update"])
def test_get_inbound_finds_the_row(sessions: sessionmaker[Session], lock: bool) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, inbound_id, lock=lock)
        assert row is not None and row.id == inbound_id


@pytest.mark.parametrize("lock", [False, True], ids=["plain", "for-update"])
def test_get_inbound_of_an_unknown_id_is_none(sessions: sessionmaker[Session], lock: bool) -> None:
    with session_scope(sessions) as session:
        assert repo.get_inbound(session, 4711, lock=lock) is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_locked_message_waits_for_the_other_worker(sessions: sessionmaker[Session]) -> None:
    """Two instances' workers never hold one message at once (SELECT … FOR UPDATE)."""
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
    seen: list[str] = []

    def second_worker() -> None:
        with session_scope(sessions) as session:
            row = repo.get_inbound(session, inbound_id, lock=True)
            seen.append(row.status if row else "missing")

    other = threading.Thread(target=second_worker)
    with session_scope(sessions) as first:
        row = repo.get_inbound(first, inbound_id, lock=True)
        assert row is not None
        other.start()
        wait_for(lambda: lock_waiters(sessions) > 0)
        assert seen == []  # still waiting while the first worker holds the row
        row.status = InboundStatus.PROCESSED
    other.join(30)
    assert seen == [InboundStatus.PROCESSED]  # and then it sees the first worker's result


# --- record_failure: failed with backoff, then quarantined -------------------------------------


@pytest.mark.parametrize(
    ("next_attempt_at", "status"),
    [(LATER, InboundStatus.FAILED), (None, InboundStatus.QUARANTINED)],
    ids=["backoff-failed", "no-next-attempt-quarantined"],
)
def test_record_failure_counts_and_sets_the_status(
    sessions: sessionmaker[Session], next_attempt_at: datetime | None, status: InboundStatus
) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
    with session_scope(sessions) as session:
        repo.record_failure(session, inbound_id, "ValueError: boom", next_attempt_at)
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, inbound_id)
        assert row is not None
        assert (row.status, row.attempts, row.last_error) == (status, 1, "ValueError: boom")
        assert row.next_attempt_at == next_attempt_at


def test_failures_accumulate_until_quarantine(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
    for attempt, next_at in enumerate([LATER, LATER + timedelta(minutes=1), None], start=1):
        with session_scope(sessions) as session:
            row = repo.record_failure(session, inbound_id, f"error {attempt}", next_at)
            assert row.attempts == attempt
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, inbound_id)
        assert row is not None
        assert (row.status, row.attempts, row.last_error) == (
            InboundStatus.QUARANTINED,
            3,
            "error 3",
        )


def test_record_failure_keeps_at_most_4000_characters(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
        row = repo.record_failure(session, inbound_id, "x" * 5000, LATER)
        assert row.last_error == "x" * 4000


@pytest.mark.parametrize(
    "finished",
    [InboundStatus.PROCESSED, InboundStatus.IGNORED, InboundStatus.QUARANTINED],
    ids=str,
)
def test_a_late_failure_leaves_a_finished_message_alone(
    sessions: sessionmaker[Session], finished: InboundStatus
) -> None:
    with session_scope(sessions) as session:
        row = stored_inbound(session)
        row.status = finished
        inbound_id = row.id
    with session_scope(sessions) as session:
        repo.record_failure(session, inbound_id, "late loser", LATER)
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, inbound_id)
        assert row is not None
        assert (row.status, row.attempts, row.last_error) == (finished, 0, None)


# --- due_inbound_ids --------------------------------------------------------------------------


def test_due_are_new_and_failed_past_their_backoff(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        new = stored_inbound(session).id
        failed_due = stored_inbound(session).id
        repo.record_failure(session, failed_due, "e", NOW - timedelta(seconds=1))
        failed_at_now = stored_inbound(session).id
        repo.record_failure(session, failed_at_now, "e", NOW)
        failed_later = stored_inbound(session).id
        repo.record_failure(session, failed_later, "e", LATER)
        quarantined = stored_inbound(session).id
        repo.record_failure(session, quarantined, "e", None)
        processed = stored_inbound(session)
        processed.status = InboundStatus.PROCESSED
    with session_scope(sessions) as session:
        assert repo.due_inbound_ids(session, NOW) == [new, failed_due, failed_at_now]


def test_due_ids_are_oldest_first_and_limited(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ids = [stored_inbound(session).id for _ in range(5)]
    with session_scope(sessions) as session:
        assert repo.due_inbound_ids(session, NOW, limit=3) == ids[:3]


# --- list_inbound / requeue_inbound: `intake quarantine list|retry` --------------------------


def test_list_inbound_by_status_oldest_first(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        quarantined = []
        for _ in range(3):
            row = stored_inbound(session)
            repo.record_failure(session, row.id, "gave up", None)
            quarantined.append(row.id)
        stored_inbound(session)
    with session_scope(sessions) as session:
        listed = repo.list_inbound(session, InboundStatus.QUARANTINED)
        assert [r.id for r in listed] == quarantined
        assert [r.id for r in repo.list_inbound(session, InboundStatus.QUARANTINED, 2)] == (
            quarantined[:2]
        )


def test_inbound_heads_give_the_first_bytes_without_the_raw_message(
    sessions: sessionmaker[Session],
) -> None:
    """The board's quarantine page: a page of rows must not read every message whole."""
    raw = b"Subject: big\r\nX-Pad: " + b"x" * 100 + b"\r\n\r\n" + b"body " * 10_000
    with session_scope(sessions) as session:
        stored = repo.store_inbound(session, new_inbound(raw))
        repo.record_failure(session, stored.inbound_id, "gave up", None)
        stored_inbound(session)  # not quarantined: not listed
    with session_scope(sessions) as session:
        [(row, head)] = repo.list_inbound_heads(session, InboundStatus.QUARANTINED, 64)
        assert (row.id, row.size, head) == (stored.inbound_id, len(raw), raw[:64])
        assert "raw" in inspect(row).unloaded  # deferred: never read for the list
        found = repo.inbound_head(session, stored.inbound_id, 20)
        assert found is not None and found[1] == raw[:20]
        assert repo.inbound_head(session, 4711, 20) is None


@pytest.mark.parametrize("next_attempt_at", [None, LATER], ids=["quarantined", "failed"])
def test_requeue_gives_fresh_attempts(
    sessions: sessionmaker[Session], next_attempt_at: datetime | None
) -> None:
    with session_scope(sessions) as session:
        inbound_id = stored_inbound(session).id
        repo.record_failure(session, inbound_id, "e", next_attempt_at)
    with session_scope(sessions) as session:
        assert repo.requeue_inbound(session, inbound_id) is True
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, inbound_id)
        assert row is not None
        assert (row.status, row.attempts, row.next_attempt_at) == (InboundStatus.RECEIVED, 0, None)
        assert repo.due_inbound_ids(session, NOW) == [inbound_id]


@pytest.mark.parametrize(
    "status",
    [InboundStatus.RECEIVED, InboundStatus.PROCESSED, InboundStatus.IGNORED],
    ids=str,
)
def test_requeue_refuses_a_message_that_is_not_stuck(
    sessions: sessionmaker[Session], status: InboundStatus
) -> None:
    with session_scope(sessions) as session:
        row = stored_inbound(session)
        row.status = status
        inbound_id = row.id
    with session_scope(sessions) as session:
        assert repo.requeue_inbound(session, inbound_id) is False
        row = repo.get_inbound(session, inbound_id)
        assert row is not None and row.status == status


def test_requeue_of_an_unknown_id_is_false(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.requeue_inbound(session, 4711) is False


# --- oldest_waiting (readiness: stalled intake) and stored_origin_refs (IMAP) -----------------

MAILBOX = "bot@imap.example:993/INBOX"


def test_oldest_waiting_is_none_without_waiting_mail(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.oldest_waiting(session, [MAILBOX]) is None
        done = stored_inbound(session, received_at=NOW - timedelta(hours=1))
        done.status = InboundStatus.PROCESSED
    with session_scope(sessions) as session:
        assert repo.oldest_waiting(session, [MAILBOX]) is None


def test_oldest_waiting_counts_new_mail_and_failed_mail_since_its_retry_fell_due(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        failed = stored_inbound(session, received_at=NOW - timedelta(hours=3))
        repo.record_failure(session, failed.id, "e", NOW - timedelta(hours=2))
        stored_inbound(session, received_at=NOW - timedelta(hours=1))
        done = stored_inbound(session, received_at=NOW - timedelta(hours=4))
        done.status = InboundStatus.PROCESSED
    with session_scope(sessions) as session:
        assert repo.oldest_waiting(session, []) == NOW - timedelta(hours=2)


@pytest.mark.parametrize(
    ("origin", "ref", "mailboxes", "counted"),
    [
        ("smtp", "127.0.0.1:4711", [], True),
        ("pipe", None, [], True),
        ("imap", f"{MAILBOX}/7/1", [MAILBOX], True),
        ("imap", f"{MAILBOX}/7/1", [], False),
        ("imap", "other@imap.example:993/INBOX/7/1", [MAILBOX], False),
        ("imap", "bot@imap.example:993/INBOX.Sub/7/1", [MAILBOX], False),
        ("imap", "bot@imap.example:993/INBOX/7/1", ["bot@imap.example:993/INB_X"], False),
    ],
    ids=[
        "smtp",
        "pipe",
        "our-mailbox",
        "no-mailboxes",
        "other-mailbox",
        "longer-folder-name",
        "like-wildcard-escaped",
    ],
)
def test_oldest_waiting_covers_only_mail_this_instance_can_take(
    sessions: sessionmaker[Session],
    origin: str,
    ref: str | None,
    mailboxes: list[str],
    counted: bool,
) -> None:
    with session_scope(sessions) as session:
        stored_inbound(session, origin=origin, origin_ref=ref, received_at=NOW)
    with session_scope(sessions) as session:
        assert (repo.oldest_waiting(session, mailboxes) == NOW) is counted


def test_stored_origin_refs_names_only_those_of_that_origin(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        stored_inbound(session, origin="imap", origin_ref="INBOX/7/1")
        stored_inbound(session, origin="imap", origin_ref="INBOX/7/2")
        stored_inbound(session, origin="smtp", origin_ref="INBOX/7/3")
    with session_scope(sessions) as session:
        refs = ["INBOX/7/1", "INBOX/7/3", "INBOX/7/9"]
        assert repo.stored_origin_refs(session, "imap", refs) == {"INBOX/7/1"}
        assert repo.stored_origin_refs(session, "imap", []) == set()
