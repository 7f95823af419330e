"""Holiday calendars: named and generic rules, observed dates, the country calendar.

Expected dates are verified by hand against a printed calendar, not computed.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest

from intake.policy.calendars import KNOWN_RULES, HolidayCalendar, easter_sunday, rule_name

# The voip-hotline contract (policy 001): "New Year’s Day, Presidents Day, Good Friday,
# Memorial Day, Independence Day, Labor Day, Day before Thanksgiving, Thanksgiving Day,
# Christmas Eve, and Christmas Day" — spelled as the contract spells them.
VOIP_RULES = (
    "New Year\u2019s Day",
    "Presidents Day",
    "Good Friday",
    "Memorial Day",
    "Independence Day",
    "Labor Day",
    "Day before Thanksgiving",
    "Thanksgiving Day",
    "Christmas Eve",
    "Christmas Day",
)
VOIP = HolidayCalendar(rules=VOIP_RULES)

# year -> every holiday date of the voip-hotline calendar in that year (observed included)
VOIP_DATES = {
    2025: {
        date(2025, 1, 1): "New Year's Day",  # Wed
        date(2025, 2, 17): "Presidents Day",  # 3rd Mon (Feb 1 is a Sat)
        date(2025, 4, 18): "Good Friday",  # Easter Apr 20
        date(2025, 5, 26): "Memorial Day",  # May 31 is a Sat
        date(2025, 7, 4): "Independence Day",  # Fri
        date(2025, 9, 1): "Labor Day",  # Sep 1 is a Mon
        date(2025, 11, 26): "Day before Thanksgiving",
        date(2025, 11, 27): "Thanksgiving Day",  # Nov 1 is a Sat
        date(2025, 12, 24): "Christmas Eve",  # Wed
        date(2025, 12, 25): "Christmas Day",  # Thu
    },
    2026: {
        date(2026, 1, 1): "New Year's Day",  # Thu
        date(2026, 2, 16): "Presidents Day",  # Feb 1 is a Sun
        date(2026, 4, 3): "Good Friday",  # Easter Apr 5
        date(2026, 5, 25): "Memorial Day",  # May 31 is a Sun
        date(2026, 7, 3): "Independence Day (observed)",  # Jul 4 is a Sat
        date(2026, 7, 4): "Independence Day",
        date(2026, 9, 7): "Labor Day",  # Sep 1 is a Tue
        date(2026, 11, 25): "Day before Thanksgiving",
        date(2026, 11, 26): "Thanksgiving Day",  # Nov 1 is a Sun
        date(2026, 12, 24): "Christmas Eve",  # Thu
        date(2026, 12, 25): "Christmas Day",  # Fri
    },
    2027: {
        date(2027, 1, 1): "New Year's Day",  # Fri
        date(2027, 2, 15): "Presidents Day",  # Feb 1 is a Mon
        date(2027, 3, 26): "Good Friday",  # Easter Mar 28
        date(2027, 5, 31): "Memorial Day",  # May 31 is a Mon
        date(2027, 7, 4): "Independence Day",  # Sun
        date(2027, 7, 5): "Independence Day (observed)",
        date(2027, 9, 6): "Labor Day",  # Sep 1 is a Wed
        date(2027, 11, 24): "Day before Thanksgiving",
        date(2027, 11, 25): "Thanksgiving Day",  # Nov 1 is a Mon
        # Christmas Day is a Saturday: observed on Friday, which is already Christmas Eve.
        date(2027, 12, 24): "Christmas Eve; Christmas Day (observed)",
        date(2027, 12, 25): "Christmas Day",
        # New Year's Day 2028 is a Saturday, observed on Friday 2027-12-31.
        date(2027, 12, 31): "New Year's Day (observed)",
    },
}
VOIP_CASES = [
    pytest.param(day, name, id=f"{day}-{name}")
    for table in VOIP_DATES.values()
    for day, name in table.items()
]


@pytest.mark.parametrize(("day", "name"), VOIP_CASES)
def test_voip_hotline_holiday(day: date, name: str) -> None:
    assert VOIP.is_holiday(day)
    assert VOIP.holidays_in(day.year)[day] == name


@pytest.mark.parametrize("year", sorted(VOIP_DATES), ids=str)
def test_voip_hotline_has_no_other_holidays(year: int) -> None:
    assert VOIP.holidays_in(year) == VOIP_DATES[year]


@pytest.mark.parametrize(
    "day",
    [
        pytest.param(date(2026, 11, 27), id="day-after-thanksgiving-not-in-contract"),
        pytest.param(date(2026, 1, 19), id="mlk-day-not-in-contract"),
        pytest.param(date(2026, 12, 31), id="new-years-eve-thursday"),
        pytest.param(date(2026, 4, 6), id="easter-monday"),
        pytest.param(date(2028, 1, 3), id="no-monday-after-saturday-new-year-2028"),
    ],
)
def test_voip_hotline_working_days(day: date) -> None:
    assert not VOIP.is_holiday(day)


# Every named rule in 2026, verified by hand (Jan 1 2026 is a Thursday).
NAMED_2026 = [
    ("new year's day", date(2026, 1, 1)),
    ("martin luther king jr. day", date(2026, 1, 19)),
    ("presidents day", date(2026, 2, 16)),
    ("good friday", date(2026, 4, 3)),
    ("memorial day", date(2026, 5, 25)),
    ("juneteenth", date(2026, 6, 19)),
    ("independence day", date(2026, 7, 4)),
    ("labor day", date(2026, 9, 7)),
    ("columbus day", date(2026, 10, 12)),
    ("veterans day", date(2026, 11, 11)),
    ("day before thanksgiving", date(2026, 11, 25)),
    ("thanksgiving day", date(2026, 11, 26)),
    ("day after thanksgiving", date(2026, 11, 27)),
    ("christmas eve", date(2026, 12, 24)),
    ("christmas day", date(2026, 12, 25)),
    ("new year's eve", date(2026, 12, 31)),
]


@pytest.mark.parametrize(("rule", "day"), [pytest.param(r, d, id=r) for r, d in NAMED_2026])
def test_named_rule_2026(rule: str, day: date) -> None:
    cal = HolidayCalendar(rules=(rule,), observe_weekend=False)
    assert cal.holidays_in(2026) == {day: rule_name(rule)}


def test_named_rules_cover_the_vocabulary() -> None:
    assert {rule for rule, _ in NAMED_2026} == KNOWN_RULES


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        pytest.param("NEW YEAR'S DAY", "New Year's Day", id="upper-case"),
        pytest.param("New Year\u2019s Day", "New Year's Day", id="curly-apostrophe"),
        pytest.param("new years day", "New Year's Day", id="no-apostrophe"),
        pytest.param("  Thanksgiving   Day ", "Thanksgiving Day", id="whitespace"),
        pytest.param("Martin Luther King Jr Day", "Martin Luther King Jr. Day", id="no-dot"),
        pytest.param("Washington's Birthday", "Presidents Day", id="alias-washington"),
        pytest.param("Presidents' Day", "Presidents Day", id="alias-apostrophe"),
        pytest.param("Thanksgiving", "Thanksgiving Day", id="alias-thanksgiving"),
    ],
)
def test_rule_spellings(spelling: str, canonical: str) -> None:
    assert rule_name(spelling) == canonical


@pytest.mark.parametrize(
    ("rule", "year", "expected"),
    [
        pytest.param("07-04", 2025, [date(2025, 7, 4)], id="fixed-date"),
        pytest.param("02-29", 2024, [date(2024, 2, 29)], id="leap-day-leap-year"),
        pytest.param("02-29", 2025, [], id="leap-day-other-year"),
        pytest.param("4th thursday of november", 2026, [date(2026, 11, 26)], id="4th-thursday"),
        pytest.param("last monday of may", 2026, [date(2026, 5, 25)], id="last-monday"),
        pytest.param("first Monday of September", 2026, [date(2026, 9, 7)], id="first-word"),
        pytest.param("2nd Monday of October", 2026, [date(2026, 10, 12)], id="mixed-case"),
        pytest.param("5th thursday of october", 2026, [date(2026, 10, 29)], id="5th-exists"),
        pytest.param("5th friday of february", 2025, [], id="5th-missing"),
        pytest.param("last sunday of august", 2025, [date(2025, 8, 31)], id="last-is-31st"),
    ],
)
def test_generic_rule(rule: str, year: int, expected: list[date]) -> None:
    cal = HolidayCalendar(rules=(rule,), observe_weekend=False)
    assert sorted(cal.holidays_in(year)) == expected


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param("xmas party", id="unknown-name"),
        pytest.param("13-01", id="month-13"),
        pytest.param("02-30", id="feb-30"),
        pytest.param("7-4", id="one-digit"),
        pytest.param("6th monday of may", id="6th"),
        pytest.param("last funday of may", id="bad-weekday"),
        pytest.param("4th thursday of novembre", id="bad-month"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_rule_raises_naming_it(rule: str) -> None:
    with pytest.raises(ValueError, match=f"unknown holiday rule {rule!r}"):
        HolidayCalendar(rules=("christmas day", rule))


@pytest.mark.parametrize(
    ("observe", "day", "expected"),
    [
        pytest.param(True, date(2026, 7, 3), True, id="observed-saturday-to-friday"),
        pytest.param(False, date(2026, 7, 3), False, id="unobserved-saturday"),
        pytest.param(True, date(2026, 7, 4), True, id="actual-day-stays"),
        pytest.param(True, date(2027, 7, 5), True, id="observed-sunday-to-monday"),
        pytest.param(False, date(2027, 7, 5), False, id="unobserved-sunday"),
    ],
)
def test_observe_weekend_flag(observe: bool, day: date, expected: bool) -> None:
    cal = HolidayCalendar(rules=("independence day",), observe_weekend=observe)
    assert cal.is_holiday(day) is expected


def test_observed_date_crosses_year_boundary() -> None:
    cal = HolidayCalendar(rules=("new year's day",))
    assert cal.holidays_in(2027)[date(2027, 12, 31)] == "New Year's Day (observed)"
    assert date(2027, 12, 31) not in cal.holidays_in(2028)
    assert cal.holidays_in(2028) == {date(2028, 1, 1): "New Year's Day"}


def test_weekday_rules_are_never_shifted() -> None:
    # A "MM-DD" rule is fixed and shifts; an nth-weekday rule never lands on a weekend.
    cal = HolidayCalendar(rules=("2nd saturday of may", "05-09"))
    assert cal.holidays_in(2026) == {
        date(2026, 5, 8): "05-09 (observed)",
        date(2026, 5, 9): "2nd saturday of may; 05-09",
    }


@pytest.mark.parametrize(
    ("day", "name"),
    [
        pytest.param(date(2026, 7, 3), "Independence Day (observed)", id="2026-07-03"),
        pytest.param(date(2026, 1, 19), "Martin Luther King Jr. Day", id="mlk-2026"),
        pytest.param(date(2026, 11, 11), "Veterans Day", id="veterans-2026"),
        pytest.param(date(2027, 12, 31), "New Year's Day (observed)", id="2027-12-31"),
    ],
)
def test_us_federal_calendar_from_package(day: date, name: str) -> None:
    us = HolidayCalendar(country="US")
    assert us.is_holiday(day)
    assert us.holidays_in(day.year)[day] == name


def test_us_federal_calendar_excludes_non_federal_days() -> None:
    us = HolidayCalendar(country="US")
    assert not us.is_holiday(date(2026, 4, 3))  # Good Friday
    assert not us.is_holiday(date(2026, 11, 27))  # day after Thanksgiving


def test_country_calendar_without_observance() -> None:
    assert not HolidayCalendar(country="US", observe_weekend=False).is_holiday(date(2026, 7, 3))


def test_country_with_subdivision() -> None:
    assert HolidayCalendar(country="US", subdivision="CO").is_holiday(date(2026, 7, 3))


@pytest.mark.parametrize(
    ("country", "subdivision"),
    [
        pytest.param("XX", None, id="unknown-country"),
        pytest.param("US", "ZZ", id="unknown-subdivision"),
        pytest.param(None, "CO", id="subdivision-without-country"),
    ],
)
def test_bad_country_raises_value_error(country: str | None, subdivision: str | None) -> None:
    with pytest.raises(ValueError):
        HolidayCalendar(country=country, subdivision=subdivision)


def test_sources_combine_and_names_merge() -> None:
    cal = HolidayCalendar(
        rules=("day after thanksgiving",),
        country="US",
        dates=(date(2026, 12, 24), date(2026, 11, 26)),
    )
    table = cal.holidays_in(2026)
    assert table[date(2026, 11, 27)] == "Day after Thanksgiving"
    assert table[date(2026, 12, 24)] == "Holiday"
    assert table[date(2026, 11, 26)] == "Thanksgiving Day; Holiday"


def test_explicit_dates_are_never_shifted() -> None:
    cal = HolidayCalendar(dates=[date(2026, 7, 4)])  # type: ignore[arg-type]
    assert cal.holidays_in(2026) == {date(2026, 7, 4): "Holiday"}
    assert cal.dates == (date(2026, 7, 4),)  # normalised to a tuple
    assert not cal.is_holiday(date(2027, 7, 4))  # one-off, not yearly


def test_rules_must_not_be_one_string() -> None:
    with pytest.raises(TypeError):
        HolidayCalendar(rules="christmas day")  # type: ignore[arg-type]


def test_is_holiday_rejects_datetime() -> None:
    with pytest.raises(TypeError):
        VOIP.is_holiday(datetime(2026, 12, 25, 12))


def test_calendar_is_immutable() -> None:
    table = VOIP.holidays_in(2026)
    table.clear()
    assert VOIP.holidays_in(2026) == VOIP_DATES[2026]
    with pytest.raises(dataclasses.FrozenInstanceError):
        VOIP.rules = ()  # type: ignore[misc]
    assert hash(VOIP) == hash(HolidayCalendar(rules=VOIP_RULES))


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        pytest.param(2025, date(2025, 4, 20), id="2025"),
        pytest.param(2026, date(2026, 4, 5), id="2026"),
        pytest.param(2027, date(2027, 3, 28), id="2027"),
        pytest.param(2038, date(2038, 4, 25), id="latest-possible"),
        pytest.param(2285, date(2285, 3, 22), id="earliest-possible"),
    ],
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_easter_matches_dateutil_for_centuries() -> None:
    dateutil_easter = pytest.importorskip("dateutil.easter")
    for year in range(1583, 2500):
        assert easter_sunday(year) == dateutil_easter.easter(year), year
