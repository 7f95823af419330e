"""Support-contract policies as validated data (``config/policies/NAME.toml``).

A policy says which priorities exist and what they mean, which report fields the
contract requires (with the labels customers use), and what missing information costs.
Nothing here is a constant in code: a contract change is a file change, checked at
start-up with the file, the key and the reason.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intake.errors import ConfigError
from intake.policy.calendars import HolidayCalendar
from intake.policy.clock import BusinessCalendar, Window
from intake.policy.findings import DEFAULT_BILLABLE, DEFAULT_NOTICES, FindingCode
from intake.settings import describe_validation_error
from parsing import AUTHENTICATED, DEFAULT_PLACEHOLDERS, FieldPart, FieldSpec, SenderTrust

_STRICT = ConfigDict(extra="forbid", frozen=True)

# How a required field can be satisfied without a labelled line in the body.
# phone_in_text: a number the contact wrote without a label (parsing.phones).
Satisfier = Literal[
    "subject_customer", "from_address", "from_name", "free_text", "call_examples", "phone_in_text"
]


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Literal["business", "wall"]


class Target(BaseModel):
    """A time allowance: ``hours`` or ``days`` on the business clock or the 24×7 wall clock.

    Business days are multiples of the policy's business-day length ("5 support days");
    wall-clock days are 24 hours each.
    """

    model_config = _STRICT
    hours: float | None = Field(default=None, gt=0)
    days: float | None = Field(default=None, gt=0)
    clock: Clock

    @model_validator(mode="after")
    def _one_unit(self) -> Target:
        if (self.hours is None) == (self.days is None):
            raise ValueError("give exactly one of hours or days")
        return self

    def describe(self) -> str:
        amount, unit = (self.hours, "hour") if self.hours is not None else (self.days, "day")
        number = f"{amount:g}"
        kind = "business " if self.clock == "business" else ""
        return f"{number} {kind}{unit}{'' if number == '1' else 's'}"


class Priority(BaseModel):
    model_config = _STRICT
    level: int = Field(ge=0, le=9)
    name: str  # shown to customers, e.g. "P1 – Critical"
    aliases: tuple[str, ...] = ()  # extra subject words, e.g. "outage"
    definition: str  # what the priority means, quoted from the contract
    # None: the contract sets no response target ("when commercially feasible").
    response: Target | None = None
    # Used instead of ``response`` when the ticket arrives outside business hours.
    response_after_hours: Target | None = None
    # Further targets by name (resolution, work_around, restoration, reason_for_outage).
    deadlines: dict[str, Target] = Field(default_factory=dict)
    deadlines_after_hours: dict[str, Target] = Field(default_factory=dict)


class HoursWindow(BaseModel):
    model_config = _STRICT
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: time
    end: time  # end <= start: the window runs past midnight into the next day


class Holidays(BaseModel):
    model_config = _STRICT
    rules: tuple[
        str, ...
    ] = ()  # named rules ("good friday") or "MM-DD" / "4th thursday of november"
    country: str | None = None  # a country calendar of the holidays package, e.g. "US"
    subdivision: str | None = None
    dates: tuple[date, ...] = ()
    observe_weekend: bool = True

    @model_validator(mode="after")
    def _valid(self) -> Holidays:
        self.calendar()  # unknown rule, country or subdivision → ValueError naming it
        return self

    def calendar(self) -> HolidayCalendar:
        return HolidayCalendar(
            self.rules, self.country, self.subdivision, self.dates, self.observe_weekend
        )


class AfterHoursCharge(BaseModel):
    """A charge that may apply to a ticket opened outside business hours (pending)."""

    model_config = _STRICT
    kind: str
    priorities: tuple[int, ...]
    rate: Decimal = Field(ge=0, decimal_places=2)  # per hour
    minimum_hours: Decimal = Field(default=Decimal(0), ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    status: Literal["pending", "applied"] = "pending"
    reason: str

    @property
    def amount(self) -> Decimal:
        """What is recorded up front: the minimum the contract bills."""
        return (self.rate * self.minimum_hours).quantize(Decimal("0.01"))


class AutoClose(BaseModel):
    model_config = _STRICT
    after: Target  # how long a ticket may wait on the customer
    reason: str


class ReportPart(BaseModel):
    """One part of a field the contract asks for in several ("board" and "appliance")."""

    model_config = _STRICT
    name: str  # e.g. "board"
    label: str  # shown to the customer, e.g. "board serial number"
    words: tuple[str, ...] = Field(min_length=1)  # qualifiers naming it: "board", "Platine"


class ReportField(BaseModel):
    model_config = _STRICT
    name: str  # canonical, e.g. "serial_number"
    label: str  # the contract's human name, e.g. "Serial Number of the System"
    synonyms: tuple[str, ...] = ()
    required: bool = True
    satisfied_by: tuple[Satisfier, ...] = ()
    min_words: int = Field(default=15, ge=1)  # for satisfied_by = free_text
    # Two or more: the field counts as given only when every part is (managed-PBX item 5).
    parts: tuple[ReportPart, ...] = ()

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError("must be a lower-case identifier like serial_number")
        return value

    @model_validator(mode="after")
    def _parts(self) -> ReportField:
        names = [part.name for part in self.parts]
        if len(names) == 1:
            raise ValueError("parts: give two or more, or none")
        if len(set(names)) != len(names):
            raise ValueError("parts: each name may appear only once")
        words = [word.casefold() for part in self.parts for word in part.words]
        if len(set(words)) != len(words):
            raise ValueError("parts: a qualifier word may name only one part")
        return self

    def part_label(self, name: str) -> str:
        return next((p.label for p in self.parts if p.name == name), name)


class Charge(BaseModel):
    model_config = _STRICT
    kind: str
    amount: Decimal = Field(ge=0, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")  # ISO 4217
    reason: str  # the contract's words, shown to the customer


class Policy(BaseModel):
    model_config = _STRICT
    name: str
    version: str
    title: str
    source: str = ""  # which contract text this transcribes
    timezone: str
    default_priority: int
    priorities: tuple[Priority, ...] = Field(min_length=1)
    fields: tuple[ReportField, ...] = ()
    placeholders: tuple[str, ...] = tuple(sorted(DEFAULT_PLACEHOLDERS))
    missing_information_charge: Charge | None = None
    hours: tuple[HoursWindow, ...] = Field(min_length=1)
    holidays: Holidays = Holidays()
    # Business hours in the customer's own zone when the directory knows it (managed-PBX).
    use_customer_timezone: bool = False
    after_hours_charges: tuple[AfterHoursCharge, ...] = ()
    after_hours_notice: str | None = None  # e.g. overtime billed at 1.5 times the rate
    # Only the customer's authorized contacts may open tickets; others are billable.
    authorized_contacts_only: bool = False
    unauthorized_notice: str | None = None
    # Support needs an active subscription; a lapsed customer is billed hourly.
    subscription_required: bool = False
    lapsed_subscription_notice: str | None = None
    # Words in the issue that lift a ticket to ``outage_priority`` (a total outage).
    outage_keywords: tuple[str, ...] = ()
    outage_priority: int | None = None
    staff_cc_reminder: str | None = None  # shown when the customer CCs staff directly
    # ISO 3166 region for phone numbers written without a country code (parsing.phones).
    phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    auto_close: AutoClose | None = None
    # Findings that make a ticket billable hourly, and those the confirmation shows as
    # notices (in the order the checks found them).
    billable_findings: frozenset[FindingCode] = DEFAULT_BILLABLE
    notice_findings: frozenset[FindingCode] = DEFAULT_NOTICES
    # Sender trust (issue 13; parsing.auth): the values that make a From address count as
    # its owner. Staff replies count toward the SLA and authorized contacts count as such
    # only then. The default is safe when no MTA adds Authentication-Results: nothing is
    # authenticated. A deployment that accepts header claims lists "none" here too.
    authenticated_senders: frozenset[SenderTrust] = AUTHENTICATED
    # A DMARC fail is recorded and, unless this is set, never answered (no backscatter).
    confirm_dmarc_fail: bool = False

    def authenticated(self, trust: SenderTrust) -> bool:
        return trust in self.authenticated_senders and trust is not SenderTrust.FAIL

    @field_validator("billable_findings", "notice_findings", mode="before")
    @classmethod
    def _known_findings(cls, value: object) -> object:
        # Checked here so the error names the code and the known ones, not an enum dump.
        known = {code.value for code in FindingCode}
        for code in value if isinstance(value, list | tuple | set | frozenset) else ():
            if code not in known:
                raise ValueError(
                    f"unknown finding code {code!r} (known: {', '.join(sorted(known))})"
                )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        levels = [p.level for p in self.priorities]
        if len(set(levels)) != len(levels):
            raise ValueError("priorities: each level may appear only once")
        if self.default_priority not in levels:
            raise ValueError(f"default_priority {self.default_priority} is not in priorities")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("fields: each name may appear only once")
        if self.outage_priority is not None and self.outage_priority not in levels:
            raise ValueError(f"outage_priority {self.outage_priority} is not in priorities")
        self.calendar()  # overlapping windows → ValueError at start-up
        return self

    def calendar(self, timezone: str | None = None) -> BusinessCalendar:
        """The business clock, in ``timezone`` when the policy follows the customer's zone."""
        return _business_calendar(self.hours, self.holidays, self.zone(timezone))

    def zone(self, timezone: str | None = None) -> str:
        return timezone if (timezone and self.use_customer_timezone) else self.timezone

    def business_day(self) -> timedelta:
        return self.calendar().business_day_length()

    def priority(self, level: int) -> Priority | None:
        return next((p for p in self.priorities if p.level == level), None)

    def priority_aliases(self) -> Mapping[str, int]:
        """Subject words → level, from each priority's aliases (lower case)."""
        return {alias.lower(): p.level for p in self.priorities for alias in p.aliases}

    def field_specs(self) -> tuple[FieldSpec, ...]:
        # Call examples are structured blocks the parser reads on its own, not a label.
        return tuple(
            FieldSpec(
                f.name,
                (f.label, *f.synonyms),
                tuple(FieldPart(p.name, p.words) for p in f.parts),
            )
            for f in self.fields
            if "call_examples" not in f.satisfied_by
        )

    def field_label(self, name: str) -> str:
        return next((f.label for f in self.fields if f.name == name), name.replace("_", " "))

    def report_field(self, name: str) -> ReportField | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """Every loaded policy and the default one; a customer's entry may name another."""

    default: Policy
    others: Mapping[str, Policy] = field(default_factory=dict)

    def by_name(self, name: str | None) -> Policy:
        """The named policy (e.g. the one a ticket was opened under), else the default."""
        return self.others.get(name, self.default) if name else self.default


