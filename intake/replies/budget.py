"""The outbound budget: which recipients may get one more automatic reply, and why not.

This module owns the decision taken before any automatic reply is queued (ARCHITECTURE
invariant 4; RFC 3834 §2: an automatic responder must limit how often it answers one
address): an address that bounced permanently is left alone for a configurable period,
and no address gets more than ``per_hour`` / ``per_day`` automatic replies in a rolling
window. The counting, the per-recipient lock and the bounce record live in the store;
the rule lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from intake.settings import IntakeSettings
from store import repository as repo

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    per_hour: int = 10
    per_day: int = 40
    bounce_suppression: timedelta = timedelta(days=7)

    @classmethod
    def from_intake(cls, settings: IntakeSettings) -> BudgetSettings:
        return cls(
            per_hour=settings.replies_per_hour,
            per_day=settings.replies_per_day,
            bounce_suppression=timedelta(days=settings.bounce_suppression_days),
        )


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """Who may be written to now; everyone else with the reason, for the log and the ticket."""

    allowed: tuple[str, ...]
    suppressed: dict[str, str] = field(default_factory=dict)  # address -> reason

    @property
    def any_allowed(self) -> bool:
        return bool(self.allowed)


def check_budget(
    session: Session,
    recipients: Sequence[str],
    now: datetime,
    settings: BudgetSettings,
    *,
    inbound_message_id: int | None = None,
) -> BudgetDecision:
    """Split ``recipients`` into allowed and suppressed; locks, reads, writes nothing.

    Atomic per recipient across instances and processes: the recipients' budget stays
    locked (``repository.lock_recipients``) until the caller's transaction ends, and the
    caller queues the reply in that same transaction (``Outbox.enqueue``), so no two
    transactions count the same 9 of 10. The counts are one query for all recipients.

    With ``inbound_message_id``, a message that already has a reply of any kind gets no
    second one (invariant 2 guards each kind; this guards them all). Addresses compare
    case-insensitively; each is decided once, under its first spelling.
    """
    unique: dict[str, str] = {}
    for address in recipients:
        if address.strip():
            unique.setdefault(repo.recipient_key(address), address)
    if not unique:
        return BudgetDecision(())
    repo.lock_recipients(session, list(unique))
    facts = repo.budget_facts(
        session,
        list(unique),
        now,
        hour_since=now - HOUR,
        day_since=now - DAY,
        inbound_message_id=inbound_message_id,
    )
    allowed: list[str] = []
    suppressed: dict[str, str] = {}
    for key, address in unique.items():
        reason = (
            f"inbound message {inbound_message_id} was already answered"
            if facts.answered
            else _reason_to_suppress(facts.usage[key], settings)
        )
        if reason is None:
            allowed.append(address)
        else:
            suppressed[address] = reason
    return BudgetDecision(tuple(allowed), suppressed)


def _reason_to_suppress(usage: repo.RecipientUsage, settings: BudgetSettings) -> str | None:
    until = usage.suppressed_until
    if until is not None:
        return f"bouncing until {until:%Y-%m-%d %H:%M} UTC (a permanent delivery failure)"
    # The hour is checked first: it is the tighter limit and the sooner to clear.
    for count, limit, name in (
        (usage.last_hour, settings.per_hour, "hour"),
        (usage.last_day, settings.per_day, "day"),
    ):
        if count >= limit:
            return f"{count} automatic replies in the last {name} (limit {limit})"
    return None
