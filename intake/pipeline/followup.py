"""What a message on an existing ticket changes: customer follow-ups and staff replies.

Pure over the ticket row and the assessment: the pipeline calls these inside COMMIT 2
and stores the returned change record on the inbound message, which is what
``intake tickets show`` prints for each message of the thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from intake.pipeline.assess import Assessment
from intake.pipeline.changes import FollowUpChanges, StaffReplyChanges
from intake.policy.findings import FindingCode
from parsing import format_parts
from store.models import Ticket, TicketStatus


def apply_follow_up(ticket: Ticket, assessment: Assessment, now: datetime) -> FollowUpChanges:
    """Record fields the customer supplied; the initial-contact charge stays as it was.

    ``assessment`` must read the message under the ticket's own policy. Even then a field
    counts as supplied only when that policy still checks it: a field a newer policy
    version no longer requires was not supplied by a reply that never mentions it.
    """
    checked = {spec.name for spec in assessment.policy.fields if spec.required}
    missing_now = set(assessment.missing_fields)
    merged = merge_parts(ticket, assessment)
    supplied = [
        f
        for f in ticket.missing_fields
        if f in checked and (f not in missing_now or isinstance(merged.get(f), str))
    ]
    still_missing = [f for f in ticket.missing_fields if f not in supplied]
    new_values = {k: v for k, v in assessment.fields.items() if k in supplied}
    new_values.update(merged)
    if supplied or merged:
        # A new dict, so SQLAlchemy sees the JSON column change.
        ticket.fields = {**ticket.fields, **new_values}
        ticket.missing_fields = still_missing
    reopened = ticket.status == TicketStatus.CLOSED
    if reopened:
        ticket.closed_at = None
    if ticket.status != TicketStatus.OPEN:
        ticket.status, ticket.waiting_since = TicketStatus.OPEN, None
    ticket.updated_at = now
    return FollowUpChanges(tuple(supplied), tuple(still_missing), reopened)


def merge_parts(ticket: Ticket, assessment: Assessment) -> dict[str, Any]:
    """Multi-part fields still missing on the ticket, merged with what this message gives.

    The board serial in the first mail and the appliance serial in the reply complete
    the field: the result is its value (a str). Still incomplete: the parts so far (a
    dict, kept on the ticket). A value that names no part fills the one part still open.
    """
    extraction = assessment.extraction
    merged: dict[str, Any] = {}
    for spec in assessment.policy.fields:
        if not spec.parts or spec.name not in ticket.missing_fields:
            continue
        before = ticket.fields.get(spec.name)
        given = {
            **(before if isinstance(before, dict) else {}),
            **extraction.parts.get(spec.name, {}),
        }
        names = [part.name for part in spec.parts]
        open_parts = [name for name in names if name not in given]
        loose = extraction.unassigned.get(spec.name)
        if loose and len(open_parts) == 1:
            given[open_parts[0]] = loose
        if spec.name in extraction.values or all(name in given for name in names):
            merged[spec.name] = extraction.values.get(spec.name) or format_parts(names, given)
        elif given != before and given:
            merged[spec.name] = given
    return merged


def apply_staff_claim(ticket: Ticket, assessment: Assessment, now: datetime) -> None:
    """An unauthenticated staff From on the thread: its finding goes on the ticket, and
    nothing else changes (no first response, no SLA "met", no fields, no status)."""
    claim = FindingCode.UNAUTHENTICATED_STAFF
    claims = [f.as_dict() for f in assessment.findings if f.code is claim]
    ticket.findings = [*ticket.findings, *claims]  # a new list, so SQLAlchemy sees the change
    ticket.updated_at = now


def apply_staff_reply(ticket: Ticket, now: datetime) -> StaffReplyChanges:
    """A staff answer on the thread; the first one is the contract's "response"."""
    ticket.updated_at = now
    if ticket.first_response_at is not None:
        return StaffReplyChanges(first_response=False)
    ticket.first_response_at = now
    due = ticket.response_due_at
    ticket.response_met = due is None or now <= due
    return StaffReplyChanges(first_response=True, response_met=ticket.response_met)
