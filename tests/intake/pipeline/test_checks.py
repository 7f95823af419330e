"""The checks: every one runs, hits and misses are recorded, findings are typed codes."""

from __future__ import annotations

from datetime import UTC, datetime

from intake.pipeline.assess import Assessment, assess
from intake.pipeline.checks import CHECKS
from intake.pipeline.identity import Identity
from intake.policy.findings import FindingCode
from intake.policy.policy import Policy, PolicyBook, load_policy
from parsing import parse_message
from tests.conftest import make_mail

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 09:00 PST, 10:00 MST
IDENTITY = Identity(("support@example.com",), "support@example.com", (), ("provider.example",))


def assessed(raw: bytes, policy: Policy) -> Assessment:
    return assess(parse_message(raw), "jane@acme.example", PolicyBook(policy), IDENTITY, MONDAY)


def test_every_check_runs_and_is_recorded_as_a_hit_or_a_miss() -> None:
    raw = make_mail(subject="Acme – Denver – No dial tone", body="Phones are dead.\n")
    assessment = assessed(raw, load_policy("standard"))
    assert {"subject_priority", "required_fields", "known_customer"} <= set(assessment.checks_hit)
    assert {"subject_grammar", "reply_address", "mime_defects"} <= set(assessment.checks_missed)
    names = [check.name for check in CHECKS]
    assert sorted(assessment.checks_hit + assessment.checks_missed) == sorted(names)
    assert [n for n in names if n in assessment.checks_hit] == list(assessment.checks_hit)


def test_finding_codes_keep_their_stored_names() -> None:
    assert {code.value for code in FindingCode} == {
        "subject_unreadable",
        "priority_missing",
        "priority_unknown",
        "outage_escalated",
        "missing_field",
        "no_reply_address",
        "not_a_mail",
        "mime_defects",
        "unknown_customer",
        "unauthorized_contact",
        "subscription_lapsed",
        "staff_cc",
        "after_hours",
        "unauthenticated_staff",
        "dmarc_fail",
    }
    finding = assessed(make_mail(body="x\n"), load_policy("standard")).findings[0]
    assert finding.as_dict()["code"] == "missing_field"
    assert type(finding.as_dict()["code"]) is str  # plain JSON, not an enum member


def test_which_findings_bill_and_which_are_notices_is_policy_data() -> None:
    shipped = load_policy("managed-pbx")
    raw = make_mail(headers={"Cc": "jo@provider.example"})
    before = assessed(raw, shipped)
    assert FindingCode.STAFF_CC in {f.code for f in before.findings}
    assert not before.billable_hourly and shipped.staff_cc_reminder in before.notices
    strict = shipped.model_copy(
        update={"billable_findings": frozenset({FindingCode.STAFF_CC}), "notice_findings": set()}
    )
    after = assessed(raw, strict)
    assert after.billable_hourly and after.notices == ()
