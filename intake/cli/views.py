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
from intake.pipeline.dkimcheck import DkimVerifier
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook, ReportField
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
    *,
    explain: bool = False,
    dkim: DkimVerifier | None = None,
) -> dict[str, Any]:
    """The ``intake check --json`` object for one input (``error`` set when unreadable).

    ``explain``: add ``explain``, per field where its value came from (``--explain``).
    ``dkim``: verify DKIM signatures with it (the pipeline's verifier, ``intake.verify_dkim``);
    the domains that verified are ``dkim_verified`` and count in ``sender_trust``.
    """
    if raw is None:
        return {"file": name, "error": error or "cannot read"}
    verified = dkim.verified_domains(raw) if dkim else ()
    try:
        assessment = assess_bytes(
            raw, None, policies, identity, received_at, directory, dkim_verified=verified
        )
    except Exception as exc:  # a parser bug must not end the run; it is reported per file
        return {"file": name, "error": f"{type(exc).__name__}: {exc}"}
    record = {"file": name, **assessment_view(assessment)}
    if dkim is not None:
        record["dkim_verified"] = list(verified)
    if explain:
        record["explain"] = explain_view(assessment)
    return record


_SATISFIERS = {
    "subject_customer": "the subject's customer part",
    "from_address": "the From address",
    "from_name": "the From name",
    "free_text": "the customer's own words (free text)",
    "call_examples": "the call examples",
    "phone_in_text": "a phone number in a sentence or the signature",
}


def explain_view(a: Assessment) -> list[dict[str, Any]]:
    """Per policy field: read or not, and from which line, synonym and rule (provenance).

    This is how NOC staff answer "why was I charged?": every value names the line it
    came from; a field nothing was read for says so, with any line that only mentions it.
    """
    extraction, missing = a.extraction, set(a.missing_fields)
    view: list[dict[str, Any]] = []
    for spec in a.policy.fields:
        sources = [s for s in extraction.sources if s.field == spec.name]
        entry: dict[str, Any] = {
            "field": spec.name,
            "label": spec.label,
            "required": spec.required,
            "status": "missing" if spec.name in missing else "ok",
            "sources": [
                {
                    "line": s.line,
                    "text": s.text,
                    "synonym": s.synonym,
                    "rule": s.rule,
                    "part": s.part,
                    "value": s.value,
                    "used": s.used,
                }
                for s in sources
            ],
            "mentions": [
                {"line": m.line, "text": m.text, "synonym": m.synonym}
                for m in extraction.mentions
                if m.field == spec.name
            ],
            "why": _why(a, spec.name),
        }
        view.append(entry)
    return view


def _why(a: Assessment, name: str) -> str:
    """One sentence: how the field was satisfied, or why nothing matched."""
    spec = a.policy.report_field(name)
    finding = next((f for f in a.findings if f.field == name), None)
    if spec is None or name in a.extraction.values:
        return "read from the report"
    phone = a.extraction.phone
    if finding is None and phone and "phone_in_text" in spec.satisfied_by:
        return f"read without a label from the {phone.found_in}: {phone.line!r}"
    if finding is None:
        how = [_SATISFIERS.get(h, h) for h in spec.satisfied_by]
        if not spec.required:
            return "optional: not given, not needed"
        return "satisfied by " + " or ".join(how) if how else "given"
    return finding.detail or _why_missing(a, spec)


def _why_missing(a: Assessment, spec: ReportField) -> str:
    extraction = a.extraction
    if spec.name in extraction.blank:
        return "its label was there, but the value was empty or a placeholder (N/A, TBD, ...)"
    if "call_examples" in spec.satisfied_by:
        count = len(extraction.call_examples)
        if count:
            return f"{count} call example(s) read, none with date/time, calling and called party"
        return "no call example (Date/Time, Calling, Called) was read"
    labels = ", ".join((spec.label, *spec.synonyms)[:6])
    return f"no line of the new text starts with one of its labels ({labels}, ...)"


def format_explain(record: dict[str, Any]) -> str:
    """The ``--explain`` text: one block per field, the line each value came from."""
    lines = ["  explain:"]
    for entry in record.get("explain", ()):
        flag = "ok     " if entry["status"] == "ok" else "MISSING"
        lines.append(f"    {flag} {entry['field']}: {entry['why']}")
        for s in entry["sources"]:
            where = f"line {s['line']}" if s["line"] else "HTML table"
            part = f" [{s['part']}]" if s["part"] else ""
            unused = "" if s["used"] else " (not used)"
            lines.append(
                f"             {where}{part}: {s['text']!r} - synonym {s['synonym']!r},"
                f" {s['rule']}{unused}"
            )
        for m in entry["mentions"]:
            lines.append(
                f"             line {m['line']}: {m['text']!r} names {m['synonym']!r}"
                " in prose, not as a label at the start of the line"
            )
    return "\n".join(lines)


def assessment_view(a: Assessment) -> dict[str, Any]:
    message, subject, policy = a.message, a.subject, a.policy
    return {
        "message": {
            "message_id": message.message_id,
            "from": message.from_address,
            "subject": message.subject,
            "body_text": message.body_text,
        },
        "sender_trust": a.trust.value,
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
        f"  sender:   {record['sender_trust']}",
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
        "assignee": ticket.assignee,
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
            "sender_trust": m.sender_trust,  # parsing.auth: how far "from" is authenticated
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
