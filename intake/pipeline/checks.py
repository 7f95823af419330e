"""The checks: small named objects, run in an explicit order, each returning findings.

Every check runs on every message and none of them decides anything: the assessment
records which checks hit and which missed (Mailman's ``rule_hits``/``rule_misses``) and
the decision follows from the findings together. Pure: no clock, store or network.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from intake.pipeline.customers import CustomerMatch, is_authorized, subscription_active
from intake.pipeline.identity import Identity
from intake.policy.findings import FindingCode
from intake.policy.policy import Policy, ReportField
from intake.policy.sla import Deadlines
from parsing import FieldExtraction, ParsedMessage, SenderTrust, SubjectParse


@dataclass(frozen=True, slots=True)
class Finding:
    """An expected problem with a message (data, not an exception; invariant 5)."""

    code: FindingCode
    message: str
    field: str | None = None
    # For a field given in part: what is still needed ("the appliance serial number").
    detail: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """The stored and printed shape (ticket findings, ``intake check --json``)."""
        return {"code": self.code.value, "message": self.message, "field": self.field}


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
    trust: SenderTrust = SenderTrust.NONE  # parsing.auth: what the MTA in front verified

    @property
    def authenticated(self) -> bool:
        """The From address is its owner's, as far as the policy asks (issue 13)."""
        return self.policy.authenticated(self.trust)


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
        return (Finding(FindingCode.SUBJECT_UNREADABLE, ctx.subject.problem),)


@dataclass(frozen=True)
class SubjectPriority:
    name: str = "subject_priority"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.priority != subject_priority(ctx.subject, ctx.policy):
            return ()  # escalated: OutageEscalation says why
        level, default = ctx.subject.priority, ctx.policy.default_priority
        if level is None:
            text = f"The subject gives no priority; the default priority {default} applies."
            return (Finding(FindingCode.PRIORITY_MISSING, text),)
        if ctx.policy.priority(level) is None:
            known = ", ".join(str(p.level) for p in ctx.policy.priorities)
            text = (
                f"Priority {level} is not in this contract (known: {known}); "
                f"the default priority {default} applies."
            )
            return (Finding(FindingCode.PRIORITY_UNKNOWN, text),)
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
        if reply_address(ctx.message):
            return ()
        text = "The message has no usable From or Reply-To."
        return (Finding(FindingCode.NO_REPLY_ADDRESS, text),)


@dataclass(frozen=True)
class HeaderSection:
    name: str = "header_section"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.message.headers:
            return ()
        text = "The input has no header section, so it is no mail: recorded, never charged."
        return (Finding(FindingCode.NOT_A_MAIL, text),)


@dataclass(frozen=True)
class MimeDefects:
    name: str = "mime_defects"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if not ctx.message.defects:
            return ()
        names = ", ".join(ctx.message.defects)
        return (Finding(FindingCode.MIME_DEFECTS, f"The message is malformed MIME ({names})."),)


@dataclass(frozen=True)
class KnownCustomer:
    name: str = "known_customer"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.customer is not None:
            return ()
        who = ctx.subject.customer or ctx.message.from_address or "the sender"
        text = f"{who} is not in the customer directory."
        return (Finding(FindingCode.UNKNOWN_CUSTOMER, text),)


@dataclass(frozen=True)
class AuthorizedContact:
    name: str = "authorized_contact"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if not ctx.policy.authorized_contacts_only or ctx.customer is None:
            return ()
        # A contact counts only when authenticated: From alone is anyone's to write.
        if ctx.authenticated and is_authorized(ctx.customer.customer, ctx.message.from_address):
            return ()
        text = ctx.policy.unauthorized_notice or "The sender is not an authorized contact."
        return (Finding(FindingCode.UNAUTHORIZED_CONTACT, text),)


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
        return (Finding(FindingCode.SUBSCRIPTION_LAPSED, text),)


@dataclass(frozen=True)
class StaffCopied:
    name: str = "staff_copied"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        reminder = ctx.policy.staff_cc_reminder
        copied = [a for a in (*ctx.message.to, *ctx.message.cc) if ctx.identity.is_staff(a)]
        if not reminder or not copied:
            return ()
        return (Finding(FindingCode.STAFF_CC, reminder),)


@dataclass(frozen=True)
class StaffAuthentication:
    name: str = "staff_authentication"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.authenticated or not ctx.identity.is_staff(ctx.message.from_address or ""):
            return ()
        text = (
            f"The From address claims to be staff, but the sender is not authenticated "
            f"(sender trust: {ctx.trust.value}): never counted as a staff response."
        )
        return (Finding(FindingCode.UNAUTHENTICATED_STAFF, text),)


@dataclass(frozen=True)
class DmarcFail:
    name: str = "dmarc_fail"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.trust is not SenderTrust.FAIL:
            return ()
        text = "The sender's domain failed DMARC: the From address is forged, so no reply."
        if ctx.policy.confirm_dmarc_fail:
            text = "The sender's domain failed DMARC."
        return (Finding(FindingCode.DMARC_FAIL, text),)


