"""Repository functions: every query and write the daemon makes, over a given session.

They never commit (``session_scope`` does) and keep the invariants that need the
database: idempotent inbound inserts, ticket numbers from the ticket's own identity,
a charge ledger keyed against duplicates, and what several instances on one database
need: outbox claims made at once (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), owned and
renewed, whose outcome only the owner records; ticket rows locked for read-modify-write
(``lock_ticket``); the reply budget locked per recipient (``lock_recipients``) and the
inbound flood limits per sender address and domain (``lock_senders``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    LargeBinary,
    Select,
    bindparam,
    case,
    distinct,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, defer, make_transient_to_detached, selectinload

from parsing import address_key
from store import search as full_text
from store.models import (
    AppSecret,
    ChargeRow,
    Customer,
    DirectoryVersion,
    InboundMessage,
    InboundStatus,
    MailboxState,
    OutboxMessage,
    OutboxRecipient,
    OutboxStatus,
    RecipientState,
    Ticket,
    TicketEvent,
    TicketStatus,
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
    peer_ip: str | None = None  # the SMTP client's address; None for IMAP and pipe


@dataclass(frozen=True, slots=True)
class Stored:
    inbound_id: int
    duplicate: bool  # the same message (same key) was already stored


def _insert_for(session: Session) -> Any:
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


def store_inbound(session: Session, item: NewInbound) -> Stored:
    """Insert once per idempotency key; a re-delivery returns the existing row."""
    return store_inbounds(session, [item])[0]


@functools.cache
def _inbound_insert(dialect: str) -> Any:
    """The COMMIT 1 insert, built once per dialect and executed with each batch's rows.

    ``ON CONFLICT DO NOTHING`` keeps the first copy of a key (invariant 2); ``RETURNING``
    names the rows that were new. One statement executed with many parameter sets is
    SQLAlchemy's "insertmanyvalues": a few multi-row INSERTs, not one per message, and no
    statement construction or cache keying per message (that was most of COMMIT 1's CPU).
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(InboundMessage)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(InboundMessage.id, InboundMessage.idempotency_key)
    )


def _inbound_values(item: NewInbound) -> dict[str, Any]:
    return {
        "idempotency_key": item.idempotency_key,
        "message_id": item.message_id,
        "origin": item.origin,
        "origin_ref": item.origin_ref,
        "peer_ip": item.peer_ip,
        "envelope_from": item.envelope_from,
        "envelope_to": list(item.envelope_to),
        "raw": item.raw,
        "size": len(item.raw),
        "received_at": item.received_at,
        "status": InboundStatus.RECEIVED,
        "attempts": 0,
    }


def store_inbounds(session: Session, items: Sequence[NewInbound]) -> list[Stored]:
    """``store_inbound`` for a batch, in order: one insert for all, one select for repeats.

    As if stored one by one: the first item of a key not yet stored is new; a later item
    with the same key (in the batch or before it) is a duplicate of that row.
    """
    if not items:
        return []
    connection = session.connection()  # Core: the ORM would read the rows as a bulk insert
    statement = _inbound_insert(connection.dialect.name)
    rows = connection.execute(statement, [_inbound_values(item) for item in items])
    new = {key: row_id for row_id, key in rows}
    repeated = {item.idempotency_key for item in items} - new.keys()
    existing = _inbound_ids(session, repeated) if repeated else {}
    stored = []
    for item in items:
        key = item.idempotency_key
        if key in new:
            stored.append(Stored(new.pop(key), duplicate=False))
            existing[key] = stored[-1].inbound_id
        else:
            stored.append(Stored(existing[key], duplicate=True))
    return stored


def _inbound_ids(session: Session, keys: Collection[str]) -> dict[str, int]:
    statement = select(InboundMessage.idempotency_key, InboundMessage.id).where(
        InboundMessage.idempotency_key.in_(sorted(keys))
    )
    return dict(session.execute(statement).all())


def ping(session: Session) -> None:
    """One round trip; raises when the database does not answer."""
    session.execute(text("SELECT 1"))


def get_inbound(session: Session, inbound_id: int, *, lock: bool = False) -> InboundMessage | None:
    """``lock``: hold the row (SELECT … FOR UPDATE on PostgreSQL) so two workers of two
    instances cannot process the same message at once; SQLite serialises writers anyway."""
    return session.get(InboundMessage, inbound_id, with_for_update=lock or None)


@dataclass(frozen=True, slots=True)
class PendingInbound:
    """One stored message as COMMIT 2 reads it: read once, by one Core SELECT.

    The ORM row (``get_inbound``) costs an identity-map entry, a flush of what changes and,
    read twice (outside and inside the write transaction), two loads of the raw bytes;
    processing needs these columns and writes its result back with ``finish_inbound``.
    """

    id: int
    status: str
    classification: str | None
    idempotency_key: str
    message_id: str
    origin: str
    envelope_from: str | None
    peer_ip: str | None
    received_at: datetime
    raw: bytes
    # The customer directory's version as this same SELECT saw it (0 before the first
    # import bumps it): the processing cache's check rides along, no statement of its own.
    directory_version: int


_PENDING_COLUMNS = (
    InboundMessage.id, InboundMessage.status, InboundMessage.classification,
    InboundMessage.idempotency_key, InboundMessage.message_id, InboundMessage.origin,
    InboundMessage.envelope_from, InboundMessage.peer_ip, InboundMessage.received_at,
    InboundMessage.raw,
)  # fmt: skip
_DIRECTORY_VERSION = func.coalesce(
    select(DirectoryVersion.version).where(DirectoryVersion.id == 1).scalar_subquery(), 0
)
_PENDING = select(*_PENDING_COLUMNS, _DIRECTORY_VERSION.label("directory_version")).where(
    InboundMessage.id == bindparam("inbound_id")
)
# Only the status and classification, under the row lock (SELECT … FOR UPDATE on
# PostgreSQL): whether another worker finished the message while we read it.
_PENDING_STATE = (
    select(InboundMessage.status, InboundMessage.classification)
    .where(InboundMessage.id == bindparam("inbound_id"))
    .with_for_update()
)
_FINISH = (
    update(InboundMessage)
    .where(InboundMessage.id == bindparam("inbound_id"))
    .values(
        {
            name: bindparam(name)
            for name in (
                "status", "outcome", "classification", "processed_at", "sender",
                "sender_trust", "changes", "ticket_id",
            )
        }
    )
)  # fmt: skip


def read_pending(session: Session, inbound_id: int) -> PendingInbound | None:
    """The stored message COMMIT 2 works on, without a lock (parsing holds none)."""
    found = session.connection().execute(_PENDING, {"inbound_id": inbound_id}).first()
    return None if found is None else PendingInbound(**found._asdict())


def lock_pending(session: Session, inbound_id: int) -> tuple[str, str | None] | None:
    """The message's (status, classification), its row held until the transaction ends
    so two workers of two instances cannot process it at once; SQLite serialises writers
    anyway (``session_scope(write=True)``). None: the row is gone."""
    found = session.connection().execute(_PENDING_STATE, {"inbound_id": inbound_id}).first()
    return None if found is None else (found[0], found[1])


