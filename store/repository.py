"""Repository functions: every query and write the daemon makes, over a given session.

They never commit (``session_scope`` does) and keep the invariants that need the
database: idempotent inbound inserts, ticket numbers from the ticket's own identity,
a charge ledger keyed against duplicates, and outbox claims that several instances can
make at once (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import (
    ChargeRow,
    InboundMessage,
    InboundStatus,
    OutboxMessage,
    OutboxStatus,
    Ticket,
)


@dataclass(frozen=True, slots=True)
class NewInbound:
    idempotency_key: str
    message_id: str
    origin: str
    origin_ref: str | None
    envelope_from: str | None
    envelope_to: tuple[str, ...]
    raw: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Stored:
    inbound_id: int
    duplicate: bool  # the same message (same key) was already stored


def _insert_for(session: Session) -> Any:
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


def store_inbound(session: Session, item: NewInbound) -> Stored:
    """Insert once per idempotency key; a re-delivery returns the existing row."""
    insert = _insert_for(session)
    statement = (
        insert(InboundMessage)
        .values(
            idempotency_key=item.idempotency_key,
            message_id=item.message_id,
            origin=item.origin,
            origin_ref=item.origin_ref,
            envelope_from=item.envelope_from,
            envelope_to=list(item.envelope_to),
            raw=item.raw,
            size=len(item.raw),
            received_at=item.received_at,
            status=InboundStatus.RECEIVED,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(InboundMessage.id)
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if new_id is not None:
        return Stored(new_id, duplicate=False)
    existing = session.execute(
        select(InboundMessage.id).where(InboundMessage.idempotency_key == item.idempotency_key)
    ).scalar_one()
    return Stored(existing, duplicate=True)


def get_inbound(session: Session, inbound_id: int) -> InboundMessage | None:
    return session.get(InboundMessage, inbound_id)


def due_inbound_ids(session: Session, now: datetime, limit: int = 100) -> list[int]:
    """Messages stored but not done: new ones, and failed ones whose backoff has passed."""
    statement = (
        select(InboundMessage.id)
        .where(InboundMessage.status.in_([InboundStatus.RECEIVED, InboundStatus.FAILED]))
        .where(or_(InboundMessage.next_attempt_at.is_(None), InboundMessage.next_attempt_at <= now))
        .order_by(InboundMessage.id)
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def record_failure(
    session: Session, inbound_id: int, error: str, next_attempt_at: datetime | None
) -> InboundMessage:
    """Count a failed attempt; ``next_attempt_at=None`` quarantines the message."""
    row = session.get_one(InboundMessage, inbound_id)
    row.attempts += 1
    row.last_error = error[:4000]
    row.next_attempt_at = next_attempt_at
    row.status = InboundStatus.FAILED if next_attempt_at else InboundStatus.QUARANTINED
    return row


def list_inbound(session: Session, status: str, limit: int = 100) -> list[InboundMessage]:
    statement = (
        select(InboundMessage)
        .where(InboundMessage.status == status)
        .order_by(InboundMessage.id)
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def requeue_inbound(session: Session, inbound_id: int) -> bool:
    """Give a quarantined or failed message a fresh set of attempts."""
    row = session.get(InboundMessage, inbound_id)
    if row is None or row.status not in (InboundStatus.QUARANTINED, InboundStatus.FAILED):
        return False
    row.status = InboundStatus.RECEIVED
    row.attempts = 0
    row.next_attempt_at = None
    return True


def oldest_unprocessed(session: Session) -> datetime | None:
    statement = select(func.min(InboundMessage.received_at)).where(
        InboundMessage.status.in_([InboundStatus.RECEIVED, InboundStatus.FAILED])
    )
    return session.execute(statement).scalar_one_or_none()


def add_ticket(session: Session, ticket: Ticket, number_format: str) -> Ticket:
    """Persist a ticket; its number derives from its database identity (unique, never reused)."""
    session.add(ticket)
    session.flush()
    ticket.number = number_format.format(ticket.id)
    session.flush()
    return ticket


def add_charge(
    session: Session,
    *,
    ledger_key: str,
    ticket_id: int,
    kind: str,
    amount: Decimal,
    currency: str,
    reason: str,
    status: str,
    now: datetime,
) -> bool:
    """Write one ledger line unless ``ledger_key`` already has one. True when written."""
    insert = _insert_for(session)
    statement = (
        insert(ChargeRow)
        .values(
            ledger_key=ledger_key,
            ticket_id=ticket_id,
            kind=kind,
            amount=amount,
            currency=currency,
            reason=reason,
            status=status,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["ledger_key"])
        .returning(ChargeRow.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def ticket_by_number(session: Session, number: str) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.number == number)).scalar_one_or_none()


def list_tickets(
    session: Session,
    *,
    status: str | None = None,
    priority: int | None = None,
    customer: str | None = None,
    limit: int = 100,
) -> list[Ticket]:
    statement = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
    if status:
        statement = statement.where(Ticket.status == status)
    if priority is not None:
        statement = statement.where(Ticket.priority == priority)
    if customer:
        statement = statement.where(func.lower(Ticket.customer) == customer.lower())
    return list(session.execute(statement).scalars())


def enqueue_reply(session: Session, reply: OutboxMessage) -> bool:
    """Queue a reply unless one of its kind exists for that inbound message."""
    existing = session.execute(
        select(OutboxMessage.id)
        .where(OutboxMessage.inbound_message_id == reply.inbound_message_id)
        .where(OutboxMessage.kind == reply.kind)
    ).scalar_one_or_none()
    if existing is not None:
        return False
    session.add(reply)
    session.flush()
    return True


def claim_outbox(
    session: Session, now: datetime, lease: timedelta, limit: int = 20
) -> list[OutboxMessage]:
    """Claim due replies for this sender until ``now + lease``.

    A claim whose lease ran out (the sender died mid-delivery) is claimable again; the
    reply keeps its Message-ID, so a second delivery is recognisably the same mail.
    """
    due = or_(
        (OutboxMessage.status == OutboxStatus.QUEUED) & (OutboxMessage.next_attempt_at <= now),
        (OutboxMessage.status == OutboxStatus.SENDING) & (OutboxMessage.claimed_until <= now),
    )
    statement = select(OutboxMessage).where(due).order_by(OutboxMessage.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    rows = list(session.execute(statement).scalars())
    for row in rows:
        row.status = OutboxStatus.SENDING
        row.claimed_until = now + lease
    session.flush()
    return rows


def mark_sent(session: Session, outbox_id: int, now: datetime) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id)
        .values(status=OutboxStatus.SENT, sent_at=now, claimed_until=None, last_error=None)
    )


def mark_delivery_failed(
    session: Session, outbox_id: int, error: str, next_attempt_at: datetime | None
) -> None:
    """Count a failed delivery; ``next_attempt_at=None`` makes the reply dead."""
    row = session.get_one(OutboxMessage, outbox_id)
    row.attempts += 1
    row.last_error = error[:4000]
    row.claimed_until = None
    if next_attempt_at is None:
        row.status = OutboxStatus.DEAD
    else:
        row.status = OutboxStatus.QUEUED
        row.next_attempt_at = next_attempt_at


def list_outbox(
    session: Session, status: str | None = None, limit: int = 100
) -> list[OutboxMessage]:
    statement = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        statement = statement.where(OutboxMessage.status == status)
    return list(session.execute(statement).scalars())


def retry_outbox(session: Session, outbox_id: int, now: datetime) -> bool:
    row = session.get(OutboxMessage, outbox_id)
    if row is None or row.status == OutboxStatus.SENT:
        return False
    row.status = OutboxStatus.QUEUED
    row.attempts = 0
    row.next_attempt_at = now
    row.claimed_until = None
    return True
