"""Business-time arithmetic: SLA deadlines counted only inside a policy's support hours.

A ``BusinessCalendar`` is a weekly schedule of support windows in one time zone plus an
optional ``HolidayCalendar``. The functions here add business time to an instant, measure
business time between two instants, and answer "is this business time?". They are pure
(ARCHITECTURE invariant 7): ``now`` and every other instant are passed in, must be
timezone-aware, and results are returned in UTC.

Decisions, each relied on by the tests:

* **A window belongs to the day it starts on.** ``windows[0]`` holds the windows that
  start on a Monday; a night window 22:00–06:00 listed under Friday runs into Saturday.
  A window that starts on a holiday does not count at all, and one that started the
  evening before a holiday counts in full.
* **Real elapsed time.** Window bounds are wall-clock times converted per date with
  ``zoneinfo``, and business time is measured between the resulting instants, so a window
  spanning 02:00 on a spring-forward night is one hour shorter and one on a fall-back
  night one hour longer; 08:00–18:00 is always ten hours. A repeated wall time (fall
  back) means its first occurrence (``fold=0``); a wall time that does not exist
  (spring forward) means the instant the clocks jump, so bounds stay in order.
* **Intervals are half-open** ``[start, end)``: the window end itself is not business
  time. Adding a positive amount that uses up a window exactly returns that window's end
  (18:00), not the next morning.
* **Zero amounts normalise.** ``add_business_time(cal, t, 0)`` is ``t`` when ``t`` is
  business time, otherwise the next window start (``next_business_start``): the clock of
  a ticket received outside hours starts when support opens. Negative amounts raise.
* **A business day** (``add_business_days``) is ``business_day_length()``: the longest
  nominal total of any one weekday's windows (10 h for Mon–Fri 08:00–18:00). Contracts
  say "5 support days" meaning five standard days of support, and the longest weekday is
  the standard day for schedules with a short Friday or a weekend shift. DST does not
  change it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from math import ceil, floor
from types import MappingProxyType
from zoneinfo import ZoneInfo

from intake.policy.calendars import HolidayCalendar

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
# Guard for schedules that holidays wipe out: no business time for this long is a broken
# policy, reported instead of scanning the calendar forever.
_MAX_IDLE_DAYS = 1000
# Local dates whose intervals a calendar keeps (``_day_intervals``): years of them, a few
# hundred bytes each; past this the memo starts again rather than growing.
_MAX_DAYS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Window:
    """Support hours starting on one weekday, as local wall-clock times.

    ``end <= start`` means the window crosses midnight into the next day (22:00–06:00);
    ``end == start`` means a full 24 hours (00:00–00:00 is a whole day).
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are wall-clock times; give them without tzinfo")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def nominal_length(self) -> timedelta:
        """Length on a day without a DST change."""
        length = _since_midnight(self.end) - _since_midnight(self.start)
        return length + _DAY if self.crosses_midnight else length


def _since_midnight(wall: time) -> timedelta:
    return timedelta(
        hours=wall.hour, minutes=wall.minute, seconds=wall.second, microseconds=wall.microsecond
    )


@dataclass(frozen=True)
class BusinessCalendar:
    """A weekly schedule of support windows in ``tz``, minus holidays.

    ``windows`` maps weekday (0 = Monday .. 6 = Sunday) to the windows that start on that
    weekday. Construction normalises it to a read-only mapping with all seven weekdays
    and raises ValueError for an empty schedule, bad weekdays or overlapping windows
    (overlaps would count the same hour twice).
    """

    tz: ZoneInfo
    windows: Mapping[int, tuple[Window, ...]]
    holidays: HolidayCalendar | None = None
    # Each local date's intervals, worked out once (``_day_intervals``): a deadline walks
    # the same few days for every ticket of the day (issue 11). Bounded, not evicted.
    _days: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.tz, ZoneInfo):
            raise TypeError(f"tz must be a zoneinfo.ZoneInfo, not {type(self.tz).__name__}")
        unknown = sorted(set(self.windows) - set(range(7)))
        if unknown:
            raise ValueError(f"weekdays must be 0 (Monday) .. 6 (Sunday), got {unknown}")
        week = {
            day: tuple(sorted(self.windows.get(day, ()), key=lambda w: w.start)) for day in range(7)
        }
        if not any(week.values()):
            raise ValueError("a business calendar needs at least one window")
        _check_no_overlap(week)
        object.__setattr__(self, "windows", MappingProxyType(week))

    def business_day_length(self) -> timedelta:
        """The standard business day: the longest nominal total of one weekday's windows."""
        return max(sum((w.nominal_length for w in ws), timedelta()) for ws in self.windows.values())

    def is_holiday(self, day: date) -> bool:
        return self.holidays is not None and self.holidays.is_holiday(day)


def _check_no_overlap(week: Mapping[int, tuple[Window, ...]]) -> None:
    """Raise ValueError if two windows share wall-clock time, wrapping Sunday → Monday."""
    spans = sorted(
        (
            (day * _DAY + _since_midnight(w.start), w.nominal_length, day, w)
            for day, ws in week.items()
            for w in ws
        ),
        key=lambda span: span[0],
    )
    ends = [start + length for start, length, _, _ in spans]
    for i, (start, _, day, window) in enumerate(spans):
        previous_end = ends[i - 1] - (_WEEK if i == 0 else timedelta())
        if start < previous_end:
            raise ValueError(f"windows overlap: {window} on weekday {day} and the one before")


