"""IMAP mailbox state in the store: the polling lease, health, and UIDVALIDITY."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import session_scope
from store.models import MailboxState
from tests.store.conftest import NOW

BOX = "alice@imap.example:993/INBOX"
LEASE = timedelta(seconds=60)


def lease(sessions: sessionmaker[Session], owner: str, at: timedelta = timedelta()) -> bool:
    with session_scope(sessions) as session:
        return repo.acquire_mailbox_lease(session, BOX, owner, NOW + at, NOW + at + LEASE)


def state(sessions: sessionmaker[Session], name: str = BOX) -> MailboxState:
    with session_scope(sessions) as session:
        return session.get_one(MailboxState, name)


# --- the lease (Scale-out: only the holder polls) -----------------------------------------


def test_the_first_instance_takes_a_free_lease(sessions: sessionmaker[Session]) -> None:
    assert lease(sessions, "host-a") is True
    row = state(sessions)
    assert (row.lease_owner, row.lease_expires_at) == ("host-a", NOW + LEASE)


@pytest.mark.parametrize(
    ("second", "at", "granted", "holder"),
    [
        ("host-a", timedelta(seconds=30), True, "host-a"),
        ("host-b", timedelta(seconds=30), False, "host-a"),
        ("host-b", LEASE, False, "host-a"),
        ("host-b", LEASE + timedelta(seconds=1), True, "host-b"),
    ],
    ids=["holder-renews", "other-refused-while-live", "other-refused-at-expiry", "other-after"],
)
def test_a_second_request_for_a_held_lease(
    sessions: sessionmaker[Session], second: str, at: timedelta, granted: bool, holder: str
) -> None:
    assert lease(sessions, "host-a")
    assert lease(sessions, second, at) is granted
    row = state(sessions)
    assert row.lease_owner == holder
    assert row.lease_expires_at == (NOW + at + LEASE if granted else NOW + LEASE)


def test_release_frees_the_lease_for_another_instance(sessions: sessionmaker[Session]) -> None:
    assert lease(sessions, "host-a")
    with session_scope(sessions) as session:
        repo.release_mailbox_lease(session, BOX, "host-a")
    row = state(sessions)
    assert (row.lease_owner, row.lease_expires_at) == (None, None)
    assert lease(sessions, "host-b") is True


def test_only_the_holder_can_release(sessions: sessionmaker[Session]) -> None:
    assert lease(sessions, "host-a")
    with session_scope(sessions) as session:
        repo.release_mailbox_lease(session, BOX, "host-b")
    assert state(sessions).lease_owner == "host-a"
    assert lease(sessions, "host-b") is False


def test_leases_are_per_mailbox(sessions: sessionmaker[Session]) -> None:
    assert lease(sessions, "host-a")
    with session_scope(sessions) as session:
        other = "alice@imap.example:993/Support"
        assert repo.acquire_mailbox_lease(session, other, "host-b", NOW, NOW + LEASE) is True


# --- health and UIDVALIDITY ---------------------------------------------------------------


def test_the_first_ok_returns_no_previous_uidvalidity(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.record_mailbox_ok(session, BOX, NOW, 7) is None
    row = state(sessions)
    assert (row.uidvalidity, row.last_ok_at) == (7, NOW)


def test_a_later_ok_returns_the_uidvalidity_it_had(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.record_mailbox_ok(session, BOX, NOW, 7)
    with session_scope(sessions) as session:
        assert repo.record_mailbox_ok(session, BOX, NOW + LEASE, 2**32 - 1) == 7
    assert state(sessions).uidvalidity == 2**32 - 1  # RFC 3501: a 32-bit unsigned value


def test_failing_since_is_the_first_failure_of_a_run(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.record_mailbox_failure(session, BOX, "connection refused", NOW) == NOW
    with session_scope(sessions) as session:
        later = NOW + timedelta(minutes=5)
        assert repo.record_mailbox_failure(session, BOX, "login failed" * 500, later) == NOW
    row = state(sessions)
    assert row.failing_since == NOW
    assert row.last_error == ("login failed" * 500)[:4000]


def test_an_ok_ends_the_failure_run(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.record_mailbox_failure(session, BOX, "connection refused", NOW)
    with session_scope(sessions) as session:
        repo.record_mailbox_ok(session, BOX, NOW + LEASE, 7)
    row = state(sessions)
    assert (row.failing_since, row.last_error, row.last_ok_at) == (None, None, NOW + LEASE)
    with session_scope(sessions) as session:
        later = NOW + 2 * LEASE
        assert repo.record_mailbox_failure(session, BOX, "again", later) == later


def test_list_mailbox_states_by_name(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.record_mailbox_ok(session, "zed@imap.example:993/INBOX", NOW, 1)
        repo.record_mailbox_failure(session, BOX, "refused", NOW)
        repo.acquire_mailbox_lease(session, "bob@imap.example:993/INBOX", "a", NOW, NOW)
    with session_scope(sessions) as session:
        assert [m.name for m in repo.list_mailbox_states(session)] == [
            BOX,
            "bob@imap.example:993/INBOX",
            "zed@imap.example:993/INBOX",
        ]
