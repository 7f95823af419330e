"""The one pipeline every edge feeds: ``ingest`` (COMMIT 1) and ``process`` (COMMIT 2).

``ingest`` stores the raw bytes under an idempotency key and nothing else, so the edge
can acknowledge (SMTP 250, IMAP MOVE, exit 0) as soon as it returns. ``process`` turns
one stored message into its effects — ticket, charge ledger lines, the rendered reply in
the outbox — all or none: in one transaction, which it shares with the messages read
meanwhile (``intake.pipeline.batch``), each of them under a SAVEPOINT of its own. A crash
leaves either all of them or none, and running it again for the same message changes
nothing. Inside it the message is read
(assess, thread), ``decide`` picks its one route, and ``Pipeline.apply`` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, TypeAlias, assert_never

import jinja2
import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.backoff import backoff_delay
from intake.errors import BudgetExceededError, StoreError
from intake.logs import raised_at
from intake.pipeline.assess import Assessment, assess
from intake.pipeline.batch import CommitGroup, Entry
from intake.pipeline.changes import Bounce, ChangeRecord, FloodChanges, MachineChanges
from intake.pipeline.conversation import ThreadContext, Threading, find_thread, participants_of
from intake.pipeline.customers import CustomerRecord, DirectoryCache
from intake.pipeline.decide import (
    Decision,
    Flood,
    FollowUp,
    IgnoreMachine,
    MachineOnTicket,
    NewTicket,
    ReopenAsNew,
    StaffClaim,
    StaffReply,
    TicketState,
    decide,
    opens_ticket,
)
from intake.pipeline.dkimcheck import DkimVerifier
from intake.pipeline.flood import FloodSettings, FloodVerdict, Sender, check_flood, window_start
from intake.pipeline.followup import apply_follow_up, apply_staff_claim, apply_staff_reply
from intake.pipeline.identity import Identity
from intake.pipeline.isolation import InlineReader, Reader
from intake.policy.policy import PolicyBook
from intake.replies.outbox import Enqueued, Outbox, ReplyKind
from intake.replies.reflection import Source
from intake.replies.render import (
    Draft,
    Drafting,
    RenderedReply,
    TicketRef,
    render_acknowledgement,
    render_confirmation,
    render_ticket_notice,
    template_directory,
)
from parsing import (
    DeliveryReport,
    idempotency_key,
    read_message_id,
)
from store import repository as repo
from store import search as full_text
from store.db import driver_reason, session_scope
from store.models import InboundStatus, Ticket, TicketStatus

Clock = Callable[[], datetime]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FINISHED = frozenset({InboundStatus.PROCESSED, InboundStatus.IGNORED})
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
    peer_ip: str | None = None  # the SMTP client's IP (the reflection cap); IMAP/pipe: none


class Result(StrEnum):
    """What processing one stored message came to (``InboundMessage.outcome``, the CLI)."""

    TICKET_CREATED = "ticket_created"
    FOLLOW_UP = "follow_up"
    STAFF_REPLY = "staff_reply"
    STAFF_CLAIM = "staff_claim"  # an unauthenticated staff From on a thread (issue 13)
    MACHINE_ON_TICKET = "machine_on_ticket"
    IGNORED = "ignored"
    ALREADY_DONE = "already_done"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    MISSING = "missing"
    FLOOD = "flood"  # past the sender's flood limit: kept on its latest ticket, unanswered


@dataclass(frozen=True, slots=True)
class Outcome:
    inbound_id: int
    result: Result
    ticket_number: str | None = None
    classification: str | None = None
    flood: str | None = None  # "address" / "domain": the flood limit this mail was past
    reflection: str | None = None  # "ip" / "domain": the cap that suppressed its confirmation


@dataclass(frozen=True, slots=True)
class Read:
    """One stored message read, waiting for its write transaction (``CommitGroup``)."""

    row: repo.PendingInbound
    assessment: Assessment
    report: DeliveryReport | None
    directory: tuple[CustomerRecord, ...]
    now: datetime
    verified: tuple[str, ...]  # DKIM signing domains we verified (intake.verify_dkim)
    draft: Draft | None = None  # the confirmation's body, drafted by the reading
    document: str | None = None  # the ticket's search document, made by the reading


@dataclass(frozen=True, slots=True)
class Work:
    """One read message inside COMMIT 2's write transaction: what ``apply`` needs but the
    decision."""

    session: Session
    read: Read


@dataclass(frozen=True, slots=True)
class Applied:
    """What ``apply`` wrote: the row's new status, the result, the ticket, the changes."""

    status: InboundStatus
    result: Result
    ticket: Ticket | None
    changes: ChangeRecord
    flood: str | None = None  # scope of the flood limit reached (Outcome.flood)
    reflection: str | None = None  # scope of the reflection cap reached (Outcome.reflection)


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
        peer_ip=envelope.peer_ip,
    )


