"""inbound_message.peer_ip: the SMTP client's address, for the reflection cap (issue 13).

The confirmation reflection cap (``intake.replies.reflection``) counts the distinct
addresses confirmed for mail from one sending IP in the last hour, so the IP gets its own
column, indexed with ``received_at``. IMAP and pipe mail has none (NULL). Rows stored
before this migration keep NULL: they are older than any window that matters.

Revision ID: 0008_inbound_peer_ip
Revises: 0007_ticket_links_flood
Create Date: 2026-12-01 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008_inbound_peer_ip"
down_revision: str | None = "0007_ticket_links_flood"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("peer_ip", sa.String(length=45), nullable=True))
        batch_op.create_index(
            "ix_inbound_message_peer_received", ["peer_ip", "received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_message_peer_received")
        batch_op.drop_column("peer_ip")
