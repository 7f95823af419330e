"""Business-time arithmetic: deadlines across weekends, holidays, DST and night windows.

Expected instants are worked out by hand in the comments next to each case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import intake.policy.clock as clock_module
from intake.policy.calendars import HolidayCalendar
from intake.policy.clock import (
    BusinessCalendar,
    Window,
    add_business_days,
    add_business_time,
    add_wall_time,
    business_time_between,
    is_business_time,
    next_business_start,
)

LA = ZoneInfo("America/Los_Angeles")
DENVER = ZoneInfo("America/Denver")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)

VOIP_HOLIDAYS = HolidayCalendar(
    rules=(
        "new year's day",
        "presidents day",
        "good friday",
        "memorial day",
        "independence day",
        "labor day",
        "day before thanksgiving",
        "thanksgiving day",
        "christmas eve",
        "christmas day",
    )
)


def weekdays(start: time, end: time, days: range = range(5)) -> dict[int, tuple[Window, ...]]:
    return {day: (Window(start, end),) for day in days}


# 001 voip-hotline: 8:00 AM – 6:00 PM Pacific, Monday through Friday, ten named holidays.
VOIP = BusinessCalendar(LA, weekdays(time(8), time(18)), VOIP_HOLIDAYS)
# 004 managed-pbx: Monday through Friday 8:00 am to 5:00 pm, excludes public holidays.
PBX = BusinessCalendar(DENVER, weekdays(time(8), time(17)), HolidayCalendar(country="US"))
# 003 teams-connector: 4:00 AM – 10:00 PM US eastern time, Monday through Friday.
TEAMS = BusinessCalendar(NEW_YORK, weekdays(time(4), time(22)), None)
# A night shift every day of the week, 22:00 – 06:00, off on the voip holidays.
NIGHT = BusinessCalendar(LA, weekdays(time(22), time(6), range(7)), VOIP_HOLIDAYS)
# 24×7 support: one 24-hour window per day.
ALWAYS = BusinessCalendar(LA, weekdays(time(0), time(0), range(7)), None)


def la(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=LA)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


ADD_CASES = [
    # --- voip-hotline, P2 = 8 business hours
    pytest.param(
        VOIP, la(2026, 5, 15, 16), 8 * H, la(2026, 5, 18, 14), id="voip-fri-16h-to-mon-14h"
    ),
    pytest.param(VOIP, la(2026, 5, 16, 10), 8 * H, la(2026, 5, 18, 16), id="voip-sat-to-mon-16h"),
    pytest.param(VOIP, la(2026, 5, 18, 7), 8 * H, la(2026, 5, 18, 16), id="voip-before-opening"),
    pytest.param(VOIP, la(2026, 5, 18, 19), 8 * H, la(2026, 5, 19, 16), id="voip-after-closing"),
    pytest.param(VOIP, la(2026, 5, 18, 10), 8 * H, la(2026, 5, 18, 18), id="voip-ends-at-close"),
    pytest.param(VOIP, la(2026, 5, 18, 10), 9 * H, la(2026, 5, 19, 9), id="voip-overnight"),
    # Wed 2026-11-25 (day before Thanksgiving) and Thu 26 are off: Fri 08:00 + 8 h.
    pytest.param(VOIP, la(2026, 11, 25, 10), 8 * H, la(2026, 11, 27, 16), id="voip-thanksgiving"),
    # Good Friday 2026-04-03: Thu 17:00 + 1 h, then Mon 04-06 08:00 + 7 h.
    pytest.param(VOIP, la(2026, 4, 2, 17), 8 * H, la(2026, 4, 6, 15), id="voip-good-friday"),
    # Spring forward Sun 2026-03-08: Fri 16:00 PST + 2 h, Mon 08:00 PDT + 6 h = 14:00 PDT.
    pytest.param(VOIP, la(2026, 3, 6, 16), 8 * H, utc(2026, 3, 9, 21), id="voip-dst-spring"),
    # Fall back Sun 2026-11-01: Fri 16:00 PDT + 2 h, Mon 08:00 PST + 6 h = 14:00 PST.
    pytest.param(VOIP, la(2026, 10, 30, 16), 8 * H, utc(2026, 11, 2, 22), id="voip-dst-fall"),
    # P3 24 business hours = 2.4 days: Mon 10 h + Tue 10 h + Wed 4 h.
    pytest.param(VOIP, la(2026, 5, 18, 8), 24 * H, la(2026, 5, 20, 12), id="voip-24h"),
    # 15 support days = 150 h from Mon 2026-12-21 09:00: Mon 9, Tue 10, Wed 10 (29);
    # Dec 24/25 off; Dec 28-31 40 (69); Jan 1 off; Jan 4-8 50 (119); Jan 11-13 30 (149);
    # Thu Jan 14 08:00 + 1 h.
    pytest.param(VOIP, la(2026, 12, 21, 9), 150 * H, la(2027, 1, 14, 9), id="voip-15-days"),
    # --- managed-pbx, Denver, US federal holidays. Thu 2026-07-02 17:30 is after hours;
    # Fri 07-03 is Independence Day observed: Mon 07-06 08:00 + 9 h, Tue 08:00 + 3 h.
    pytest.param(
        PBX,
        datetime(2026, 7, 2, 17, 30, tzinfo=DENVER),
        12 * H,
        datetime(2026, 7, 7, 11, tzinfo=DENVER),
        id="pbx-observed-independence-day",
    ),
    # 48 business hours (auto-close): 5 days × 9 h = 45 h, + 3 h on the sixth day.
    pytest.param(
        PBX,
        datetime(2026, 5, 4, 8, tzinfo=DENVER),
        48 * H,
        datetime(2026, 5, 11, 11, tzinfo=DENVER),
        id="pbx-48-business-hours",
    ),
    # --- teams-connector, 04:00-22:00 Eastern. Fri 20:00 + 2 h, Mon 04:00 + 2 h.
    pytest.param(
        TEAMS,
        datetime(2026, 5, 15, 20, tzinfo=NEW_YORK),
        4 * H,
        datetime(2026, 5, 18, 6, tzinfo=NEW_YORK),
        id="teams-fri-evening",
    ),
    # A start given in another zone is the same instant: 09:00 LA = 12:00 New York.
    pytest.param(
        TEAMS, la(2026, 5, 18, 9), 10 * H, datetime(2026, 5, 18, 22, tzinfo=NEW_YORK), id="teams-la"
    ),
    # --- night window 22:00-06:00, every day
    pytest.param(
        NIGHT, la(2026, 5, 15, 12), 10 * H, la(2026, 5, 17, 0), id="night-crosses-midnight"
    ),
    pytest.param(NIGHT, la(2026, 5, 16, 3), 2 * H, la(2026, 5, 16, 5), id="night-start-inside"),
    # Spring forward: the Sat 22:00 PST – Sun 06:00 PDT window holds only 7 h.
    pytest.param(NIGHT, la(2026, 3, 7, 22), 8 * H, la(2026, 3, 8, 23), id="night-dst-spring"),
    # Fall back: the Sat 22:00 PDT – Sun 06:00 PST window holds 9 h.
    pytest.param(NIGHT, la(2026, 10, 31, 22), 8 * H, la(2026, 11, 1, 5), id="night-dst-fall"),
    # The window starting on Christmas Eve (a holiday) does not count; the one starting
    # Dec 23 runs into Christmas Eve morning and does. Dec 23 22:00 + 8 h = Dec 24 06:00,
    # then Dec 24 and Dec 25 nights are off: Dec 26 22:00 + 1 h.
    pytest.param(NIGHT, la(2026, 12, 23, 22), 9 * H, la(2026, 12, 26, 23), id="night-holiday"),
    # --- 24×7
    pytest.param(ALWAYS, la(2026, 3, 7, 12), 24 * H, la(2026, 3, 8, 13), id="always-dst-spring"),
]


@pytest.mark.parametrize(("cal", "start", "amount", "expected"), ADD_CASES)
def test_add_business_time(
    cal: BusinessCalendar, start: datetime, amount: timedelta, expected: datetime
) -> None:
    result = add_business_time(cal, start, amount)
    assert result == expected
    assert result.tzinfo is UTC
    assert business_time_between(cal, start, result) == amount


@pytest.mark.parametrize(
    ("cal", "start", "days", "expected"),
    [
        # 2.4 days × 10 h = 24 business hours (same as the voip-24h case).
        pytest.param(VOIP, la(2026, 5, 18, 8), 2.4, la(2026, 5, 20, 12), id="voip-2.4-days"),
        pytest.param(VOIP, la(2026, 5, 18, 8), 5, la(2026, 5, 22, 18), id="voip-5-days"),
        # 5 days × 18 h ends exactly at Friday's close.
        pytest.param(
            TEAMS,
            datetime(2026, 5, 18, 4, tzinfo=NEW_YORK),
            5,
            datetime(2026, 5, 22, 22, tzinfo=NEW_YORK),
            id="teams-5-days",
        ),
        pytest.param(VOIP, la(2026, 5, 18, 8), 0, la(2026, 5, 18, 8), id="zero-days"),
    ],
)
def test_add_business_days(
    cal: BusinessCalendar, start: datetime, days: float, expected: datetime
) -> None:
    assert add_business_days(cal, start, days) == expected


@pytest.mark.parametrize(
    ("cal", "length"),
    [
        pytest.param(VOIP, 10 * H, id="voip"),
        pytest.param(PBX, 9 * H, id="pbx"),
        pytest.param(TEAMS, 18 * H, id="teams"),
        pytest.param(NIGHT, 8 * H, id="night"),
        pytest.param(ALWAYS, 24 * H, id="always"),
        pytest.param(
            BusinessCalendar(
                LA,
                {
                    0: (Window(time(8), time(12)), Window(time(13), time(17))),
                    4: (Window(time(8), time(12)),),
                },
            ),
            8 * H,
            id="longest-weekday-with-lunch-break",
        ),
    ],
)
def test_business_day_length(cal: BusinessCalendar, length: timedelta) -> None:
    assert cal.business_day_length() == length


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        pytest.param(VOIP, la(2026, 5, 18, 8), True, id="at-opening"),
        pytest.param(VOIP, la(2026, 5, 18, 17, 59, 59), True, id="just-before-close"),
        pytest.param(VOIP, la(2026, 5, 18, 18), False, id="at-close-excluded"),
        pytest.param(VOIP, la(2026, 5, 16, 12), False, id="saturday"),
        pytest.param(VOIP, la(2026, 11, 25, 12), False, id="day-before-thanksgiving"),
        pytest.param(VOIP, utc(2026, 5, 18, 15), True, id="utc-input-08-local"),
        pytest.param(NIGHT, la(2026, 3, 8, 1, 30), True, id="night-across-dst"),
        pytest.param(NIGHT, la(2026, 12, 24, 2), True, id="night-begun-before-holiday"),
        pytest.param(NIGHT, la(2026, 12, 25, 2), False, id="night-begun-on-holiday"),
        pytest.param(NIGHT, la(2026, 12, 24, 23), False, id="night-on-holiday"),
        pytest.param(ALWAYS, la(2026, 11, 1, 1, 30), True, id="always-ambiguous-hour"),
    ],
)
def test_is_business_time(cal: BusinessCalendar, at: datetime, expected: bool) -> None:
    assert is_business_time(cal, at) is expected


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        pytest.param(VOIP, la(2026, 5, 18, 9, 15), la(2026, 5, 18, 9, 15), id="inside-is-itself"),
        pytest.param(VOIP, la(2026, 5, 18, 18), la(2026, 5, 19, 8), id="at-close"),
        pytest.param(VOIP, la(2026, 5, 15, 19), la(2026, 5, 18, 8), id="friday-evening"),
        pytest.param(VOIP, la(2026, 12, 23, 19), la(2026, 12, 28, 8), id="christmas"),
        pytest.param(NIGHT, la(2026, 12, 24, 7), la(2026, 12, 26, 22), id="night-christmas"),
    ],
)
def test_next_business_start(cal: BusinessCalendar, at: datetime, expected: datetime) -> None:
    assert next_business_start(cal, at) == expected
    # Zero business time means "when the clock starts": the same instant.
    assert add_business_time(cal, at, timedelta()) == expected


@pytest.mark.parametrize(
    ("cal", "a", "b", "expected"),
    [
        pytest.param(VOIP, la(2026, 5, 15, 17), la(2026, 5, 18, 9), 2 * H, id="over-weekend"),
        pytest.param(VOIP, la(2026, 5, 18, 9), la(2026, 5, 15, 17), -2 * H, id="reversed"),
        pytest.param(VOIP, la(2026, 5, 16, 9), la(2026, 5, 16, 17), timedelta(), id="saturday"),
        pytest.param(VOIP, la(2026, 5, 18), la(2026, 5, 25), 50 * H, id="week"),
        pytest.param(VOIP, la(2026, 11, 23), la(2026, 11, 30), 30 * H, id="thanksgiving-week"),
        pytest.param(ALWAYS, la(2026, 3, 8), la(2026, 3, 9), 23 * H, id="24x7-spring-day"),
        pytest.param(ALWAYS, la(2026, 11, 1), la(2026, 11, 2), 25 * H, id="24x7-fall-day"),
    ],
)
def test_business_time_between(
    cal: BusinessCalendar, a: datetime, b: datetime, expected: timedelta
) -> None:
    assert business_time_between(cal, a, b) == expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # 01:00 PST to 02:30, which does not exist on 2026-03-08: the clocks jump from
        # 02:00 PST to 03:00 PDT, so the window ends then, after 1 h.
        pytest.param(Window(time(1), time(2, 30)), 1 * H, id="ends-in-gap"),
        # Starts in the gap, i.e. at the jump (03:00 PDT), and ends at 03:30 PDT.
        pytest.param(Window(time(2, 30), time(3, 30)), H / 2, id="starts-in-gap"),
        pytest.param(Window(time(2), time(3)), timedelta(), id="the-missing-hour"),
        pytest.param(Window(time(2, 15), time(2, 45)), timedelta(), id="inside-gap"),
        pytest.param(Window(time(1), time(4)), 2 * H, id="spans-gap"),
    ],
)
def test_window_bounds_in_spring_forward_gap(window: Window, expected: timedelta) -> None:
    sundays = BusinessCalendar(LA, {6: (window,)})
    assert business_time_between(sundays, la(2026, 3, 8), la(2026, 3, 9)) == expected


def test_window_in_fall_back_hour_uses_first_occurrence() -> None:
    # 00:30-01:30 on 2026-11-01 ends at the first 01:30 (PDT): 1 h, not 2 h.
    sundays = BusinessCalendar(LA, {6: (Window(time(0, 30), time(1, 30)),)})
    assert business_time_between(sundays, la(2026, 11, 1), la(2026, 11, 2)) == H
    start = next_business_start(sundays, la(2026, 11, 1))
    assert add_business_time(sundays, start, H) == utc(2026, 11, 1, 8, 30)


def test_add_wall_time_is_elapsed_time() -> None:
    # 20:00 PDT on the evening before clocks fall back, + 8 h = 03:00 PST (11:00 UTC).
    result = add_wall_time(la(2026, 10, 31, 20), 8 * H)
    assert result == utc(2026, 11, 1, 11)
    assert result.tzinfo is UTC
    assert result.astimezone(LA).hour == 3


def test_long_amounts_are_fast() -> None:
    # A year of business time must step per window, not per minute.
    start = la(2026, 1, 5, 8)
    result = add_business_time(VOIP, start, 2500 * H)
    assert business_time_between(VOIP, start, result) == 2500 * H
    assert result.year == 2027


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: is_business_time(VOIP, datetime(2026, 5, 18, 9)), id="is-business"),
        pytest.param(lambda: add_business_time(VOIP, datetime(2026, 5, 18, 9), H), id="add"),
        pytest.param(lambda: add_wall_time(datetime(2026, 5, 18, 9), H), id="wall"),
        pytest.param(lambda: next_business_start(VOIP, datetime(2026, 5, 18)), id="next"),
        pytest.param(
            lambda: business_time_between(VOIP, la(2026, 5, 18), datetime(2026, 5, 19)),
            id="between",
        ),
    ],
)
def test_naive_datetimes_raise(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


def test_negative_amount_raises() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_business_time(VOIP, la(2026, 5, 18, 9), -H)


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        pytest.param({}, "at least one window", id="empty"),
        pytest.param({0: ()}, "at least one window", id="empty-days"),
        pytest.param({7: (Window(time(8), time(9)),)}, "weekdays", id="bad-weekday"),
        pytest.param(
            {0: (Window(time(8), time(12)), Window(time(11), time(13)))}, "overlap", id="overlap"
        ),
        pytest.param(
            {0: (Window(time(22), time(6)),), 1: (Window(time(5), time(9)),)},
            "overlap",
            id="overlap-across-midnight",
        ),
        pytest.param(
            {6: (Window(time(22), time(6)),), 0: (Window(time(5), time(9)),)},
            "overlap",
            id="overlap-sunday-into-monday",
        ),
        pytest.param(
            {0: (Window(time(8), time(8)),), 1: (Window(time(7), time(9)),)},
            "overlap",
            id="overlap-24h",
        ),
    ],
)
def test_bad_schedules_raise(windows: dict[int, tuple[Window, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(LA, windows)


def test_window_rejects_aware_times() -> None:
    with pytest.raises(ValueError):
        Window(time(8, tzinfo=UTC), time(18))


def test_adjacent_windows_are_allowed() -> None:
    cal = BusinessCalendar(LA, {0: (Window(time(12), time(18)), Window(time(8), time(12)))})
    assert cal.windows[0][0].start == time(8)  # sorted
    assert cal.business_day_length() == 10 * H


def test_calendar_without_business_time_raises() -> None:
    # Only Wednesdays, and every Wednesday for years is a holiday.
    wednesdays = tuple(date(2026, 1, 7) + timedelta(weeks=n) for n in range(200))
    cal = BusinessCalendar(LA, {2: (Window(time(8), time(9)),)}, HolidayCalendar(dates=wednesdays))
    with pytest.raises(ValueError, match="no business time"):
        add_business_time(cal, la(2026, 1, 1), H)


# --- properties -----------------------------------------------------------------------

GAPPY = BusinessCalendar(  # bounds inside DST gaps and overlaps, a 24 h Saturday
    LA,
    {
        0: (Window(time(8), time(12)), Window(time(13), time(18))),
        2: (Window(time(22), time(1, 30)),),
        5: (Window(time(0), time(0)),),
        6: (Window(time(1), time(2, 30)), Window(time(3), time(4))),
    },
    VOIP_HOLIDAYS,
)
CALENDARS = st.sampled_from([VOIP, PBX, TEAMS, NIGHT, ALWAYS, GAPPY])


def _sunday_on_or_after(day: date) -> date:
    return day + timedelta(days=(6 - day.weekday()) % 7)


# US DST changes: second Sunday of March, first Sunday of November.
DST_SUNDAYS = [
    _sunday_on_or_after(date(year, month, first))
    for year in range(2020, 2036)
    for month, first in ((3, 8), (11, 1))
]
ANY_INSTANT = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
# Random instants rarely land near a DST change, so half the starts are drawn there.
NEAR_DST = st.builds(
    lambda sunday, offset: datetime.combine(sunday, time(), tzinfo=LA) + offset,
    st.sampled_from(DST_SUNDAYS),
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=2)),
)
STARTS = st.one_of(ANY_INSTANT, NEAR_DST)
# From one second to 300 business hours, with sub-second parts.
AMOUNTS = st.integers(min_value=1_000_000, max_value=300 * 3600 * 1_000_000).map(
    lambda us: timedelta(microseconds=us)
)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(cal=CALENDARS, start=STARTS, amount=AMOUNTS)
def test_result_is_after_start_and_counts_the_amount(
    cal: BusinessCalendar, start: datetime, amount: timedelta
) -> None:
    result = add_business_time(cal, start, amount)
    assert result > start
    assert business_time_between(cal, start, result) == amount
    # Either inside a window or exactly at the end of one.
    assert is_business_time(cal, result) or is_business_time(
        cal, result - timedelta(microseconds=1)
    )


@PROPERTY_SETTINGS
@given(cal=CALENDARS, start=STARTS, a=AMOUNTS, b=AMOUNTS)
def test_monotonic_and_additive(
    cal: BusinessCalendar, start: datetime, a: timedelta, b: timedelta
) -> None:
    small, large = sorted((a, b))
    assert add_business_time(cal, start, small) <= add_business_time(cal, start, large)
    assert add_business_time(cal, add_business_time(cal, start, a), b) == add_business_time(
        cal, start, a + b
    )


@PROPERTY_SETTINGS
@given(cal=CALENDARS, start=STARTS)
def test_zero_amount_is_next_business_start(cal: BusinessCalendar, start: datetime) -> None:
    result = add_business_time(cal, start, timedelta())
    assert result >= start
    assert is_business_time(cal, result)
    assert business_time_between(cal, start, result) == timedelta()


def test_a_calendar_answers_the_same_once_it_has_remembered_and_forgotten_days() -> None:
    """Each date's intervals are worked out once per calendar and the memo is bounded:
    a long-lived calendar, past its bound, gives the answers of a fresh one."""
    kept = BusinessCalendar(LA, weekdays(time(8), time(18)), VOIP_HOLIDAYS)
    start = la(2026, 1, 1, 9)
    for step in range(0, int(clock_module._MAX_DAYS_KEPT * 1.5), 97):
        at = start + timedelta(days=step, hours=step % 13)
        fresh = BusinessCalendar(LA, weekdays(time(8), time(18)), VOIP_HOLIDAYS)
        assert add_business_time(kept, at, 30 * H) == add_business_time(fresh, at, 30 * H)
        assert is_business_time(kept, at) == is_business_time(fresh, at)
    assert 0 < len(kept._days) <= clock_module._MAX_DAYS_KEPT
