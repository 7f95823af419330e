"""Schema migrations: where a database stands (``schema_status``) and bringing it to head.

The scripts live in ``store/migrations`` (Alembic, configured here: no alembic.ini). Every
change of the schema runs under one lock, held from the status check to the last
migration, so instances starting together migrate once and the others find the schema at
head: on PostgreSQL a transaction-level advisory lock (``pg_advisory_xact_lock``), on
SQLite the database's own write lock (``BEGIN IMMEDIATE``).

A database created by a version before migrations existed (``create_all``, no
``alembic_version`` table) holds exactly the baseline's tables; it is recognised by them,
stamped as the baseline and upgraded from there.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, func, inspect, select

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"
VERSION_TABLE = "alembic_version"
# The tables of the baseline (the first landed release, which had no alembic_version).
BASELINE_TABLES = frozenset(
    {
        "app_secret",
        "charge",
        "customer",
        "inbound_message",
        "mailbox_state",
        "outbox",
        "outbox_recipient",
        "recipient_state",
        "ticket",
    }
)
# One key for every process migrating this database ("intakedb" as a signed 64-bit int);
# advisory locks other parts of intake take use other keys.
ADVISORY_LOCK_KEY = int.from_bytes(b"intakedb", "big", signed=True)


class SchemaMismatchError(Exception):
    """The database holds some of our tables but is neither versioned nor the baseline."""


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands against the migrations this version ships."""

    current: str | None  # the revision in alembic_version; None when unversioned
    head: str
    up_to_date: bool
    exists: bool  # any of our tables, or alembic_version, is there
    newer: bool = False  # a revision this version does not know: a newer intake migrated it

    @property
    def legacy(self) -> bool:
        """Created before migrations existed: tables, but no revision yet."""
        return self.exists and self.current is None


def head() -> str:
    revision = _scripts().get_current_head()
    if revision is None:  # pragma: no cover - the package ships its baseline
        raise RuntimeError(f"no migrations under {MIGRATIONS}")
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision; None when it has none (new, or created before migrations)."""
    return schema_status(engine).current


def schema_status(engine: Engine) -> SchemaStatus:
    """Read only: a SQLite file that does not exist is reported as new, never created."""
    if _missing_sqlite_file(engine):
        return _status(None, exists=False)
    with engine.connect() as connection:
        return _read_status(connection)


def upgrade(engine: Engine, revision: str = "head") -> SchemaStatus:
    """Bring the database to ``revision`` under the migration lock; the status afterwards.

    A new database is created by the migrations; a pre-migration (``create_all``) one
    is stamped as the baseline first. Raises :class:`SchemaMismatchError` for a database
    with some of our tables that is neither. A newer revision is left as it is.
    """
    return run_upgrade(engine, revision).after


@dataclass(frozen=True)
class Upgrade:
    """Where one upgrade found the database (read under the lock: another instance's work
    shows) and where it left it."""

    before: SchemaStatus
    after: SchemaStatus

    @property
    def changed(self) -> bool:
        return self.before.current != self.after.current


def run_upgrade(engine: Engine, revision: str = "head") -> Upgrade:
    """:func:`upgrade`, also saying where the database stood when this process got the lock."""
    with _locked(engine) as connection:
        before = _read_status(connection)
        if before.legacy:
            _check_baseline(connection)
            command.stamp(_config(connection), BASELINE)
        if not before.newer:
            command.upgrade(_config(connection), revision)
        return Upgrade(before, _read_status(connection))


def create_if_new(engine: Engine) -> SchemaStatus:
    """Create the schema at head if the database has none of it; otherwise change nothing.

    What a daemon runs at start: a fresh database (the embedded SQLite default, or an
    empty PostgreSQL database several instances start on at once) gets its schema, under
    the lock; one that is behind is left for ``upgrade`` (an operator's decision).
    """
    if not _missing_sqlite_file(engine):
        status = schema_status(engine)
        if status.exists:  # the common case needs no lock
            return status
    with _locked(engine) as connection:
        status = _read_status(connection)
        if not status.exists:
            command.upgrade(_config(connection), "head")
            status = _read_status(connection)
        return status


def _status(current: str | None, *, exists: bool) -> SchemaStatus:
    top = head()
    return SchemaStatus(current, top, current == top, exists, newer=not _known(current))


def _known(revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:  # "Can't locate revision": written by a newer version
        return False


def _read_status(connection: Connection) -> SchemaStatus:
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE not in tables:
        return _status(None, exists=bool(tables & BASELINE_TABLES))
    revision = MigrationContext.configure(connection).get_current_revision()
    return _status(revision, exists=True)


def _check_baseline(connection: Connection) -> None:
    tables = set(inspect(connection).get_table_names())
    missing = sorted(BASELINE_TABLES - tables)
    if missing:
        raise SchemaMismatchError(
            "the database has some of intake's tables but no alembic_version, and lacks "
            f"{', '.join(missing)}: not a schema any intake version created"
        )


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(None))


def _config(connection: Connection | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the migration lock; committed when the block ends."""
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "sqlite":
            # pysqlite opens transactions only before DML, so DDL would run outside one:
            # begin by hand. IMMEDIATE takes the write lock now (other processes wait their
            # busy timeout), and foreign keys are off while tables are rebuilt (batch
            # mode drops and recreates them; the pragma is a no-op inside a transaction).
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            # Released by the commit: nothing to unlock, even if this process dies.
            connection.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        try:
            yield connection
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            if dialect == "sqlite":
                # Never hand the pool a connection with foreign keys off: a new one gets
                # the engine's pragmas again.
                connection.invalidate()


def _missing_sqlite_file(engine: Engine) -> bool:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    return not Path(url.database).exists()


def _new_revision(message: str) -> None:
    """``python -m store.migrate revision MESSAGE``: autogenerate the next migration.

    It compares the models with a scratch SQLite database at head and writes the
    difference as a script under ``versions/`` to review (and to try on PostgreSQL).
    """
    from store.db import make_engine

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            upgrade(engine)
            with engine.begin() as connection:
                number = len(list(_scripts().walk_revisions())) + 1
                slug = "_".join(message.lower().split())[:40]
                config = _config(connection)
                config.set_main_option("file_template", "%%(rev)s")  # the file is the id
                # The new script comes out in the repository's style (ruff format).
                config.set_section_option("post_write_hooks", "hooks", "ruff")
                config.set_section_option("post_write_hooks", "ruff.type", "module")
                config.set_section_option("post_write_hooks", "ruff.module", "ruff")
                config.set_section_option(
                    "post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME"
                )
                command.revision(
                    config,
                    message=message,
                    autogenerate=True,
                    rev_id=f"{number:04d}_{slug}",
                )
        finally:
            engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m store.migrate")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("revision", help="autogenerate the next migration").add_argument("message")
    sub.add_parser("head", help="print the head revision")
    args = parser.parse_args(argv)
    if args.command == "revision":
        _new_revision(args.message)
    else:
        print(head())


if __name__ == "__main__":
    main()
