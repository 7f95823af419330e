"""SQLAlchemy 2 typed models: inbound messages, tickets, the charge ledger, the outbox.

Kept migration-friendly: explicit table names, a naming convention for constraints,
portable column types (JSON, LargeBinary, Numeric) that mean the same on SQLite and
PostgreSQL, and every time stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
    SENDING = "sending"  # claimed by the sender ``claim_owner`` until ``claimed_until``
    SENT = "sent"
    DEAD = "dead"  # gave up after max attempts, or the relay refused permanently
    SUPPRESSED = "suppressed"  # decided not to send (kept for the record)


class InboundMessage(Base):
    __tablename__ = "inbound_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    origin: Mapped[str] = mapped_column(String(16))  # smtp | imap | pipe
    # IMAP: mailbox/UIDVALIDITY/UID, looked up before fetching (exactly once per UID).
    origin_ref: Mapped[str | None] = mapped_column(String(512), index=True)
    # The SMTP client's IP address (IMAP and pipe mail has none): the confirmation
    # reflection cap counts by it (intake.replies.reflection), indexed with received_at.
    peer_ip: Mapped[str | None] = mapped_column(String(45), default=None)
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
    # What this message did to its ticket (fields supplied, reopened, first response, ...).
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sender: Mapped[str | None] = mapped_column(String(512))
    # How far the From address is authenticated (parsing.auth.SenderTrust: "dmarc pass",
    # "dkim aligned", "spf aligned", "none", "fail"); NULL before COMMIT 2 or issue 13.
    sender_trust: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_inbound_message_due", "status", "next_attempt_at"),
        Index("ix_inbound_message_peer_received", "peer_ip", "received_at"),
    )


class Ticket(Base):
    __tablename__ = "ticket"
    # AUTOINCREMENT on SQLite: ids (and so ticket numbers) are never reused. The two
    # requester indexes are what the inbound flood limits count by (intake.pipeline.flood).
    __table_args__ = (
        Index("ix_ticket_requester_key_created", "requester_key", "created_at"),
        Index("ix_ticket_requester_domain_created", "requester_domain", "created_at"),
        {"sqlite_autoincrement": True},
    )

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
    # The canonical addr-spec and domain of the requester, which flood limits count by.
    requester_key: Mapped[str | None] = mapped_column(String(512), default=None)
    requester_domain: Mapped[str | None] = mapped_column(String(255), default=None)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    policy_name: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    response_due_at: Mapped[datetime | None] = mapped_column(index=True)
    # Every deadline by name (ISO 8601 UTC), fixed at creation with the policy version.
    deadlines: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str | None] = mapped_column(String(64))  # zone business hours use
    billable_hourly: Mapped[bool] = mapped_column(default=False)
    first_response_at: Mapped[datetime | None]
    waiting_since: Mapped[datetime | None]  # waiting on the customer (auto-close clock)
    closed_at: Mapped[datetime | None]
    response_met: Mapped[bool | None]  # set by the first staff response
    assignee: Mapped[str | None] = mapped_column(String(256))  # staff name; None: unassigned
    # Who may thread into this ticket by its number: requester and those copied on it.
    participants: Mapped[list[str]] = mapped_column(default=list)
    parent_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    # The ticket this message's threading evidence named although its sender is not on
    # it (a stranger citing a customer's Message-ID or number): linked, never joined.
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), default=None)
    # The message that opened the ticket; unique, so processing one message twice can
    # never open two tickets. (No FK: inbound_message.ticket_id already points back.)
    inbound_message_id: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]

    charges: Mapped[list[ChargeRow]] = relationship(
        back_populates="ticket", order_by="ChargeRow.id", lazy="selectin"
    )


class TicketEvent(Base):
    """What staff did to a ticket, who and when: close, reopen, assign, a note, a waiver,
    a priority change, a first response by phone, a pending charge settled.

    Append-only, like the ledger: the ticket row holds the current state, this its history.
    A note is internal: never mailed, never in a reply.
    """

    __tablename__ = "ticket_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(256))
    # close | reopen | assign | note | waive | priority | phone_response | settle
    action: Mapped[str] = mapped_column(String(32))
    # the note, the assignee, the reason; for priority the old level and old deadlines
    detail: Mapped[str | None] = mapped_column(Text)


class ChargeRow(Base):
    """One ledger line. ``ledger_key`` makes re-processing unable to charge twice."""

    __tablename__ = "charge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ledger_key: Mapped[str] = mapped_column(String(128), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2, asdecimal=True))
    currency: Mapped[str] = mapped_column(String(3))
    # applied | pending (a condition must be confirmed) | billed | waived (settled by staff)
    status: Mapped[str] = mapped_column(String(16), default="applied", index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
    settled_note: Mapped[str | None] = mapped_column(Text)
    # A credit line (kind "waiver", negative amount) names the line it reverses; the
    # reversed line stays as it was, so the ledger keeps what was charged and why not.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("charge.id"), default=None)

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
    # The sender instance (host:pid:random) holding the claim; it renews ``claimed_until``
    # while it sends, and only it may record the outcome (repository.mark_sent).
    claim_owner: Mapped[str | None] = mapped_column(String(256))
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class MailboxState(Base):
    """One IMAP mailbox as the poller last saw it, and which instance may poll it.

    ``name`` is ``user@host:port/folder`` (never the password). The lease lets several
    instances share one PostgreSQL while only the lease holder polls (ARCHITECTURE,
    Scale-out); a holder that dies loses it at ``lease_expires_at``.
    """

    __tablename__ = "mailbox_state"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)  # RFC 3501: 32-bit unsigned
    last_ok_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[datetime | None]


class Customer(Base):
    """One entry of the customer directory (``intake customers import``).

    ``normalized_name`` is the matching key ("ACME corp." and "Acme Corp" are one
    customer); the caller computes it, so the rule lives in one place (intake.customers).
    """

    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    normalized_name: Mapped[str] = mapped_column(String(256), unique=True)  # unique index
    aliases: Mapped[list[str]] = mapped_column(default=list)
    domains: Mapped[list[str]] = mapped_column(default=list)
    support_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    authorized_contacts: Mapped[list[str]] = mapped_column(default=list)
    subscription_expires: Mapped[date | None]
    policy: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DirectoryVersion(Base):
    """One row: the customer directory's version, bumped by every ``customers import``.

    Processing caches the directory (with its pre-normalised match index) per version, so
    one primary-key read per message replaces loading and normalising every customer, and
    an import on any host is seen by every instance at its next message.
    """

    __tablename__ = "directory_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    version: Mapped[int] = mapped_column(Integer, default=0)


class AppSecret(Base):
    """Secrets the daemon generates once and shares between instances (e.g. the HMAC key)."""

    __tablename__ = "app_secret"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]


class RecipientState(Base):
    """What we know about one recipient of our automatic mail: its bounces, its suppression.

    ``address`` is the whole addr-spec lower-cased (RFC 5321 §2.4 lets a host treat local
    parts case-sensitively, but for not writing to a dead mailbox too often, one key per
    spelling is the safe side). A permanent failure sets ``suppressed_until``.
    """

    __tablename__ = "recipient_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(512), unique=True)
    bounces: Mapped[int] = mapped_column(Integer, default=0)
    last_bounce_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(16))  # RFC 3463, e.g. "5.1.1"
    permanent: Mapped[bool] = mapped_column(default=False)  # the last bounce was permanent
    suppressed_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class OutboxRecipient(Base):
    """One recipient of one outbox row, so the reply budget is one indexed count.

    The outbox keeps recipients as a JSON list, and JSON containment is spelled
    differently on SQLite and PostgreSQL; this table is the portable index of it.
    """

    __tablename__ = "outbox_recipient"
    __table_args__ = (
        UniqueConstraint("outbox_id", "address", name="uq_outbox_recipient_outbox_address"),
        Index("ix_outbox_recipient_address_created", "address", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(512))  # lower-cased addr-spec
    created_at: Mapped[datetime]  # the outbox row's created_at


class TicketSearch(Base):
    """The text one ticket is found by (``store.search``): its subject and what the
    customer wrote, as folded words. Each database indexes it (migration 0009): an FTS5
    table on SQLite, a GIN index on PostgreSQL; neither is declared here."""

    __tablename__ = "ticket_search"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    document: Mapped[str] = mapped_column(Text)
