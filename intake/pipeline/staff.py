"""Staff actions that apply the contract: a new priority and a first response by phone.

The board and the CLI call these; each is one write through ``store.repository`` inside
the caller's transaction. The rules are the pipeline's own, not second copies: deadlines
come from ``policy.sla.compute_deadlines`` (the function that set them when the ticket
was opened) and a phone response is stamped by ``followup.apply_staff_reply`` (the rule a
staff reply on the thread follows: met when given by the response deadline).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from intake.pipeline.followup import apply_staff_reply
from intake.policy.policy import PolicyBook
from intake.policy.sla import compute_deadlines
from store import repository as repo
from store.models import Ticket


def set_priority(
    session: Session, policies: PolicyBook, number: str, level: int, actor: str, now: datetime
) -> Ticket:
    """Re-prioritise a ticket; its deadlines recomputed from the time it was received.

    The start is the opening message's ``received_at``, the instant the pipeline counted
    from: a corrected priority corrects the classification, it does not restart the
    contract's clock (and a ticket must not gain time by being re-prioritised late).
    ValueError: the ticket's policy has no such level."""
    ticket = repo.ticket_by_number(session, number)
    if ticket is None:
        raise repo.StaffActionError(f"no ticket {number}")
    policy = policies.by_name(ticket.policy_name)
    if policy.priority(level) is None:
        known = ", ".join(str(p.level) for p in policy.priorities)
        raise ValueError(f"policy {policy.name} has no priority {level} (it has {known})")
    received = repo.ticket_received_at(session, ticket)
    deadlines = compute_deadlines(policy, level, received, ticket.timezone)
    used = f"policy {policy.name} {policy.version}, from {received.isoformat()}"
    return repo.set_ticket_priority(session, number, level, deadlines.as_dict(), used, actor, now)


def record_phone_response(
    session: Session, number: str, at: datetime | None, note: str | None, actor: str, now: datetime
) -> Ticket:
    """The first response, given by phone at ``at`` (None: now), as a staff reply counts."""
    return repo.record_phone_response(
        session, number, at or now, note or None, actor, now, stamp=apply_staff_reply
    )
