"""Holiday calendars: which dates a support policy treats as days off.

A ``HolidayCalendar`` combines three sources, all evaluated for any year on demand:

* named rules from a small case-insensitive vocabulary ("thanksgiving day", "good friday",
  ...) plus a generic syntax for data-driven policies: ``"MM-DD"`` (a fixed date),
  ``"<nth> <weekday> of <month>"`` and ``"last <weekday> of <month>"``;
* a country calendar from the ``holidays`` package (e.g. ``"US"`` = US federal holidays,
  optionally narrowed by a subdivision such as ``"CO"``);
* explicit dates (one-off closures), taken literally.

Observed dates follow US federal practice (5 U.S.C. 6103(b)): when ``observe_weekend`` is
set, a fixed-date holiday on a Saturday is also off on the Friday before, one on a Sunday
also on the Monday after. The actual date stays a holiday too (as in the ``holidays``
package), which matters only to schedules that work weekends. Observed dates are not
cascaded: if an observed date lands on another holiday (Christmas Eve 2027 is a Friday and
Christmas Day's observed date), that one day carries both names.

Everything here is pure: no I/O, no clock. Per-year tables are cached by module-level
``lru_cache`` functions keyed by immutable values, and handed out as read-only views.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType

import holidays as holidays_pkg

# Spelled out rather than taken from calendar.day_name, which follows the process locale.
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december")  # fmt: skip
_WEEKDAYS = MappingProxyType({name: i for i, name in enumerate(_WEEKDAY_NAMES)})
_MONTHS = MappingProxyType({name: i for i, name in enumerate(_MONTH_NAMES, start=1)})
_ORDINALS = MappingProxyType({
    "1st": 1, "first": 1, "2nd": 2, "second": 2, "3rd": 3, "third": 3,
    "4th": 4, "fourth": 4, "5th": 5, "fifth": 5, "last": -1,
})  # fmt: skip
_FIXED_DATE = re.compile(r"(\d{2})-(\d{2})")
_NTH_WEEKDAY = re.compile(r"(\w+) (\w+) of (\w+)")


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter Sunday, by the anonymous Gregorian computus.

    Computed here rather than with ``dateutil.easter`` because dateutil ships no type
    information (``mypy --strict`` would need stubs) and the algorithm is ten lines.
    The tests cross-check it against dateutil for several centuries.
    """
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


@dataclass(frozen=True, slots=True)
class _Rule:
    """One holiday rule: ``date_in(year)`` is its actual date (None if it has none)."""

    name: str
    date_in: Callable[[int], date | None]
    fixed: bool  # a fixed calendar date can fall on a weekend; weekday rules cannot


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date | None:
    """The nth (1..5, or -1 for last) ``weekday`` of ``month``; None if there is no 5th."""
    days = [d for d in calendar.Calendar().itermonthdates(year, month) if d.month == month]
    matching = [d for d in days if d.weekday() == weekday]
    if nth == -1:
        return matching[-1]
    return matching[nth - 1] if nth <= len(matching) else None


def _fixed(month: int, day: int) -> Callable[[int], date | None]:
    def date_in(year: int) -> date | None:
        # 02-29 exists only in leap years; other years simply have no such holiday.
        return date(year, month, day) if calendar.monthrange(year, month)[1] >= day else None

    return date_in


def _weekday_rule(
    month: int, weekday: int, nth: int, shift: int = 0
) -> Callable[[int], date | None]:
    def date_in(year: int) -> date | None:
        found = _nth_weekday(year, month, weekday, nth)
        return None if found is None else found + timedelta(days=shift)

    return date_in


def _easter_offset(days: int) -> Callable[[int], date | None]:
    return lambda year: easter_sunday(year) + timedelta(days=days)