@functools.lru_cache(maxsize=256)
def _business_calendar(
    hours: tuple[HoursWindow, ...], holidays: Holidays, zone: str
) -> BusinessCalendar:
    """A policy's business clock in ``zone``, built once: it is immutable, and building it
    (the country's holiday package checked, the windows checked for overlaps) was ~0.1 ms,
    asked for several times a ticket (issue 11). Keyed by what it is made of, so a copy
    of a policy with other hours gets its own."""
    windows: dict[int, list[Window]] = {}
    for spec in hours:
        for day in spec.days:
            windows.setdefault(WEEKDAYS.index(day), []).append(Window(spec.start, spec.end))
    return BusinessCalendar(
        ZoneInfo(zone), {d: tuple(w) for d, w in windows.items()}, holidays.calendar()
    )


def load_policy(name: str, policy_dir: Path | None = None) -> Policy:
    """Load ``NAME.toml`` from ``policy_dir`` (when given) or the shipped policies."""
    path = find_policy_file(name, policy_dir)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy file {path}: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source=f"policy file {path}")) from None


def find_policy_file(name: str, policy_dir: Path | None = None) -> Path:
    if not name.replace("-", "_").isidentifier():
        raise ConfigError(f"intake.policy: {name!r} is not a policy name")
    candidates = [policy_dir / f"{name}.toml"] if policy_dir else []
    candidates.append(Path(str(resources.files("intake.config.policies").joinpath(f"{name}.toml"))))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c.parent) for c in candidates)
    raise ConfigError(f"intake.policy: no policy named {name!r} (looked in {searched})")


def available_policies(policy_dir: Path | None = None) -> list[str]:
    shipped = Path(str(resources.files("intake.config.policies")))
    dirs = [d for d in (policy_dir, shipped) if d is not None and d.is_dir()]
    return sorted({p.stem for d in dirs for p in d.glob("*.toml")})
