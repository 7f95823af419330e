"""charge.reverses_id: a waiver's credit line names the ledger line it reverses.

``intake charges waive ID --note TEXT`` writes a new line (kind ``waiver``, the negative
amount) instead of deleting or rewriting the charge; existing lines get NULL.

Revision ID: 0003_charge_reverses_id
Revises: 0002_outbox_claim_owner
Create Date: 2026-12-01 12:21:37.980689
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_charge_reverses_id"
down_revision: str | None = "0002_outbox_claim_owner"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("charge", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reverses_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_charge_reverses_id_charge"), "charge", ["reverses_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("charge", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_charge_reverses_id_charge"), type_="foreignkey")
        batch_op.drop_column("reverses_id")