def finish_inbound(session: Session, inbound_id: int, **values: Any) -> None:
    """Write what COMMIT 2 keeps on the inbound row (status, outcome, changes, ticket, …);
    every column of ``_FINISH`` must be given."""
    session.connection().execute(_FINISH, {"inbound_id": inbound_id, **values})


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
    """Count a failed attempt; ``next_attempt_at=None`` quarantines the message.

    A message another worker finished meanwhile keeps its status: a late failure of a
    losing worker must not send a processed message round again.
    """
    row = session.get_one(InboundMessage, inbound_id, with_for_update=True)
    if row.status not in (InboundStatus.RECEIVED, InboundStatus.FAILED):
        return row
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


def list_inbound_heads(
    session: Session, status: str, head_bytes: int, limit: int = 100
) -> list[tuple[InboundMessage, bytes]]:
    """``list_inbound`` without the raw bytes, each row with the first ``head_bytes`` of its
    message (where its header section is): a quarantined message may be 25 MB, a page of
    them must not be read whole. ``substr`` counts bytes on a BLOB (SQLite) and a bytea
    (PostgreSQL) alike."""
    head = func.substr(InboundMessage.raw, 1, head_bytes, type_=LargeBinary)
    statement = (
        select(InboundMessage, head)
        .options(defer(InboundMessage.raw))
        .where(InboundMessage.status == status)
        .order_by(InboundMessage.id)
        .limit(limit)
    )
    return [(row, bytes(part or b"")) for row, part in session.execute(statement).all()]


def inbound_head(
    session: Session, inbound_id: int, head_bytes: int
) -> tuple[InboundMessage, bytes] | None:
    """One stored message without its raw bytes, with their first ``head_bytes``."""
    head = func.substr(InboundMessage.raw, 1, head_bytes, type_=LargeBinary)
    statement = (
        select(InboundMessage, head)
        .options(defer(InboundMessage.raw))
        .where(InboundMessage.id == inbound_id)
    )
    found = session.execute(statement).one_or_none()
    return None if found is None else (found[0], bytes(found[1] or b""))


def requeue_inbound(session: Session, inbound_id: int) -> bool:
    """Give a quarantined or failed message a fresh set of attempts."""
    row = session.get(InboundMessage, inbound_id)
    if row is None or row.status not in (InboundStatus.QUARANTINED, InboundStatus.FAILED):
        return False
    row.status = InboundStatus.RECEIVED
    row.attempts = 0
    row.next_attempt_at = None
    return True


def oldest_waiting(
    session: Session, mailboxes: Sequence[str], origins: Sequence[str] = ("smtp", "pipe")
) -> datetime | None:
    """Since when the longest-waiting message one instance can take has waited.

    An instance takes the mail of its own edges: every ``origins`` row, and the IMAP rows
    of ``mailboxes`` (their origin_ref starts ``mailbox/``). A received row waits since it
    was stored, a failed one since its retry fell due.
    """
    theirs = [
        (InboundMessage.origin == "imap")
        & InboundMessage.origin_ref.startswith(f"{name}/", autoescape=True)
        for name in mailboxes
    ]
    since = func.coalesce(InboundMessage.next_attempt_at, InboundMessage.received_at)
    statement = select(func.min(since)).where(
        InboundMessage.status.in_([InboundStatus.RECEIVED, InboundStatus.FAILED]),
        or_(InboundMessage.origin.in_(origins), *theirs),
    )
    return session.execute(statement).scalar_one_or_none()


def count_inbound_by_status(session: Session) -> dict[str, int]:
    statement = select(InboundMessage.status, func.count()).group_by(InboundMessage.status)
    return dict(session.execute(statement).all())


def count_outbox_by_status(session: Session) -> dict[str, int]:
    """Replies per status; a queued reply that has failed before counts as ``failed``."""
    retrying = (OutboxMessage.status == OutboxStatus.QUEUED) & (OutboxMessage.attempts > 0)
    status = case((retrying, "failed"), else_=OutboxMessage.status)
    statement = select(status, func.count()).group_by(status)
    return dict(session.execute(statement).all())


def charge_totals(session: Session) -> list[tuple[str, str, str, int, Decimal]]:
    """``(kind, status, currency, count, amount)`` over the whole ledger."""
    statement = select(
        ChargeRow.kind,
        ChargeRow.status,
        ChargeRow.currency,
        func.count(),
        func.sum(ChargeRow.amount),
    ).group_by(ChargeRow.kind, ChargeRow.status, ChargeRow.currency)
    return [(k, s, c, n, Decimal(a or 0)) for k, s, c, n, a in session.execute(statement).all()]


def add_ticket(session: Session, ticket: Ticket, number_format: str) -> Ticket:
    """Persist a ticket; its number derives from its database identity (unique, never reused).

    Two Core statements on the session's connection (same transaction): the INSERT with
    the attributes that were set (column defaults fill the rest) returning the id, then
    the number. The ORM's two flushes of one new row were most of the store's share of a
    ticket's CPU (issue 11). The ticket then joins the session as a loaded row
    (``make_transient_to_detached``), so callers read and change it as before; a column
    left to its default is loaded if read.
    """
    values = {key: value for key, value in inspect(ticket).dict.items() if key in _TICKET_KEYS}
    connection = session.connection()
    ticket.id = connection.execute(_TICKET_INSERT, values).scalar_one()
    ticket.number = number_format.format(ticket.id)
    connection.execute(_TICKET_NUMBER, {"ticket_id": ticket.id, "number": ticket.number})
    make_transient_to_detached(ticket)
    session.add(ticket)
    return ticket


_TICKET_KEYS = frozenset(inspect(Ticket).columns.keys()) - {"id", "number"}
_TICKET_INSERT = insert(Ticket).returning(Ticket.id)
_TICKET_NUMBER = (
    update(Ticket).where(Ticket.id == bindparam("ticket_id")).values(number=bindparam("number"))
)


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
    reverses_id: int | None = None,
) -> bool:
    """Write one ledger line unless ``ledger_key`` already has one. True when written."""
    values = {
        "ledger_key": ledger_key,
        "ticket_id": ticket_id,
        "kind": kind,
        "amount": amount,
        "currency": currency,
        "reason": reason,
        "status": status,
        "created_at": now,
        "reverses_id": reverses_id,
    }
    statement = _charge_insert(session.get_bind().dialect.name)
    # On the session's connection: a Core statement needs none of the ORM's execute path.
    return session.connection().execute(statement, values).scalar_one_or_none() is not None


