"""The one pipeline every edge feeds: ``ingest`` (COMMIT 1) and ``process`` (COMMIT 2).

``ingest`` stores the raw bytes under an idempotency key and nothing else, so the edge
can acknowledge (SMTP 250, IMAP MOVE, exit 0) as soon as it returns. ``process`` turns
one stored message into its effects — ticket, charge ledger lines, the rendered reply in
the outbox — in a single transaction, so a crash leaves either all of them or none, and
running it again for the same message changes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import jinja2
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.assess import Assessment, Decision, Identity, PolicyBook, assess_bytes
from intake.customers import load_directory
from intake.errors import StoreError
from intake.replies import Sender, render_confirmation
from parsing import idempotency_key, read_message_id
from store import repository as repo
from store.db import session_scope
from store.models import (
    InboundMessage,
    InboundStatus,
    OutboxMessage,
    OutboxStatus,
    Ticket,
    TicketStatus,
)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Envelope:
    """Where a raw message came from, as the edge saw it."""

    origin: str  # smtp | imap | pipe
    origin_ref: str | None = None  # peer address, mailbox/UIDVALIDITY/UID, ...
    mail_from: str | None = None  # RFC 5321 reverse-path; "" is the null sender <>
    rcpt_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    inbound_id: int
    result: str  # ticket_created | ignored | already_done | failed | quarantined | missing
    ticket_number: str | None = None
    classification: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    initial: float
    maximum: float

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failures; None means quarantine."""
        if attempts >= self.max_attempts:
            return None
        delay = min(self.maximum, self.initial * 2 ** (attempts - 1))
        return now + timedelta(seconds=delay * random.uniform(0.9, 1.1))


def prepare_inbound(raw: bytes, envelope: Envelope, now: datetime) -> repo.NewInbound:
    """Compute the idempotency key for raw bytes (pure; runs off the accept path's lock)."""
    # Header block only: a full MIME parse costs ~1 ms and belongs in COMMIT 2, not here.
    message_id = read_message_id(raw)
    return repo.NewInbound(
        idempotency_key=idempotency_key(raw, message_id),
        message_id=message_id,
        origin=envelope.origin,
        origin_ref=envelope.origin_ref,
        envelope_from=envelope.mail_from,
        envelope_to=envelope.rcpt_to,
        raw=raw,
        received_at=now,
    )