_NOV, _THU, _MON = 11, 3, 0
_NAMED: Mapping[str, _Rule] = MappingProxyType(
    {
        "new years day": _Rule("New Year's Day", _fixed(1, 1), fixed=True),
        "martin luther king jr day": _Rule(
            "Martin Luther King Jr. Day", _weekday_rule(1, _MON, 3), fixed=False
        ),
        "presidents day": _Rule("Presidents Day", _weekday_rule(2, _MON, 3), fixed=False),
        "good friday": _Rule("Good Friday", _easter_offset(-2), fixed=False),
        "memorial day": _Rule("Memorial Day", _weekday_rule(5, _MON, -1), fixed=False),
        "juneteenth": _Rule("Juneteenth", _fixed(6, 19), fixed=True),
        "independence day": _Rule("Independence Day", _fixed(7, 4), fixed=True),
        "labor day": _Rule("Labor Day", _weekday_rule(9, _MON, 1), fixed=False),
        "columbus day": _Rule("Columbus Day", _weekday_rule(10, _MON, 2), fixed=False),
        "veterans day": _Rule("Veterans Day", _fixed(11, 11), fixed=True),
        "day before thanksgiving": _Rule(
            "Day before Thanksgiving", _weekday_rule(_NOV, _THU, 4, -1), fixed=False
        ),
        "thanksgiving day": _Rule("Thanksgiving Day", _weekday_rule(_NOV, _THU, 4), fixed=False),
        "day after thanksgiving": _Rule(
            "Day after Thanksgiving", _weekday_rule(_NOV, _THU, 4, 1), fixed=False
        ),
        "christmas eve": _Rule("Christmas Eve", _fixed(12, 24), fixed=True),
        "christmas day": _Rule("Christmas Day", _fixed(12, 25), fixed=True),
        "new years eve": _Rule("New Year's Eve", _fixed(12, 31), fixed=True),
    }
)
# Spellings contracts actually use for the same days.
_ALIASES = MappingProxyType(
    {
        "washingtons birthday": "presidents day",
        "mlk day": "martin luther king jr day",
        "martin luther king day": "martin luther king jr day",
        "thanksgiving": "thanksgiving day",
        "christmas": "christmas day",
        "fourth of july": "independence day",
        "juneteenth national independence day": "juneteenth",
    }
)
# The vocabulary as policies write it (lower case; matching ignores case and punctuation).
KNOWN_RULES: frozenset[str] = frozenset(rule.name.lower() for rule in _NAMED.values())


def _normalise(text: str) -> str:
    # Contracts write "New Year’s Day" (U+2019), "New Year's Day" and "New Years Day".
    lowered = re.sub(r"['\u2019.]", "", text.lower())
    lowered = " ".join(lowered.split())
    return _ALIASES.get(lowered, lowered)


def _parse_generic(text: str) -> _Rule | None:
    if match := _FIXED_DATE.fullmatch(text):
        month, day = int(match[1]), int(match[2])
        try:
            date(2000, month, day)  # a leap year, so 02-29 is valid
        except ValueError:
            return None
        return _Rule(text, _fixed(month, day), fixed=True)
    if match := _NTH_WEEKDAY.fullmatch(text):
        nth = _ORDINALS.get(match[1])
        weekday = _WEEKDAYS.get(match[2])
        month_no = _MONTHS.get(match[3])
        if nth is None or weekday is None or month_no is None:
            return None
        return _Rule(text, _weekday_rule(month_no, weekday, nth), fixed=False)
    return None


def rule_name(text: str) -> str:
    """The display name of a holiday rule; ValueError naming it when it is not understood.

    Config validation can call this to check a policy's rule list field by field.
    """
    return _parse_rule(text).name


@lru_cache(maxsize=256)
def _parse_rule(text: str) -> _Rule:
    key = _normalise(text)
    rule = _NAMED.get(key) or _parse_generic(key)
    if rule is None:
        raise ValueError(
            f"unknown holiday rule {text!r}: expected one of {sorted(KNOWN_RULES)}, "
            "'MM-DD', '<1st..5th> <weekday> of <month>' or 'last <weekday> of <month>'"
        )
    return rule


