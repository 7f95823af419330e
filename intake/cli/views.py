"""What the CLI shows: plain dict views of assessments, tickets, messages and replies.

Kept apart from click so tests (and a future read-only web view) use the same shapes.
Times are ISO 8601 UTC; money is a decimal string with its currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from intake.app import App
from intake.pipeline.assess import Assessment, assess_bytes
from intake.pipeline.customers import CustomerRecord, load_directory
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook
from store import repository as repo
from store.db import session_scope
from store.models import ChargeRow, InboundMessage, MailboxState, OutboxMessage, Ticket


def check_record(
    name: str,
    raw: bytes | None,
    error: str | None,
    policies: PolicyBook,
    identity: Identity,
    received_at: datetime,
    directory: Sequence[CustomerRecord] = (),
) -> dict[str, Any]:
    """The ``intake check --json`` object for one input (``error`` set when unreadable)."""
    if raw is None:
        return {"file": name, "error": error or "cannot read"}
    try:
        assessment = assess_bytes(raw, None, policies, identity, received_at, directory)
    except Exception as exc:  # a parser bug must not end the run; it is reported per file
        return {"file": name, "error": f"{type(exc).__name__}: {exc}"}
    return {"file": name, **assessment_view(assessment)}


def assessment_view(a: Assessment) -> dict[str, Any]:
    message, subject, policy = a.message, a.subject, a.policy
    return {
        "message": {
            "message_id": message.message_id,
            "from": message.from_address,
            "subject": message.subject,
            "body_text": message.body_text,
        },
        "classification": a.verdict.kind.value,
        "classification_reason": a.verdict.reason,
        "subject": {
            "customer": subject.customer,
            "location": subject.location,
            "issue": subject.issue,
            "priority": subject.priority,
        }
        if subject.follows_grammar
        else None,
        "subject_problem": subject.problem,
        "priority": a.priority,
        "fields": dict(a.fields),
        "missing_fields": list(a.missing_fields),
        "findings": [f.as_dict() for f in a.findings],
        "charges": [
            {
                "kind": c.kind,
                "amount": f"{c.amount:.2f}",
                "currency": c.currency,
                "status": c.status,
                "reason": c.reason,
            }
            for c in a.charges
        ],
        "response_due": _iso(a.response_due),
        "deadlines": {k: _iso(v) for k, v in a.deadlines.as_dict().items()},
        "in_business_hours": a.deadlines.in_business_hours,
        "timezone": a.deadlines.timezone,
        "customer": a.customer.customer.name if a.customer else None,
        "billable_hourly": a.billable_hourly,
        "decision": a.disposition.value,
        "reply_to": a.reply_address,
        "policy": {"name": policy.name, "version": policy.version},
    }


def format_check_text(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"{record['file']}: error: {record['error']}"
    lines = [
        f"{record['file']}: {record['classification']} → {record['decision']}",
        f"  subject:  {record['message']['subject']!r}",
        f"  customer: {record['customer'] or '(unknown)'}  policy: {record['policy']['name']}",
        f"  priority: {record['priority']}",
        f"  response: {record['response_due'] or 'no target'}",
        f"  missing:  {', '.join(record['missing_fields']) or '-'}",
        f"  charges:  {', '.join(_money(c) for c in record['charges']) or '-'}",
    ]
    lines += [f"  finding:  {f['message']}" for f in record["findings"]]
    return "\n".join(lines)


def _money(charge: dict[str, Any]) -> str:
    return f"{charge['amount']} {charge['currency']}"


def is_breached(ticket: Ticket, now: datetime) -> bool:
    """The response target was missed: no first response by the deadline."""
    due = ticket.response_due_at
    if due is None:
        return False
    answered = ticket.first_response_at
    return answered > due if answered else now > due


def ticket_view(
    ticket: Ticket, *, full: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "number": ticket.number,
        "customer": ticket.customer,
        "location": ticket.location,
        "issue": ticket.issue,
        "priority": ticket.priority,
        "status": ticket.status,
        "missing_fields": list(ticket.missing_fields),
        "requester": ticket.requester_email,
        "response_due": _iso(ticket.response_due_at),
        "breached": is_breached(ticket, now) if now else None,
        "billable_hourly": ticket.billable_hourly,
        "created_at": _iso(ticket.created_at),
    }
    if full:
        view |= {
            "subject": ticket.subject,
            "fields": ticket.fields,
            "findings": ticket.findings,
            "policy": f"{ticket.policy_name} {ticket.policy_version}",
            "deadlines": ticket.deadlines,
            "timezone": ticket.timezone,
            "first_response_at": _iso(ticket.first_response_at),
            "waiting_since": _iso(ticket.waiting_since),
            "closed_at": _iso(ticket.closed_at),
            "charges": [charge_view(c) for c in ticket.charges],
        }
    return view


def thread_view(session: Session, ticket: Ticket) -> list[dict[str, Any]]:
    """Every message of a ticket, in and out, oldest first, with what each changed."""
    inbound = repo.inbound_for_ticket(session, ticket.id)
    outbound = repo.outbox_for_ticket(session, ticket.id)
    entries = [
        {
            "at": _iso(m.received_at),
            "direction": "in",
            "from": m.sender,
            "classification": m.classification,
            "outcome": m.outcome,
            "changes": m.changes,
            "message_id": m.message_id,
        }
        for m in inbound
    ] + [
        {
            "at": _iso(m.created_at),
            "direction": "out",
            "to": list(m.recipients),
            "kind": m.kind,
            "status": m.status,
            "message_id": m.message_id,
        }
        for m in outbound
    ]
    return sorted(entries, key=lambda e: (e["at"] or "", e["direction"] == "out"))


def charge_view(charge: ChargeRow) -> dict[str, Any]:
    return {
        "id": charge.id,
        "ticket": charge.ticket.number if charge.ticket else None,
        "kind": charge.kind,
        "amount": f"{charge.amount:.2f}",
        "currency": charge.currency,
        "status": charge.status,
        "reason": charge.reason,
        "created_at": _iso(charge.created_at),
        "reverses": charge.reverses_id,  # a waiver's credit line names the line it reverses
    }


def inbound_view(row: InboundMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "message_id": row.message_id,
        "origin": row.origin,
        "status": row.status,
        "attempts": row.attempts,
        "received_at": _iso(row.received_at),
        "last_error": row.last_error,
    }


def outbox_view(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "message_id": row.message_id,
        "kind": row.kind,
        "status": row.status,
        "recipients": list(row.recipients),
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "sent_at": _iso(row.sent_at),
        "last_error": row.last_error,
    }


def mailbox_view(row: MailboxState) -> dict[str, Any]:
    return {
        "mailbox": row.name,
        "state": "failing" if row.failing_since else ("ok" if row.last_ok_at else "unknown"),
        "failing_since": _iso(row.failing_since),
        "last_error": row.last_error,
        "last_ok_at": _iso(row.last_ok_at),
        "uidvalidity": row.uidvalidity,
        "lease_owner": row.lease_owner,
        "lease_expires_at": _iso(row.lease_expires_at),
    }


def stored_directory(app: App) -> tuple[CustomerRecord, ...]:
    """The customer directory in the App's store, read-only; empty when there is none yet."""
    try:
        with session_scope(app.sessions) as session:
            return load_directory(session)
    except Exception:  # no store, or no customer table yet: check against no directory
        return ()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