@dataclass(frozen=True)
class AfterHours:
    name: str = "after_hours"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.deadlines.in_business_hours or not ctx.policy.after_hours_notice:
            return ()
        target = ctx.deadlines.response_target
        if target is not None and target.clock == "wall":
            return ()  # this priority is worked around the clock: nothing to warn about
        return (Finding(FindingCode.AFTER_HOURS, ctx.policy.after_hours_notice),)


@dataclass(frozen=True)
class OutageEscalation:
    name: str = "outage_escalation"

    def run(self, ctx: CheckContext) -> tuple[Finding, ...]:
        if ctx.priority == subject_priority(ctx.subject, ctx.policy):
            return ()
        level = ctx.policy.priority(ctx.priority)
        label = level.name if level else f"priority {ctx.priority}"
        text = f"Reported as a total outage: handled as {label}."
        return (Finding(FindingCode.OUTAGE_ESCALATED, text),)


CHECKS: tuple[Check, ...] = (
    SubjectGrammar(),
    SubjectPriority(),
    OutageEscalation(),
    RequiredFields(),
    ReplyAddress(),
    HeaderSection(),
    MimeDefects(),
    KnownCustomer(),
    AuthorizedContact(),
    ActiveSubscription(),
    StaffCopied(),
    StaffAuthentication(),
    DmarcFail(),
    AfterHours(),
)


@dataclass(frozen=True, slots=True)
class CheckRun:
    """Every finding in check order, and which checks hit (found something) or missed."""

    findings: tuple[Finding, ...]
    hits: tuple[str, ...]
    misses: tuple[str, ...]


def run_checks(ctx: CheckContext, checks: tuple[Check, ...] = CHECKS) -> CheckRun:
    """Run every check (none short-circuits the others) and record hits and misses."""
    results = [(check.name, check.run(ctx)) for check in checks]
    return CheckRun(
        findings=tuple(finding for _, found in results for finding in found),
        hits=tuple(name for name, found in results if found),
        misses=tuple(name for name, found in results if not found),
    )


def subject_priority(subject: SubjectParse, policy: Policy) -> int:
    """The subject's priority when the contract knows it, else the default."""
    if subject.priority is not None and policy.priority(subject.priority) is not None:
        return subject.priority
    return policy.default_priority


def reply_address(message: ParsedMessage) -> str | None:
    """Where an answer goes: Reply-To, else From (RFC 5322 §3.6.2), when it is an addr-spec.

    Only a syntactically valid addr-spec (RFC 5321 §4.1.2, checked by email-validator,
    no DNS) is written to: a broken header yields fragments such as
    ``=?utf-8?q?A_victim@evil.example?=`` that would make us mail a bystander.
    """
    candidates = (*message.reply_to[:1], message.from_address)
    return next((a for a in candidates if a and is_mailbox(a)), None)


@functools.lru_cache(maxsize=4096)
def is_mailbox(address: str) -> bool:
    """Whether ``address`` is an addr-spec we may write to; remembered, since a message's
    reading asks twice and customers write again (~90 µs a check, issue 11)."""
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return False
    return True


def _satisfied(spec: ReportField, ctx: CheckContext) -> bool:
    if spec.name in ctx.extraction.values:
        return True
    return any(_satisfied_by(how, spec, ctx) for how in spec.satisfied_by)


def _satisfied_by(how: str, spec: ReportField, ctx: CheckContext) -> bool:
    message, extraction = ctx.message, ctx.extraction
    if how == "free_text":
        return len(extraction.free_text.split()) >= spec.min_words
    if how == "call_examples":
        return any(example.complete for example in extraction.call_examples)
    present = {
        "subject_customer": ctx.subject.customer,
        "from_address": message.from_address,
        "from_name": (message.from_name or "").strip(),
        "phone_in_text": extraction.phone,  # parsing.phones: a sentence or the signature
    }
    return bool(present.get(how))


def _missing(spec: ReportField, extraction: FieldExtraction) -> Finding:
    given = extraction.parts.get(spec.name, {})
    if spec.parts and given:
        needed = " and the ".join(
            spec.part_label(p.name) for p in spec.parts if p.name not in given
        )
        read = " and the ".join(spec.part_label(p.name) for p in spec.parts if p.name in given)
        detail = f"still needed: the {needed} (the {read} was read)"
        return Finding(FindingCode.MISSING_FIELD, f"{spec.label}: {detail}.", spec.name, detail)
    if spec.parts and spec.name in extraction.unassigned:
        every = " and the ".join(spec.part_label(p.name) for p in spec.parts)
        detail = f"one value was read without saying which it is; the {every} are both needed"
        return Finding(FindingCode.MISSING_FIELD, f"{spec.label}: {detail}.", spec.name, detail)
    if spec.name in extraction.blank:
        text = f"{spec.label} was left blank or given as a placeholder."
    else:
        text = f"{spec.label} is missing."
    return Finding(FindingCode.MISSING_FIELD, text, field=spec.name)