@functools.lru_cache(maxsize=4)
def _charge_insert(dialect: str) -> Any:
    """``add_charge``'s INSERT … ON CONFLICT DO NOTHING, built once per dialect with bound
    values: building and cache-keying it per charge was measurable per ticket (issue 11)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = (
        "ledger_key", "ticket_id", "kind", "amount", "currency", "reason", "status",
        "created_at", "reverses_id",
    )  # fmt: skip
    return (
        insert(ChargeRow)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["ledger_key"])
        .returning(ChargeRow.id)
    )


def ticket_id_by_message_ids(session: Session, message_ids: Sequence[str]) -> int | None:
    """The ticket of the newest message with one of these Message-IDs: ours, then theirs.

    Our replies are searched first: a Message-ID we generated is better evidence than one
    a customer's client chose (RFC 5322 §3.6.4 only asks it to be unique).
    """
    if not message_ids:
        return None
    for model in (OutboxMessage, InboundMessage):
        found = session.execute(
            select(model.ticket_id)
            .where(model.message_id.in_(message_ids))
            .where(model.ticket_id.is_not(None))
            .order_by(model.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if found is not None:
            return found
    return None


def inbound_for_ticket(session: Session, ticket_id: int) -> list[InboundMessage]:
    """Every stored message on a ticket, in insertion order."""
    statement = (
        select(InboundMessage)
        .where(InboundMessage.ticket_id == ticket_id)
        .order_by(InboundMessage.id)  # PostgreSQL returns an updated row last without it
    )
    return list(session.execute(statement).scalars())


def outbox_for_ticket(session: Session, ticket_id: int) -> list[OutboxMessage]:
    """Every reply we queued on a ticket, whatever its status, in insertion order."""
    statement = (
        select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id).order_by(OutboxMessage.id)
    )
    return list(session.execute(statement).scalars())


def lock_ticket(session: Session, ticket_id: int) -> Ticket:
    """The ticket re-read and locked (``SELECT … FOR UPDATE`` on PostgreSQL) for COMMIT 2.

    A follow-up or staff reply reads the ticket and writes it back (fields merged, missing
    list shortened): two instances doing that at once would each lose the other's change.
    The lock holds until the transaction ends; SQLite has its one write lock already
    (``session_scope(write=True)``). ``populate_existing``: a copy the session loaded
    before the lock (threading looks tickets up) is refreshed, never trusted.
    """
    statement = (
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.execute(statement).scalar_one()


def ticket_by_number(session: Session, number: str) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.number == number)).scalar_one_or_none()


def list_tickets(
    session: Session,
    *,
    status: str | None = None,
    priority: int | None = None,
    customer: str | None = None,
    customers: Sequence[str] | None = None,
    due_before: datetime | None = None,
    breached_at: datetime | None = None,
    search: str | None = None,
    limit: int | None = 100,
) -> list[Ticket]:
    """Newest first. ``breached_at``: only tickets whose response target was missed by then.
    ``search``: only tickets whose subject and mail have every term (``store.search``).

    ``customer``: equal ignoring case; ``customers``: the stored names to keep (the caller
    matched them as the directory does, ``intake.web.board.matching_customers``); empty
    keeps none. ``limit`` None: every match (the caller sorts).
    """
    statement = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
    if status:
        statement = statement.where(Ticket.status == status)
    if priority is not None:
        statement = statement.where(Ticket.priority == priority)
    if customer:
        statement = statement.where(func.lower(Ticket.customer) == customer.lower())
    if customers is not None:
        statement = statement.where(Ticket.customer.in_(customers))
    if due_before is not None:
        statement = statement.where(Ticket.response_due_at < due_before)
    if breached_at is not None:
        late = or_(
            Ticket.first_response_at > Ticket.response_due_at,
            Ticket.first_response_at.is_(None) & (Ticket.response_due_at < breached_at),
        )
        statement = statement.where(Ticket.response_due_at.is_not(None)).where(late)
    if search is not None:
        statement = statement.where(Ticket.id.in_(full_text.matching_ids(session, search)))
    return list(session.execute(statement).scalars())


def queue_tickets(
    session: Session,
    *,
    statuses: Sequence[str],
    priority: int | None = None,
    customers: Sequence[str] | None = None,
    policy: str | None = None,
    assignee: str | None = None,
    search: str | None = None,
) -> list[Ticket]:
    """Every ticket of the board's queue that passes its filters, with its charges loaded.

    Unordered and unpaged: the board sorts by the next deadline, which lives in the JSON
    ``deadlines`` column, so it orders and pages in Python (an open queue is hundreds of
    rows, not millions). ``customers``: the stored names that match; empty matches none.
    """
    statement = (
        select(Ticket).where(Ticket.status.in_(statuses)).options(selectinload(Ticket.charges))
    )
    if priority is not None:
        statement = statement.where(Ticket.priority == priority)
    if customers is not None:
        statement = statement.where(Ticket.customer.in_(customers))
    if policy:
        statement = statement.where(Ticket.policy_name == policy)
    if assignee:
        statement = statement.where(func.lower(Ticket.assignee) == assignee.lower())
    if search is not None:  # every term in the subject or the mail (store.search)
        statement = statement.where(Ticket.id.in_(full_text.matching_ids(session, search)))
    return list(session.execute(statement).scalars())


def ticket_customer_names(session: Session) -> list[str]:
    """Every distinct customer name tickets carry, for matching a board filter against."""
    statement = select(Ticket.customer).where(Ticket.customer.is_not(None)).distinct()
    return [name for name in session.execute(statement).scalars() if name]


def ticket_policy_names(session: Session) -> list[str]:
    statement = select(Ticket.policy_name).distinct().order_by(Ticket.policy_name)
    return list(session.execute(statement).scalars())


def board_version(session: Session) -> tuple[Any, ...]:
    """What changes whenever the board would: new or updated tickets, messages, replies,
    charges. Four aggregate reads, polled by each open page's event stream."""
    tickets = session.execute(select(func.count(Ticket.id), func.max(Ticket.updated_at))).one()
    inbound = session.execute(select(func.max(InboundMessage.id))).scalar()
    outbox = session.execute(select(func.max(OutboxMessage.id))).scalar()
    charges = session.execute(select(func.max(ChargeRow.id))).scalar()
    return (*tickets, inbound, outbox, charges)


def list_charges(session: Session, status: str | None = None, limit: int = 100) -> list[ChargeRow]:
    statement = select(ChargeRow).order_by(ChargeRow.id.desc()).limit(limit)
    if status:
        statement = statement.where(ChargeRow.status == status)
    return list(session.execute(statement).scalars())


def settle_charge(
    session: Session, charge_id: int, outcome: str, note: str | None, now: datetime
) -> ChargeRow | None:
    """Settle a pending charge as ``billed`` or ``waived``; None when not pending."""
    row = session.get(ChargeRow, charge_id)
    if row is None or row.status != "pending":
        return None
    row.status, row.settled_at, row.settled_note = outcome, now, note
    return row


WAIVER_KIND = "waiver"


def waive_charge(session: Session, charge_id: int, note: str, now: datetime) -> ChargeRow | None:
    """Reverse an applied or billed line with a credit line; None when it cannot be waived.

    Nothing is deleted or rewritten: the credit (kind ``waiver``, the negative amount,
    ``note`` as its reason) is a new ledger line naming the one it reverses. Its ledger
    key is derived from that line, so a line is waived at most once, even by two staff
    at the same moment. Pending lines are settled instead; a credit is not waived.
    """
    row = session.get(ChargeRow, charge_id)
    if row is None or row.status not in {"applied", "billed"} or row.reverses_id is not None:
        return None
    key = f"{WAIVER_KIND}:{row.id}"
    written = add_charge(
        session,
        ledger_key=key,
        ticket_id=row.ticket_id,
        kind=WAIVER_KIND,
        amount=-row.amount,
        currency=row.currency,
        reason=note,
        status="applied",
        now=now,
        reverses_id=row.id,
    )
    if not written:
        return None
    return session.execute(select(ChargeRow).where(ChargeRow.ledger_key == key)).scalar_one()


