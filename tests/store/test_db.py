"""store.db: the one session_scope that commits or rolls back, engines, the schema, UTC times."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from store import repository as repo
from store import search
from store.db import (
    WriteGate,
    create_schema,
    driver_reason,
    make_engine,
    session_scope,
    write_gate,
)
from store.models import AppSecret, Base
from tests.store.conftest import NOW, new_inbound


def test_session_scope_commits_what_the_block_did(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        repo.get_or_create_secret(session, "k", "v", NOW)
    with session_scope(sessions) as session:
        assert repo.get_or_create_secret(session, "k", "other", NOW) == "v"


@pytest.mark.parametrize(
    "error", [ValueError("expected"), KeyboardInterrupt()], ids=["exception", "interrupt"]
)
def test_session_scope_rolls_back_and_reraises(
    sessions: sessionmaker[Session], error: BaseException
) -> None:
    with pytest.raises(type(error)), session_scope(sessions) as session:
        repo.get_or_create_secret(session, "k", "lost", NOW)
        session.flush()
        raise error
    with session_scope(sessions) as session:
        assert repo.get_or_create_secret(session, "k", "kept", NOW) == "kept"


def test_objects_stay_readable_after_the_commit(sessions: sessionmaker[Session]) -> None:
    """expire_on_commit=False: views are built from rows after their session closed."""
    with session_scope(sessions) as session:
        stored = repo.store_inbound(session, new_inbound())
        row = repo.get_inbound(session, stored.inbound_id)
    assert row is not None and row.received_at == NOW


def test_create_schema_is_idempotent_and_creates_every_table(db_url: str) -> None:
    """Through the migrations: every model's table, and the revision they are at."""
    engine = make_engine(db_url)
    try:
        create_schema(engine)
        create_schema(engine)
        tables = set(inspect(engine).get_table_names())
        # Beside them, only the search index's own tables (SQLite FTS5 keeps shadow tables).
        modelled = {t for t in tables if search.include_name(t, "table", {})}
        assert modelled == {*Base.metadata.tables, "alembic_version"}
        unmodelled = tables - modelled
        assert all(t.startswith("ticket_search_fts") for t in unmodelled), unmodelled
        assert bool(unmodelled) == (engine.dialect.name == "sqlite")
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    ("pragma", "value"),
    [("journal_mode", "wal"), ("synchronous", 2), ("foreign_keys", 1), ("busy_timeout", 30000)],
    ids=["wal", "synchronous-full", "foreign-keys", "busy-timeout"],
)
def test_sqlite_connections_are_durable_and_patient(
    sqlite_engine: Engine, pragma: str, value: object
) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.execute(text(f"PRAGMA {pragma}")).scalar_one() == value


def test_a_new_sqlite_file_waits_for_another_writer_before_it_turns_to_wal(
    tmp_path: Path,
) -> None:
    """Instances starting on one new file: SQLite refuses the switch to WAL at once (no busy
    handler) while another connection holds the write lock; the engine waits for it."""
    path = tmp_path / "intake.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE starting (n INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO starting VALUES (1)")
    release = threading.Timer(0.3, other.execute, args=("COMMIT",))
    release.start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("SELECT n FROM starting")).scalar_one() == 1
    finally:
        release.join()
        engine.dispose()
        other.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_postgresql_engine_survives_a_dropped_connection(db_url: str) -> None:
    """pool_pre_ping: a server restart or idle cut must not fail the next transaction."""
    engine = make_engine(db_url)
    admin = make_engine(db_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        admin.dispose()


# --- UtcDateTime: every stored time is UTC (invariant 7) ------------------------------------


def test_an_offset_time_is_stored_and_read_back_as_utc(sessions: sessionmaker[Session]) -> None:
    denver = timezone(timedelta(hours=-7))
    local = datetime(2026, 11, 22, 5, 0, tzinfo=denver)
    with session_scope(sessions) as session:
        stored = repo.store_inbound(session, new_inbound(received_at=local))
    with session_scope(sessions) as session:
        row = repo.get_inbound(session, stored.inbound_id)
        assert row is not None
        assert row.received_at == NOW and row.received_at.utcoffset() == timedelta(0)


def test_a_naive_time_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        with session_scope(sessions) as session:
            repo.store_inbound(session, new_inbound(received_at=NOW.replace(tzinfo=None)))


def test_a_store_error_says_what_failed_but_not_the_values(
    sessions: sessionmaker[Session],
) -> None:
    """A unique clash: the reason names the constraint, never the row's values (PostgreSQL's
    DETAIL line and SQLAlchemy's text would carry them)."""
    with session_scope(sessions) as session:
        session.add(AppSecret(name="jane@acme.example", value="v", created_at=NOW))
    with pytest.raises(IntegrityError) as caught, session_scope(sessions) as session:
        session.add(AppSecret(name="jane@acme.example", value="w", created_at=NOW))
    reason = driver_reason(caught.value)
    assert "\n" not in reason
    assert "jane@acme.example" not in reason
    assert "unique" in reason.lower()


def test_a_store_error_without_text_is_named_by_its_type() -> None:
    assert driver_reason(RuntimeError()) == "RuntimeError"
    assert driver_reason(RuntimeError("no such table: x\nmore")) == "no such table: x"


# --- the SQLite write gate ------------------------------------------------------------------


def _gate_taken(path: str) -> bool:
    """Whether another open file (as another process or thread has) finds the gate held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_a_sqlite_write_transaction_holds_the_write_gate_and_a_read_does_not(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    create_schema(engine)
    sessions = sessionmaker(engine)
    gate = write_gate(engine)
    assert gate is not None and gate.path == f"{tmp_path / 'gate.db'}-writers.lock"
    with session_scope(sessions):
        assert not _gate_taken(gate.path)  # readers never queue behind writers (WAL)
    with session_scope(sessions, write=True):
        assert _gate_taken(gate.path)
        with session_scope(sessions):  # a read inside does not release it
            pass
        assert _gate_taken(gate.path)
    assert not _gate_taken(gate.path)
    with pytest.raises(RuntimeError), session_scope(sessions, write=True):
        raise RuntimeError("a failed transaction lets the gate go too")
    assert not _gate_taken(gate.path)
    engine.dispose()


def test_the_write_gate_is_reentrant_per_thread_and_exclusive_between_threads(
    tmp_path: Path,
) -> None:
    gate = WriteGate(str(tmp_path / "x.db"))
    entered = threading.Event()
    with gate.held():
        with gate.held():  # the same thread again: no self-deadlock
            pass
        assert _gate_taken(gate.path)  # the inner exit kept it
        other = threading.Thread(target=lambda: (gate.held().__enter__(), entered.set()))
        other.start()
        assert not entered.wait(0.2)  # it waits for us (it may only enter after we leave)
    other.join(30)
    assert entered.is_set()  # and it got the gate the moment we let it go


def test_postgresql_and_memory_databases_have_no_write_gate() -> None:
    assert write_gate(make_engine("sqlite://")) is None
    assert write_gate(make_engine("postgresql+psycopg://u@127.0.0.1:1/x")) is None
