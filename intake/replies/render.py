"""Rendering our replies: the threaded confirmation as a complete RFC 5322 message.

User text (subject parts, names, field values) only ever enters as template *data*:
templates come from our package, never from a message (invariant 8), HTML output is
autoescaped, and every header value is stripped of control characters before
``intake.replies.wire`` folds and encodes it (RFC 5322 §2.2 forbids bare CR/LF in a
header body).
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.headerregistry import Address
from email.utils import format_datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2

from intake.policy.policy import Policy
from intake.policy.sla import Deadlines
from intake.replies.wire import Body, Header, alternative_body, alternative_message, whole_message
from parsing import ParsedMessage, SubjectParse, address_domain, strip_reply_prefixes

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_MAX_ECHO = 80  # characters of a customer's value we echo in a reply
# What of the subject we echo: folding a 1 MB subject took the email package ~24 s, and
# a reply is no channel for an attacker's text (issue 13).
MAX_ECHOED_SUBJECT = 200
# A literal "=?" in decoded text makes the SMTP policy's folder re-read an encoded word,
# and one carrying invalid UTF-8 raised UnicodeEncodeError (RFC 2047 §5: such text is no
# encoded word). A word joiner keeps the text as it reads and no longer parses as one.
_LITERAL_ENCODED_WORD = "=?"
_WORD_JOINED = "=\u2060?"
EXAMPLE_SUBJECT = "Acme Corp – 123 Main St, Denver CO – No dial tone on all lines – P1"


class Coded(Protocol):
    """A finding, as far as a reply reads it."""

    @property
    def code(self) -> str: ...


class ChargeLine(Protocol):
    """A planned charge, as far as a reply reads it."""

    @property
    def amount(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def status(self) -> str: ...


class Assessed(Protocol):
    """Exactly what rendering reads of an assessment (read-only, so frozen values fit).

    The pipeline's ``Assessment`` satisfies it structurally; mypy checks that where the
    pipeline renders, so replies never import the pipeline (it sits above us).
    """

    @property
    def message(self) -> ParsedMessage: ...
    @property
    def reply_address(self) -> str | None: ...
    @property
    def subject(self) -> SubjectParse: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def priority(self) -> int: ...
    @property
    def deadlines(self) -> Deadlines: ...
    @property
    def findings(self) -> Sequence[Coded]: ...
    @property
    def charges(self) -> Sequence[ChargeLine]: ...
    @property
    def missing_fields(self) -> tuple[str, ...]: ...
    @property
    def response_due(self) -> datetime | None: ...
    @property
    def billable_hourly(self) -> bool: ...
    @property
    def notices(self) -> tuple[str, ...]: ...
    @property
    def read_details(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def missing_details(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Sender:
    """Our side of the conversation, from settings."""

    address: str
    name: str
    noc_cc: tuple[str, ...]
    loop_marker: str

    @property
    def domain(self) -> str:
        return address_domain(self.address) or ""


@dataclass(frozen=True, slots=True)
class RenderedReply:
    message_id: str  # without angle brackets
    recipients: tuple[str, ...]
    raw: bytes


def make_template_environment(directory: Path | None = None) -> jinja2.Environment:
    root = directory or Path(str(resources.files("intake.templates")))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        # HTML templates (*.html.j2) escape every value; text templates stay plain.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # The templates ship with the package and change only with a restart: no stat of
        # every template file on every render (issue 11).
        auto_reload=False,
    )


@lru_cache(maxsize=8)
def shared_environment(directory: Path) -> jinja2.Environment:
    """One environment per template directory and process (a reading worker's drafts)."""
    return make_template_environment(directory)


def template_directory(env: jinja2.Environment) -> Path:
    """The directory ``make_template_environment`` loads ``env``'s templates from."""
    loader = env.loader
    assert isinstance(loader, jinja2.FileSystemLoader), "our environments load files"
    return Path(loader.searchpath[0])


def header_safe(value: str) -> str:
    """One line of text fit for a header: control characters become single spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())


def echo_value(value: str, limit: int = _MAX_ECHO) -> str:
    """A value the customer wrote, fit to echo back: one line, control characters gone,
    at most ``limit`` characters (the HTML template escapes it on top)."""
    line = header_safe(value)
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def reply_subject(original: str, number: str) -> str:
    """``Re: <subject> [number]``: one ``Re:`` (RFC 5322 §3.6.5) and our tag once, at the end."""
    # The tag goes first: "RE: [TKT-000001] Re: x" must lose both prefixes.
    base = strip_reply_prefixes(header_safe(original).replace(f"[{number}]", ""))
    base = echo_value(base, MAX_ECHOED_SUBJECT).replace(_LITERAL_ENCODED_WORD, _WORD_JOINED)
    return f"Re: {base} [{number}]" if base else f"Your support request [{number}]"


def _echoed(text: str | None) -> str | None:
    """``echo_value`` for the values that may be absent (name, subject parts)."""
    return echo_value(text) if text else text


# What a ticket number may hold for a draft to be numbered by a byte swap: characters
# that HTML leaves unescaped and quoted-printable writes as themselves (RFC 2045 §6.7 (2)).
_SWAPPABLE = re.compile(r"[A-Za-z0-9-]+")
_PLACEHOLDER_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Drafting:
    """What drafting a confirmation needs, picklable for a reading worker (issue 11)."""

    sender: Sender
    templates: Path
    number_length: int  # the length the ticket's number will likely have

    def placeholder(self) -> str:
        """Random letters and digits in the number's place, drawn once per process and
        length: no customer's text can hold it (it never leaves the process), and the
        numbering's pattern for it is compiled once (``_soft_broken``)."""
        return _placeholder(self.number_length)


@lru_cache(maxsize=4)
def _placeholder(length: int) -> str:
    return "".join(secrets.choice(_PLACEHOLDER_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class Draft:
    """A confirmation's body rendered before its ticket has a number (issue 11).

    The templates and the body's transfer encoding, most of a confirmation's cost, run in a
    reading worker, outside COMMIT 2's write lock, with ``placeholder`` where the number
    goes. Under the lock ``numbered`` swaps the number in; the headers are written there.
    """

    placeholder: str
    body: Body
    occurrences: int  # how often the rendered texts hold the placeholder

    def numbered(self, number: str) -> Body | None:
        """The body with ``number`` in it, byte for byte what rendering with ``number``
        makes; None when a swap cannot promise that (the caller renders afresh)."""
        # Same length and characters every encoding writes as themselves: each line, the
        # 7bit/quoted-printable/base64 choice and each soft line break stay where they are,
        # so a quoted-printable soft break inside the placeholder (RFC 2045 §6.7 (5)) stays
        # inside the number at the same place. The count proves no encoding hid an
        # occurrence (base64 hides them all).
        if len(number) != len(self.placeholder) or not _SWAPPABLE.fullmatch(number):
            return None
        digits = number.encode("ascii")

        def numbered(match: re.Match[bytes]) -> bytes:
            """The number's characters in the placeholder's places, soft breaks kept."""
            text, out, at = match[0], bytearray(), 0
            while text:
                if text.startswith(_SOFT_BREAK):
                    out += _SOFT_BREAK
                    text = text[len(_SOFT_BREAK) :]
                else:
                    out.append(digits[at])
                    at, text = at + 1, text[1:]
            return bytes(out)

        data, found = _soft_broken(self.placeholder).subn(numbered, self.body.data)
        return Body(self.body.boundary, data) if found == self.occurrences else None


_SOFT_BREAK = b"=\r\n"  # RFC 2045 §6.7 (5): quoted-printable's soft line break


@lru_cache(maxsize=16)  # a placeholder per reading worker and number length
def _soft_broken(placeholder: str) -> re.Pattern[bytes]:
    """``placeholder`` as it may stand in a quoted-printable part: a soft line break
    between any two of its characters."""
    between = b"(?:" + re.escape(_SOFT_BREAK) + b")?"
    return re.compile(between.join(re.escape(c.encode("ascii")) for c in placeholder))


def draft_confirmation(assessment: Assessed, drafting: Drafting) -> Draft:
    """The confirmation's body with a placeholder number (a reading worker's share)."""
    placeholder = drafting.placeholder()
    env = shared_environment(drafting.templates)
    plain, html = _texts(
        env, "confirmation", _confirmation_context(assessment, placeholder, drafting.sender)
    )
    occurrences = plain.count(placeholder) + html.count(placeholder)
    return Draft(placeholder, alternative_body(plain, html), occurrences)


def render_confirmation(
    env: jinja2.Environment,
    assessment: Assessed,
    *,
    number: str,
    message_id: str,
    sender: Sender,
    now: datetime,
    draft: Draft | None = None,
) -> RenderedReply:
    """The first answer on a new ticket: number, deadlines, what is missing and costs.

    With ``draft`` (``draft_confirmation`` of this assessment) its body is used when it
    can be numbered; the templates run here otherwise."""
    body = draft.numbered(number) if draft else None
    if body is not None:
        return _reply(assessment, number, message_id, sender, now, body, cc=sender.noc_cc)
    context = _confirmation_context(assessment, number, sender)
    return _render_reply(
        env, "confirmation", assessment, number, message_id, sender, now, context, cc=sender.noc_cc
    )


def render_acknowledgement(
    env: jinja2.Environment,
    assessment: Assessed,
    *,
    number: str,
    message_id: str,
    sender: Sender,
    now: datetime,
    supplied: list[str],
    still_missing: list[str],
) -> RenderedReply:
    """The short answer to a follow-up: what it supplied and what is still missing."""
    context = {
        "name": _echoed(assessment.message.from_name),
        "number": number,
        "supplied": supplied,
        "missing": still_missing,
        "support_name": sender.name,
        "support_address": sender.address,
    }
    return _render_reply(
        env, "acknowledgement", assessment, number, message_id, sender, now, context, cc=()
    )


def _render_reply(
    env: jinja2.Environment,
    template: str,
    assessment: Assessed,
    number: str,
    message_id: str,
    sender: Sender,
    now: datetime,
    context: Mapping[str, Any],
    cc: tuple[str, ...],
) -> RenderedReply:
    body = alternative_body(*_texts(env, template, context))
    return _reply(assessment, number, message_id, sender, now, body, cc)


def _texts(env: jinja2.Environment, template: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """A reply's text and HTML versions from its two templates."""
    return (
        env.get_template(f"{template}.txt.j2").render(context),
        env.get_template(f"{template}.html.j2").render(context),
    )


def _reply(
    assessment: Assessed,
    number: str,
    message_id: str,
    sender: Sender,
    now: datetime,
    body: Body,
    cc: tuple[str, ...],
) -> RenderedReply:
    """The answer to ``assessment``'s message: our headers, threaded onto it, and ``body``."""
    assert assessment.reply_address is not None, "machine mail is never answered"
    headers = _envelope_headers(assessment, sender, message_id, now, cc)
    headers.append(("Subject", reply_subject(assessment.message.subject, number)))
    raw = whole_message(headers, body)
    return RenderedReply(message_id, (assessment.reply_address, *cc), raw)


def render_ticket_notice(
    env: jinja2.Environment,
    template: str,
    *,
    ticket: TicketRef,
    context: Mapping[str, Any],
    message_id: str,
    sender: Sender,
    now: datetime,
    recipients: Sequence[str] = (),
) -> RenderedReply:
    """A notice about an existing ticket (e.g. auto-close), threaded onto its first message.

    It goes to the requester, or to ``recipients`` (staff, e.g. a flood notice)."""
    to = tuple(recipients) or (ticket.requester,)
    # RFC 3834 §5: "auto-generated", as the notice answers no particular message.
    headers = _our_headers(sender, ", ".join(to), message_id, now, "auto-generated")
    headers.append(("In-Reply-To", f"<{header_safe(ticket.message_id)}>"))
    headers.append(("References", f"<{header_safe(ticket.message_id)}>"))
    headers.append(("Subject", reply_subject(ticket.subject, ticket.number)))
    data = {
        "number": ticket.number,
        "subject": ticket.subject,
        "support_name": sender.name,
        "support_address": sender.address,
        **context,
    }
    raw = alternative_message(headers, *_texts(env, template, data))
    return RenderedReply(message_id, to, raw)


@dataclass(frozen=True, slots=True)
class TicketRef:
    number: str
    subject: str
    requester: str
    message_id: str


def _envelope_headers(
    assessment: Assessed, sender: Sender, message_id: str, now: datetime, cc: tuple[str, ...]
) -> list[Header]:
    original = assessment.message
    to = assessment.reply_address or ""
    headers = _our_headers(sender, to, message_id, now, "auto-replied")  # RFC 3834 §5
    if cc:
        headers.append(("Cc", ", ".join(cc)))
    if not original.message_id_generated:
        # RFC 5322 §3.6.4: In-Reply-To names the parent, References carries the chain.
        parent = f"<{header_safe(original.message_id)}>"
        chain = [f"<{header_safe(ref)}>" for ref in original.references[-20:]]
        headers.append(("In-Reply-To", parent))
        headers.append(("References", " ".join([*chain, parent])))
    return headers


def _our_headers(
    sender: Sender, to: str, message_id: str, now: datetime, auto_submitted: str
) -> list[Header]:
    """The headers every automatic mail of ours carries, so no machine answers it."""
    return [
        ("From", Address(header_safe(sender.name), addr_spec=sender.address)),
        ("To", header_safe(to)),
        ("Date", format_datetime(now)),
        ("Message-ID", f"<{message_id}>"),
        ("Auto-Submitted", auto_submitted),
        ("X-Auto-Response-Suppress", "All"),  # keeps Exchange from answering us
        ("X-Loop", sender.loop_marker),
    ]


DEADLINE_NAMES = {
    "response": "Response",
    "resolution": "Resolution",
    "work_around": "Work-around",
    "restoration": "Restoration of service",
    "reason_for_outage": "Reason for outage (RFO)",
}


def format_instant(at: datetime, zone: str) -> str:
    """``Mon 23 Nov 2026 14:00 PST (22:00 UTC)``: the customer's clock first, then UTC."""
    local = at.astimezone(ZoneInfo(zone))
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()} ({at.astimezone(UTC):%H:%M} UTC)"


def _deadline_lines(assessment: Assessed) -> list[dict[str, str]]:
    deadlines = assessment.deadlines
    targets = {"response": deadlines.response_target, **deadlines.other_targets}
    lines = []
    for name, due in deadlines.as_dict().items():
        target = targets.get(name)
        lines.append(
            {
                "name": DEADLINE_NAMES.get(name, name.replace("_", " ").capitalize()),
                "due": format_instant(due, deadlines.timezone),
                "target": target.describe() if target else "",
            }
        )
    return lines


def _confirmation_context(assessment: Assessed, number: str, sender: Sender) -> Mapping[str, Any]:
    subject, policy = assessment.subject, assessment.policy
    priority = policy.priority(assessment.priority)
    deadlines = _deadline_lines(assessment)
    return {
        "name": _echoed(assessment.message.from_name),
        "number": number,
        "customer": _echoed(subject.customer),
        "location": _echoed(subject.location),
        "issue": _echoed(subject.issue),
        "priority_name": priority.name if priority else f"Priority {assessment.priority}",
        "priority_definition": priority.definition if priority else "",
        "priority_defaulted": any(
            f.code in ("priority_missing", "priority_unknown") for f in assessment.findings
        ),
        "response_due": deadlines[0]["due"] if assessment.response_due else None,
        "deadlines": deadlines,
        "received": format_instant(assessment.deadlines.received_at, assessment.deadlines.timezone),
        "in_business_hours": assessment.deadlines.in_business_hours,
        "notices": list(assessment.notices),
        "billable_hourly": assessment.billable_hourly,
        "subject_problem": subject.problem,
        "example_subject": EXAMPLE_SUBJECT,
        "read": [
            {"label": header_safe(label), "value": echo_value(value)}
            for label, value in assessment.read_details
        ],
        "missing": list(assessment.missing_details),
        "charges": [
            {
                "amount": f"{c.amount:.2f}",
                "currency": c.currency,
                "reason": c.reason,
                "pending": c.status == "pending",
            }
            for c in assessment.charges
        ],
        "support_name": sender.name,
        "support_address": sender.address,
    }
