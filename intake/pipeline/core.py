"""The one pipeline every edge feeds: ``ingest`` (COMMIT 1) and ``process`` (COMMIT 2).

``ingest`` stores the raw bytes under an idempotency key and nothing else, so the edge
can acknowledge (SMTP 250, IMAP MOVE, exit 0) as soon as it returns. ``process`` turns
one stored message into its effects — ticket, charge ledger lines, the rendered reply in
the outbox — in a single transaction, so a crash leaves either all of them or none, and
running it again for the same message changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import jinja2
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.backoff import backoff_delay
from intake.errors import StoreError
from intake.pipeline.assess import Assessment, Decision, Identity, assess_bytes
from intake.pipeline.conversation import ThreadContext, Threading, find_thread, participants_of
from intake.pipeline.customers import load_directory
from intake.pipeline.followup import apply_follow_up, apply_staff_reply, reopen_window_passed
from intake.policy.policy import PolicyBook
from intake.replies.budget import BudgetSettings
from intake.replies.outbox import Outbox, ReplyKind
from intake.replies.render import RenderedReply, Sender, render_acknowledgement, render_confirmation
from parsing import (
    Classification,
    DeliveryReport,
    idempotency_key,
    read_delivery_report,
    read_message_id,
)
from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage, InboundStatus, Ticket, TicketStatus

Clock = Callable[[], datetime]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The accept path's values, named here so the edges never import the store themselves.
NewInbound: TypeAlias = repo.NewInbound
Stored: TypeAlias = repo.Stored


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
    jitter: float = 0.1  # ±10 %

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failures; None means quarantine."""
        if attempts >= self.max_attempts:
            return None
        delay = backoff_delay(attempts, self.initial, self.maximum, self.jitter)
        return now + timedelta(seconds=delay)


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
    thread: ThreadContext
    reopen_window: timedelta
    budget: BudgetSettings
    outbox: Outbox  # the one enqueue path (budget, suppression, signed Message-IDs)

    def ingest(self, items: Sequence[repo.NewInbound]) -> list[repo.Stored]:
        """COMMIT 1 for a group of messages (one fsync for all of them)."""
        try:
            with session_scope(self.sessions) as session:
                return [repo.store_inbound(session, item) for item in items]
        except Exception as exc:
            # The driver's reason only: SQLAlchemy's text adds the SQL and its parameters,
            # i.e. the message itself, which must not reach logs or an MTA's bounce.
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"could not store inbound message: {reason}") from exc

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
            row = repo.get_inbound(session, inbound_id, lock=True)
            if row is None:
                return Outcome(inbound_id, "missing")
            if row.status not in (InboundStatus.RECEIVED, InboundStatus.FAILED):
                return Outcome(inbound_id, "already_done", classification=row.classification)
            directory = load_directory(session)
            assessment = assess_bytes(
                row.raw,
                row.envelope_from,
                self.policies,
                self.identity,
                row.received_at,  # deadlines run from when *we* received it
                directory,
            )
            report = self._delivery_report(row, assessment)
            returned = [*report.references, report.original_message_id or ""] if report else []
            thread = find_thread(
                session, assessment.message, self.thread, directory, [i for i in returned if i]
            )
            row.classification = assessment.verdict.kind.value
            row.processed_at, row.sender = now, assessment.message.from_address
            result, ticket = self._route(session, row, assessment, thread, report, now)
            row.outcome, row.ticket_id = result, ticket.id if ticket else None
            number = ticket.number if ticket else None
            outcome = Outcome(inbound_id, result, number, row.classification)
        self._log_processed(row, assessment, outcome, thread)
        return outcome

    def _route(
        self,
        session: Session,
        row: InboundMessage,
        assessment: Assessment,
        thread: Threading,
        report: DeliveryReport | None,
        now: datetime,
    ) -> tuple[str, Ticket | None]:
        """One decision per message: machine mail, staff reply, follow-up or new ticket."""
        ticket = session.get(Ticket, thread.match.ticket_id) if thread.match else None
        if assessment.decision is Decision.IGNORE:
            row.status = InboundStatus.IGNORED
            row.changes = self._machine_mail(session, assessment, report, now)
            return ("machine_on_ticket" if ticket else "ignored"), ticket
        row.status = InboundStatus.PROCESSED
        sender = assessment.message.from_address or ""
        if ticket is not None and self.identity.is_staff(sender):
            row.changes = apply_staff_reply(ticket, now)
            return "staff_reply", ticket
        parent = None
        if ticket is not None and reopen_window_passed(ticket, now, self.reopen_window):
            parent, ticket = ticket, None
        if ticket is not None:
            row.changes = apply_follow_up(ticket, assessment, now)
            self._acknowledge(session, row, assessment, ticket, now)
            return "follow_up", ticket
        created = self._open_ticket(session, row, assessment, now, parent)
        return "ticket_created", created

    @staticmethod
    def _delivery_report(row: InboundMessage, assessment: Assessment) -> DeliveryReport | None:
        if assessment.verdict.kind is not Classification.BOUNCE:
            return None
        return read_delivery_report(row.raw)

    def _machine_mail(
        self,
        session: Session,
        assessment: Assessment,
        report: DeliveryReport | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Machine mail is recorded, never answered (RFC 3834 §2); a DSN marks bouncers."""
        changes: dict[str, Any] = {"machine": assessment.verdict.reason}
        for bounced in report.recipients if report else ():
            if bounced.action not in ("failed", "delayed"):
                continue
            if repo.count_recent_replies(session, bounced.address, EPOCH) == 0:
                changes.setdefault("never_written_to", []).append(bounced.address)
                continue  # a bounce for mail we never sent: note it, change nothing
            repo.record_bounce(
                session,
                bounced.address,
                bounced.status,
                bounced.permanent,
                now,
                self.budget.bounce_suppression,
            )
            changes.setdefault("bounced", []).append(
                {
                    "address": bounced.address,
                    "status": bounced.status,
                    "permanent": bounced.permanent,
                }
            )
        return changes

    def _acknowledge(
        self,
        session: Session,
        row: InboundMessage,
        assessment: Assessment,
        ticket: Ticket,
        now: datetime,
    ) -> None:
        if not assessment.reply_address or not assessment.message.new_text.strip():
            return  # nothing new was said: no answer, so two robots cannot ping-pong
        changes, number = row.changes, ticket.number or ""
        policy = self.policies.by_name(ticket.policy_name)
        reply = render_acknowledgement(
            self.templates,
            assessment,
            number=number,
            message_id=self._message_id(number, ReplyKind.ACKNOWLEDGEMENT, row.idempotency_key),
            sender=self.sender,
            now=now,
            supplied=[policy.field_label(f) for f in changes.get("supplied", [])],
            still_missing=[policy.field_label(f) for f in ticket.missing_fields],
        )
        self._queue(session, reply, ReplyKind.ACKNOWLEDGEMENT, ticket.id, row, now)

    def _message_id(self, number: str, kind: ReplyKind, inbound_key: str) -> str:
        # Stable per inbound message: a retry after a crash sends the very same Message-ID.
        return self.outbox.reply_id(number, kind, inbound_key)

    def _open_ticket(
        self,
        session: Session,
        row: InboundMessage,
        assessment: Assessment,
        now: datetime,
        parent: Ticket | None = None,
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
                participants=participants_of(message, self.identity),
                parent_ticket_id=parent.id if parent else None,
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
            message_id=self._message_id(number, ReplyKind.CONFIRMATION, row.idempotency_key),
            sender=self.sender,
            now=now,
        )
        self._queue(session, reply, ReplyKind.CONFIRMATION, ticket_id, row, now)

    def _queue(
        self,
        session: Session,
        reply: RenderedReply,
        kind: ReplyKind,
        ticket_id: int,
        inbound: InboundMessage,
        now: datetime,
    ) -> None:
        """Queue an automatic reply through the one enqueue path (budget, RFC 3834 §2)."""
        self.outbox.enqueue(session, reply, kind, ticket_id=ticket_id, now=now, inbound=inbound)

    def _record_failure(self, inbound_id: int, error: str) -> Outcome:
        now = self.clock()
        log = structlog.get_logger("intake.pipeline")
        try:
            with session_scope(self.sessions) as session:
                current = repo.get_inbound(session, inbound_id, lock=True)
                attempts = (current.attempts if current else 0) + 1
                next_at = self.retry.next_attempt(attempts, now)
                row = repo.record_failure(session, inbound_id, error, next_at)
                status, message_id = row.status, row.message_id
        except Exception as exc:  # the store itself is down: the sweeper retries later
            log.error("message.failure_not_recorded", inbound_id=inbound_id, error=str(exc))
            return Outcome(inbound_id, "failed")
        if status not in (InboundStatus.FAILED, InboundStatus.QUARANTINED):
            return Outcome(inbound_id, "already_done")  # another worker finished it
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

    def _log_processed(
        self, row: InboundMessage, assessment: Assessment, outcome: Outcome, thread: Threading
    ) -> None:
        """The one canonical line per message that operators follow."""
        created = outcome.result == "ticket_created"
        charge = assessment.charges[0] if created and assessment.charges else None
        structlog.get_logger("intake.pipeline").info(
            "message.processed",
            inbound_id=row.id,
            message_id=row.message_id,
            origin=row.origin,
            classification=outcome.classification,
            reason=assessment.verdict.reason,
            ticket=outcome.ticket_number,
            outcome=outcome.result,
            thread=thread.match.evidence if thread.match else None,
            thread_rejected=list(thread.rejected) or None,
            priority=assessment.priority if created else None,
            missing_fields=list(assessment.missing_fields) if created else [],
            changes=row.changes or None,
            charge=f"{charge.amount} {charge.currency}" if charge else None,
        )