def _utc(at: datetime, name: str = "time") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)


def _instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant that ``wall`` on ``day`` names in ``tz`` (see module docstring)."""
    local = datetime.combine(day, wall.replace(fold=0), tzinfo=tz)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    return _gap_end(local, tz)


def _gap_end(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant the clocks jump over the nonexistent wall time ``local``."""
    # PEP 495: for a gap time, fold=1 applies the offset after the jump (an instant
    # before it) and fold=0 the offset before the jump (an instant after it). zoneinfo
    # does not expose transitions, so bisect between them; tz transitions are on whole
    # seconds and gaps are at most a day, so this takes about 17 steps.
    lo = floor(local.replace(fold=1).timestamp())
    hi = ceil(local.replace(fold=0).timestamp())
    after = datetime.fromtimestamp(hi, tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _day_intervals(cal: BusinessCalendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The business intervals of windows starting on local ``day``, as UTC instants."""
    known = cal._days.get(day)
    if known is None:
        known = tuple(_work_out_day(cal, day))
        if len(cal._days) >= _MAX_DAYS_KEPT:
            cal._days.clear()
        cal._days[day] = known
    return known


def _work_out_day(cal: BusinessCalendar, day: date) -> Iterator[tuple[datetime, datetime]]:
    if cal.is_holiday(day):
        return
    for window in cal.windows[day.weekday()]:
        start = _instant(day, window.start, cal.tz)
        end_day = day + _DAY if window.crosses_midnight else day
        end = _instant(end_day, window.end, cal.tz)
        if end > start:  # a window inside a spring-forward gap has no time at all
            yield start, end


def _intervals(cal: BusinessCalendar, after: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Business intervals ``[start, end)`` in time order whose end is later than ``after``.

    Endless; raises ValueError after ``_MAX_IDLE_DAYS`` days in a row without business
    time. Steps one local date at a time, starting the day before ``after`` because a
    window that began yesterday (crossing midnight or 24 h long) may still be open.
    """
    day = after.astimezone(cal.tz).date() - _DAY
    idle_days = 0
    while idle_days <= _MAX_IDLE_DAYS:
        intervals = _day_intervals(cal, day)
        idle_days = 0 if intervals else idle_days + 1
        yield from ((start, end) for start, end in intervals if end > after)
        day += _DAY
    raise ValueError(f"no business time for {_MAX_IDLE_DAYS} days from {after.isoformat()}")


def is_business_time(cal: BusinessCalendar, at: datetime) -> bool:
    """Whether ``at`` is inside a window (window ends excluded) that is not a holiday's."""
    instant = _utc(at, "at")
    start, _ = next(_intervals(cal, instant))
    return start <= instant


def next_business_start(cal: BusinessCalendar, at: datetime) -> datetime:
    """``at`` (in UTC) if it is business time, else the start of the next window."""
    instant = _utc(at, "at")
    start, _ = next(_intervals(cal, instant))
    return max(start, instant)


def add_business_time(cal: BusinessCalendar, start: datetime, amount: timedelta) -> datetime:
    """The UTC instant when ``amount`` of business time has elapsed after ``start``.

    Time outside windows does not count, so a start outside hours begins counting at the
    next window start. Zero returns ``next_business_start(cal, start)``.
    """
    if amount < timedelta():
        raise ValueError(f"amount must not be negative, got {amount}")
    origin = _utc(start, "start")
    if not amount:
        return next_business_start(cal, origin)
    remaining = amount
    for window_start, window_end in _intervals(cal, origin):
        counted_from = max(window_start, origin)
        if remaining <= window_end - counted_from:
            return counted_from + remaining
        remaining -= window_end - counted_from
    raise AssertionError("unreachable: _intervals never ends without raising")


def add_business_days(cal: BusinessCalendar, start: datetime, days: float) -> datetime:
    """``add_business_time`` of ``days`` standard business days (``business_day_length``)."""
    return add_business_time(cal, start, cal.business_day_length() * days)


def business_time_between(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Business time from ``a`` to ``b``; negative when ``b`` is before ``a``.

    The inverse of ``add_business_time``: ``business_time_between(cal, t,
    add_business_time(cal, t, x)) == x``. Useful for reporting time spent against an SLA.
    """
    begin, finish = _utc(a, "a"), _utc(b, "b")
    if finish < begin:
        return -business_time_between(cal, finish, begin)
    total = timedelta()
    for window_start, window_end in _intervals(cal, begin):
        if window_start >= finish:
            break
        total += min(window_end, finish) - max(window_start, begin)
    return total


def add_wall_time(start: datetime, amount: timedelta) -> datetime:
    """``start`` plus ``amount`` of real elapsed time (a 24×7 clock), in UTC.

    Done in UTC because aware-datetime arithmetic in a local zone adds wall-clock time:
    8 h after 20:00 on the evening before clocks fall back is 03:00, not 04:00.
    """
    return _utc(start, "start") + amount
