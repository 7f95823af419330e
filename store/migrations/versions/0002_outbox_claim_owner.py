"""Outbox claims carry their owner: ``outbox.claim_owner`` (issue 9, multi-instance).

The sender instance (``host:pid:random``) holding a ``sending`` row's claim; only it may
record the delivery's outcome, and it renews ``claimed_until`` while it sends. Rows
claimed before this migration have no owner: their claims simply run out (``claimed_until``)
and are claimed again, with an owner, by the next sender.

Revision ID: 0002_outbox_claim_owner
Revises: 0001_baseline
Create Date: 2026-12-01 11:56:46.450083
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_outbox_claim_owner"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_owner", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claim_owner")
