"""Every contract's numbers, as deadlines computed from the time we received the ticket."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from intake.policy.policy import load_policy
from intake.policy.sla import compute_deadlines


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = [
    # policy, level, received (UTC), customer zone, expected response due (UTC) or None
    ("voip-hotline", 1, "2026-11-21T18:00", None, "2026-11-21T22:00"),  # Sat: P1 is 24x7
    ("voip-hotline", 2, "2026-11-21T00:00", None, "2026-11-23T22:00"),  # Fri 16:00 PST +2h, Mon +6h
    ("voip-hotline", 3, "2026-11-23T16:00", None, "2026-11-27T20:00"),  # skips Nov 25 + 26 holidays
    ("voip-hotline", 4, "2026-11-23T16:00", None, None),  # "when commercially feasible"
    ("standard", 2, "2026-11-21T00:00", None, "2026-11-23T22:00"),  # same clock as voip-hotline
    ("cloud-services", 1, "2026-11-22T03:00", None, "2026-11-22T04:00"),  # Sev 1: 1 h, 24x7
    (
        "cloud-services",
        2,
        "2026-11-24T00:00",
        None,
        "2026-11-24T16:00",
    ),  # Mon 16:00 PST: 1h + Tue 3h
    ("cloud-services", 3, "2026-11-26T18:00", None, "2026-11-28T01:00"),  # Thanksgiving → Fri 05–17
    ("teams-connector", 1, "2026-11-23T15:00", None, "2026-11-23T16:00"),  # in hours: 1 h
    ("teams-connector", 1, "2026-11-24T04:00", None, "2026-11-24T06:00"),  # 23:00 EST: 2 h
    ("teams-connector", 3, "2026-11-24T04:00", None, "2026-11-24T16:00"),  # after hours: 12 h
    # "2 Hours" in business hours is wall-clock ("12 Business Hours" is the other row):
    # a 16:30 MST ticket is due 18:30 the same day, Wednesday as any other weekday.
    ("managed-pbx", 2, "2026-11-23T23:30", None, "2026-11-24T01:30"),  # Mon 16:30 → 18:30 MST
    ("managed-pbx", 2, "2026-11-25T23:30", None, "2026-11-26T01:30"),  # Wed 16:30 → 18:30 MST
    ("managed-pbx", 1, "2026-11-25T23:30", None, "2026-11-26T01:30"),  # P1 the same
    ("managed-pbx", 2, "2026-11-24T01:00", None, "2026-11-25T18:00"),  # 18:00 MST: 12 business h
    (
        "managed-pbx",
        2,
        "2026-11-23T21:30",
        "America/New_York",
        "2026-11-23T23:30",
    ),  # 16:30 EST + 2 h
    ("subscription", 1, "2026-11-23T15:00", None, None),  # the contract sets no response time
]


@pytest.mark.parametrize(
    ("policy", "level", "received", "zone", "expected"),
    CASES,
    ids=[f"{c[0]}-P{c[1]}-{c[2]}{'-' + c[3] if c[3] else ''}" for c in CASES],
)
def test_response_deadline(
    policy: str, level: int, received: str, zone: str | None, expected: str | None
) -> None:
    deadlines = compute_deadlines(load_policy(policy), level, utc(received), zone)
    assert deadlines.response_due == (utc(expected) if expected else None)


@pytest.mark.parametrize(
    ("policy", "level", "received", "name", "expected"),
    [
        ("voip-hotline", 1, "2026-11-23T16:00", "reason_for_outage", "2026-11-25T16:00"),
        ("voip-hotline", 2, "2026-11-23T16:00", "reason_for_outage", "2026-11-27T16:00"),
        ("voip-hotline", 1, "2026-11-23T16:00", "resolution", "2026-11-25T16:00"),
        # 5 support days = 50 business hours from Mon 08:00 PST, skipping Nov 25-26: Tue 18:00.
        ("voip-hotline", 2, "2026-11-23T16:00", "resolution", "2026-12-02T02:00"),
        ("teams-connector", 2, "2026-11-23T15:00", "work_around", "2026-11-30T15:00"),
        ("teams-connector", 1, "2026-11-23T15:00", "work_around", "2026-11-25T15:00"),
        ("managed-pbx", 1, "2026-11-23T16:00", "restoration", "2026-11-23T20:00"),  # in hours 4 h
        ("managed-pbx", 1, "2026-11-24T03:00", "restoration", "2026-11-24T15:00"),  # after 12 h
    ],
    ids=[
        "voip-rfo-p1",
        "voip-rfo-p2",
        "voip-resolution-p1",
        "voip-resolution-p2",
        "teams-workaround-p2",
        "teams-workaround-p1",
        "pbx-restoration-in-hours",
        "pbx-restoration-after-hours",
    ],
)
def test_other_deadlines(policy: str, level: int, received: str, name: str, expected: str) -> None:
    deadlines = compute_deadlines(load_policy(policy), level, utc(received))
    assert deadlines.as_dict()[name] == utc(expected)


def test_business_hours_follow_the_received_instant_not_the_date_header() -> None:
    deadlines = compute_deadlines(load_policy("voip-hotline"), 2, utc("2026-11-23T17:00"))
    assert deadlines.in_business_hours and deadlines.received_at == utc("2026-11-23T17:00")


def test_voip_off_hours_p1_charge_is_the_two_hour_minimum() -> None:
    [rule] = load_policy("voip-hotline").after_hours_charges
    assert (rule.kind, rule.amount, rule.currency, rule.status) == (
        "off_hours_emergency",
        Decimal("200.00"),
        "USD",
        "pending",
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("standard", {"business_day_hours": 10, "levels": [1, 2, 3, 4], "default": 3}),
        ("voip-hotline", {"business_day_hours": 10, "levels": [1, 2, 3, 4], "default": 3}),
        ("cloud-services", {"business_day_hours": 12, "levels": [1, 2, 3], "default": 3}),
        ("teams-connector", {"business_day_hours": 18, "levels": [1, 2, 3], "default": 3}),
        ("managed-pbx", {"business_day_hours": 9, "levels": [1, 2], "default": 2}),
        ("subscription", {"business_day_hours": 9, "levels": [1, 2], "default": 2}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_contract_is_a_valid_policy(policy: str, expected: dict[str, object]) -> None:
    loaded = load_policy(policy)
    assert loaded.business_day().total_seconds() / 3600 == expected["business_day_hours"]
    assert [p.level for p in loaded.priorities] == expected["levels"]
    assert loaded.default_priority == expected["default"]


def test_voip_holidays_are_the_contracts_ten() -> None:
    days = load_policy("voip-hotline").holidays.calendar().holidays_in(2026)
    named = {d.isoformat() for d in days}
    assert {"2026-04-03", "2026-11-25", "2026-11-26", "2026-12-24", "2026-12-25"} <= named
    assert "2026-10-12" not in named  # Columbus Day is not one of them


def test_pbx_charge_and_cloud_support_id() -> None:
    pbx = load_policy("managed-pbx")
    assert pbx.missing_information_charge is not None
    assert pbx.missing_information_charge.amount == Decimal("100.00")
    assert pbx.authorized_contacts_only and pbx.auto_close is not None
    assert pbx.auto_close.after.hours == 48 and pbx.auto_close.after.clock == "business"
    cloud = load_policy("cloud-services")
    assert [f.name for f in cloud.fields if f.required][0] == "support_id"
    assert cloud.missing_information_charge is None
