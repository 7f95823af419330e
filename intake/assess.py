"""The pure middle of the pipeline: parsed message + policy → one Assessment.

Checks are an explicit ordered tuple of small named objects; all of them run, each
returns findings, and one decision follows (Mailman's rules and chains, typed). Nothing
here reads the clock, the database or the network: ``intake check`` calls it as a dry
run and the daemon calls it inside COMMIT 2, so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from intake.policy import Policy, ReportField
from parsing import (
    FieldExtraction,
    ParsedMessage,
    SubjectParse,
    Verdict,
    classify,
    extract_fields,
    parse_message,
    parse_subject,
)


class Decision(StrEnum):
    NEW_TICKET = "new_ticket"
    IGNORE = "ignore"  # machine mail: recorded, never answered


@dataclass(frozen=True, slots=True)
class Finding:
    """An expected problem with a message (data, not an exception; invariant 5)."""

    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedCharge:
    kind: str
    amount: Decimal
    currency: str
    reason: str
    status: str = "applied"  # applied | pending


@dataclass(frozen=True, slots=True)
class Identity:
    """Who we are, so our own mail is recognised as a loop (RFC 3834 §2, X-Loop)."""

    addresses: tuple[str, ...]
    loop_marker: str


@dataclass(frozen=True, slots=True)
class CheckContext:
    message: ParsedMessage
    subject: SubjectParse
    extraction: FieldExtraction
    policy: Policy


@dataclass(frozen=True, slots=True)
class Assessment:
    message: ParsedMessage
    verdict: Verdict
    subject: SubjectParse
    priority: int
    fields: Mapping[str, Any]
    findings: tuple[Finding, ...]
    charges: tuple[PlannedCharge, ...]
    decision: Decision
    reply_address: str | None
    response_due: datetime | None = None
    deadlines: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def missing_fields(self) -> tuple[str, ...]:
        return tuple(f.field for f in self.findings if f.code == "missing_field" and f.field)


class Check(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]: ...


@dataclass(frozen=True)
class SubjectGrammar:
    name: str = "subject_grammar"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.subject.problem is None:
            return ()
        return (Finding("subject_unreadable", ctx.subject.problem),)


@dataclass(frozen=True)
class SubjectPriority:
    name: str = "subject_priority"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        level, default = ctx.subject.priority, ctx.policy.default_priority
        if level is None:
            text = f"The subject gives no priority; the default priority {default} applies."
            return (Finding("priority_missing", text),)
        if ctx.policy.priority(level) is None:
            known = ", ".join(str(p.level) for p in ctx.policy.priorities)
            text = (
                f"Priority {level} is not in this contract (known: {known}); "
                f"the default priority {default} applies."
            )
            return (Finding("priority_unknown", text),)
        return ()


@dataclass(frozen=True)
class RequiredFields:
    name: str = "required_fields"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        findings = []
        for spec in ctx.policy.fields:
            if spec.required and not _satisfied(spec, ctx):
                findings.append(_missing(spec, ctx.extraction))
        return tuple(findings)


@dataclass(frozen=True)
class ReplyAddress:
    name: str = "reply_address"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if _reply_address(ctx.message):
            return ()
        return (Finding("no_reply_address", "The message has no usable From or Reply-To."),)


@dataclass(frozen=True)
class MimeDefects:
    name: str = "mime_defects"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if not ctx.message.defects:
            return ()
        names = ", ".join(ctx.message.defects)
        return (Finding("mime_defects", f"The message is malformed MIME ({names})."),)


CHECKS: tuple[Check, ...] = (
    SubjectGrammar(),
    SubjectPriority(),
    RequiredFields(),
    ReplyAddress(),
    MimeDefects(),
)


def assess_bytes(
    raw: bytes, envelope_sender: str | None, policy: Policy, identity: Identity
) -> Assessment:
    return assess(parse_message(raw), envelope_sender, policy, identity)


def assess(
    message: ParsedMessage, envelope_sender: str | None, policy: Policy, identity: Identity
) -> Assessment:
    verdict = classify(message, envelope_sender, identity.addresses, identity.loop_marker)
    subject = parse_subject(message.subject, policy.priority_aliases())
    extraction = extract_fields(
        message.new_text, message.body_html, policy.field_specs(), policy.placeholders
    )
    ctx = CheckContext(message, subject, extraction, policy)
    findings = tuple(finding for check in CHECKS for finding in check.run(ctx))
    return Assessment(
        message=message,
        verdict=verdict,
        subject=subject,
        priority=_effective_priority(subject, policy),
        fields=_field_values(ctx),
        findings=findings,
        charges=_charges(findings, policy),
        decision=Decision.IGNORE if verdict.is_machine else Decision.NEW_TICKET,
        reply_address=None if verdict.is_machine else _reply_address(message),
    )


def _effective_priority(subject: SubjectParse, policy: Policy) -> int:
    if subject.priority is not None and policy.priority(subject.priority) is not None:
        return subject.priority
    return policy.default_priority


def _satisfied(spec: ReportField, ctx: CheckContext) -> bool:
    if spec.name in ctx.extraction.values:
        return True
    return any(_satisfied_by(how, spec, ctx) for how in spec.satisfied_by)


def _satisfied_by(how: str, spec: ReportField, ctx: CheckContext) -> bool:
    message, extraction = ctx.message, ctx.extraction
    if how == "subject_customer":
        return bool(ctx.subject.customer)
    if how == "from_address":
        return bool(message.from_address)
    if how == "from_name":
        return bool(message.from_name and message.from_name.strip())
    if how == "free_text":
        return len(extraction.free_text.split()) >= spec.min_words
    if how == "call_examples":
        return any(example.complete for example in extraction.call_examples)
    return False


def _missing(spec: ReportField, extraction: FieldExtraction) -> Finding:
    if spec.name in extraction.blank:
        text = f"{spec.label} was left blank or given as a placeholder."
    else:
        text = f"{spec.label} is missing."
    return Finding("missing_field", text, field=spec.name)


def _field_values(ctx: CheckContext) -> dict[str, Any]:
    """What we know per canonical field, including values taken from the headers."""
    values: dict[str, Any] = dict(ctx.extraction.values)
    fallbacks = {
        "company_name": ctx.subject.customer,
        "contact_email": ctx.message.from_address,
        "contact_name": ctx.message.from_name,
    }
    for name, value in fallbacks.items():
        if value and name not in values and any(f.name == name for f in ctx.policy.fields):
            values[name] = value
    examples = [
        {"when": e.when, "calling": e.calling, "called": e.called}
        for e in ctx.extraction.call_examples
    ]
    if examples:
        values["call_examples"] = examples
    return values


def _charges(findings: tuple[Finding, ...], policy: Policy) -> tuple[PlannedCharge, ...]:
    charge = policy.missing_information_charge
    if charge is None or not any(f.code == "missing_field" for f in findings):
        return ()
    # "per occurrence": one charge per initial contact, however many items are missing.
    return (PlannedCharge(charge.kind, charge.amount, charge.currency, charge.reason),)


def _reply_address(message: ParsedMessage) -> str | None:
    # A helpdesk answers where the customer asked answers to go (RFC 5322 §3.6.2).
    if message.reply_to:
        return message.reply_to[0]
    return message.from_address
