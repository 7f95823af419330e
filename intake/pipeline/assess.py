"""The pure middle of the pipeline: parsed message + policy → one Assessment.

The checks (``intake.pipeline.checks``) all run and their findings, hits and misses are
recorded here; ``intake.pipeline.decide`` then picks the route. Nothing here reads the
clock, the database or the network: ``intake check`` calls it as a dry run and the
daemon calls it inside COMMIT 2, so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from intake.pipeline.checks import (
    CheckContext,
    Finding,
    reply_address,
    run_checks,
    subject_priority,
)
from intake.pipeline.customers import CustomerMatch, CustomerRecord, match_customer
from intake.pipeline.identity import Identity
from intake.policy.findings import FindingCode
from intake.policy.policy import Policy, PolicyBook, ReportField
from intake.policy.sla import Deadlines, compute_deadlines
from parsing import (
    FieldExtraction,
    ParsedMessage,
    SenderTrust,
    SubjectParse,
    TicketTag,
    Verdict,
    classify,
    extract_fields,
    parse_message,
    parse_subject,
    report_text,
    sender_trust,
)
from parsing.phones import contact_phone
from parsing.tables import forwarded_html


class Disposition(StrEnum):
    """What the message is, before any thread is known (``intake check`` "decision")."""

    NEW_TICKET = "new_ticket"
    IGNORE = "ignore"  # machine mail: recorded, never answered


@dataclass(frozen=True, slots=True)
class PlannedCharge:
    kind: str
    amount: Decimal
    currency: str
    reason: str
    status: str = "applied"  # applied | pending


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything the checks and the policy say about one message, before any thread."""

    message: ParsedMessage
    verdict: Verdict
    subject: SubjectParse
    priority: int
    fields: Mapping[str, Any]
    findings: tuple[Finding, ...]
    charges: tuple[PlannedCharge, ...]
    disposition: Disposition
    reply_address: str | None
    policy: Policy
    deadlines: Deadlines
    customer: CustomerMatch | None = None
    # From: is one of our staff *and authenticated* (decide: staff reply on a thread).
    from_staff: bool = False
    # From: names our staff but the sender is not authenticated (issue 13): recorded on
    # the thread as a claim, never a response.
    staff_claim: bool = False
    trust: SenderTrust = SenderTrust.NONE  # parsing.auth, stored on the inbound row
    checks_hit: tuple[str, ...] = ()  # names of the checks that found something
    checks_missed: tuple[str, ...] = ()
    # What the body said, with provenance (``intake check --explain``, the confirmation).
    extraction: FieldExtraction = field(default_factory=FieldExtraction)

    @property
    def read_details(self) -> tuple[tuple[str, str], ...]:
        """(label, value) for each detail read, in the contract's order (the confirmation).

        A multi-part field shows each part read, so a customer sees "Board serial
        number: SN-1" was understood even while the appliance serial is still needed.
        """
        items: list[tuple[str, str]] = []
        for spec in self.policy.fields:
            value = self.fields.get(spec.name)
            short = short_label(spec.label)
            if isinstance(value, list):
                complete = sum(
                    1 for e in value if all(e.get(k) for k in ("when", "calling", "called"))
                )
                items.append((short, f"{len(value)} given, {complete} complete"))
            elif spec.parts and (value or spec.name in self.extraction.parts):
                given = self.extraction.parts.get(spec.name, {})
                items += [
                    (p.label.capitalize(), given[p.name]) for p in spec.parts if p.name in given
                ]
            elif value:
                items.append((short, str(value)))
        return tuple(items)

    @property
    def missing_details(self) -> tuple[str, ...]:
        """Each missing detail's contract label, with what is still needed of a partial one."""
        missing = FindingCode.MISSING_FIELD
        return tuple(
            f"{self.policy.field_label(f.field)}: {f.detail}"
            if f.detail
            else self.policy.field_label(f.field)
            for f in self.findings
            if f.code is missing and f.field
        )

    @property
    def missing_fields(self) -> tuple[str, ...]:
        missing = FindingCode.MISSING_FIELD
        return tuple(f.field for f in self.findings if f.code is missing and f.field)

    @property
    def response_due(self) -> datetime | None:
        return self.deadlines.response_due

    @property
    def billable_hourly(self) -> bool:
        return any(f.code in self.policy.billable_findings for f in self.findings)

    @property
    def notices(self) -> tuple[str, ...]:
        notices = self.policy.notice_findings
        return tuple(f.message for f in self.findings if f.code in notices)


