"""decide(): one route per message, from the assessment, the thread and the ticket state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intake.pipeline.assess import Assessment, assess
from intake.pipeline.conversation import Threading, ThreadMatch
from intake.pipeline.decide import (
    Decision,
    Flood,
    FollowUp,
    IgnoreMachine,
    MachineOnTicket,
    NewTicket,
    ReopenAsNew,
    Route,
    StaffClaim,
    StaffReply,
    TicketState,
    decide,
    opens_ticket,
)
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook, load_policy
from parsing import SenderTrust, parse_message
from store.models import TicketStatus
from tests.conftest import make_mail

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
WINDOW = timedelta(days=14)
IDENTITY = Identity(
    ("support@example.com",),
    "support@example.com",
    (),
    ("provider.example",),
    trusted_authserv_ids=("mx.example.com",),
)
POLICIES = PolicyBook(load_policy("standard"))
# What our MTA adds when the staff member's domain passes DMARC (RFC 8601).
VERIFIED = {"Authentication-Results": "mx.example.com; dmarc=pass header.from=provider.example"}


def assessed(
    sender: str = "Jane <jane@acme.example>", machine: bool = False, verified: bool = True
) -> Assessment:
    headers = {"Auto-Submitted": "auto-replied"} if machine else {}
    headers |= VERIFIED if verified else {}
    message = parse_message(make_mail(sender=sender, headers=headers))
    return assess(message, sender, POLICIES, IDENTITY, NOW)


CUSTOMER, STAFF, ROBOT = assessed(), assessed("Sam <sam@provider.example>"), assessed(machine=True)
FORGED_STAFF = assessed("Sam <sam@provider.example>", verified=False)
ON_TICKET = Threading(ThreadMatch(7, "token"))
NO_THREAD = Threading(None, ("subject: no ticket TKT-000009",))
OPEN = TicketState(7, TicketStatus.OPEN)
WAITING = TicketState(7, TicketStatus.WAITING_CUSTOMER)


def closed(ago: timedelta) -> TicketState:
    return TicketState(7, TicketStatus.CLOSED, NOW - ago)


CASES: list[tuple[Assessment, Threading, TicketState | None, Decision]] = [
    (CUSTOMER, NO_THREAD, None, NewTicket()),
    (ROBOT, NO_THREAD, None, IgnoreMachine()),
    (ROBOT, ON_TICKET, OPEN, MachineOnTicket(7)),
    (STAFF, ON_TICKET, OPEN, StaffReply(7)),
    (FORGED_STAFF, ON_TICKET, OPEN, StaffClaim(7)),
    (FORGED_STAFF, NO_THREAD, None, NewTicket()),
    (CUSTOMER, ON_TICKET, OPEN, FollowUp(7)),
    (CUSTOMER, ON_TICKET, WAITING, FollowUp(7)),
    (CUSTOMER, ON_TICKET, closed(timedelta(days=3)), FollowUp(7)),
    (CUSTOMER, ON_TICKET, closed(WINDOW), FollowUp(7)),
    (CUSTOMER, ON_TICKET, closed(WINDOW + timedelta(seconds=1)), ReopenAsNew(7)),
    (STAFF, NO_THREAD, None, NewTicket()),
    (STAFF, ON_TICKET, closed(timedelta(days=30)), StaffReply(7)),
    (ROBOT, ON_TICKET, closed(timedelta(days=30)), MachineOnTicket(7)),
    (CUSTOMER, ON_TICKET, None, NewTicket()),
    (CUSTOMER, NO_THREAD, OPEN, NewTicket()),
    (CUSTOMER, Threading(None, ("References cite TKT-000007, but …",), 7), None, NewTicket(7)),
]
IDS = [
    "customer-without-thread-new-ticket",
    "machine-without-thread-ignored",
    "machine-on-a-ticket",
    "staff-reply",
    "unauthenticated-staff-is-a-claim-not-a-reply",
    "unauthenticated-staff-without-thread-new-ticket",
    "follow-up-open",
    "follow-up-waiting-on-customer",
    "closed-within-window-follow-up-reopens-it",
    "closed-exactly-a-window-ago-still-reopens-it",
    "closed-past-window-new-linked-ticket",
    "staff-sender-without-thread-new-ticket",
    "staff-on-long-closed-ticket-is-still-a-staff-reply",
    "machine-on-long-closed-ticket",
    "matched-ticket-row-gone-new-ticket",
    "state-without-thread-match-is-ignored",
    "stranger-citing-a-ticket-new-ticket-linked-to-it",
]


@pytest.mark.parametrize(("assessment", "thread", "ticket", "expected"), CASES, ids=IDS)
def test_decide_picks_one_route(
    assessment: Assessment, thread: Threading, ticket: TicketState | None, expected: Decision
) -> None:
    assert decide(assessment, thread, ticket, now=NOW, reopen_window=WINDOW) == expected


@pytest.mark.parametrize(
    ("decision", "value"),
    [
        (MachineOnTicket(1), "machine_on_ticket"),
        (IgnoreMachine(), "ignore"),
        (StaffReply(1), "staff_reply"),
        (StaffClaim(1), "staff_claim"),
        (FollowUp(1), "follow_up"),
        (ReopenAsNew(1), "reopen_as_new"),
        (NewTicket(), "new_ticket"),
        (Flood(1, "address:jane@acme.example", "20 new tickets"), "flood"),
    ],
    ids=[
        "machine-on-ticket",
        "ignore",
        "staff-reply",
        "staff-claim",
        "follow-up",
        "reopen",
        "new-ticket",
        "flood",
    ],
)
def test_each_route_has_its_stable_name(decision: Decision, value: str) -> None:
    assert decision.route is Route(value) and decision.route == value


@pytest.mark.parametrize(
    ("decision", "limited"),
    [(NewTicket(), True), (ReopenAsNew(1), True), (FollowUp(1), False), (StaffReply(1), False)],
    ids=["new-ticket", "reopen-as-new", "follow-up", "staff-reply"],
)
def test_only_routes_that_open_a_ticket_meet_the_flood_limits(
    decision: Decision, limited: bool
) -> None:
    assert opens_ticket(decision) is limited


def test_the_dry_run_disposition_names_match_the_routes() -> None:
    # ``intake check`` prints the disposition as "decision"; it must name the same routes.
    assert CUSTOMER.disposition.value == NewTicket.route.value == "new_ticket"
    assert ROBOT.disposition.value == IgnoreMachine.route.value == "ignore"


def test_staff_is_read_from_the_sender_not_from_our_own_address() -> None:
    ours = assessed("Support <support@example.com>")
    assert (STAFF.from_staff, CUSTOMER.from_staff, ours.from_staff) == (True, False, False)


def test_a_staff_from_without_authentication_is_only_a_claim() -> None:
    # Issue 13: before, a forged From of a staff address was a staff reply (SLA "met").
    assert (FORGED_STAFF.from_staff, FORGED_STAFF.staff_claim) == (False, True)
    assert (STAFF.staff_claim, CUSTOMER.staff_claim) == (False, False)
    assert "unauthenticated_staff" in {f.code for f in FORGED_STAFF.findings}


def test_a_policy_may_knowingly_accept_header_claims() -> None:
    # authenticated_senders with "none": a deployment with no MTA adding results.
    trusting = load_policy("standard").model_copy(
        update={"authenticated_senders": frozenset({SenderTrust.NONE, SenderTrust.DMARC_PASS})}
    )
    message = parse_message(make_mail(sender="Sam <sam@provider.example>"))
    claimed = assess(message, "sam@provider.example", PolicyBook(trusting), IDENTITY, NOW)
    assert (claimed.from_staff, claimed.staff_claim) == (True, False)
    assert decide(claimed, ON_TICKET, OPEN, now=NOW, reopen_window=WINDOW) == StaffReply(7)
