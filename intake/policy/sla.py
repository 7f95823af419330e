"""SLA deadlines for a ticket: the policy's targets applied to the time we received it.

Pure (ARCHITECTURE invariant 7): the received instant is passed in — always the time the
message reached us, never the customer's Date header — and deadlines come back in UTC,
so tickets can store them with the policy name and version and later policy edits never
rewrite history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from intake.policy.clock import (
    BusinessCalendar,
    add_business_days,
    add_business_time,
    add_wall_time,
    is_business_time,
)
from intake.policy.policy import Policy, Priority, Target


@dataclass(frozen=True, slots=True)
class Deadlines:
    received_at: datetime
    timezone: str  # the zone business hours were counted in
    in_business_hours: bool
    response_due: datetime | None
    response_target: Target | None
    others: Mapping[str, datetime] = field(default_factory=dict)
    other_targets: Mapping[str, Target] = field(default_factory=dict)

    def as_dict(self) -> dict[str, datetime]:
        """Every deadline by name (``response`` first), for JSON and the ticket row."""
        named = {"response": self.response_due} if self.response_due else {}
        return {**named, **self.others}


def due_at(calendar: BusinessCalendar, target: Target, start: datetime) -> datetime:
    """When ``target`` runs out, counted from ``start`` on the target's clock."""
    if target.clock == "wall":
        hours = target.hours if target.hours is not None else (target.days or 0) * 24
        return add_wall_time(start, timedelta(hours=hours))
    if target.hours is not None:
        return add_business_time(calendar, start, timedelta(hours=target.hours))
    return add_business_days(calendar, start, target.days or 0)


def compute_deadlines(
    policy: Policy, level: int, received_at: datetime, timezone: str | None = None
) -> Deadlines:
    """The response deadline and every other target of ``level`` for a ticket received then."""
    calendar = policy.calendar(timezone)
    inside = is_business_time(calendar, received_at)
    priority = policy.priority(level)
    response = _response_target(priority, inside)
    targets = _other_targets(priority, inside)
    return Deadlines(
        received_at=received_at,
        timezone=policy.zone(timezone),
        in_business_hours=inside,
        response_due=due_at(calendar, response, received_at) if response else None,
        response_target=response,
        others={name: due_at(calendar, t, received_at) for name, t in targets.items()},
        other_targets=targets,
    )


def _response_target(priority: Priority | None, inside: bool) -> Target | None:
    if priority is None:
        return None
    if not inside and priority.response_after_hours is not None:
        return priority.response_after_hours
    return priority.response


def _other_targets(priority: Priority | None, inside: bool) -> dict[str, Target]:
    if priority is None:
        return {}
    targets = dict(priority.deadlines)
    if not inside:
        targets |= priority.deadlines_after_hours
    return targets