@dataclass
class Pipeline:
    sessions: sessionmaker[Session]
    policies: PolicyBook
    identity: Identity
    sender: Sender
    templates: jinja2.Environment
    number_format: str
    retry: RetryPolicy
    clock: Clock

    def ingest(self, items: Sequence[repo.NewInbound]) -> list[repo.Stored]:
        """COMMIT 1 for a group of messages (one fsync for all of them)."""
        try:
            with session_scope(self.sessions) as session:
                return [repo.store_inbound(session, item) for item in items]
        except Exception as exc:
            raise StoreError(f"could not store inbound message: {exc}") from exc

    def process(self, inbound_id: int) -> Outcome:
        """COMMIT 2 for one stored message; failures are counted, never raised."""
        log = structlog.get_logger("intake.pipeline").bind(inbound_id=inbound_id)
        try:
            outcome = self._process(inbound_id)
        except IntegrityError:
            # Another worker finished the same message first (unique ticket per inbound).
            outcome = Outcome(inbound_id, "already_done")
        except Exception as exc:
            log.exception("message.failed", error=str(exc))
            outcome = self._record_failure(inbound_id, f"{type(exc).__name__}: {exc}")
        return outcome

    def _process(self, inbound_id: int) -> Outcome:
        now = self.clock()
        with session_scope(self.sessions) as session:
            row = repo.get_inbound(session, inbound_id)
            if row is None:
                return Outcome(inbound_id, "missing")
            if row.status not in (InboundStatus.RECEIVED, InboundStatus.FAILED):
                return Outcome(inbound_id, "already_done", classification=row.classification)
            assessment = assess_bytes(
                row.raw,
                row.envelope_from,
                self.policies,
                self.identity,
                row.received_at,  # deadlines run from when *we* received it
                load_directory(session),
            )
            row.classification = assessment.verdict.kind.value
            row.processed_at = now
            if assessment.decision is Decision.IGNORE:
                row.status, row.outcome = InboundStatus.IGNORED, "ignored"
                outcome = Outcome(inbound_id, "ignored", classification=row.classification)
            else:
                ticket = self._open_ticket(session, row, assessment, now)
                row.status, row.outcome, row.ticket_id = (
                    InboundStatus.PROCESSED,
                    "new_ticket",
                    ticket.id,
                )
                outcome = Outcome(inbound_id, "ticket_created", ticket.number, row.classification)
        self._log_processed(row, assessment, outcome)
        return outcome

    def _open_ticket(
        self, session: Session, row: InboundMessage, assessment: Assessment, now: datetime
    ) -> Ticket:
        message, subject, policy = assessment.message, assessment.subject, assessment.policy
        known = assessment.customer.customer.name if assessment.customer else None
        waiting = bool(assessment.missing_fields) and policy.auto_close is not None
        ticket = repo.add_ticket(
            session,
            Ticket(
                subject=message.subject,
                customer=known or subject.customer,
                location=subject.location,
                issue=subject.issue,
                priority=assessment.priority,
                fields=dict(assessment.fields),
                findings=[
                    {"code": f.code, "message": f.message, "field": f.field}
                    for f in assessment.findings
                ],
                missing_fields=list(assessment.missing_fields),
                requester_email=message.from_address,
                requester_name=message.from_name,
                message_id=message.message_id,
                policy_name=policy.name,
                policy_version=policy.version,
                response_due_at=assessment.response_due,
                deadlines={k: v.isoformat() for k, v in assessment.deadlines.as_dict().items()},
                timezone=assessment.deadlines.timezone,
                billable_hourly=assessment.billable_hourly,
                status=TicketStatus.WAITING_CUSTOMER if waiting else TicketStatus.OPEN,
                waiting_since=now if waiting else None,
                inbound_message_id=row.id,
                created_at=now,
                updated_at=now,
            ),
            self.number_format,
        )
        number = ticket.number or ""
        for charge in assessment.charges:
            repo.add_charge(
                session,
                ledger_key=f"{row.idempotency_key}:{charge.kind}",
                ticket_id=ticket.id,
                kind=charge.kind,
                amount=charge.amount,
                currency=charge.currency,
                reason=charge.reason,
                status=charge.status,
                now=now,
            )
        if assessment.reply_address:
            self._queue_confirmation(session, row, assessment, ticket.id, number, now)
        return ticket

    def _queue_confirmation(
        self,
        session: Session,
        row: InboundMessage,
        assessment: Assessment,
        ticket_id: int,
        number: str,
        now: datetime,
    ) -> None:
        reply = render_confirmation(
            self.templates,
            assessment,
            number=number,
            inbound_key=row.idempotency_key,
            sender=self.sender,
            now=now,
        )
        repo.enqueue_reply(
            session,
            OutboxMessage(
                message_id=reply.message_id,
                kind="confirmation",
                ticket_id=ticket_id,
                inbound_message_id=row.id,
                sender=self.sender.address,
                recipients=list(reply.recipients),
                raw=reply.raw,
                status=OutboxStatus.QUEUED,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            ),
        )

    def _record_failure(self, inbound_id: int, error: str) -> Outcome:
        now = self.clock()
        log = structlog.get_logger("intake.pipeline")
        try:
            with session_scope(self.sessions) as session:
                current = repo.get_inbound(session, inbound_id)
                attempts = (current.attempts if current else 0) + 1
                next_at = self.retry.next_attempt(attempts, now)
                row = repo.record_failure(session, inbound_id, error, next_at)
                status, message_id = row.status, row.message_id
        except Exception as exc:  # the store itself is down: the sweeper retries later
            log.error("message.failure_not_recorded", inbound_id=inbound_id, error=str(exc))
            return Outcome(inbound_id, "failed")
        result = "quarantined" if status == InboundStatus.QUARANTINED else "failed"
        log.warning(
            "message.processed",
            inbound_id=inbound_id,
            message_id=message_id,
            outcome=result,
            attempts=attempts,
            error=error,
        )
        return Outcome(inbound_id, result)

    def _log_processed(self, row: InboundMessage, assessment: Assessment, outcome: Outcome) -> None:
        charge = assessment.charges[0] if outcome.ticket_number and assessment.charges else None
        structlog.get_logger("intake.pipeline").info(
            "message.processed",
            inbound_id=row.id,
            message_id=row.message_id,
            origin=row.origin,
            classification=outcome.classification,
            reason=assessment.verdict.reason,
            ticket=outcome.ticket_number,
            outcome=outcome.result,
            priority=assessment.priority if outcome.ticket_number else None,
            missing_fields=list(assessment.missing_fields) if outcome.ticket_number else [],
            charge=f"{charge.amount} {charge.currency}" if charge else None,
        )
