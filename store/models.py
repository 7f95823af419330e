"""SQLAlchemy 2 typed models: inbound messages, tickets, the charge ledger, the outbox.

Kept migration-friendly: explicit table names, a naming convention for constraints,
portable column types (JSON, LargeBinary, Numeric) that mean the same on SQLite and
PostgreSQL, and every time stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored and returned as aware UTC (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass UTC-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy's declared API
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[dict[str, Any]]: JSON(),
    }


class InboundStatus(StrEnum):
    RECEIVED = "received"  # stored (COMMIT 1), not yet processed
    PROCESSED = "processed"  # ticket/follow-up written (COMMIT 2)
    IGNORED = "ignored"  # machine mail or duplicate content: recorded, never answered
    FAILED = "failed"  # processing raised; retried with backoff
    QUARANTINED = "quarantined"  # gave up after max attempts; replayable by hand


class TicketStatus(StrEnum):
    OPEN = "open"
    WAITING_CUSTOMER = "waiting_customer"
    CLOSED = "closed"


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a sender until claimed_until
    SENT = "sent"
    DEAD = "dead"  # gave up after max attempts, or the relay refused permanently
    SUPPRESSED = "suppressed"  # decided not to send (kept for the record)


class InboundMessage(Base):
    __tablename__ = "inbound_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    origin: Mapped[str] = mapped_column(String(16))  # smtp | imap | pipe
    origin_ref: Mapped[str | None] = mapped_column(String(512))
    envelope_from: Mapped[str | None] = mapped_column(String(512))
    envelope_to: Mapped[list[str]] = mapped_column(default=list)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=InboundStatus.RECEIVED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]
    classification: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)

    __table_args__ = (Index("ix_inbound_message_due", "status", "next_attempt_at"),)


class Ticket(Base):
    __tablename__ = "ticket"
    # AUTOINCREMENT on SQLite: ids (and so ticket numbers) are never reused.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    customer: Mapped[str | None] = mapped_column(String(256), index=True)
    location: Mapped[str | None] = mapped_column(String(512))
    issue: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(24), default=TicketStatus.OPEN, index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    missing_fields: Mapped[list[str]] = mapped_column(default=list)
    requester_email: Mapped[str | None] = mapped_column(String(512), index=True)
    requester_name: Mapped[str | None] = mapped_column(String(512))
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    policy_name: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    response_due_at: Mapped[datetime | None] = mapped_column(index=True)
    first_response_at: Mapped[datetime | None]
    # The message that opened the ticket; unique, so processing one message twice can
    # never open two tickets. (No FK: inbound_message.ticket_id already points back.)
    inbound_message_id: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]

    charges: Mapped[list[ChargeRow]] = relationship(
        back_populates="ticket", order_by="ChargeRow.id", lazy="selectin"
    )


class ChargeRow(Base):
    """One ledger line. ``ledger_key`` makes re-processing unable to charge twice."""

    __tablename__ = "charge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ledger_key: Mapped[str] = mapped_column(String(128), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2, asdecimal=True))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="applied")  # applied | pending
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

    ticket: Mapped[Ticket] = relationship(back_populates="charges")


class OutboxMessage(Base):
    """A rendered reply waiting for (or done with) delivery."""

    __tablename__ = "outbox"
    # Never two replies of one kind to the same inbound message (invariant 2).
    __table_args__ = (
        UniqueConstraint("inbound_message_id", "kind", name="uq_outbox_inbound_kind"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # confirmation | acknowledgement | ...
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_message.id"))
    sender: Mapped[str] = mapped_column(String(512))
    recipients: Mapped[list[str]] = mapped_column(default=list)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
