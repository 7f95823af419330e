"""The board's ticket page: the thread, findings, fields, deadlines and the charge ledger.

Everything shown comes from the stored rows: the inbound messages (when, from whom, how
they were classified, what each changed), the outbox (each reply and the text that was
mailed, read back from its stored RFC 5322 bytes), the ticket's fields and findings as the
pipeline recorded them, and every deadline in the customer's zone beside UTC.

Fields carry the provenance the store keeps: which message gave each value (the one that
opened the ticket, or the follow-up whose ``changes.supplied`` names it) and, for a field
still missing, the finding that says why. The line, label and rule a value was read from
(``intake check --explain``) is computed while reading the mail and not stored, so it is
not shown here: the page never reads the mail again.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from intake.policy.policy import Policy
from store import repository as repo
from store.models import ChargeRow, InboundMessage, OutboxMessage, Ticket


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    at: datetime
    direction: str  # "in" | "out"
    party: str  # the sender of a message in, the recipients of a reply
    kind: str  # the classification in, the reply's kind out
    outcome: str  # what processing did (in), the delivery status (out)
    changes: tuple[tuple[str, str], ...]  # what an inbound message changed, as key/value
    text: str  # the reply as mailed (text/plain part); empty for inbound (never shown)
    message_id: str


@dataclass(frozen=True, slots=True)
class Deadline:
    name: str
    utc: datetime
    local: datetime | None  # in the customer's zone (the one business hours used)


@dataclass(frozen=True, slots=True)
class LedgerLine:
    id: int
    kind: str
    amount: str
    currency: str
    status: str
    reason: str
    created_at: datetime
    settled_note: str | None
    reverses: int | None


@dataclass(frozen=True, slots=True)
class FieldLine:
    name: str
    label: str  # the contract's label
    value: str  # "" when nothing was read
    required: bool
    status: str  # "read" | "missing" | "not given"
    source: str  # which message gave the value, or why it is missing


def inbound_entry(row: InboundMessage) -> ThreadEntry:
    return ThreadEntry(
        at=row.received_at,
        direction="in",
        party=row.sender or row.envelope_from or "",
        kind=row.classification or row.status,
        outcome=row.outcome or "",
        changes=tuple(flatten(row.changes or {})),
        text="",
        message_id=row.message_id,
    )


def outbox_entry(row: OutboxMessage) -> ThreadEntry:
    return ThreadEntry(
        at=row.created_at,
        direction="out",
        party=", ".join(row.recipients),
        kind=row.kind,
        outcome=row.status,
        changes=(),
        text=reply_text(row.raw),
        message_id=row.message_id,
    )


def reply_text(raw: bytes) -> str:
    """The text/plain body of a stored reply, as the customer got it."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested change JSON as ``a.b: value`` lines, for reading, not parsing."""
    if isinstance(data, dict):
        pairs: list[tuple[str, str]] = []
        for key, value in data.items():
            pairs += flatten(value, f"{prefix}{key}.")
        return pairs
    if isinstance(data, list):
        return [(prefix.rstrip("."), ", ".join(str(v) for v in data))]
    return [(prefix.rstrip("."), str(data))]


def thread(session: Session, ticket: Ticket) -> tuple[ThreadEntry, ...]:
    """Every message in and out, oldest first (a reply after the message it answers)."""
    entries = [inbound_entry(m) for m in repo.inbound_for_ticket(session, ticket.id)]
    entries += [outbox_entry(m) for m in repo.outbox_for_ticket(session, ticket.id)]
    return tuple(sorted(entries, key=lambda e: (e.at, e.direction == "out")))


def deadlines(ticket: Ticket) -> tuple[Deadline, ...]:
    try:
        zone = ZoneInfo(ticket.timezone) if ticket.timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    found = []
    for name, value in (ticket.deadlines or {}).items():
        if isinstance(value, str):
            due = datetime.fromisoformat(value)
            found.append(Deadline(name, due, due.astimezone(zone) if zone else None))
    return tuple(found)


def ledger(charges: list[ChargeRow]) -> tuple[LedgerLine, ...]:
    return tuple(
        LedgerLine(
            c.id,
            c.kind,
            f"{c.amount:.2f}",
            c.currency,
            c.status,
            c.reason,
            c.created_at,
            c.settled_note,
            c.reverses_id,
        )
        for c in sorted(charges, key=lambda c: c.id)
    )


def field_text(value: Any) -> str:
    """A stored value as text: a multi-part field still incomplete is a dict of its parts,
    the call examples a list of such dicts (one per call, ``; `` between them)."""
    if isinstance(value, dict):
        return ", ".join(f"{part}: {field_text(text)}" for part, text in value.items())
    if isinstance(value, list):
        return "; ".join(field_text(item) for item in value)
    return str(value)


def field_sources(inbound: list[InboundMessage], ticket: Ticket) -> dict[str, str]:
    """Field name -> the message that gave it: the follow-up that supplied it, else the
    opening message (the pipeline records ``supplied`` on each follow-up's row)."""
    opening = next((m for m in inbound if m.id == ticket.inbound_message_id), None)
    first = f"the opening message ({_when(opening)})" if opening else "the opening message"
    sources = dict.fromkeys(ticket.fields, first)
    for row in inbound:
        for name in (row.changes or {}).get("supplied", ()):
            sources[name] = f"the follow-up of {_when(row)} from {row.sender or '?'}"
    return sources


def fields_read(ticket: Ticket, policy: Policy, inbound: list[InboundMessage]) -> list[FieldLine]:
    """The contract's fields in its order (then any other stored one), each with its source."""
    sources = field_sources(inbound, ticket)
    missing = set(ticket.missing_fields or ())
    why = {f.get("field"): f.get("message", "") for f in ticket.findings or () if f.get("field")}
    lines = []
    for spec in policy.fields:
        value = ticket.fields.get(spec.name)
        if spec.name in missing:
            status, source = "missing", why.get(spec.name) or "not read from any message"
        elif value is not None:
            status, source = "read", sources.get(spec.name, "")
        else:
            status, source = "not given", why.get(spec.name) or ""
        text = field_text(value) if value is not None else ""
        lines.append(FieldLine(spec.name, spec.label, text, spec.required, status, source))
    known = {spec.name for spec in policy.fields}
    for name, value in ticket.fields.items():
        if name not in known:  # a field of an older policy version
            line = FieldLine(name, name, field_text(value), False, "read", sources[name])
            lines.append(line)
    return lines


def _when(row: InboundMessage) -> str:
    return row.received_at.strftime("%Y-%m-%d %H:%M UTC")