def assess_bytes(
    raw: bytes,
    envelope_sender: str | None,
    policies: PolicyBook,
    identity: Identity,
    received_at: datetime,
    directory: Sequence[CustomerRecord] = (),
    dkim_verified: Sequence[str] = (),
) -> Assessment:
    """``dkim_verified``: signing domains whose DKIM signatures the caller verified."""
    message = parse_message(raw)
    return assess(
        message,
        envelope_sender,
        policies,
        identity,
        received_at,
        directory,
        dkim_verified=dkim_verified,
    )


def assess(
    message: ParsedMessage,
    envelope_sender: str | None,
    policies: PolicyBook,
    identity: Identity,
    received_at: datetime,
    directory: Sequence[CustomerRecord] = (),
    *,
    under: Policy | None = None,
    dkim_verified: Sequence[str] = (),
) -> Assessment:
    """Everything the daemon decides about one message, given when we received it.

    ``under``: read the message under this policy rather than the customer's current
    one (a follow-up is read under the policy its ticket was opened under).
    """
    verdict = classify(message, envelope_sender, identity.addresses, identity.loop_marker)
    customer, policy, subject, extraction = _read_for_customer(
        message, policies, directory, identity.ticket_tag, under
    )
    priority = _effective_priority(subject, policy)
    timezone = customer.customer.timezone if customer else None
    deadlines = compute_deadlines(policy, priority, received_at, timezone)
    trust = sender_trust(message, identity.trusted_authserv_ids, dkim_verified)
    ctx = CheckContext(
        message, subject, extraction, policy, identity, customer, deadlines, priority, trust
    )
    checks = run_checks(ctx)
    staff = identity.is_staff(message.from_address or "")
    return Assessment(
        message=message,
        verdict=verdict,
        subject=subject,
        priority=priority,
        fields=_field_values(ctx),
        findings=checks.findings,
        # The dry run and the daemon read this same value: what check lists is what is charged.
        charges=_charges(checks.findings, ctx) if _chargeable(message, verdict) else (),
        disposition=Disposition.IGNORE if verdict.is_machine else Disposition.NEW_TICKET,
        reply_address=None if _unanswered(verdict, trust, policy) else reply_address(message),
        policy=policy,
        deadlines=deadlines,
        customer=customer,
        from_staff=staff and ctx.authenticated,
        staff_claim=staff and not ctx.authenticated,
        trust=trust,
        checks_hit=checks.hits,
        checks_missed=checks.misses,
        extraction=extraction,
    )


def _unanswered(verdict: Verdict, trust: SenderTrust, policy: Policy) -> bool:
    """Machine mail is never answered (RFC 3834 §2), nor a DMARC fail: its From is forged,
    and a confirmation would go to whoever it names (backscatter)."""
    dmarc_fail = trust is SenderTrust.FAIL and not policy.confirm_dmarc_fail
    return verdict.is_machine or dmarc_fail


def _chargeable(message: ParsedMessage, verdict: Verdict) -> bool:
    """Only a person's report is charged: never machine mail, never bytes that are no mail.

    Empty input and bytes without a header section (RFC 5322 §2.1: a message is header
    fields, then optionally a body) name nobody who could have given the details; the
    ticket still records them (``not_a_mail`` finding), but nobody is charged.
    """
    return not verdict.is_machine and bool(message.headers)


