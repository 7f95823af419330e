"""Policy files: the shipped ones load, and a bad one names the file, the key and why."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from intake.errors import ConfigError
from intake.policy.findings import FindingCode
from intake.policy.policy import available_policies, load_policy


def test_standard_policy_carries_the_contract_numbers() -> None:
    policy = load_policy("standard")
    assert policy.default_priority == 3
    assert [p.level for p in policy.priorities] == [1, 2, 3, 4]
    charge = policy.missing_information_charge
    assert charge is not None
    assert (charge.amount, charge.currency) == (Decimal("100.00"), "USD")
    required = [f.name for f in policy.fields if f.required]
    assert required == [
        "company_name",
        "contact_name",
        "contact_email",
        "contact_phone",
        "serial_number",
        "software_version",
        "description",
        "reproducible",
        "call_examples",
    ]
    optional = [f.name for f in policy.fields if not f.required]
    assert optional == ["internal_ticket_number", "notes", "call_logs"]


def test_minimum_synonyms_are_policy_data() -> None:
    specs = {
        spec.name: {s.lower() for s in spec.synonyms}
        for spec in load_policy("standard").field_specs()
    }
    assert {"email", "e-mail"} <= specs["contact_email"]
    assert {"phone", "telephone", "tel", "callback number"} <= specs["contact_phone"]
    assert {"serial", "serial no", "serial #", "s/n"} <= specs["serial_number"]
    assert {"version", "sw version", "firmware version"} <= specs["software_version"]
    assert {"reproducible", "can the issue be reproduced?"} <= specs["reproducible"]


@pytest.mark.parametrize("name", ["standard", "managed-pbx"])
def test_both_serials_are_a_multi_part_field(name: str) -> None:
    [serial] = [s for s in load_policy(name).field_specs() if s.name == "serial_number"]
    assert [part.name for part in serial.parts] == ["board", "appliance"]


@pytest.mark.parametrize(
    ("name", "field", "labels"),
    [
        ("managed-pbx", "contact_phone", {"telefon", "téléphone", "teléfono"}),
        ("managed-pbx", "serial_number", {"seriennummer", "numéro de série", "número de serie"}),
        ("managed-pbx", "company_name", {"firmenname", "société", "empresa"}),
        ("voip-hotline", "contact_phone", {"telefon", "téléphone", "teléfono"}),
        ("cloud-services", "description", {"beschreibung", "description", "descripción"}),
        ("subscription", "description", {"beschreibung", "descripción"}),
        ("teams-connector", "description", {"beschreibung", "descripción"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_shipped_policies_know_german_french_and_spanish_labels(
    name: str, field: str, labels: set[str]
) -> None:
    [spec] = [s for s in load_policy(name).field_specs() if s.name == field]
    assert labels <= {s.lower() for s in spec.synonyms}


def test_policies_are_listed() -> None:
    assert "standard" in available_policies()


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            ("default_priority = 3", "default_priority = 7"),
            "default_priority 7 is not in priorities",
        ),
        (('timezone = "America/Los_Angeles"', 'timezone = "Mars/Olympus"'), "unknown time zone"),
        (('amount = "100.00"', 'amount = "100.005"'), "missing_information_charge.amount"),
        (('currency = "USD"', 'currency = "dollars"'), "missing_information_charge.currency"),
        (('name = "standard"', 'name = "standard"\nsurprise = 1'), "surprise: unknown key"),
        (
            ('name = "standard"', 'name = "standard"\nbillable_findings = ["unauthorised"]'),
            "billable_findings: Value error, unknown finding code 'unauthorised'",
        ),
        (
            ('name = "standard"', 'name = "standard"\nnotice_findings = ["staff_cc", "cc"]'),
            "notice_findings: Value error, unknown finding code 'cc'",
        ),
        (
            ('{ name = "appliance"', '{ name = "board"'),
            "parts: each name may appear only once",
        ),
        (
            ('"chassis", ', '"chassis", "board", '),
            "parts: a qualifier word may name only one part",
        ),
        (
            (
                'words = ["appliance", "chassis", "Gerät", "appareil", "equipo", "dispositivo"]',
                "words = []",
            ),
            "words",
        ),
    ],
    ids=[
        "default-not-a-level",
        "bad-zone",
        "sub-cent-amount",
        "bad-currency",
        "unknown-key",
        "unknown-billable-finding",
        "unknown-notice-finding",
        "part-named-twice",
        "part-word-shared",
        "part-without-words",
    ],
)
def test_bad_policy_file_names_file_and_key(
    tmp_path: Path, patch: tuple[str, str], expected: str
) -> None:
    shipped = Path(__file__).resolve().parents[3] / "config" / "policies" / "standard.toml"
    text = shipped.read_text()
    assert patch[0] in text
    (tmp_path / "broken.toml").write_text(text.replace(patch[0], patch[1], 1))
    with pytest.raises(ConfigError) as error:
        load_policy("broken", tmp_path)
    assert "broken.toml" in str(error.value) and expected in str(error.value)


def test_unknown_policy_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no policy named 'nope'"):
        load_policy("nope")


@pytest.mark.parametrize("name", available_policies())
def test_shipped_policies_bill_and_notice_the_findings_they_always_did(name: str) -> None:
    policy = load_policy(name)
    assert policy.billable_findings == {"unauthorized_contact", "subscription_lapsed"}
    assert policy.notice_findings == {
        "unauthorized_contact",
        "subscription_lapsed",
        "staff_cc",
        "after_hours",
        "outage_escalated",
    }


def test_a_policy_names_its_billable_and_notice_findings(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[3] / "config" / "policies" / "standard.toml"
    keys = 'billable_findings = ["staff_cc"]\nnotice_findings = []\n'
    text = shipped.read_text().replace('name = "standard"', f'name = "standard"\n{keys}', 1)
    (tmp_path / "strict.toml").write_text(text)
    policy = load_policy("strict", tmp_path)
    assert policy.billable_findings == {FindingCode.STAFF_CC}
    assert policy.notice_findings == frozenset()


def test_a_policy_builds_its_business_clock_once_and_a_changed_copy_its_own() -> None:
    policy = load_policy("standard")
    assert policy.calendar() is policy.calendar()  # built once, ~0.1 ms each (issue 11)
    assert policy.calendar("Asia/Tokyo").tz.key == (
        "Asia/Tokyo" if policy.use_customer_timezone else policy.timezone
    )
    nights = policy.hours[0].model_copy(update={"start": time(20), "end": time(23)})
    night_shift = policy.model_copy(update={"hours": (nights,)})
    windows = night_shift.calendar().windows
    assert {w.start for day in windows.values() for w in day} == {time(20)}
    assert policy.calendar().windows != windows
