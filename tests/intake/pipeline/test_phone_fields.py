"""A phone number without a label satisfies the contract's contact phone (phone_in_text).

Each case states the fields, the missing list and the charge a careful NOC operator
would derive from a complete report whose phone is written the way people write it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from intake.pipeline.assess import Assessment, assess
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook, load_policy
from parsing import parse_message
from tests.conftest import COMPLETE_BODY, make_mail

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
IDENTITY = Identity(("support@example.com",), "support@example.com", (), ())
NO_PHONE = COMPLETE_BODY.replace("Phone: +1 303 555 0100\n", "")


def assessed(body: str, policy: str = "standard") -> Assessment:
    policies = PolicyBook(load_policy(policy))
    raw = make_mail(body=body)
    return assess(parse_message(raw), "jane@acme.example", policies, IDENTITY, MONDAY)


# (id, body, phone recorded, where)
CASES = [
    (
        "signature-direct",
        f"{NO_PHONE}\nThanks,\nJane Doe\nDirect: (303) 555-0100\n",
        "+1 303-555-0100",
        "signature",
    ),
    (
        "sentence",
        f"Call me on my cell at 303-555-0142 if anything is unclear.\n{NO_PHONE}",
        "+1 303-555-0142",
        "sentence",
    ),
]


@pytest.mark.parametrize(
    ("body", "phone", "where"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("policy", ["standard", "managed-pbx"], ids=str)
def test_an_unlabelled_phone_is_read_and_not_charged(
    body: str, phone: str, where: str, policy: str
) -> None:
    assessment = assessed(body, policy)
    assert "contact_phone" not in assessment.missing_fields
    assert assessment.fields["contact_phone"] == phone
    assert assessment.fields["contact_phone_found_in"] == where
    if policy == "standard":  # everything else of the standard contract is in COMPLETE_BODY
        assert assessment.missing_fields == () and assessment.charges == ()


def test_a_labelled_phone_is_kept_as_written() -> None:
    assessment = assessed(COMPLETE_BODY + "\nThanks,\nJane\nMobile: 720-555-0111\n")
    assert assessment.fields["contact_phone"] == "+1 303 555 0100"
    assert "contact_phone_found_in" not in assessment.fields


def test_a_phone_only_in_quoted_history_is_missing_and_charged() -> None:
    body = (
        f"{NO_PHONE}\nOn Mon, Nov 23, 2026 at 8:20 AM Bob <bob@acme.example> wrote:\n"
        "> Direct: +1 212 555 0100\n> call me at 212-555-0199\n"
    )
    assessment = assessed(body)
    assert assessment.missing_fields == ("contact_phone",)
    assert [c.kind for c in assessment.charges] == ["missing_information"]


def test_the_call_examples_numbers_are_not_the_contacts() -> None:
    assessment = assessed(NO_PHONE)  # its call example has calling and called numbers
    assert assessment.missing_fields == ("contact_phone",)
