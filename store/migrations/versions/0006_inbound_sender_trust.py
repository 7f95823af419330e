"""inbound_message.sender_trust: how far the From address is authenticated (issue 13).

Written by COMMIT 2 from the trusted Authentication-Results (and our own DKIM check);
rows processed before this migration keep NULL.

Revision ID: 0006_inbound_sender_trust
Revises: 0005_directory_version
Create Date: 2026-12-01 13:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_inbound_sender_trust"
down_revision: str | None = "0005_directory_version"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_trust", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_column("sender_trust")