# --- staff actions (the board, the CLI): each recorded on the ticket, who and when ------


class StaffActionError(ValueError):
    """A staff action that does not apply (closing a closed ticket, an unknown charge)."""


def record_ticket_event(
    session: Session, ticket: Ticket, actor: str, action: str, detail: str | None, now: datetime
) -> TicketEvent:
    event = TicketEvent(ticket_id=ticket.id, at=now, actor=actor, action=action, detail=detail)
    session.add(event)
    ticket.updated_at = now  # the board's open pages see the change
    return event


def ticket_events(session: Session, ticket_id: int) -> list[TicketEvent]:
    statement = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
    return list(session.execute(statement.order_by(TicketEvent.id)).scalars())


def _locked_by_number(session: Session, number: str) -> Ticket:
    found = ticket_by_number(session, number)
    if found is None:
        raise StaffActionError(f"no ticket {number}")
    return lock_ticket(session, found.id)


def close_ticket(session: Session, number: str, actor: str, now: datetime) -> Ticket:
    ticket = _locked_by_number(session, number)
    if ticket.status == TicketStatus.CLOSED:
        raise StaffActionError(f"{number} is closed already")
    ticket.status, ticket.closed_at, ticket.waiting_since = TicketStatus.CLOSED, now, None
    record_ticket_event(session, ticket, actor, "close", None, now)
    return ticket


def reopen_ticket(session: Session, number: str, actor: str, now: datetime) -> Ticket:
    ticket = _locked_by_number(session, number)
    if ticket.status != TicketStatus.CLOSED:
        raise StaffActionError(f"{number} is not closed")
    ticket.status, ticket.closed_at = TicketStatus.OPEN, None
    record_ticket_event(session, ticket, actor, "reopen", None, now)
    return ticket


def assign_ticket(
    session: Session, number: str, assignee: str | None, actor: str, now: datetime
) -> Ticket:
    """``assignee`` None or empty: unassign."""
    ticket = _locked_by_number(session, number)
    ticket.assignee = assignee or None
    record_ticket_event(session, ticket, actor, "assign", ticket.assignee, now)
    return ticket


def note_ticket(session: Session, number: str, note: str, actor: str, now: datetime) -> Ticket:
    """An internal note: on the ticket's history only, never mailed."""
    ticket = _locked_by_number(session, number)
    record_ticket_event(session, ticket, actor, "note", note, now)
    return ticket


def waive_ticket_charge(
    session: Session, number: str, charge_id: int, note: str, actor: str, now: datetime
) -> ChargeRow:
    """``waive_charge`` on one of this ticket's lines, recorded on the ticket."""
    ticket = _locked_by_number(session, number)
    row = session.get(ChargeRow, charge_id)
    if row is None or row.ticket_id != ticket.id:
        raise StaffActionError(f"charge {charge_id} is not on {number}")
    credit = waive_charge(session, charge_id, note, now)
    if credit is None:
        raise StaffActionError(f"charge {charge_id} cannot be waived (waived already, or pending)")
    record_ticket_event(session, ticket, actor, "waive", f"charge {charge_id}: {note}", now)
    return credit


def ticket_received_at(session: Session, ticket: Ticket) -> datetime:
    """When the message that opened ``ticket`` reached us: the start of its SLA clock."""
    opening = session.get(InboundMessage, ticket.inbound_message_id)
    return opening.received_at if opening is not None else ticket.created_at


def set_ticket_priority(
    session: Session,
    number: str,
    level: int,
    deadlines: Mapping[str, datetime],
    policy: str,
    actor: str,
    now: datetime,
) -> Ticket:
    """Set an open ticket's priority and the deadlines the caller computed for it
    (``deadlines`` by name, ``response`` among them when the level has one).

    The event keeps the old priority and the old deadlines as they were stored; the
    ledger is not touched (charges already applied stay as they are)."""
    ticket = _locked_by_number(session, number)
    if ticket.status == TicketStatus.CLOSED:
        raise StaffActionError(f"{number} is closed: reopen it to change its priority")
    if ticket.priority == level:
        raise StaffActionError(f"{number} is priority {level} already")
    before = ", ".join(f"{k} {v}" for k, v in (ticket.deadlines or {}).items()) or "none"
    detail = f"{ticket.priority} -> {level} ({policy}); deadlines before: {before}"
    ticket.priority = level
    ticket.response_due_at = deadlines.get("response")
    ticket.deadlines = {k: v.isoformat() for k, v in deadlines.items()}
    record_ticket_event(session, ticket, actor, "priority", detail, now)
    return ticket


def record_phone_response(
    session: Session,
    number: str,
    at: datetime,
    note: str | None,
    actor: str,
    now: datetime,
    stamp: Callable[[Ticket, datetime], object],
) -> Ticket:
    """A first response given by phone at ``at``. ``stamp`` is the daemon's rule for a
    staff reply (it sets ``first_response_at`` and ``response_met``; the store does not
    import the daemon). ValueError: ``at`` is in the future or before the ticket came."""
    ticket = _locked_by_number(session, number)
    if ticket.first_response_at is not None:
        answered = ticket.first_response_at.isoformat()
        raise StaffActionError(f"{number} has its first response already ({answered})")
    if at > now:
        raise ValueError("the response time is in the future")
    if at < ticket_received_at(session, ticket):
        raise ValueError("the response time is before the ticket was received")
    stamp(ticket, at)
    met = "met" if ticket.response_met else "missed"
    detail = f"at {at.isoformat(timespec='seconds')} ({met})" + (f": {note}" if note else "")
    record_ticket_event(session, ticket, actor, "phone_response", detail, now)
    return ticket


SETTLED_OUTCOMES = ("billed", "waived")


def settle_ticket_charge(
    session: Session,
    number: str,
    charge_id: int,
    outcome: str,
    note: str,
    actor: str,
    now: datetime,
) -> ChargeRow:
    """``settle_charge`` on one of this ticket's pending lines, recorded on the ticket."""
    if outcome not in SETTLED_OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(SETTLED_OUTCOMES)}")
    ticket = _locked_by_number(session, number)
    row = session.get(ChargeRow, charge_id)
    if row is None or row.ticket_id != ticket.id:
        raise StaffActionError(f"charge {charge_id} is not on {number}")
    settled = settle_charge(session, charge_id, outcome, note, now)
    if settled is None:
        raise StaffActionError(f"charge {charge_id} is not pending (settled already?)")
    record_ticket_event(
        session, ticket, actor, "settle", f"charge {charge_id} {outcome}: {note}", now
    )
    return settled


def tickets_waiting_since(session: Session, before: datetime) -> list[Ticket]:
    """Tickets waiting on the customer since before ``before`` (auto-close candidates)."""
    statement = (
        select(Ticket)
        .where(Ticket.status == TicketStatus.WAITING_CUSTOMER)
        .where(Ticket.waiting_since.is_not(None))
        .where(Ticket.waiting_since < before)
        .order_by(Ticket.id)
    )
    return list(session.execute(statement).scalars())


