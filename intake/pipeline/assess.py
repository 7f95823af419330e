"""The pure middle of the pipeline: parsed message + policy → one Assessment.

Checks are an explicit ordered tuple of small named objects; all of them run, each
returns findings, and one decision follows (Mailman's rules and chains, typed). Nothing
here reads the clock, the database or the network: ``intake check`` calls it as a dry
run and the daemon calls it inside COMMIT 2, so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from intake.pipeline.customers import (
    CustomerMatch,
    CustomerRecord,
    is_authorized,
    match_customer,
    subscription_active,
)
from intake.policy.policy import Policy, PolicyBook, ReportField
from intake.policy.sla import Deadlines, compute_deadlines
from parsing import (
    DEFAULT_TICKET_TAG,
    FieldExtraction,
    ParsedMessage,
    SubjectParse,
    TicketTag,
    Verdict,
    address_domain,
    canonical_address,
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
    """Who we are (loops, RFC 3834 §2, X-Loop), who our staff are (CC reminders), and the
    tag our ticket numbers carry in subjects (``intake.ticket_number_format``)."""

    addresses: tuple[str, ...]
    loop_marker: str
    staff_addresses: tuple[str, ...] = ()
    staff_domains: tuple[str, ...] = ()
    ticket_tag: TicketTag = DEFAULT_TICKET_TAG

    def is_staff(self, address: str) -> bool:
        """``addresses`` and ``staff_*`` hold canonical spellings (``make_identity``)."""
        canonical = canonical_address(address)
        if canonical is None or canonical in self.addresses:
            return False  # the support address itself is where customers should write
        return canonical in self.staff_addresses or address_domain(canonical) in self.staff_domains


@dataclass(frozen=True, slots=True)
class CheckContext:
    message: ParsedMessage
    subject: SubjectParse
    extraction: FieldExtraction
    policy: Policy
    identity: Identity
    customer: CustomerMatch | None
    deadlines: Deadlines
    priority: int


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
    policy: Policy
    deadlines: Deadlines
    customer: CustomerMatch | None = None

    @property
    def missing_fields(self) -> tuple[str, ...]:
        return tuple(f.field for f in self.findings if f.code == "missing_field" and f.field)

    @property
    def response_due(self) -> datetime | None:
        return self.deadlines.response_due

    @property
    def billable_hourly(self) -> bool:
        return any(f.code in BILLABLE_FINDINGS for f in self.findings)

    @property
    def notices(self) -> tuple[str, ...]:
        return tuple(f.message for f in self.findings if f.code in NOTICE_FINDINGS)


BILLABLE_FINDINGS = frozenset({"unauthorized_contact", "subscription_lapsed"})
NOTICE_FINDINGS = frozenset(
    {"unauthorized_contact", "subscription_lapsed", "staff_cc", "after_hours", "outage_escalated"}
)


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
        if ctx.priority != _subject_priority(ctx.subject, ctx.policy):
            return ()  # escalated: OutageEscalation says why
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


@dataclass(frozen=True)
class KnownCustomer:
    name: str = "known_customer"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.customer is not None:
            return ()
        who = ctx.subject.customer or ctx.message.from_address or "the sender"
        return (Finding("unknown_customer", f"{who} is not in the customer directory."),)


@dataclass(frozen=True)
class AuthorizedContact:
    name: str = "authorized_contact"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if not ctx.policy.authorized_contacts_only or ctx.customer is None:
            return ()
        if is_authorized(ctx.customer.customer, ctx.message.from_address):
            return ()
        text = ctx.policy.unauthorized_notice or "The sender is not an authorized contact."
        return (Finding("unauthorized_contact", text),)


@dataclass(frozen=True)
class ActiveSubscription:
    name: str = "active_subscription"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if not ctx.policy.subscription_required or ctx.customer is None:
            return ()
        local_day = ctx.deadlines.received_at.astimezone(ZoneInfo(ctx.policy.timezone)).date()
        if subscription_active(ctx.customer.customer, local_day):
            return ()
        text = ctx.policy.lapsed_subscription_notice or "The support subscription has lapsed."
        return (Finding("subscription_lapsed", text),)


@dataclass(frozen=True)
class StaffCopied:
    name: str = "staff_copied"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        reminder = ctx.policy.staff_cc_reminder
        copied = [a for a in (*ctx.message.to, *ctx.message.cc) if ctx.identity.is_staff(a)]
        if not reminder or not copied:
            return ()
        return (Finding("staff_cc", reminder),)


@dataclass(frozen=True)
class AfterHours:
    name: str = "after_hours"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.deadlines.in_business_hours or not ctx.policy.after_hours_notice:
            return ()
        target = ctx.deadlines.response_target
        if target is not None and target.clock == "wall":
            return ()  # this priority is worked around the clock: nothing to warn about
        return (Finding("after_hours", ctx.policy.after_hours_notice),)


@dataclass(frozen=True)
class OutageEscalation:
    name: str = "outage_escalation"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.priority == _subject_priority(ctx.subject, ctx.policy):
            return ()
        level = ctx.policy.priority(ctx.priority)
        label = level.name if level else f"priority {ctx.priority}"
        return (Finding("outage_escalated", f"Reported as a total outage: handled as {label}."),)


CHECKS: tuple[Check, ...] = (
    SubjectGrammar(),
    SubjectPriority(),
    OutageEscalation(),
    RequiredFields(),
    ReplyAddress(),
    MimeDefects(),
    KnownCustomer(),
    AuthorizedContact(),
    ActiveSubscription(),
    StaffCopied(),
    AfterHours(),
)


def assess_bytes(
    raw: bytes,
    envelope_sender: str | None,
    policies: PolicyBook,
    identity: Identity,
    received_at: datetime,
    directory: Sequence[CustomerRecord] = (),
) -> Assessment:
    message = parse_message(raw)
    return assess(message, envelope_sender, policies, identity, received_at, directory)


def assess(
    message: ParsedMessage,
    envelope_sender: str | None,
    policies: PolicyBook,
    identity: Identity,
    received_at: datetime,
    directory: Sequence[CustomerRecord] = (),
) -> Assessment:
    """Everything the daemon decides about one message, given when we received it."""
    verdict = classify(message, envelope_sender, identity.addresses, identity.loop_marker)
    customer, policy, subject, extraction = _read_for_customer(
        message, policies, directory, identity.ticket_tag
    )
    priority = _effective_priority(subject, policy)
    timezone = customer.customer.timezone if customer else None
    deadlines = compute_deadlines(policy, priority, received_at, timezone)
    ctx = CheckContext(
        message, subject, extraction, policy, identity, customer, deadlines, priority
    )
    findings = tuple(finding for check in CHECKS for finding in check.run(ctx))
    return Assessment(
        message=message,
        verdict=verdict,
        subject=subject,
        priority=priority,
        fields=_field_values(ctx),
        findings=findings,
        charges=_charges(findings, ctx),
        decision=Decision.IGNORE if verdict.is_machine else Decision.NEW_TICKET,
        reply_address=None if verdict.is_machine else _reply_address(message),
        policy=policy,
        deadlines=deadlines,
        customer=customer,
    )


def _read_for_customer(
    message: ParsedMessage,
    policies: PolicyBook,
    directory: Sequence[CustomerRecord],
    tag: TicketTag,
) -> tuple[CustomerMatch | None, Policy, SubjectParse, FieldExtraction]:
    """Read subject and fields, find the customer, and re-read under their own policy."""
    policy = policies.default
    subject, extraction = _read(message, policy, tag)
    support_id = extraction.values.get("support_id")
    customer = match_customer(directory, subject.customer, message.from_address, support_id)
    chosen = policies.by_name(customer.customer.policy if customer else None)
    if chosen is not policy:
        subject, extraction = _read(message, chosen, tag)
    return customer, chosen, subject, extraction


def _read(
    message: ParsedMessage, policy: Policy, tag: TicketTag
) -> tuple[SubjectParse, FieldExtraction]:
    subject = parse_subject(message.subject, policy.priority_aliases(), tag)
    extraction = extract_fields(
        message.new_text, message.body_html, policy.field_specs(), policy.placeholders
    )
    return subject, extraction


def _subject_priority(subject: SubjectParse, policy: Policy) -> int:
    if subject.priority is not None and policy.priority(subject.priority) is not None:
        return subject.priority
    return policy.default_priority


def _effective_priority(subject: SubjectParse, policy: Policy) -> int:
    """The subject's priority, lifted to the policy's outage priority for a total outage."""
    level = _subject_priority(subject, policy)
    top = policy.outage_priority
    text = f"{subject.issue or ''} {subject.cleaned}".casefold()
    if top is not None and any(k.casefold() in text for k in policy.outage_keywords):
        return top
    return level


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


def _charges(findings: tuple[Finding, ...], ctx: CheckContext) -> tuple[PlannedCharge, ...]:
    charges = []
    missing = ctx.policy.missing_information_charge
    if missing is not None and any(f.code == "missing_field" for f in findings):
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


def _reply_address(message: ParsedMessage) -> str | None:
    # A helpdesk answers where the customer asked answers to go (RFC 5322 §3.6.2).
    if message.reply_to:
        return message.reply_to[0]
    return message.from_address
