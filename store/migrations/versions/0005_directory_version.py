"""directory_version: one row whose version ``customers import`` bumps.

Processing keeps the customer directory (and its pre-normalised match index) cached per
version and reads only this row per message (issue 11); the row starts at version 0.

Revision ID: 0005_directory_version
Revises: 0004_ticket_events_and_assignee
Create Date: 2026-12-01 13:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_directory_version"
down_revision: str | None = "0004_ticket_events_and_assignee"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    table = op.create_table(
        "directory_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_version")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("directory_version")
