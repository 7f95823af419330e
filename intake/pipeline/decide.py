"""The decision: one typed route per message, chosen from the assessment and its thread.

Pure (Mailman's chains, typed): ``decide`` reads the assessment, the thread match and a
small frozen ``TicketState`` taken from the matched ticket's row, and returns one
``Decision`` member; ``Pipeline.apply`` performs the writes for it. Nothing here reads
the clock or the store, so every route is unit-tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from intake.pipeline.assess import Assessment, Disposition
from intake.pipeline.conversation import Threading
from store.models import Ticket, TicketStatus


class Route(StrEnum):
    """Each route's name, as logged; ``new_ticket`` and ``ignore`` as ``intake check``."""

    MACHINE_ON_TICKET = "machine_on_ticket"
    IGNORE = "ignore"
    STAFF_REPLY = "staff_reply"
    STAFF_CLAIM = "staff_claim"
    FOLLOW_UP = "follow_up"
    REOPEN_AS_NEW = "reopen_as_new"
    NEW_TICKET = "new_ticket"
    FLOOD = "flood"


@dataclass(frozen=True, slots=True)
class TicketState:
    """What the decision needs to know about the matched ticket, read from its row."""

    id: int
    status: TicketStatus
    closed_at: datetime | None = None

    @classmethod
    def of(cls, ticket: Ticket) -> TicketState:
        return cls(ticket.id, TicketStatus(ticket.status), ticket.closed_at)

    def closed_longer_than(self, window: timedelta, now: datetime) -> bool:
        closed = self.closed_at
        return self.status is TicketStatus.CLOSED and closed is not None and now - closed > window


@dataclass(frozen=True, slots=True)
class MachineOnTicket:
    """Machine mail (a bounce, an auto-reply) on a ticket's thread: recorded on it."""

    ticket_id: int
    route: ClassVar[Route] = Route.MACHINE_ON_TICKET


@dataclass(frozen=True, slots=True)
class IgnoreMachine:
    """Machine mail on no ticket: recorded, never answered (RFC 3834 §2)."""

    route: ClassVar[Route] = Route.IGNORE


@dataclass(frozen=True, slots=True)
class StaffReply:
    """Our staff answering on a ticket's thread: the first one is the "response"."""

    ticket_id: int
    route: ClassVar[Route] = Route.STAFF_REPLY


@dataclass(frozen=True, slots=True)
class StaffClaim:
    """A staff From on a ticket's thread without authentication (issue 13): recorded on
    the ticket as a finding, never the response, never a customer follow-up."""

    ticket_id: int
    route: ClassVar[Route] = Route.STAFF_CLAIM


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The customer writing again on an open ticket, or one closed within the window."""

    ticket_id: int
    route: ClassVar[Route] = Route.FOLLOW_UP


@dataclass(frozen=True, slots=True)
class ReopenAsNew:
    """A follow-up to a ticket closed longer than the reopen window: a new, linked ticket."""

    parent_id: int
    route: ClassVar[Route] = Route.REOPEN_AS_NEW


@dataclass(frozen=True, slots=True)
class NewTicket:
    """A human message on no ticket we know (or may join): a new ticket.

    ``linked_id``: the ticket its threading evidence named although the sender is not on
    it (a stranger citing a customer's Message-ID): linked for staff, never joined.
    """

    linked_id: int | None = None
    route: ClassVar[Route] = Route.NEW_TICKET


@dataclass(frozen=True, slots=True)
class Flood:
    """A message that would open a ticket from a sender over its flood limit
    (``pipeline/flood.py``): kept on the sender's latest ticket, never answered."""

    ticket_id: int | None
    key: str  # address:… or domain:…
    reason: str
    route: ClassVar[Route] = Route.FLOOD


Decision = (
    MachineOnTicket
    | IgnoreMachine
    | StaffReply
    | StaffClaim
    | FollowUp
    | ReopenAsNew
    | NewTicket
    | Flood
)


def decide(
    assessment: Assessment,
    thread: Threading,
    ticket: TicketState | None,
    *,
    now: datetime,
    reopen_window: timedelta,
) -> Decision:
    """One route per message. ``ticket``: the state of the ticket ``thread`` matched."""
    current = ticket if thread.match is not None else None
    if assessment.disposition is Disposition.IGNORE:
        return MachineOnTicket(current.id) if current else IgnoreMachine()
    if current is None:
        return NewTicket(thread.linked)  # also staff writing fresh: a thread makes a reply
    if assessment.from_staff:
        return StaffReply(current.id)
    if assessment.staff_claim:
        return StaffClaim(current.id)
    if current.closed_longer_than(reopen_window, now):
        return ReopenAsNew(current.id)
    return FollowUp(current.id)


def opens_ticket(decision: Decision) -> bool:
    """Whether the route opens a ticket, so the inbound flood limits apply to it."""
    return isinstance(decision, NewTicket | ReopenAsNew)
