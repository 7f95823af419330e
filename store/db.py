"""Engines and the one ``session_scope()`` that commits or rolls back.

SQLite is tuned for durability first: WAL with ``synchronous=FULL`` (the WAL is fsynced
at every commit, so an acknowledged message survives power loss, not just a crash) and a
busy timeout so the daemon's threads wait for each other instead of failing. A
PostgreSQL engine announces the writes the board shows (``store.notify``).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store import migrate, notify

# How long a SQLite connection waits for another's lock before it reports the store busy.
BUSY_TIMEOUT_S = 30.0


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine whose errors never carry SQL parameters: those are message contents and
    addresses, and a store error's text ends up in the log and on the CLI's stderr."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url, echo=echo, hide_parameters=True, connect_args={"timeout": BUSY_TIMEOUT_S}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, echo=echo, hide_parameters=True, pool_pre_ping=True)
    notify.announce_board_changes(engine)  # NOTIFY intake_board with each board write
    return engine


def driver_reason(exc: BaseException) -> str:
    """What a store error may say of itself: the driver's first line, no values.

    The first line names the failure ("no such table: …", "UNIQUE constraint failed: …",
    'duplicate key value violates unique constraint "…"'); PostgreSQL's DETAIL line and
    SQLAlchemy's own text carry the row's values (addresses, Message-IDs), which must not
    reach a log, an MTA's bounce or the CLI.
    """
    source = getattr(exc, "orig", None) or exc  # the DBAPI error inside SQLAlchemy's
    lines = str(source).splitlines()
    return lines[0] if lines else type(source).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    _enter_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _enter_wal(cursor: sqlite3.Cursor) -> None:
    """Switch a database to WAL, waiting for other connections doing the same.

    The switch needs the database's exclusive lock. While another connection of a new,
    still rollback-journal file holds its write lock (instances starting together, one
    of them migrating), SQLite answers SQLITE_BUSY at once instead of calling the busy
    handler, since waiting could deadlock (sqlite.org/c3ref/busy_handler.html): so wait
    here, as long as the busy timeout would. Once one connection has switched, the mode
    is stored in the file and the pragma only reads it.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        else:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def create_schema(engine: Engine) -> None:
    """The schema at head, built by the migrations (idempotent): the one way tables are made.

    Tests and tools call this; the daemon goes through ``store.migrate`` itself, since it
    must refuse a schema that is behind rather than upgrade it.
    """
    migrate.upgrade(engine)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


class WriteGate:
    """A fair, cross-process lock in front of a SQLite file's one write lock.

    SQLite's own wait for its write lock is a poll: its busy handler sleeps 1, 2, 5, 10 …
    up to 100 ms between tries (sqlite.org/c3ref/busy_timeout.html), so a writer that
    keeps arriving (COMMIT 2 in the processing process, two threads of it) takes the lock
    again and again while a sleeping one (COMMIT 1, whose commit every SMTP 250 waits for)
    misses it: measured on 2 cores, p99 of the 250 at 50 msg/s was 300-1,100 ms. Writers
    that take this gate first (``flock(2)`` on ``<database>-writers.lock``, one open file
    per thread, as flock is per open file) wait in the kernel and wake the moment it is
    free, so SQLite's lock is free whenever they ask for it. Re-entrant per thread. A
    writer that does not take the gate (another program) still gets SQLite's busy wait.
    """

    def __init__(self, database: str) -> None:
        self.path = f"{database}-writers.lock"
        self._local = threading.local()

    @contextmanager
    def held(self) -> Iterator[None]:
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            if getattr(local, "fd", None) is None:
                local.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(local.fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        local.depth = depth + 1
        try:
            yield
        finally:
            local.depth -= 1
            if local.depth == 0:
                fcntl.flock(local.fd, fcntl.LOCK_UN)


def write_gate(engine: Engine) -> WriteGate | None:
    """The engine's gate: a SQLite file has one (made once per engine), others none."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    if engine.url.database == ":memory:":
        return None
    gate = _GATES.get(engine)
    if gate is None:
        gate = _GATES.setdefault(engine, WriteGate(str(Path(engine.url.database).resolve())))
    return gate


_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()


@contextmanager
def session_scope(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """The only place that commits: everything inside is one transaction.

    ``write``: the transaction reads rows in order to change them (a follow-up merging
    fields into its ticket, the reply budget counting before it queues, an outbox claim).
    On SQLite it starts with ``BEGIN IMMEDIATE``, taking the database's one write lock
    before the first read: pysqlite otherwise runs the reads outside any transaction and
    begins only at the first write, so two writers could both act on what they read
    before the other committed (a lost update). It takes the file's ``WriteGate`` first.
    PostgreSQL needs nothing here: those reads lock their rows (``SELECT … FOR UPDATE``,
    advisory locks) in the repository.
    """
    session = factory()
    bind = session.get_bind()
    gate = write_gate(bind) if write and isinstance(bind, Engine) else None
    with gate.held() if gate is not None else nullcontext():
        try:
            if write and bind.dialect.name == "sqlite":
                # Straight to the driver on the session's connection: the ORM's execute
                # of a text() clause cost ~3 % of a ticket, with nothing to compile.
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
