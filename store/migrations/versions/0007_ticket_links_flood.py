"""ticket.linked_ticket_id, requester_key, requester_domain: strangers kept off tickets, floods.

``linked_ticket_id`` names the ticket a message's threading evidence pointed at when its
sender does not take part in it (a stranger citing a customer's Message-ID or ticket
number): the message opens this new ticket instead, linked for staff. ``requester_key``
(the canonical addr-spec) and ``requester_domain`` are what the inbound flood limits count
new tickets by, each indexed with ``created_at``. Existing rows get NULL: they are older
than any flood window that matters.

Revision ID: 0007_ticket_links_flood
Revises: 0006_inbound_sender_trust
Create Date: 2026-12-01 13:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007_ticket_links_flood"
down_revision: str | None = "0006_inbound_sender_trust"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # SQLite rebuilds the table for the foreign key: keep its AUTOINCREMENT (never reused ids).
    with op.batch_alter_table(
        "ticket", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("linked_ticket_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("requester_key", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("requester_domain", sa.String(length=255), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_linked_ticket_id_ticket"), "ticket", ["linked_ticket_id"], ["id"]
        )
        batch_op.create_index(
            "ix_ticket_requester_key_created", ["requester_key", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_ticket_requester_domain_created", ["requester_domain", "created_at"], unique=False
        )


def downgrade() -> None:
    # SQLite rebuilds the table for the foreign key: keep its AUTOINCREMENT (never reused ids).
    with op.batch_alter_table(
        "ticket", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_index("ix_ticket_requester_domain_created")
        batch_op.drop_index("ix_ticket_requester_key_created")
        batch_op.drop_constraint(
            batch_op.f("fk_ticket_linked_ticket_id_ticket"), type_="foreignkey"
        )
        batch_op.drop_column("requester_domain")
        batch_op.drop_column("requester_key")
        batch_op.drop_column("linked_ticket_id")
