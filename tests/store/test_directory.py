"""Shared secrets, the customer directory and recipient (bounce) state in the store."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store.db import session_scope
from tests.conftest import wait_for
from tests.store.conftest import NOW, lock_waiters

# --- get_or_create_secret: one HMAC key for every instance ------------------------------------


def test_the_first_caller_stores_its_value(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.get_or_create_secret(session, "thread_hmac", "first", NOW) == "first"


def test_every_later_caller_gets_the_first_value(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.get_or_create_secret(session, "thread_hmac", "first", NOW)
    for candidate in ("second", "third"):
        with session_scope(sessions) as session:
            got = repo.get_or_create_secret(session, "thread_hmac", candidate, NOW)
            assert got == "first"


def test_secrets_are_kept_by_name(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.get_or_create_secret(session, "thread_hmac", "one", NOW)
        assert repo.get_or_create_secret(session, "other", "two", NOW) == "two"
        assert repo.get_or_create_secret(session, "thread_hmac", "three", NOW) == "one"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_racing_instance_gets_the_winners_value(sessions: sessionmaker[Session]) -> None:
    """Two instances starting at once: the loser waits on the winner's row, then reads it."""
    got: list[str] = []

    def loser() -> None:
        with session_scope(sessions) as session:
            got.append(repo.get_or_create_secret(session, "thread_hmac", "loser", NOW))

    thread = threading.Thread(target=loser)
    with session_scope(sessions) as winner:
        repo.get_or_create_secret(winner, "thread_hmac", "winner", NOW)
        thread.start()
        wait_for(lambda: lock_waiters(sessions) > 0)
    thread.join(30)
    assert got == ["winner"]


# --- upsert_customers -------------------------------------------------------------------------

ACME = repo.CustomerValues(
    name="Acme Corp",
    normalized_name="acme corp",
    aliases=("ACME",),
    domains=("acme.example",),
    support_id="S-1",
    timezone="America/Denver",
    authorized_contacts=("jane@acme.example",),
    subscription_expires=date(2027, 6, 30),
    policy="standard",
)
GLOBEX = repo.CustomerValues(name="Globex", normalized_name="globex", support_id="S-2")


def test_new_customers_are_inserted_with_every_field(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.upsert_customers(session, [ACME, GLOBEX], NOW) == (2, 0)
    with session_scope(sessions) as session:
        acme, globex = repo.list_customers(session)
        assert (acme.name, acme.aliases, acme.domains) == ("Acme Corp", ["ACME"], ["acme.example"])
        assert (acme.support_id, acme.timezone, acme.policy) == (
            "S-1",
            "America/Denver",
            "standard",
        )
        assert acme.authorized_contacts == ["jane@acme.example"]
        assert acme.subscription_expires == date(2027, 6, 30)
        assert (acme.created_at, acme.updated_at) == (NOW, NOW)
        assert (globex.name, globex.aliases, globex.timezone) == ("Globex", [], None)


def test_a_known_customer_is_rewritten_whole(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.upsert_customers(session, [ACME], NOW)
    renamed = repo.CustomerValues(name="ACME Corporation", normalized_name="acme corp")
    later = NOW + timedelta(days=1)
    with session_scope(sessions) as session:
        assert repo.upsert_customers(session, [renamed], later) == (0, 1)
    with session_scope(sessions) as session:
        [row] = repo.list_customers(session)
        assert (row.name, row.aliases, row.domains, row.support_id) == (
            "ACME Corporation",
            [],
            [],
            None,
        )
        assert (row.subscription_expires, row.policy) == (None, None)
        assert (row.created_at, row.updated_at) == (NOW, later)


def test_customers_missing_from_an_import_are_left_alone(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.upsert_customers(session, [ACME, GLOBEX], NOW)
    with session_scope(sessions) as session:
        assert repo.upsert_customers(session, [GLOBEX], NOW) == (0, 1)
        assert [c.name for c in repo.list_customers(session)] == ["Acme Corp", "Globex"]


def test_two_customers_can_swap_support_ids_in_one_import(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        repo.upsert_customers(session, [ACME, GLOBEX], NOW)
    swapped = [
        repo.CustomerValues(name="Acme Corp", normalized_name="acme corp", support_id="S-2"),
        repo.CustomerValues(name="Globex", normalized_name="globex", support_id="S-1"),
    ]
    with session_scope(sessions) as session:
        assert repo.upsert_customers(session, swapped, NOW) == (0, 2)
    with session_scope(sessions) as session:
        assert [(c.name, c.support_id) for c in repo.list_customers(session)] == [
            ("Acme Corp", "S-2"),
            ("Globex", "S-1"),
        ]


def test_records_sharing_a_normalized_name_are_refused(sessions: sessionmaker[Session]) -> None:
    twin = repo.CustomerValues(name="ACME corp.", normalized_name="acme corp")
    with pytest.raises(ValueError, match="share a normalized name"):
        with session_scope(sessions) as session:
            repo.upsert_customers(session, [ACME, twin], NOW)
    with session_scope(sessions) as session:
        assert repo.list_customers(session) == []


def test_a_support_id_held_by_a_customer_outside_the_import_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    """The unique index is the last word; the CLI names the clash before it gets here."""
    with session_scope(sessions) as session:
        repo.upsert_customers(session, [ACME], NOW)
    hooli = repo.CustomerValues(name="Hooli", normalized_name="hooli", support_id="S-1")
    with pytest.raises(IntegrityError), session_scope(sessions) as session:
        repo.upsert_customers(session, [hooli], NOW)
    with session_scope(sessions) as session:
        assert [c.name for c in repo.list_customers(session)] == ["Acme Corp"]


# --- recipient state: bounces and suppression -----------------------------------------------

WEEK = timedelta(days=7)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("jane@acme.example", "jane@acme.example"),
        ("Jane@Acme.Example", "jane@acme.example"),
        ("<jane@acme.example>", "jane@acme.example"),
        ("  < JANE@acme.example >  ", "jane@acme.example"),
    ],
    ids=["plain", "mixed-case", "angle-brackets", "spaces-inside-brackets"],
)
def test_recipient_key(address: str, key: str) -> None:
    assert repo.recipient_key(address) == key


def test_an_unknown_recipient_has_no_state(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        assert repo.get_recipient_state(session, "jane@acme.example") is None
        assert repo.suppressed_until(session, "jane@acme.example", NOW) is None


def test_a_temporary_bounce_is_counted_without_suppressing(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        repo.record_bounce(session, "Jane@Acme.Example", "4.2.2", False, NOW, WEEK)
        repo.record_bounce(session, "jane@acme.example", "4.4.1", False, NOW, WEEK)
    with session_scope(sessions) as session:
        row = repo.get_recipient_state(session, "<jane@acme.example>")
        assert row is not None
        assert (row.address, row.bounces, row.last_status, row.permanent) == (
            "jane@acme.example",
            2,
            "4.4.1",
            False,
        )
        assert (row.suppressed_until, row.last_bounce_at) == (None, NOW)
        assert repo.suppressed_until(session, "jane@acme.example", NOW) is None


def test_a_permanent_bounce_suppresses_until_its_end(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.record_bounce(session, "jane@acme.example", "5.1.1", True, NOW, WEEK)
    with session_scope(sessions) as session:
        assert repo.suppressed_until(session, "JANE@acme.example", NOW) == NOW + WEEK
        just_before = NOW + WEEK - timedelta(seconds=1)
        assert repo.suppressed_until(session, "jane@acme.example", just_before) == NOW + WEEK
        assert repo.suppressed_until(session, "jane@acme.example", NOW + WEEK) is None