def enqueue_reply(session: Session, reply: OutboxMessage) -> bool:
    """Queue a reply unless one of its kind exists for that inbound message.

    One Core ``INSERT … ON CONFLICT (inbound_message_id, kind) DO NOTHING RETURNING id``
    (``uq_outbox_inbound_kind``; NULLs never conflict, so notices answering no message
    are all queued) instead of a SELECT and an ORM flush (issue 11). A clash on the
    Message-ID still raises. ``reply`` gets its id and joins the session as a loaded row.
    """
    values = {key: value for key, value in inspect(reply).dict.items() if key in _OUTBOX_KEYS}
    statement = _outbox_insert(session.get_bind().dialect.name)
    new_id = session.connection().execute(statement, values).scalar_one_or_none()
    if new_id is None:
        return False
    reply.id = new_id
    make_transient_to_detached(reply)
    session.add(reply)
    # Indexed per recipient for the reply budget (intake.budget, count_recent_replies).
    record_outbox_recipients(session, reply.id, reply.recipients, reply.created_at)
    return True


_OUTBOX_KEYS = frozenset(inspect(OutboxMessage).columns.keys()) - {"id"}


@functools.lru_cache(maxsize=4)
def _outbox_insert(dialect: str) -> Any:
    """``enqueue_reply``'s INSERT, built once per dialect; its columns come with the values."""
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert_for(OutboxMessage)
        .on_conflict_do_nothing(index_elements=["inbound_message_id", "kind"])
        .returning(OutboxMessage.id)
    )


def has_flood_since(session: Session, ticket_id: int, since: datetime) -> bool:
    """Whether a message past a flood limit was already kept on the ticket since then."""
    statement = (
        select(InboundMessage.id)
        .where(InboundMessage.ticket_id == ticket_id)
        .where(InboundMessage.outcome == "flood")
        .where(InboundMessage.processed_at >= since)
        .limit(1)
    )
    return session.execute(statement).first() is not None


def outbox_message_exists(session: Session, message_id: str) -> bool:
    statement = select(OutboxMessage.id).where(OutboxMessage.message_id == message_id)
    return session.execute(statement).first() is not None


# What the sender needs of a claimed reply, in this order (``OutboxSender._claim``).
ClaimedRow = Row[int, str, str, list[str], bytes, int]


def claim_outbox(
    session: Session, now: datetime, ttl: timedelta, owner: str, limit: int = 20
) -> list[ClaimedRow]:
    """Claim due replies for the sender ``owner`` until ``now + ttl``, oldest first.

    The owner renews the claim while it sends (``renew_outbox_claims``); a claim that ran
    out (its sender died mid-delivery) is claimable again, by anyone. The reply keeps its
    Message-ID, so a second delivery is recognisably the same mail. Run it in a write
    transaction (``session_scope(write=True)``): on SQLite that makes the choice and the
    update one step, on PostgreSQL ``FOR UPDATE SKIP LOCKED`` in the choosing subquery
    does, so two senders never take the same row.

    One ``UPDATE … WHERE id IN (SELECT …) RETURNING``: loading the rows into the ORM and
    flushing an UPDATE per row cost the listener's process ~0.3 ms of CPU a reply
    (issue 11).
    """
    due = or_(
        (OutboxMessage.status == OutboxStatus.QUEUED) & (OutboxMessage.next_attempt_at <= now),
        (OutboxMessage.status == OutboxStatus.SENDING) & (OutboxMessage.claimed_until <= now),
    )
    chosen = select(OutboxMessage.id).where(due).order_by(OutboxMessage.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(chosen))
        .values(status=OutboxStatus.SENDING, claim_owner=owner, claimed_until=now + ttl)
        .returning(*_CLAIMED_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    rows = session.connection().execute(statement).all()
    return sorted(rows, key=lambda row: row.id)  # RETURNING keeps no order


_CLAIMED_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.message_id,
    OutboxMessage.sender,
    OutboxMessage.recipients,
    OutboxMessage.raw,
    OutboxMessage.attempts,
)


def _claimed_by(owner: str) -> Any:
    """Rows whose claim is still ``owner``'s: sending, and nobody has claimed them since.

    An expired claim nobody took over is still the owner's: recording that owner's
    delivery then is the truth, and refusing it would only send the reply a second time.
    Any other sender's claim replaces ``claim_owner``, and from then on the first owner
    can change nothing.
    """
    return (OutboxMessage.claim_owner == owner) & (OutboxMessage.status == OutboxStatus.SENDING)


def renew_outbox_claims(
    session: Session, outbox_ids: Sequence[int], owner: str, until: datetime
) -> set[int]:
    """Extend ``owner``'s claims to ``until`` (the heartbeat); returns the ids still held."""
    if not outbox_ids:
        return set()
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(list(outbox_ids)))
        .where(_claimed_by(owner))
        .values(claimed_until=until)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return set(session.execute(statement).scalars())


def mark_sent(session: Session, outbox_id: int, owner: str, now: datetime) -> bool:
    """Record the delivery, if the claim is still ``owner``'s; True when it applied."""
    return outbox_id in mark_sent_many(session, [outbox_id], owner, now)


def mark_sent_many(
    session: Session, outbox_ids: Sequence[int], owner: str, now: datetime
) -> set[int]:
    """Record several deliveries in one statement; the ids whose claim was ``owner``'s.

    The outbox sender records a batch of files written to the outbox directory at once:
    one transaction (one commit, one fsync on SQLite) instead of one per reply.
    """
    if not outbox_ids:
        return set()
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(outbox_ids))
        .where(_claimed_by(owner))
        .values(
            status=OutboxStatus.SENT,
            sent_at=now,
            claim_owner=None,
            claimed_until=None,
            last_error=None,
        )
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return set(session.execute(statement).scalars())


def mark_delivery_failed(
    session: Session, outbox_id: int, owner: str, error: str, next_attempt_at: datetime | None
) -> bool:
    """Count a failed delivery, if the claim is still ``owner``'s; True when it applied.

    ``next_attempt_at=None`` makes the reply dead. A late failure of a sender that lost
    its claim never resets a row another sender has delivered (or is delivering).
    """
    values: dict[str, Any] = {
        "attempts": OutboxMessage.attempts + 1,
        "last_error": error[:4000],
        "claim_owner": None,
        "claimed_until": None,
        "status": OutboxStatus.DEAD if next_attempt_at is None else OutboxStatus.QUEUED,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id)
        .where(_claimed_by(owner))
        .values(**values)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def list_outbox(
    session: Session, status: str | None = None, limit: int = 100
) -> list[OutboxMessage]:
    statement = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        statement = statement.where(OutboxMessage.status == status)
    return list(session.execute(statement).scalars())


def get_outbox(session: Session, outbox_id: int) -> OutboxMessage | None:
    return session.get(OutboxMessage, outbox_id)