def short_label(label: str) -> str:
    """A contract label without its parenthesis or "with ..." tail, for lists."""
    return label.split(" (", maxsplit=1)[0].split(" with ", maxsplit=1)[0].strip()


def _read_for_customer(
    message: ParsedMessage,
    policies: PolicyBook,
    directory: Sequence[CustomerRecord],
    tag: TicketTag,
    under: Policy | None,
) -> tuple[CustomerMatch | None, Policy, SubjectParse, FieldExtraction]:
    """Read subject and fields, find the customer, and re-read under their own policy."""
    policy = policies.default
    subject, extraction = _read(message, policy, tag)
    support_id = extraction.values.get("support_id")
    customer = match_customer(directory, subject.customer, message.from_address, support_id)
    chosen = under or policies.by_name(customer.customer.policy if customer else None)
    if chosen is not policy:
        subject, extraction = _read(message, chosen, tag)
    return customer, chosen, subject, extraction


def _read(
    message: ParsedMessage, policy: Policy, tag: TicketTag
) -> tuple[SubjectParse, FieldExtraction]:
    subject = parse_subject(message.subject, policy.priority_aliases(), tag)
    forwarded = message.forwarded
    if forwarded and not subject.follows_grammar:
        # A forward's own subject is often just "FW: the phones": the report's may follow.
        inner = parse_subject(forwarded.subject, policy.priority_aliases(), tag)
        subject = inner if inner.follows_grammar else subject
    html = message.body_html or (forwarded.html if forwarded else None)
    if forwarded and message.body_html and not forwarded.html:
        html = forwarded_html(message.body_html)  # an inline forward: the part after its marker
    extraction = extract_fields(
        report_text(message), html, policy.field_specs(), policy.placeholders
    )
    if any(f.name not in extraction.values for f in _phone_fields(policy)):
        phone = contact_phone(message, extraction.free_text, policy.phone_region)
        extraction = replace(extraction, phone=phone)
    return subject, extraction


def _phone_fields(policy: Policy) -> tuple[ReportField, ...]:
    """The fields a number written without a label may give (``phone_in_text``)."""
    return tuple(f for f in policy.fields if "phone_in_text" in f.satisfied_by)


def _effective_priority(subject: SubjectParse, policy: Policy) -> int:
    """The subject's priority, lifted to the policy's outage priority for a total outage."""
    level = subject_priority(subject, policy)
    top = policy.outage_priority
    text = f"{subject.issue or ''} {subject.cleaned}".casefold()
    if top is not None and any(k.casefold() in text for k in policy.outage_keywords):
        return top
    return level


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
    phone = ctx.extraction.phone
    for spec in _phone_fields(ctx.policy) if phone else ():
        if phone and spec.name not in values:
            values[spec.name] = phone.number
            values[f"{spec.name}_found_in"] = phone.found_in  # "sentence" | "signature"
    for name, given in ctx.extraction.parts.items():
        # A multi-part field given in part: the parts read so far (still missing), so a
        # follow-up that brings the rest completes it (``followup.merge_parts``).
        values.setdefault(name, dict(given))
    examples = [
        {"when": e.when, "calling": e.calling, "called": e.called}
        for e in ctx.extraction.call_examples
    ]
    if examples:
        values["call_examples"] = examples
    return values


def _charges(findings: tuple[Finding, ...], ctx: CheckContext) -> tuple[PlannedCharge, ...]:
    charges = []
    missing = ctx.policy.missing_information_charge
    if missing is not None and any(f.code is FindingCode.MISSING_FIELD for f in findings):
        # "per occurrence": one charge per initial contact, however many items are missing.
        charges.append(
            PlannedCharge(missing.kind, missing.amount, missing.currency, missing.reason)
        )
    if not ctx.deadlines.in_business_hours:
        for rule in ctx.policy.after_hours_charges:
            if ctx.priority in rule.priorities:
                charges.append(
                    PlannedCharge(rule.kind, rule.amount, rule.currency, rule.reason, rule.status)
                )
    return tuple(charges)
