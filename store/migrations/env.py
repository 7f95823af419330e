"""Alembic's environment, configured by :mod:`store.migrate` (no alembic.ini).

``store.migrate`` opens the connection, takes the migration lock and passes the connection
in ``config.attributes``; everything here runs inside that caller's transaction, so the
lock is held from the status check to the last migration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from store.models import Base
from store.search import include_name

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise TypeError("run the migrations through store.migrate (no alembic.ini, no --sql)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it (ALTER TABLE supports little): batch mode.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # The full-text index objects the models cannot declare (store.search).
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
