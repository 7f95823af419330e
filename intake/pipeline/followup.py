"""What a message on an existing ticket changes: customer follow-ups and staff replies.

Pure over the ticket row and the assessment: the pipeline calls these inside COMMIT 2
and stores the returned change record on the inbound message, which is what
``intake tickets show`` prints for each message of the thread.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from intake.pipeline.assess import Assessment
from store.models import Ticket, TicketStatus


def apply_follow_up(ticket: Ticket, assessment: Assessment, now: datetime) -> dict[str, Any]:
    """Record fields the customer supplied; the initial-contact charge stays as it was."""
    still_missing = [f for f in ticket.missing_fields if f in assessment.missing_fields]
    supplied = [f for f in ticket.missing_fields if f not in assessment.missing_fields]
    if supplied:
        new_values = {k: v for k, v in assessment.fields.items() if k in supplied}
        # A new dict, so SQLAlchemy sees the JSON column change.
        ticket.fields = {**ticket.fields, **new_values}
        ticket.missing_fields = still_missing
    changes: dict[str, Any] = {"supplied": supplied, "still_missing": still_missing}
    if ticket.status == TicketStatus.CLOSED:
        changes["reopened"] = True
        ticket.closed_at = None
    if ticket.status != TicketStatus.OPEN:
        ticket.status, ticket.waiting_since = TicketStatus.OPEN, None
    ticket.updated_at = now
    return changes


def apply_staff_reply(ticket: Ticket, now: datetime) -> dict[str, Any]:
    """A staff answer on the thread; the first one is the contract's "response"."""
    ticket.updated_at = now
    if ticket.first_response_at is not None:
        return {"staff_reply": True}
    ticket.first_response_at = now
    due = ticket.response_due_at
    ticket.response_met = due is None or now <= due
    return {"first_response": True, "response_met": ticket.response_met}


def reopen_window_passed(ticket: Ticket, now: datetime, window: timedelta) -> bool:
    """A closed ticket older than the window gets a new, linked ticket instead."""
    closed = ticket.closed_at
    return ticket.status == TicketStatus.CLOSED and closed is not None and now - closed > window