def failure_reason(exc: BaseException) -> str:
    """What a log line may say of a failure: the type, and for a store error the driver's
    first line (``driver_reason``: names the constraint, never the row's values)."""
    if isinstance(exc, SQLAlchemyError):
        return f"{type(exc).__name__}: {driver_reason(exc)}"
    return type(exc).__name__


def stored_fields(item: repo.NewInbound, stored: repo.Stored) -> dict[str, object]:
    """The ``message.stored`` log line, the same from every edge: ids, the envelope, outcome.

    Envelope addresses are what an operator traces a message by; the body never appears.
    ``peer`` is the edge's ``origin_ref`` (SMTP client, IMAP mailbox/UID; none for a pipe).
    """
    return {
        "inbound_id": stored.inbound_id,
        "message_id": item.message_id,
        "origin": item.origin,
        "peer": item.origin_ref,
        "mail_from": item.envelope_from,
        "rcpt_to": list(item.envelope_to),
        "size": len(item.raw),
        "duplicate": stored.duplicate,
    }


@dataclass
class Pipeline:
    sessions: sessionmaker[Session]
    policies: PolicyBook
    identity: Identity
    templates: jinja2.Environment
    number_format: str
    retry: RetryPolicy
    clock: Clock
    thread: ThreadContext
    reopen_window: timedelta
    outbox: Outbox  # the one enqueue path: our sender, the budget, signed Message-IDs
    directory: DirectoryCache = field(default_factory=DirectoryCache)
    dkim: DkimVerifier | None = None  # intake.verify_dkim: verify signatures ourselves
    flood: FloodSettings = field(default_factory=FloodSettings)  # inbound limits per sender
    # COMMIT 2's group commit (intake.commit_group: messages per write transaction at most).
    commits: CommitGroup[Read, Outcome] = field(default_factory=CommitGroup)
    # The length of the last ticket number given: a draft's placeholder has it (Drafting).
    _number_length: int | None = None

    def ingest(self, items: Sequence[repo.NewInbound]) -> list[repo.Stored]:
        """COMMIT 1 for a group of messages (one fsync for all of them)."""
        try:
            # A writer: on SQLite through the write gate, which COMMIT 2 takes too (store.db).
            with session_scope(self.sessions, write=True) as session:
                return repo.store_inbounds(session, items)
        except Exception as exc:
            reason = driver_reason(exc)  # never the SQL's values: they are the message
            raise StoreError(f"could not store inbound message: {reason}") from exc

    def process(self, inbound_id: int, reader: Reader | None = None) -> Outcome:
        """COMMIT 2 for one stored message; failures are counted, never raised.

        ``reader`` parses and assesses it (``intake.pipeline.isolation``): the daemon's
        worker processes under the time budget, else in this thread. A message over the
        budget is quarantined at once: the same bytes would take as long again.
        """
        log = structlog.get_logger("intake.pipeline").bind(inbound_id=inbound_id)
        try:
            outcome = self._process(
                inbound_id, reader or InlineReader(self.policies, self.identity)
            )
        except BudgetExceededError as exc:
            log.warning("message.over_budget", error=str(exc))
            outcome = self._record_failure(inbound_id, f"BudgetExceededError: {exc}", final=True)
        except IntegrityError as exc:
            outcome = self._after_integrity_error(inbound_id, exc)
        except Exception as exc:
            # Error lines carry ids, the type and where it was raised (issue 13 item 7): the
            # text of an arbitrary exception may quote the message (a subject in a
            # UnicodeEncodeError, a field value in a ValueError). DEBUG adds the traceback.
            reason = failure_reason(exc)
            log.error("message.failed", error=reason, where=raised_at(exc))
            log.debug("message.failed_detail", exc_info=exc)
            outcome = self._record_failure(inbound_id, f"{type(exc).__name__}: {exc}", reason)
        return outcome

    def _after_integrity_error(self, inbound_id: int, exc: IntegrityError) -> Outcome:
        """A unique constraint refused COMMIT 2: a race lost, or a clash that stays.

        Another worker finishing the same message first (one ticket per inbound row) is
        the harmless case, and then the row reads processed or ignored. Anything else is
        a failed attempt like any other, so a deterministic clash ends in quarantine.
        """
        error = f"IntegrityError: {driver_reason(exc)}"
        log = structlog.get_logger("intake.pipeline").bind(inbound_id=inbound_id)
        if self._finished(inbound_id):
            log.info("message.already_done", error=error)
            return Outcome(inbound_id, Result.ALREADY_DONE)
        log.warning("message.failed", error=error)
        return self._record_failure(inbound_id, error)

    def _finished(self, inbound_id: int) -> bool:
        try:
            with session_scope(self.sessions) as session:
                row = repo.get_inbound(session, inbound_id)
                return row is not None and row.status in FINISHED
        except Exception:  # the store is down: _record_failure says so and retries later
            return False

    def _process(self, inbound_id: int, reader: Reader) -> Outcome:
        read = self._read(inbound_id, reader)
        if isinstance(read, Outcome):
            return read
        # Written with whatever other messages finished reading meanwhile (one commit).
        return self.commits.run(read, self._write_group)

    def _read(self, inbound_id: int, reader: Reader) -> Read | Outcome:
        """COMMIT 2's first half, holding no lock: the row, its directory, the reading."""
        now = self.clock()
        # Read first, holding no lock: parsing may take up to the whole budget, and on
        # SQLite the write transaction below holds the one lock COMMIT 1 needs too.
        # The row is read here once (its raw bytes, envelope, key); the write transaction
        # re-reads only its status, under the lock.
        with session_scope(self.sessions) as session:
            row = repo.read_pending(session, inbound_id)
            if row is None:
                return Outcome(inbound_id, Result.MISSING)
            if row.status not in (InboundStatus.RECEIVED, InboundStatus.FAILED):
                return Outcome(inbound_id, Result.ALREADY_DONE, classification=row.classification)
            directory = self.directory.load(session, row.directory_version)
        # Deadlines run from when *we* received it.
        # DKIM needs DNS, so it runs here; the budgeted read gets its verified domains.
        verified = tuple(self.dkim.verified_domains(row.raw) if self.dkim else ())
        reading = reader(
            row.raw, row.envelope_from, row.received_at, directory, verified, self._drafting()
        )
        return Read(
            row,
            reading.assessment,
            reading.report,
            directory,
            now,
            verified,
            reading.draft,
            reading.document,
        )

    def _drafting(self) -> Drafting:
        """How the reading drafts a confirmation, outside the write lock (issue 11)."""
        length = self._number_length or len(self.number_format.format(1))
        return Drafting(self.outbox.sender, template_directory(self.templates), length)

    def _write_group(self, group: Sequence[Entry[Read, Outcome]]) -> None:
        """The second half for a group of read messages: one write transaction.

        Alone, a message is written as it always was. In a group each is written under a
        SAVEPOINT of its own, so one that raises is rolled back alone and its thread gets
        its exception; the others commit. Every answer and log line comes after the commit.
        """
        written: list[tuple[Entry[Read, Outcome], Outcome, Callable[[], None] | None]] = []
        with session_scope(self.sessions, write=True) as session:
            if len(group) == 1:
                written.append((group[0], *self._write(session, group[0].item)))
            else:
                for entry in group:
                    try:
                        with session.begin_nested():
                            done = self._write(session, entry.item)
                    except Exception as exc:  # this message's failure, not its neighbours'
                        entry.fail(exc)
                    else:
                        written.append((entry, *done))
                    finally:
                        # Each message starts from an empty identity map, as in a session of
                        # its own: a rolled-back savepoint leaves the tickets it attached
                        # there (store.repository.add_ticket), holding ids it no longer has.
                        session.expunge_all()
        for entry, outcome, log in written:
            if log is not None:
                log()
            entry.answer(outcome)

    def _write(self, session: Session, read: Read) -> tuple[Outcome, Callable[[], None] | None]:
        """One message's writes in ``session``: its outcome, and its log line to say once
        the transaction commits (None: nothing was written)."""
        row = read.row
        # Another worker may have finished it while we read: decided under the lock.
        state = repo.lock_pending(session, row.id)
        if state is None:
            return Outcome(row.id, Result.MISSING), None
        if state[0] not in (InboundStatus.RECEIVED, InboundStatus.FAILED):
            return Outcome(row.id, Result.ALREADY_DONE, classification=state[1]), None
        work = Work(session, read)
        thread = self._thread(work)
        applied = self.apply(self._decide(work, thread), work)
        outcome, changes = self._record(session, row, read.assessment, applied, read.now)
        return outcome, partial(self._log_processed, row, read.assessment, outcome, thread, changes)

    def _decide(self, work: Work, thread: Threading) -> Decision:
        match = thread.match
        # Locked before it is read: the decision and the follow-up's merge of fields see
        # the ticket as it is, not as another instance's concurrent COMMIT 2 leaves it.
        ticket = repo.lock_ticket(work.session, match.ticket_id) if match else None
        state = TicketState.of(ticket) if ticket else None
        decision = decide(
            work.read.assessment, thread, state, now=work.read.now, reopen_window=self.reopen_window
        )
        sender = Sender.of(work.read.assessment.message.from_address)
        if not opens_ticket(decision) or sender is None:
            return decision
        # Counted and locked in this transaction, which then opens the ticket or not.
        verdict = check_flood(work.session, sender, work.read.now, self.flood)
        return (
            decision if verdict is None else Flood(verdict.ticket_id, verdict.key, verdict.reason)
        )

    @staticmethod
    def _record(
        session: Session,
        row: repo.PendingInbound,
        assessment: Assessment,
        applied: Applied,
        now: datetime,
    ) -> tuple[Outcome, dict[str, Any]]:
        """What the inbound row keeps of COMMIT 2 (``tickets show`` prints it), and the
        change record written (for the log line)."""
        classification = assessment.verdict.kind.value
        changes = applied.changes.to_json()  # the one place the JSON is written
        ticket = applied.ticket
        repo.finish_inbound(
            session,
            row.id,
            status=applied.status,
            outcome=applied.result,
            classification=classification,
            processed_at=now,
            sender=assessment.message.from_address,
            sender_trust=assessment.trust.value,
            changes=changes,
            ticket_id=ticket.id if ticket else None,
        )
        number = ticket.number if ticket else None
        outcome = Outcome(
            row.id, applied.result, number, classification, applied.flood, applied.reflection
        )
        return outcome, changes

    def _thread(self, work: Work) -> Threading:
        report = work.read.report
        returned = [*report.references, report.original_message_id or ""] if report else []
        return find_thread(
            work.session,
            work.read.assessment.message,
            self.thread,
            work.read.directory,
            [i for i in returned if i],
        )

    def apply(self, decision: Decision, work: Work) -> Applied:  # noqa: PLR0911 - a return per route
        """Perform the writes of the chosen route, and nothing else (COMMIT 2)."""
        session = work.session
        match decision:
            case MachineOnTicket(ticket_id=ticket_id):
                ticket = session.get_one(Ticket, ticket_id)
                return Applied(
                    InboundStatus.IGNORED, Result.MACHINE_ON_TICKET, ticket, self._machine(work)
                )
            case IgnoreMachine():
                return Applied(InboundStatus.IGNORED, Result.IGNORED, None, self._machine(work))
            case StaffReply() | StaffClaim():
                return self._staff(decision, work)
            case FollowUp(ticket_id=ticket_id):
                return self._follow_up(work, repo.lock_ticket(session, ticket_id))
            case ReopenAsNew(parent_id=parent_id):
                return self._new_ticket(work, session.get_one(Ticket, parent_id))
            case NewTicket(linked_id=linked_id):
                return self._new_ticket(work, None, linked_id)
            case Flood():
                return self._flood(work, decision)
            case _:
                assert_never(decision)

    @staticmethod
    def _staff(decision: StaffReply | StaffClaim, work: Work) -> Applied:
        ticket = repo.lock_ticket(work.session, decision.ticket_id)  # read-modify-write
        if isinstance(decision, StaffClaim):  # issue 13: a claim, never the response
            apply_staff_claim(ticket, work.read.assessment, work.read.now)
            return Applied(InboundStatus.PROCESSED, Result.STAFF_CLAIM, ticket, ChangeRecord())
        changes = ChangeRecord(apply_staff_reply(ticket, work.read.now))
        return Applied(InboundStatus.PROCESSED, Result.STAFF_REPLY, ticket, changes)

    def _new_ticket(self, work: Work, parent: Ticket | None, linked: int | None = None) -> Applied:
        ticket, enqueued = self._open_ticket(work.session, work.read, parent, linked)
        changes = ChangeRecord().with_suppressed(enqueued.suppressed if enqueued else {})
        reflection = enqueued.reflection if enqueued else None
        return Applied(
            InboundStatus.PROCESSED, Result.TICKET_CREATED, ticket, changes, reflection=reflection
        )

    def _flood(self, work: Work, flood: Flood) -> Applied:
        """Kept on the sender's latest ticket as a ``flood`` message: no ticket, no charge,
        no reply, no field merged; staff are told once per keeping ticket and clock hour."""
        ticket = work.session.get_one(Ticket, flood.ticket_id) if flood.ticket_id else None
        if ticket is not None:
            self._notify_flood(work, ticket, FloodVerdict(flood.key, flood.reason, ticket.id))
        changes = ChangeRecord(FloodChanges(flood.reason))
        scope = flood.key.partition(":")[0]  # address:… or domain:…
        return Applied(InboundStatus.IGNORED, Result.FLOOD, ticket, changes, flood=scope)

    def _notify_flood(self, work: Work, ticket: Ticket, verdict: FloodVerdict) -> None:
        log = structlog.get_logger("intake.pipeline")
        staff, number = self.flood.notify, ticket.number or ""
        since = window_start(work.read.now)
        kind = ReplyKind.FLOOD_NOTICE
        # The first flood message kept on this ticket this hour tells; the id is stable per
        # ticket and hour, so a retry after a crash (or a race lost) finds it queued.
        message_id = self.outbox.notice_id(number, kind, since)
        if repo.has_flood_since(work.session, ticket.id, since) or repo.outbox_message_exists(
            work.session, message_id
        ):
            return
        log.warning(
            "flood.limited",
            ticket=number,
            sender=verdict.key,
            reason=verdict.reason,
            notified=list(staff),
        )
        if not staff:
            return  # no staff address configured: the log line is the notice
        notice = render_ticket_notice(
            self.templates,
            "flood_notice",
            ticket=TicketRef(
                number, ticket.subject, ticket.requester_email or "", ticket.message_id
            ),
            recipients=staff,
            message_id=message_id,
            sender=self.outbox.sender,
            now=work.read.now,
            context={"sender": verdict.key, "reason": verdict.reason, "since": since},
        )
        self.outbox.enqueue(work.session, notice, kind, ticket_id=ticket.id, now=work.read.now)

    def _follow_up(self, work: Work, ticket: Ticket) -> Applied:
        assessment = self._under_ticket_policy(work, ticket)
        effect = apply_follow_up(ticket, assessment, work.read.now)
        # What the customer added, never the quoted history (our own confirmation).
        full_text.add_follow_up(work.session, ticket.id, assessment.message.new_text)
        suppressed = self._acknowledge(
            work.session, work.read.row, assessment, ticket, work.read.now, effect.supplied
        )
        changes = ChangeRecord(effect).with_suppressed(suppressed)
        return Applied(InboundStatus.PROCESSED, Result.FOLLOW_UP, ticket, changes)

    def _under_ticket_policy(self, work: Work, ticket: Ticket) -> Assessment:
        """The follow-up read under the policy its ticket was opened under.

        Its fields are compared with the ticket's missing list, which that policy wrote;
        the customer's directory entry may point at another policy by now.
        """
        policy = self.policies.by_name(ticket.policy_name)
        if (policy.name, policy.version) != (ticket.policy_name, ticket.policy_version):
            structlog.get_logger("intake.pipeline").warning(
                "followup.policy_changed",
                ticket=ticket.number,
                recorded=f"{ticket.policy_name} {ticket.policy_version}",
                current=f"{policy.name} {policy.version}",
            )
        first = work.read.assessment
        if policy is first.policy:
            return first
        row = work.read.row
        return assess(
            first.message,
            row.envelope_from,
            self.policies,
            self.identity,
            row.received_at,
            work.read.directory,
            under=policy,
            dkim_verified=work.read.verified,
        )

    def _machine(self, work: Work) -> ChangeRecord:
        """Machine mail is recorded, never answered (RFC 3834 §2); a DSN marks bouncers."""
        bounced: list[Bounce] = []
        never_written_to: list[str] = []
        for recipient in work.read.report.recipients if work.read.report else ():
            if recipient.action not in ("failed", "delayed"):
                continue
            if repo.count_recent_replies(work.session, recipient.address, EPOCH) == 0:
                never_written_to.append(recipient.address)
                continue  # a bounce for mail we never sent: note it, change nothing
            repo.record_bounce(
                work.session,
                recipient.address,
                recipient.status,
                recipient.permanent,
                work.read.now,
                self.outbox.budget.bounce_suppression,
            )
            bounced.append(Bounce(recipient.address, recipient.status, recipient.permanent))
        reason = work.read.assessment.verdict.reason
        return ChangeRecord(MachineChanges(reason, tuple(bounced), tuple(never_written_to)))

    def _acknowledge(
        self,
        session: Session,
        row: repo.PendingInbound,
        assessment: Assessment,
        ticket: Ticket,
        now: datetime,
        supplied: Sequence[str],
    ) -> Mapping[str, str]:
        """Answer a follow-up that said something new; returns suppressed recipients."""
        if not assessment.reply_address or not assessment.message.new_text.strip():
            return {}  # nothing new was said: no answer, so two robots cannot ping-pong
        number = ticket.number or ""
        policy = self.policies.by_name(ticket.policy_name)
        reply = render_acknowledgement(
            self.templates,
            assessment,
            number=number,
            message_id=self.outbox.reply_id(number, ReplyKind.ACKNOWLEDGEMENT, row.idempotency_key),
            sender=self.outbox.sender,
            now=now,
            supplied=[policy.field_label(f) for f in supplied],
            still_missing=[policy.field_label(f) for f in ticket.missing_fields],
        )
        return self._queue(session, reply, ReplyKind.ACKNOWLEDGEMENT, ticket.id, row, now)

    def _open_ticket(
        self, session: Session, read: Read, parent: Ticket | None = None, linked: int | None = None
    ) -> tuple[Ticket, Enqueued | None]:
        row, assessment, now = read.row, read.assessment, read.now
        message, subject, policy = assessment.message, assessment.subject, assessment.policy
        known = assessment.customer.customer.name if assessment.customer else None
        waiting = bool(assessment.missing_fields) and policy.auto_close is not None
        sender = Sender.of(message.from_address)
        ticket = repo.add_ticket(
            session,
            Ticket(
                subject=message.subject,
                customer=known or subject.customer,
                location=subject.location,
                issue=subject.issue,
                priority=assessment.priority,
                fields=dict(assessment.fields),
                findings=[f.as_dict() for f in assessment.findings],
                missing_fields=list(assessment.missing_fields),
                requester_email=message.from_address,
                requester_name=message.from_name,
                requester_key=sender.address if sender else None,
                requester_domain=sender.domain if sender else None,
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
                linked_ticket_id=linked,
                created_at=now,
                updated_at=now,
            ),
            self.number_format,
        )
        # Findable by its words in the same transaction (COMMIT 2) as it is on the board.
        ticket_text = read.document or full_text.ticket_document(message.subject, message.body_text)
        full_text.index_ticket(session, ticket.id, ticket_text)
        number = ticket.number or ""
        self._number_length = len(number)
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
        if not assessment.reply_address:
            return ticket, None
        return ticket, self._queue_confirmation(session, read, ticket.id, number)

    def _queue_confirmation(
        self, session: Session, read: Read, ticket_id: int, number: str
    ) -> Enqueued:
        row, assessment, now = read.row, read.assessment, read.now
        reply = render_confirmation(
            self.templates,
            assessment,
            number=number,
            message_id=self.outbox.reply_id(number, ReplyKind.CONFIRMATION, row.idempotency_key),
            sender=self.outbox.sender,
            now=now,
            draft=read.draft,
        )
        # Confirmations alone are capped per source (the reflection channel, issue 13):
        # acknowledgements answer follow-ups, which passed the participant rule.
        return self.outbox.enqueue(
            session,
            reply,
            ReplyKind.CONFIRMATION,
            ticket_id=ticket_id,
            now=now,
            inbound_id=row.id,
            source=self._source(row, assessment),
        )

    def _source(self, row: repo.PendingInbound, assessment: Assessment) -> Source:
        """Where the mail came from as the reflection caps count it: the SMTP peer unless
        exempt (the MTA in front), the From domain unless the flood limits spare it."""
        sender = Sender.of(assessment.message.from_address)
        domain = sender.domain if sender else None
        return Source(
            self.outbox.reflection.counts_ip(row.peer_ip),
            domain if domain not in self.flood.unlimited_domains else None,
        )

    def _queue(
        self,
        session: Session,
        reply: RenderedReply,
        kind: ReplyKind,
        ticket_id: int,
        inbound: repo.PendingInbound,
        now: datetime,
    ) -> Mapping[str, str]:
        """Queue an automatic reply through the one enqueue path (budget, RFC 3834 §2).

        Returns the recipients suppressed and why, for the inbound row's change record.
        """
        enqueued = self.outbox.enqueue(
            session, reply, kind, ticket_id=ticket_id, now=now, inbound_id=inbound.id
        )
        return enqueued.suppressed

    def _record_failure(
        self, inbound_id: int, error: str, logged: str | None = None, *, final: bool = False
    ) -> Outcome:
        """Count a failed attempt; ``error`` is kept on the row, ``logged`` (default
        ``error``) is what the log line may say of it; ``final`` quarantines it now (no
        retry can succeed)."""
        now = self.clock()
        log = structlog.get_logger("intake.pipeline")
        try:
            with session_scope(self.sessions) as session:
                current = repo.get_inbound(session, inbound_id, lock=True)
                attempts = (current.attempts if current else 0) + 1
                next_at = None if final else self.retry.next_attempt(attempts, now)
                row = repo.record_failure(session, inbound_id, error, next_at)
                status, message_id = row.status, row.message_id
        except Exception as exc:  # the store itself is down: the sweeper retries later
            log.error(
                "message.failure_not_recorded", inbound_id=inbound_id, error=failure_reason(exc)
            )
            return Outcome(inbound_id, Result.FAILED)
        if status not in (InboundStatus.FAILED, InboundStatus.QUARANTINED):
            return Outcome(inbound_id, Result.ALREADY_DONE)  # another worker finished it
        quarantined = status == InboundStatus.QUARANTINED
        result = Result.QUARANTINED if quarantined else Result.FAILED
        log.warning(
            "message.processed",
            inbound_id=inbound_id,
            message_id=message_id,
            outcome=result.value,
            attempts=attempts,
            error=logged or error,
        )
        return Outcome(inbound_id, result)

    def _log_processed(
        self,
        row: repo.PendingInbound,
        assessment: Assessment,
        outcome: Outcome,
        thread: Threading,
        changes: Mapping[str, object],
    ) -> None:
        """The one canonical line per message that operators follow."""
        created = outcome.result is Result.TICKET_CREATED
        charge = assessment.charges[0] if created and assessment.charges else None
        structlog.get_logger("intake.pipeline").info(
            "message.processed",
            inbound_id=row.id,
            message_id=row.message_id,
            origin=row.origin,
            classification=outcome.classification,
            reason=assessment.verdict.reason,
            sender_trust=assessment.trust.value,
            ticket=outcome.ticket_number,
            outcome=outcome.result.value,
            thread=thread.match.evidence if thread.match else None,
            thread_rejected=list(thread.rejected) or None,
            linked_ticket=thread.linked,
            priority=assessment.priority if created else None,
            missing_fields=list(assessment.missing_fields) if created else [],
            changes=changes or None,
            charge=f"{charge.amount} {charge.currency}" if charge else None,
            # Which checks found something, and which did not (Mailman's rule hits/misses).
            checks_hit=list(assessment.checks_hit),
            checks_missed=list(assessment.checks_missed),
        )
