"""Support-contract policies as validated data (``config/policies/NAME.toml``).

A policy says which priorities exist and what they mean, which report fields the
contract requires (with the labels customers use), and what missing information costs.
Nothing here is a constant in code: a contract change is a file change, checked at
start-up with the file, the key and the reason.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intake.errors import ConfigError
from intake.settings import describe_validation_error
from parsing import DEFAULT_PLACEHOLDERS, FieldSpec

_STRICT = ConfigDict(extra="forbid", frozen=True)

# How a required field can be satisfied without a labelled line in the body.
Satisfier = Literal["subject_customer", "from_address", "from_name", "free_text", "call_examples"]


class Priority(BaseModel):
    model_config = _STRICT
    level: int = Field(ge=0, le=9)
    name: str  # shown to customers, e.g. "P1 – Critical"
    aliases: tuple[str, ...] = ()  # extra subject words, e.g. "outage"
    definition: str  # what the priority means, quoted from the contract


class ReportField(BaseModel):
    model_config = _STRICT
    name: str  # canonical, e.g. "serial_number"
    label: str  # the contract's human name, e.g. "Serial Number of the System"
    synonyms: tuple[str, ...] = ()
    required: bool = True
    satisfied_by: tuple[Satisfier, ...] = ()
    min_words: int = Field(default=15, ge=1)  # for satisfied_by = free_text

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError("must be a lower-case identifier like serial_number")
        return value


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
        return self

    def priority(self, level: int) -> Priority | None:
        return next((p for p in self.priorities if p.level == level), None)

    def priority_aliases(self) -> Mapping[str, int]:
        """Subject words → level, from each priority's aliases (lower case)."""
        return {alias.lower(): p.level for p in self.priorities for alias in p.aliases}

    def field_specs(self) -> tuple[FieldSpec, ...]:
        # Call examples are structured blocks the parser reads on its own, not a label.
        return tuple(
            FieldSpec(f.name, (f.label, *f.synonyms))
            for f in self.fields
            if "call_examples" not in f.satisfied_by
        )

    def field_label(self, name: str) -> str:
        return next((f.label for f in self.fields if f.name == name), name.replace("_", " "))


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
