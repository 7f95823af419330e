"""Shared parsing-test helpers: the report-field specs the default policy passes, invariants."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from parsing import FieldSpec

DEFAULT_SPECS: tuple[FieldSpec, ...] = (
    FieldSpec("company_name", ("Company", "Company Name", "Customer")),
    FieldSpec("contact_name", ("Contact", "Contact Name", "Name")),
    FieldSpec("contact_email", ("Email", "E-mail", "Contact Email", "Contact Email Address")),
    FieldSpec(
        "contact_phone",
        ("Phone", "Telephone", "Tel", "Callback Number", "Contact Phone", "Contact Phone Number"),
    ),
    FieldSpec("serial_number", ("Serial", "Serial No", "Serial #", "S/N", "Serial Number")),
    FieldSpec(
        "software_version", ("Version", "SW Version", "Firmware Version", "Software Version")
    ),
    FieldSpec(
        "description", ("Description", "Problem", "Problem Description", "Detailed Description")
    ),
    FieldSpec(
        "reproducible",
        ("Reproducible", "Can the issue be reproduced?", "Can the Issue be Reproduced"),
    ),
    FieldSpec(
        "internal_ticket_number", ("Internal Ticket", "Internal Ticket Number", "Your Ticket")
    ),
    FieldSpec("notes", ("Notes",)),
    FieldSpec("call_logs", ("Call Logs",)),
)


@pytest.fixture
def specs() -> tuple[FieldSpec, ...]:
    return DEFAULT_SPECS


def strings_in(value: object) -> list[str]:
    """Every str inside a parsing result (dataclasses, tuples, mappings), for invariants."""
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in strings_in(getattr(value, f.name))]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, tuple | list | set | frozenset):
        return [s for item in value for s in strings_in(item)]
    return []


def assert_clean_text(value: object) -> None:
    """Decoded means decoded: no surrogate escapes (raw bytes) left in any string."""
    for text in strings_in(value):
        assert not any("\ud800" <= ch <= "\udfff" for ch in text), repr(text[:80])
