"""store.migrate: the migrations build the models' schema, and every state a database can be in.

The autogenerate comparison is the CI guard: a model change without its migration makes
``compare_metadata`` non-empty here, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from store import migrate, search
from store import repository as repo
from store.db import make_engine, make_session_factory, session_scope
from store.models import Base, Ticket
from tests.store import models_1abcf39
from tests.store.conftest import NOW, stored_ticket


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        # include_name: as autogenerate runs (store/migrations/env.py), without the
        # full-text index objects the models cannot declare (store.search).
        opts = {"compare_type": True, "include_name": search.include_name}
        context = MigrationContext.configure(connection, opts=opts)
        return list(compare_metadata(context, Base.metadata))


def test_the_migrations_build_exactly_the_models_schema(engine: Engine) -> None:
    status = migrate.upgrade(engine)
    assert status.up_to_date and status.current == migrate.head()
    assert schema_diff(engine) == []


def test_a_model_change_without_migration_is_seen(engine: Engine) -> None:
    """The guard above can fail: a column the migrations lack shows up in the comparison."""
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE ticket ADD COLUMN stray INTEGER"))
    assert [diff[0] for diff in schema_diff(engine)] == ["remove_column"]


def test_the_baseline_is_the_first_releases_create_all(engine: Engine) -> None:
    """0001 creates what 1abcf39's create_all created: same tables, columns and indexes."""
    migrate.upgrade(engine, migrate.BASELINE)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, models_1abcf39.Base.metadata)
    assert diff == []


def test_a_new_database_reports_new(engine: Engine) -> None:
    status = migrate.schema_status(engine)
    assert (status.exists, status.current, status.up_to_date, status.newer) == (
        False,
        None,
        False,
        False,
    )
    assert migrate.current(engine) is None
    assert status.head == migrate.head()