def ticket_numbers(session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """``{ticket id: number}`` for the given ids (the outbox page links each reply)."""
    if not ticket_ids:
        return {}
    statement = select(Ticket.id, Ticket.number).where(Ticket.id.in_(set(ticket_ids)))
    return {tid: number for tid, number in session.execute(statement).all() if number}


def retry_outbox(session: Session, outbox_id: int, now: datetime) -> bool:
    """Queue a reply again for the daemon's sender: attempts reset, due ``now``.

    Refused (False) for an unknown id, a sent reply, and one a sender holds a live claim
    on (it is being delivered right now).
    """
    row = session.get(OutboxMessage, outbox_id, with_for_update=True)
    if row is None or row.status == OutboxStatus.SENT:
        return False
    live = row.claimed_until is not None and row.claimed_until > now
    if row.status == OutboxStatus.SENDING and live:
        return False
    row.status = OutboxStatus.QUEUED
    row.attempts = 0
    row.next_attempt_at = now
    row.claim_owner = None
    row.claimed_until = None
    return True


def stored_origin_refs(session: Session, origin: str, refs: list[str]) -> set[str]:
    """Which of ``refs`` (e.g. IMAP mailbox/UIDVALIDITY/UID) are already stored."""
    if not refs:
        return set()
    statement = (
        select(InboundMessage.origin_ref)
        .where(InboundMessage.origin == origin)
        .where(InboundMessage.origin_ref.in_(refs))
    )
    return {ref for ref in session.execute(statement).scalars() if ref is not None}


def _mailbox(session: Session, name: str) -> MailboxState:
    insert = _insert_for(session)
    session.execute(insert(MailboxState).values(name=name).on_conflict_do_nothing())
    return session.get_one(MailboxState, name)


def acquire_mailbox_lease(
    session: Session, name: str, owner: str, now: datetime, until: datetime
) -> bool:
    """Take or renew the mailbox's lease; False while another live owner holds it."""
    _mailbox(session, name)
    free = or_(
        MailboxState.lease_owner.is_(None),
        MailboxState.lease_owner == owner,
        MailboxState.lease_expires_at < now,
    )
    result = session.execute(
        update(MailboxState)
        .where(MailboxState.name == name)
        .where(free)
        .values(lease_owner=owner, lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def mailbox_lease_expiry(session: Session, name: str) -> datetime | None:
    """When the mailbox's current lease runs out; None when nobody holds one."""
    return session.execute(
        select(MailboxState.lease_expires_at).where(MailboxState.name == name)
    ).scalar_one_or_none()


def release_mailbox_lease(session: Session, name: str, owner: str) -> None:
    session.execute(
        update(MailboxState)
        .where(MailboxState.name == name)
        .where(MailboxState.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def record_mailbox_ok(session: Session, name: str, now: datetime, uidvalidity: int) -> int | None:
    """Mark the mailbox healthy; returns the UIDVALIDITY it had before (None: first time)."""
    row = _mailbox(session, name)
    previous = row.uidvalidity
    row.uidvalidity, row.last_ok_at = uidvalidity, now
    row.failing_since, row.last_error = None, None
    return previous


def record_mailbox_failure(session: Session, name: str, error: str, now: datetime) -> datetime:
    """Note a failure; returns since when the mailbox has been failing."""
    row = _mailbox(session, name)
    row.failing_since = row.failing_since or now
    row.last_error = error[:4000]
    return row.failing_since


def list_mailbox_states(session: Session) -> list[MailboxState]:
    return list(session.execute(select(MailboxState).order_by(MailboxState.name)).scalars())


@dataclass(frozen=True, slots=True)
class CustomerValues:
    """One directory entry to store; ``normalized_name`` is its key (computed by intake)."""

    name: str
    normalized_name: str
    aliases: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    support_id: str | None = None
    timezone: str | None = None
    authorized_contacts: tuple[str, ...] = ()
    subscription_expires: date | None = None
    policy: str | None = None


def upsert_customers(
    session: Session, records: Sequence[CustomerValues], now: datetime
) -> tuple[int, int]:
    """Insert new customers and rewrite known ones (by normalized name): (inserted, updated).

    Customers missing from ``records`` are left alone. Every field of a known customer is
    replaced, so the imported entry is the whole truth about that customer.
    """
    keys = [r.normalized_name for r in records]
    if len(set(keys)) != len(keys):
        raise ValueError("upsert_customers: two records share a normalized name")
    found = session.execute(select(Customer).where(Customer.normalized_name.in_(keys))).scalars()
    existing = {row.normalized_name: row for row in found}
    _release_moved_support_ids(session, existing, records)
    inserted = 0
    for values in records:
        row = existing.get(values.normalized_name)
        if row is None:
            row = Customer(created_at=now)
            session.add(row)
            inserted += 1
        _assign_customer(row, values, now)
    session.flush()
    bump_directory_version(session)
    return inserted, len(records) - inserted


def bump_directory_version(session: Session) -> None:
    """A new directory version, in the import's own transaction: every cache drops it."""
    bumped = session.execute(
        update(DirectoryVersion)
        .where(DirectoryVersion.id == 1)
        .values(version=DirectoryVersion.version + 1)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]  # the migration inserts the row
        session.add(DirectoryVersion(id=1, version=1))
        session.flush()


def _release_moved_support_ids(
    session: Session, existing: dict[str, Customer], records: Sequence[CustomerValues]
) -> None:
    # The unique index is checked per UPDATE, so two customers swapping support IDs in
    # one import would collide half-way; clear the changing ones first.
    wanted = {r.normalized_name: r.support_id for r in records}
    moved = [
        row
        for key, row in existing.items()
        if row.support_id is not None and row.support_id != wanted[key]
    ]
    for row in moved:
        row.support_id = None
    if moved:
        session.flush()


def _assign_customer(row: Customer, values: CustomerValues, now: datetime) -> None:
    row.name, row.normalized_name = values.name, values.normalized_name
    row.aliases, row.domains = list(values.aliases), list(values.domains)
    row.support_id, row.timezone = values.support_id, values.timezone
    row.authorized_contacts = list(values.authorized_contacts)
    row.subscription_expires, row.policy = values.subscription_expires, values.policy
    row.updated_at = now


def list_customers(session: Session) -> list[Customer]:
    return list(session.execute(select(Customer).order_by(Customer.normalized_name)).scalars())


def get_or_create_secret(session: Session, name: str, value: str, now: datetime) -> str:
    """The stored secret ``name``; ``value`` is stored first if there is none (race-safe)."""
    insert = _insert_for(session)
    session.execute(
        insert(AppSecret)
        .values(name=name, value=value, created_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return session.execute(select(AppSecret.value).where(AppSecret.name == name)).scalar_one()


# --- recipients: bounces and the automatic-reply budget ----------------------------------


def recipient_key(address: str) -> str:
    """The one spelling recipient state and the reply budget are kept under."""
    return address_key(address)


def record_bounce(
    session: Session,
    address: str,
    status: str | None,
    permanent: bool,
    now: datetime,
    suppress_for: timedelta,
) -> RecipientState:
    """Count a bounce; a permanent one suppresses the address until ``now + suppress_for``.

    A later permanent bounce extends the suppression, never shortens it; a temporary one
    (RFC 3463 class 4) is counted and leaves any suppression as it was.
    """
    row = _recipient_state(session, recipient_key(address), now)
    row.bounces += 1
    row.last_bounce_at, row.last_status, row.permanent = now, status, permanent
    row.updated_at = now
    if permanent:
        until = now + suppress_for
        row.suppressed_until = max(until, row.suppressed_until or until)
    session.flush()
    return row


def _recipient_state(session: Session, key: str, now: datetime) -> RecipientState:
    """The row for ``key``, created if missing and locked (PostgreSQL) against lost updates."""
    insert = _insert_for(session)
    session.execute(
        insert(RecipientState)
        .values(address=key, bounces=0, permanent=False, updated_at=now)
        .on_conflict_do_nothing(index_elements=["address"])
    )
    statement = (
        select(RecipientState)
        .where(RecipientState.address == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.execute(statement).scalar_one()


def suppressed_until(session: Session, address: str, now: datetime) -> datetime | None:
    """Until when automatic mail to ``address`` is suppressed; None when it is not now."""
    until = session.execute(
        select(RecipientState.suppressed_until).where(
            RecipientState.address == recipient_key(address)
        )
    ).scalar_one_or_none()
    return until if until is not None and until > now else None


def get_recipient_state(session: Session, address: str) -> RecipientState | None:
    return session.execute(
        select(RecipientState).where(RecipientState.address == recipient_key(address))
    ).scalar_one_or_none()


def record_outbox_recipients(
    session: Session, outbox_id: int, addresses: Sequence[str], now: datetime
) -> int:
    """Index an outbox row's recipients for ``count_recent_replies``; returns rows added.

    ``enqueue_reply`` calls it; code that adds an OutboxMessage itself must too.
    """
    keys = list(dict.fromkeys(recipient_key(a) for a in addresses if a.strip()))
    if not keys:
        return 0
    rows = [{"outbox_id": outbox_id, "address": key, "created_at": now} for key in keys]
    statement = _recipients_insert(session.get_bind().dialect.name)
    # Core on the session's connection (same transaction). An executemany of one cached
    # single-row INSERT: SQLAlchemy's "insertmanyvalues" sends it as one multi-row
    # statement, while a multi-row ``values([...])`` has no cache key and was compiled
    # again for every reply (~3 % of a ticket, issue 11).
    return len(session.connection().execute(statement, rows).all())


@functools.lru_cache(maxsize=4)
def _recipients_insert(dialect: str) -> Any:
    """``record_outbox_recipients``' INSERT, built once per dialect."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(OutboxRecipient)
        .on_conflict_do_nothing(index_elements=["outbox_id", "address"])
        # RETURNING lists only the rows really inserted; psycopg 3 reports rowcount -1 here.
        .returning(OutboxRecipient.address)
    )


def count_recent_replies(session: Session, address: str, since: datetime) -> int:
    """Outbox rows to ``address`` created after ``since``, except suppressed ones."""
    statement = (
        select(func.count())
        .select_from(OutboxRecipient)
        .join(OutboxMessage, OutboxMessage.id == OutboxRecipient.outbox_id)
        .where(OutboxRecipient.address == recipient_key(address))
        .where(OutboxRecipient.created_at > since)
        .where(OutboxMessage.status != OutboxStatus.SUPPRESSED)
    )
    return int(session.execute(statement).scalar_one())


def has_reply_to(session: Session, inbound_message_id: int) -> bool:
    """Whether any reply (of any kind, except suppressed ones) answers that inbound message."""
    statement = (
        select(OutboxMessage.id)
        .where(OutboxMessage.inbound_message_id == inbound_message_id)
        .where(OutboxMessage.status != OutboxStatus.SUPPRESSED)
        .limit(1)
    )
    return session.execute(statement).first() is not None


# Advisory-lock namespace of the reply budget (the first key of PostgreSQL's two-key form,
# which never collides with the one-key locks other code may take).
_BUDGET_LOCK_NAMESPACE = 0x42554447  # "BUDG"


def lock_recipients(session: Session, addresses: Sequence[str]) -> None:
    """Hold the reply budget of these recipients until the transaction ends.

    Counting a recipient's recent replies and queueing one more must be one step across
    instances and processes, else two of them both see 9 of 10 and both send. PostgreSQL:
    a transaction-scoped advisory lock per recipient key (``pg_advisory_xact_lock``), taken
    in key order so two transactions never wait on each other crosswise. SQLite: the write
    transaction (``session_scope(write=True)``) already holds the whole database.
    """
    _advisory_xact_locks(
        session, _BUDGET_LOCK_NAMESPACE, [recipient_key(a) for a in addresses if a.strip()]
    )


# Advisory-lock namespace of the inbound flood limits.
_FLOOD_LOCK_NAMESPACE = 0x464C4F44  # "FLOD"


def lock_senders(session: Session, keys: Sequence[str]) -> None:
    """Hold the inbound flood counts of these senders (``address:…``, ``domain:…``) until the
    transaction ends, the same way as ``lock_recipients``: counting a sender's new tickets
    and opening one more is one step across instances."""
    _advisory_xact_locks(session, _FLOOD_LOCK_NAMESPACE, keys)


# Advisory-lock namespace of the confirmation reflection caps.
_REFLECTION_LOCK_NAMESPACE = 0x5245464C  # "REFL"


def lock_reflection(session: Session, keys: Sequence[str]) -> None:
    """Hold the reflection counts of these sources (``ip:…``, ``domain:…``) until the
    transaction ends, as ``lock_recipients`` does: counting the distinct addresses a source
    made us confirm and queueing one more confirmation is one step across instances."""
    _advisory_xact_locks(session, _REFLECTION_LOCK_NAMESPACE, keys)


def _advisory_xact_locks(session: Session, namespace: int, keys: Sequence[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: the write transaction already holds the whole database
    ordered = sorted(set(keys))  # key order: two transactions never wait crosswise
    if ordered:
        # One statement for all of them (issue 11). PostgreSQL evaluates a volatile
        # function in the select list after the ORDER BY (since 9.6), so the locks are
        # taken one by one in the array's order, which is the sorted order above.
        session.connection().execute(_ADVISORY_LOCKS, {"namespace": namespace, "keys": ordered})


_ADVISORY_LOCKS = text(
    "SELECT pg_advisory_xact_lock(:namespace, hashtext(t.key))"
    " FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS t(key, n) ORDER BY t.n"
)


def _requester_is(*, address: str | None, domain: str | None) -> Any:
    if address is not None:
        return Ticket.requester_key == address
    return Ticket.requester_domain == domain


def count_new_tickets(
    session: Session, since: datetime, address: str, domain: str | None = None
) -> tuple[int, ...]:
    """Tickets opened after ``since`` by one canonical address, then (``domain`` given) by
    anyone at ``domain``: both counts in one statement (the flood check needs both)."""
    statement = _count_new_tickets_statement(domain is not None)
    # Core on the session's connection: tickets are written by Core (``add_ticket``), so
    # there is no pending ORM row an autoflush would have to write first.
    values = {"address": address, "domain": domain, "since": since}
    return tuple(int(n) for n in session.connection().execute(statement, values).one())


@functools.lru_cache(maxsize=2)
def _count_new_tickets_statement(with_domain: bool) -> Select[Any]:
    """Built once with bound values: it runs for every new ticket (issue 11)."""

    def count(requester: Any, who: str) -> Any:
        return (
            select(func.count())
            .select_from(Ticket)
            .where(requester == bindparam(who))
            .where(Ticket.created_at > bindparam("since"))
            .scalar_subquery()
        )

    counts = [count(Ticket.requester_key, "address")]
    if with_domain:
        counts.append(count(Ticket.requester_domain, "domain"))
    return select(*counts)


def latest_ticket_of(
    session: Session, *, address: str | None = None, domain: str | None = None
) -> int | None:
    """The id of the requester's newest ticket not closed, else of its newest at all."""
    closed = case((Ticket.status == TicketStatus.CLOSED, 1), else_=0)
    statement = (
        select(Ticket.id)
        .where(_requester_is(address=address, domain=domain))
        .order_by(closed, Ticket.id.desc())
        .limit(1)
    )
    return session.execute(statement).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class RecipientUsage:
    """What the reply budget needs to know of one recipient."""

    suppressed_until: datetime | None  # None unless a bounce suppresses it at ``now``
    last_hour: int  # automatic replies created in the last hour (suppressed rows excluded)
    last_day: int


@dataclass(frozen=True, slots=True)
class BudgetFacts:
    answered: bool  # the inbound message already has a (not suppressed) reply
    usage: dict[str, RecipientUsage]  # by recipient_key


def _select_row(session: Session, statement: Any, values: dict[str, Any]) -> Any:
    """The one row of a SELECT of plain columns, run on the session's connection (same
    transaction). Flushed first, as ``Session.execute`` would autoflush; its ORM execution
    context, which rows that are not entities do not need, was ~3 % of a ticket (issue 11).
    """
    session.flush()
    return session.connection().execute(statement, values).one()


def budget_facts(
    session: Session,
    addresses: Sequence[str],
    now: datetime,
    *,
    hour_since: datetime,
    day_since: datetime,
    inbound_message_id: int | None = None,
) -> BudgetFacts:
    """Everything the reply budget reads, for every recipient, in one query.

    One SELECT of scalar subqueries (suppression, hour count, day count per recipient,
    and whether the inbound message was answered) instead of three or four round trips
    per recipient.
    """
    keys = list(dict.fromkeys(recipient_key(a) for a in addresses if a.strip()))
    answering = inbound_message_id is not None
    if not keys and not answering:
        return BudgetFacts(False, {})
    values: dict[str, Any] = {f"key{i}": key for i, key in enumerate(keys)}
    values.update(hour_since=hour_since, day_since=day_since, inbound=inbound_message_id)
    row = _select_row(session, _budget_statement(len(keys), answering), values)
    usage = {}
    for i, key in enumerate(keys):
        until = row[3 * i]
        usage[key] = RecipientUsage(
            suppressed_until=until if until is not None and until > now else None,
            last_hour=int(row[3 * i + 1]),
            last_day=int(row[3 * i + 2]),
        )
    return BudgetFacts(bool(row[-1]) if inbound_message_id is not None else False, usage)


@functools.lru_cache(maxsize=32)
def _budget_statement(recipients: int, answering: bool) -> Select[Any]:
    """``budget_facts``' SELECT for this many recipients, built once with bound values:
    building and cache-keying its subqueries on every reply cost ~8 % of a ticket's CPU
    (issue 11); a reused statement keeps its memoised cache key."""
    columns: list[Any] = []
    for i in range(recipients):
        key: Any = bindparam(f"key{i}")
        columns.append(
            select(RecipientState.suppressed_until)
            .where(RecipientState.address == key)
            .scalar_subquery()
            .label(f"s{i}")
        )
        columns.append(_recent_replies(key, bindparam("hour_since")).label(f"h{i}"))
        columns.append(_recent_replies(key, bindparam("day_since")).label(f"d{i}"))
    if answering:
        answered = (
            select(OutboxMessage.id)
            .where(OutboxMessage.inbound_message_id == bindparam("inbound"))
            .where(OutboxMessage.status != OutboxStatus.SUPPRESSED)
            .exists()
        )
        columns.append(answered.label("answered"))
    return select(*columns)


def _recent_replies(key: Any, since: Any) -> Any:
    return (
        select(func.count())
        .select_from(OutboxRecipient)
        .join(OutboxMessage, OutboxMessage.id == OutboxRecipient.outbox_id)
        .where(OutboxRecipient.address == key)
        .where(OutboxRecipient.created_at > since)
        .where(OutboxMessage.status != OutboxStatus.SUPPRESSED)
        .scalar_subquery()
    )


@dataclass(frozen=True, slots=True)
class ReflectionCount:
    """What one source's reflection cap needs: how many distinct addresses were confirmed
    for its mail in the window, and which of the candidates are among them already."""

    distinct: int
    known: frozenset[str]  # recipient keys already confirmed for this source


def reflection_facts(
    session: Session,
    recipients: Sequence[str],
    since: datetime,
    *,
    ip: str | None,
    domain: str | None,
) -> dict[str, ReflectionCount]:
    """Per source (``"ip"``, ``"domain"``; a None one is skipped), in one query.

    Counts confirmations not suppressed, by distinct recipient: for ``ip`` those answering
    mail received from that SMTP client after ``since`` (``ix_inbound_message_peer_received``),
    for ``domain`` those of tickets its senders opened after ``since`` (the confirmation is
    queued with its ticket; ``ix_ticket_requester_domain_created``).
    """
    keys = list(dict.fromkeys(recipient_key(a) for a in recipients if a.strip()))
    sources = tuple(name for name, given in (("ip", ip), ("domain", domain)) if given)
    if not sources:
        return {}
    values: dict[str, Any] = {f"key{i}": key for i, key in enumerate(keys)}
    values.update(ip=ip, domain=domain, since=since)
    row = _select_row(session, _reflection_statement(sources, len(keys)), values)._mapping
    return {
        name: ReflectionCount(
            int(row[f"{name}_n"]),
            frozenset(key for i, key in enumerate(keys) if row[f"{name}_{i}"]),
        )
        for name in sources
    }


@functools.lru_cache(maxsize=32)
def _reflection_statement(sources: tuple[str, ...], recipients: int) -> Select[Any]:
    """``reflection_facts``' SELECT for these sources and this many recipients, built once
    with bound values (as ``_budget_statement``): building it per message was ~5 % of a
    ticket's CPU in the processing process (issue 11)."""
    since: Any = bindparam("since")
    made = {
        "ip": lambda: _confirmed_for_ip(bindparam("ip"), since),
        "domain": lambda: _confirmed_for_domain(bindparam("domain"), since),
    }
    columns: list[Any] = []
    for name in sources:
        address = made[name]().c.address
        columns.append(select(func.count(distinct(address))).scalar_subquery().label(f"{name}_n"))
        columns.extend(
            select(address).where(address == bindparam(f"key{i}")).exists().label(f"{name}_{i}")
            for i in range(recipients)
        )
    return select(*columns)


def _confirmations() -> Any:
    return (
        select(OutboxRecipient.address)
        .join(OutboxMessage, OutboxMessage.id == OutboxRecipient.outbox_id)
        .where(OutboxMessage.kind == "confirmation")
        .where(OutboxMessage.status != OutboxStatus.SUPPRESSED)
    )


def _confirmed_for_ip(ip: Any, since: Any) -> Any:
    return (
        _confirmations()
        .join(InboundMessage, InboundMessage.id == OutboxMessage.inbound_message_id)
        .where(InboundMessage.peer_ip == ip)
        .where(InboundMessage.received_at > since)
        .subquery()
    )


def _confirmed_for_domain(domain: Any, since: Any) -> Any:
    return (
        _confirmations()
        .join(Ticket, Ticket.id == OutboxMessage.ticket_id)
        .where(Ticket.requester_domain == domain)
        .where(Ticket.created_at > since)
        .subquery()
    )
