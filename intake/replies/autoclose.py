"""Auto-close: tickets left waiting on the customer past the policy's allowance are closed.

The managed-PBX contract: "tickets not responded to by Client within 48 business hours
may be automatically closed". A ticket waits on the customer from the moment we asked for
missing information; when the policy's ``auto_close.after`` has run out on its business
clock, the ticket is closed and the customer gets a notice on the ticket's thread, in one
transaction, so a crash never closes without telling or tells twice. The notice goes through
the one enqueue path (``replies/outbox.py``) like every reply: signed Message-ID, reply
budget, bounce suppression.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jinja2
import structlog
from sqlalchemy.orm import Session, sessionmaker

from intake.policy.policy import Policy, PolicyBook, Target
from intake.policy.sla import due_at
from intake.replies.outbox import Outbox, ReplyKind
from intake.replies.render import TicketRef, render_ticket_notice
from store import repository as repo
from store.db import session_scope
from store.models import Ticket, TicketStatus


@dataclass
class AutoCloser:
    sessions: sessionmaker[Session]
    policies: PolicyBook
    outbox: Outbox
    templates: jinja2.Environment

    def run_once(self, now: datetime) -> list[str]:
        """Close every ticket whose waiting time ran out by ``now``; their numbers."""
        # A write transaction: the notices it queues count against the reply budget.
        with session_scope(self.sessions, write=True) as session:
            closed = self.close_due(session, now)
        for number in closed:
            structlog.get_logger("intake.autoclose").info("ticket.auto_closed", ticket=number)
        return closed

    def close_due(self, session: Session, now: datetime) -> list[str]:
        """Close and notify inside the caller's transaction (``run_once`` commits it)."""
        closed: list[str] = []
        for candidate in repo.tickets_waiting_since(session, now - self._shortest_wait()):
            # Locked and read again: a follow-up on another instance may have answered
            # (and reopened) it since the list was read; closing that would undo it.
            ticket = repo.lock_ticket(session, candidate.id)
            if ticket.status == TicketStatus.WAITING_CUSTOMER and self._expired(ticket, now):
                self._close(session, ticket, now)
                closed.append(ticket.number or "")
        return closed

    def _policy(self, ticket: Ticket) -> Policy:
        return self.policies.by_name(ticket.policy_name)

    def _shortest_wait(self) -> timedelta:
        # Business time never runs faster than the wall clock, so no ticket waiting for
        # less than the smallest allowance (in wall time) can be due: skip it in SQL.
        allowances = [
            _wall_lower_bound(p.auto_close.after, p)
            for p in (self.policies.default, *self.policies.others.values())
            if p.auto_close
        ]
        return min(allowances, default=timedelta(days=36500))

    def _expired(self, ticket: Ticket, now: datetime) -> bool:
        policy = self._policy(ticket)
        if policy.auto_close is None or ticket.waiting_since is None:
            return False
        calendar = policy.calendar(ticket.timezone)
        return due_at(calendar, policy.auto_close.after, ticket.waiting_since) <= now

    def _close(self, session: Session, ticket: Ticket, now: datetime) -> None:
        policy = self._policy(ticket)
        assert policy.auto_close is not None and ticket.waiting_since is not None
        ticket.status, ticket.closed_at, ticket.updated_at = TicketStatus.CLOSED, now, now
        if not ticket.requester_email or not ticket.number:
            return
        # Stable per ticket and wait, not per run: a retry after a crash sends the same id.
        kind = ReplyKind.AUTO_CLOSE
        message_id = self.outbox.notice_id(ticket.number, kind, ticket.waiting_since)
        ref = TicketRef(ticket.number, ticket.subject, ticket.requester_email, ticket.message_id)
        notice = render_ticket_notice(
            self.templates,
            "auto_close",
            ticket=ref,
            message_id=message_id,
            sender=self.outbox.sender,
            now=now,
            context={
                "name": ticket.requester_name,
                "issue": ticket.issue,
                "reason": policy.auto_close.reason,
            },
        )
        self.outbox.enqueue(session, notice, kind, ticket_id=ticket.id, now=now)


def _wall_lower_bound(target: Target, policy: Policy) -> timedelta:
    if target.clock == "wall" or target.hours is not None:
        return timedelta(hours=target.hours or (target.days or 0) * 24)
    return (target.days or 0) * policy.business_day()