def test_a_missing_sqlite_file_is_not_created_by_reading(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "intake.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert not migrate.schema_status(engine).exists
        assert migrate.current(engine) is None
        assert not path.exists() and not path.parent.exists()
    finally:
        engine.dispose()


def test_a_database_from_before_migrations_is_stamped_and_upgraded(engine: Engine) -> None:
    models_1abcf39.Base.metadata.create_all(engine)
    before = migrate.schema_status(engine)
    assert before.exists and before.legacy and not before.up_to_date
    after = migrate.upgrade(engine)
    assert after.up_to_date and not after.legacy
    assert schema_diff(engine) == []


def test_upgrading_twice_changes_nothing(engine: Engine) -> None:
    first = migrate.upgrade(engine)
    assert migrate.upgrade(engine) == first


def test_a_partial_schema_is_refused_not_stamped(engine: Engine) -> None:
    models_1abcf39.Base.metadata.tables["app_secret"].create(engine)
    with pytest.raises(migrate.SchemaMismatchError, match="lacks charge, customer"):
        migrate.upgrade(engine)
    assert "alembic_version" not in inspect(engine).get_table_names()


def test_a_revision_from_a_newer_version_is_reported_and_left_alone(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    status = migrate.schema_status(engine)
    assert status.newer and not status.up_to_date and status.current == "9999_future"
    assert migrate.upgrade(engine).current == "9999_future"


def test_create_if_new_creates_a_new_database_at_head(engine: Engine) -> None:
    status = migrate.create_if_new(engine)
    assert status.up_to_date and status.exists
    assert schema_diff(engine) == []


def test_create_if_new_leaves_an_old_database_for_the_operator(engine: Engine) -> None:
    models_1abcf39.Base.metadata.create_all(engine)
    status = migrate.create_if_new(engine)
    assert status.legacy and not status.up_to_date
    assert "alembic_version" not in inspect(engine).get_table_names()


def old_ticket(session: Session) -> int:
    """A ticket written with the first release's models: today's know later columns
    (inbound_message.sender_trust, 0006) that an older database does not have yet."""
    inbound = models_1abcf39.InboundMessage(
        idempotency_key="k0",
        message_id="<m0@acme.example>",
        origin="smtp",
        raw=b"Subject: x\r\n\r\nbody\r\n",
        size=20,
        received_at=NOW,
    )
    session.add(inbound)
    session.flush()
    ticket = models_1abcf39.Ticket(
        number="TKT-000001",
        subject="Acme Corp – Denver – No dial tone – P1",
        priority=1,
        message_id="<m0@acme.example>",
        policy_name="standard",
        policy_version="1",
        inbound_message_id=inbound.id,
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(ticket)
    session.flush()
    return ticket.id


def test_0003_lets_a_charge_be_waived_on_a_migrated_database(engine: Engine) -> None:
    migrate.upgrade(engine, "0002_outbox_claim_owner")
    with session_scope(make_session_factory(engine)) as session:  # a line from before 0003
        ticket_id = old_ticket(session)
        session.execute(  # raw SQL: the models already know the column 0003 adds
            text(
                "INSERT INTO charge (ledger_key, ticket_id, kind, amount, currency, status,"
                " reason, created_at) VALUES ('k', :t, 'missing_information', 100, 'USD',"
                " 'applied', 'r', :now)"
            ),
            {"t": ticket_id, "now": NOW},
        )
    migrate.upgrade(engine)
    columns = {c["name"]: c for c in inspect(engine).get_columns("charge")}
    assert columns["reverses_id"]["nullable"]
    with session_scope(make_session_factory(engine)) as session:
        [original] = repo.list_charges(session)
        assert original.reverses_id is None
        credit = repo.waive_charge(session, original.id, "all details were given", NOW)
        assert credit is not None and credit.reverses_id == original.id


def test_0007_old_tickets_count_toward_no_flood_and_link_nothing(engine: Engine) -> None:
    """Tickets from before 0007 keep NULL links and requester keys: no flood window is
    that old, and new tickets count by the new columns."""
    migrate.upgrade(engine, "0006_inbound_sender_trust")
    with session_scope(make_session_factory(engine)) as session:
        old_id = old_ticket(session)
    migrate.upgrade(engine)
    columns = {c["name"]: c for c in inspect(engine).get_columns("ticket")}
    assert all(columns[n]["nullable"] for n in ("linked_ticket_id", "requester_key"))
    with session_scope(make_session_factory(engine)) as session:
        old = session.get_one(Ticket, old_id)
        assert (old.linked_ticket_id, old.requester_key, old.requester_domain) == (None,) * 3
        since = NOW - timedelta(hours=1)
        assert repo.count_new_tickets(session, since, "jane@acme.example") == (0,)
        stored_ticket(
            session,
            requester_key="jane@acme.example",
            requester_domain="acme.example",
            linked_ticket_id=old_id,
        )
        counts = repo.count_new_tickets(session, since, "jane@acme.example", "acme.example")
        assert counts == (1, 1)
        latest = repo.latest_ticket_of(session, domain="acme.example")
        assert latest is not None and session.get_one(Ticket, latest).linked_ticket_id == old_id


def test_three_upgrades_at_once_on_an_empty_database_migrate_it_once(db_url: str) -> None:
    """Instances starting together: one creates the schema, the others find it at head."""
    engines = [make_engine(db_url) for _ in range(3)]
    start = threading.Barrier(3)

    def race(engine: Engine) -> migrate.Upgrade:
        start.wait(30)
        return migrate.run_upgrade(engine)

    try:
        with ThreadPoolExecutor(3) as pool:
            done = list(pool.map(race, engines, timeout=120))
    finally:
        for engine in engines:
            engine.dispose()
    assert sorted(d.changed for d in done) == [False, False, True]
    assert all(d.after.up_to_date for d in done)
    engine = make_engine(db_url)
    try:
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_sqlite_connections_keep_foreign_keys_after_a_migration(tmp_path: Path) -> None:
    """Migrating turns foreign keys off on its connection; the pool never hands that out."""
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_0006_adds_sender_trust_and_rows_from_before_keep_null(engine: Engine) -> None:
    migrate.upgrade(engine, "0003_charge_reverses_id")
    with session_scope(make_session_factory(engine)) as session:
        old_ticket(session)
    migrate.upgrade(engine)
    columns = {c["name"]: c for c in inspect(engine).get_columns("inbound_message")}
    assert columns["sender_trust"]["nullable"]
    with session_scope(make_session_factory(engine)) as session:
        row = repo.get_inbound(session, 1)
        assert row is not None and row.sender_trust is None
