"""ticket_search: the full-text index of tickets (subject and the customer's mail), backfilled.

``ticket_search.document`` holds each ticket's words (``store.search``). SQLite indexes it
with an FTS5 external-content table whose tokenizer is ``unicode61 remove_diacritics 2``,
kept current by the three triggers the FTS5 documentation gives for external content
(sqlite.org/fts5.html §4.4.3): the application writes one portable row and SQLite keeps
the index exact, in the same transaction, with no dialect code in the write path.
PostgreSQL indexes it with GIN over ``to_tsvector('simple', document)``, which it keeps
itself. Existing tickets are backfilled from their stored mail: the subject, the first
mail's text and each follow-up's new text (about a millisecond per stored message).

Revision ID: 0009_ticket_search
Revises: 0008_inbound_peer_ip
Create Date: 2026-12-01 15:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from parsing import parse_message
from store import search

revision: str = "0009_ticket_search"
down_revision: str | None = "0008_inbound_peer_ip"
branch_labels: str | None = None
depends_on: str | None = None

SQLITE_INDEX = [
    "CREATE VIRTUAL TABLE ticket_search_fts USING fts5(document, content='ticket_search',"
    " content_rowid='ticket_id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER ticket_search_ai AFTER INSERT ON ticket_search BEGIN"
    " INSERT INTO ticket_search_fts(rowid, document) VALUES (new.ticket_id, new.document);"
    " END",
    "CREATE TRIGGER ticket_search_ad AFTER DELETE ON ticket_search BEGIN"
    " INSERT INTO ticket_search_fts(ticket_search_fts, rowid, document)"
    " VALUES ('delete', old.ticket_id, old.document); END",
    "CREATE TRIGGER ticket_search_au AFTER UPDATE ON ticket_search BEGIN"
    " INSERT INTO ticket_search_fts(ticket_search_fts, rowid, document)"
    " VALUES ('delete', old.ticket_id, old.document);"
    " INSERT INTO ticket_search_fts(rowid, document) VALUES (new.ticket_id, new.document);"
    " END",
]
POSTGRESQL_INDEX = [
    "CREATE INDEX ix_ticket_search_document_tsv ON ticket_search"
    " USING gin (to_tsvector('simple', document))"
]
BATCH = 200

ticket = sa.table("ticket", sa.column("id"), sa.column("subject"), sa.column("inbound_message_id"))
inbound = sa.table(
    "inbound_message",
    sa.column("id"),
    sa.column("ticket_id"),
    sa.column("outcome"),
    sa.column("raw"),
)
ticket_search = sa.table("ticket_search", sa.column("ticket_id"), sa.column("document"))


def upgrade() -> None:
    op.create_table(
        "ticket_search",
        sa.Column("ticket_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_ticket_search_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_search")),
    )
    connection = op.get_bind()
    for statement in SQLITE_INDEX if connection.dialect.name == "sqlite" else POSTGRESQL_INDEX:
        op.execute(statement)
    _backfill(connection)


def _backfill(connection: sa.Connection) -> None:
    last = 0
    while True:
        tickets = connection.execute(
            sa.select(ticket.c.id, ticket.c.subject, ticket.c.inbound_message_id)
            .where(ticket.c.id > last)
            .order_by(ticket.c.id)
            .limit(BATCH)
        ).all()
        if not tickets:
            return
        rows = _documents(connection, tickets)
        connection.execute(sa.insert(ticket_search), rows)
        last = tickets[-1].id


def _documents(connection: sa.Connection, tickets: Sequence[Any]) -> list[dict[str, Any]]:
    firsts = {t.inbound_message_id for t in tickets}
    messages = connection.execute(
        sa.select(inbound.c.id, inbound.c.ticket_id, inbound.c.raw)
        .where(inbound.c.ticket_id.in_([t.id for t in tickets]))
        .where(sa.or_(inbound.c.outcome == "follow_up", inbound.c.id.in_(firsts)))
        .order_by(inbound.c.id)
    ).all()
    texts: dict[int, list[str]] = {t.id: [t.subject] for t in tickets}
    for message in messages:
        texts[message.ticket_id].append(_text(message.raw, message.id in firsts))
    return [{"ticket_id": i, "document": search.document(t)} for i, t in texts.items()]


def _text(raw: bytes, first: bool) -> str:
    """What the pipeline indexes: the first mail's whole text, a follow-up's new text."""
    try:
        parsed = parse_message(raw)
    except Exception:  # already processed once; a parser change must not stop the upgrade
        return ""
    return parsed.body_text if first else parsed.new_text


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("ticket_search_au", "ticket_search_ad", "ticket_search_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS ticket_search_fts")
    op.drop_table("ticket_search")