def _observed(day: date) -> date | None:
    """The weekday a weekend holiday is observed on (US federal practice), else None."""
    if day.weekday() == calendar.SATURDAY:
        return day - timedelta(days=1)
    if day.weekday() == calendar.SUNDAY:
        return day + timedelta(days=1)
    return None


def _rule_entries(rule: _Rule, year: int, observe: bool) -> Iterable[tuple[date, str]]:
    """Actual and observed dates of ``rule`` that fall in ``year``."""
    # An observed date can cross a year boundary (New Year's Day 2028 is a Saturday, so
    # Friday 2027-12-31 is off), so neighbouring years are evaluated too.
    for y in (year - 1, year, year + 1):
        actual = rule.date_in(y)
        if actual is None:
            continue
        if actual.year == year:
            yield actual, rule.name
        shifted = _observed(actual) if observe and rule.fixed else None
        if shifted is not None and shifted.year == year:
            yield shifted, f"{rule.name} (observed)"


@lru_cache(maxsize=512)
def _country_entries(
    country: str, subdivision: str | None, observe: bool, year: int
) -> tuple[tuple[date, str], ...]:
    table = holidays_pkg.country_holidays(country, subdiv=subdivision, years=year, observed=observe)
    return tuple(sorted(table.items()))


def _merge(entries: Iterable[tuple[date, str]]) -> dict[date, str]:
    merged: dict[date, list[str]] = {}
    for day, name in entries:
        names = merged.setdefault(day, [])
        if name not in names:
            names.append(name)
    return {day: "; ".join(names) for day, names in sorted(merged.items())}


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """Days off from named/generic rules, a country calendar and explicit dates.

    ``observe_weekend`` applies to fixed-date rules and to the country calendar (whose
    package applies its own country's observance law); explicit dates are taken as given.
    Invalid rules, countries or subdivisions raise ValueError at construction.
    """

    rules: tuple[str, ...] = ()
    country: str | None = None
    subdivision: str | None = None
    dates: tuple[date, ...] = ()
    observe_weekend: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.rules, str):  # ("christmas day") without the comma
            raise TypeError("rules must be a sequence of rule names, not one string")
        # Accept any iterable from config code but keep the value hashable and immutable.
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "dates", tuple(sorted(set(self.dates))))
        for rule in self.rules:
            _parse_rule(rule)
        if self.subdivision is not None and self.country is None:
            raise ValueError("holiday subdivision given without a country")
        if self.country is not None:
            self._check_country(self.country, self.subdivision)

    @staticmethod
    def _check_country(country: str, subdivision: str | None) -> None:
        try:
            holidays_pkg.country_holidays(country, subdiv=subdivision)
        except NotImplementedError as exc:  # how the package reports unknown codes
            raise ValueError(f"unknown holiday calendar: {exc}") from None

    def holidays_in(self, year: int) -> dict[date, str]:
        """Every holiday in ``year``, date → name (names joined by "; " on shared days)."""
        return dict(_year_table(self, year))

    def is_holiday(self, day: date) -> bool:
        if isinstance(day, datetime):
            # A datetime's date depends on its zone; the caller must pick the local date.
            raise TypeError("is_holiday takes a date, not a datetime")
        return day in _year_table(self, day.year)


@lru_cache(maxsize=512)
def _year_table(cal: HolidayCalendar, year: int) -> Mapping[date, str]:
    entries: list[tuple[date, str]] = []
    if cal.country is not None:
        entries.extend(_country_entries(cal.country, cal.subdivision, cal.observe_weekend, year))
    for text in cal.rules:
        entries.extend(_rule_entries(_parse_rule(text), year, cal.observe_weekend))
    entries.extend((d, "Holiday") for d in cal.dates if d.year == year)
    return MappingProxyType(_merge(entries))
