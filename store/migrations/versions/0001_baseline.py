"""Baseline: the schema of the first landed release (commit 1abcf39), before migrations.

Every table as ``Base.metadata.create_all`` made it then; ``store.migrate`` stamps a
database created that way with this revision instead of running it. Times are
``DateTime(timezone=True)`` (the models' UtcDateTime stores exactly that).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

UTC_TIME = sa.DateTime(timezone=True)
TABLES = (  # in creation order; dropped in reverse
    "app_secret",
    "customer",
    "mailbox_state",
    "recipient_state",
    "ticket",
    "charge",
    "inbound_message",
    "outbox",
    "outbox_recipient",
)


def upgrade() -> None:
    op.create_table(
        "app_secret",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secret")),
    )
    op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("normalized_name", sa.String(length=256), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("domains", sa.JSON(), nullable=False),
        sa.Column("support_id", sa.String(length=64), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("authorized_contacts", sa.JSON(), nullable=False),
        sa.Column("subscription_expires", sa.Date(), nullable=True),
        sa.Column("policy", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
        sa.UniqueConstraint("name", name=op.f("uq_customer_name")),
        sa.UniqueConstraint("normalized_name", name=op.f("uq_customer_normalized_name")),
        sa.UniqueConstraint("support_id", name=op.f("uq_customer_support_id")),
    )
    op.create_table(
        "mailbox_state",
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_ok_at", UTC_TIME, nullable=True),
        sa.Column("failing_since", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=256), nullable=True),
        sa.Column("lease_expires_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_mailbox_state")),
    )
    op.create_table(
        "recipient_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=512), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("last_bounce_at", UTC_TIME, nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("suppressed_until", UTC_TIME, nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipient_state")),
        sa.UniqueConstraint("address", name=op.f("uq_recipient_state_address")),
    )
    op.create_table(
        "ticket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("customer", sa.String(length=256), nullable=True),
        sa.Column("location", sa.String(length=512), nullable=True),
        sa.Column("issue", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("missing_fields", sa.JSON(), nullable=False),
        sa.Column("requester_email", sa.String(length=512), nullable=True),
        sa.Column("requester_name", sa.String(length=512), nullable=True),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("policy_name", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("response_due_at", UTC_TIME, nullable=True),
        sa.Column("deadlines", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("billable_hourly", sa.Boolean(), nullable=False),
        sa.Column("first_response_at", UTC_TIME, nullable=True),
        sa.Column("waiting_since", UTC_TIME, nullable=True),
        sa.Column("closed_at", UTC_TIME, nullable=True),
        sa.Column("response_met", sa.Boolean(), nullable=True),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("parent_ticket_id", sa.Integer(), nullable=True),
        sa.Column("inbound_message_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_ticket_id"], ["ticket.id"], name=op.f("fk_ticket_parent_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket")),
        sa.UniqueConstraint("inbound_message_id", name=op.f("uq_ticket_inbound_message_id")),
        sa.UniqueConstraint("number", name=op.f("uq_ticket_number")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_ticket_created_at"), "ticket", ["created_at"])
    op.create_index(op.f("ix_ticket_customer"), "ticket", ["customer"])
    op.create_index(op.f("ix_ticket_message_id"), "ticket", ["message_id"])
    op.create_index(op.f("ix_ticket_priority"), "ticket", ["priority"])
    op.create_index(op.f("ix_ticket_requester_email"), "ticket", ["requester_email"])
    op.create_index(op.f("ix_ticket_response_due_at"), "ticket", ["response_due_at"])
    op.create_index(op.f("ix_ticket_status"), "ticket", ["status"])

    op.create_table(
        "charge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ledger_key", sa.String(length=128), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("settled_at", UTC_TIME, nullable=True),
        sa.Column("settled_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_charge_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge")),
        sa.UniqueConstraint("ledger_key", name=op.f("uq_charge_ledger_key")),
    )
    op.create_index(op.f("ix_charge_status"), "charge", ["status"])
    op.create_index(op.f("ix_charge_ticket_id"), "charge", ["ticket_id"])

    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("origin_ref", sa.String(length=512), nullable=True),
        sa.Column("envelope_from", sa.String(length=512), nullable=True),
        sa.Column("envelope_to", sa.JSON(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", UTC_TIME, nullable=True),
        sa.Column("classification", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("sender", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_inbound_message_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_message")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_inbound_message_idempotency_key")),
    )
    op.create_index("ix_inbound_message_due", "inbound_message", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_inbound_message_message_id"), "inbound_message", ["message_id"])
    op.create_index(op.f("ix_inbound_message_origin_ref"), "inbound_message", ["origin_ref"])
    op.create_index(op.f("ix_inbound_message_status"), "inbound_message", ["status"])
    op.create_index(op.f("ix_inbound_message_ticket_id"), "inbound_message", ["ticket_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("inbound_message_id", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=512), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=False),
        sa.Column("claimed_until", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_message.id"],
            name=op.f("fk_outbox_inbound_message_id_inbound_message"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_outbox_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("inbound_message_id", "kind", name="uq_outbox_inbound_kind"),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_outbox_ticket_id"), "outbox", ["ticket_id"])

    op.create_table(
        "outbox_recipient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=512), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_outbox_recipient_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_recipient")),
        sa.UniqueConstraint("outbox_id", "address", name="uq_outbox_recipient_outbox_address"),
    )
    op.create_index(
        "ix_outbox_recipient_address_created", "outbox_recipient", ["address", "created_at"]
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
