"""The parsing package's domain types: frozen value objects every later stage consumes.

These are the seam between the pure parsing code and the daemon/store. They hold no
behaviour beyond small read-only helpers, so they can be built in tests by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Classification(StrEnum):
    """What kind of sender wrote a message; only ``HUMAN`` mail is ever answered."""

    HUMAN = "human"
    AUTO_REPLY = "auto_reply"  # RFC 3834 Auto-Submitted, X-Autoreply, vacation notices
    BOUNCE = "bounce"  # DSN (RFC 3464), null sender, MAILER-DAEMON, multipart/report
    LIST = "list"  # RFC 2369/2919 List-* headers, Precedence: list/bulk/junk
    LOOP = "loop"  # our own mail coming back (X-Loop, our address as sender)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A classification with the evidence that produced it (for logs and tickets)."""

    kind: Classification
    reason: str

    @property
    def is_machine(self) -> bool:
        return self.kind is not Classification.HUMAN


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The report a message forwards (``parsing.forwards``): the forwarded content is the report.

    ``how``: ``marker`` (Gmail, Thunderbird, Apple Mail), ``outlook`` (its From/Sent/Subject
    block under a ``FW:`` subject) or ``attached`` (a message/rfc822 part).
    """

    how: str
    subject: str  # the forwarded message's own subject, decoded
    sender: str  # its From, as written (display name and address)
    note: str  # what the forwarder wrote above it, quoted history and signature removed
    text: str  # the forwarded message's new text (its own history and signature removed)
    body: str  # the forwarded message's whole text, signature included
    html: str | None = None  # an attached message's HTML part, for its field tables
    signature: str = ""  # the forwarded message's signature block (its sender's phone)


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A decoded message. Every string is already decoded Unicode with no CR/LF in headers.

    ``message_id`` is normalised (no angle brackets, surrounding whitespace removed);
    when the message has none (or an unusable one) it is ``<sha256 hex>@generated.invalid``
    derived from the content, and ``message_id_generated`` is true.
    """

    message_id: str
    message_id_generated: bool
    subject: str
    from_address: str | None  # addr-spec, domain lower-cased; None when absent/unparseable
    from_name: str | None
    reply_to: tuple[str, ...]
    to: tuple[str, ...]
    cc: tuple[str, ...]
    in_reply_to: tuple[str, ...]  # normalised message ids
    references: tuple[str, ...]
    date: datetime | None  # the sender's claim; never used for deadlines
    content_type: str  # top-level, lower case, e.g. "multipart/mixed"
    body_text: str  # text/plain, or HTML turned into text when that is all there is
    body_html: str | None  # the raw HTML part when there is one (never rendered by us)
    new_text: str  # body_text with quoted history and signature removed
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]  # (lower-case name, decoded value), in order
    defects: tuple[str, ...]  # names of email-package defects, for findings and logs
    # Added after the first cut (optional, so hand-built instances need not name it): the
    # content type of every MIME part the bounded walk visited, in order, top level first.
    # Classification needs it to see a message/delivery-status part (RFC 3464).
    part_types: tuple[str, ...] = ()
    # The forwarded report, when this message forwards one (issue 10): its fields and,
    # when the outer subject does not follow the grammar, its subject are the report's.
    forwarded: Forwarded | None = None
    # The signature block below the new text (no quoted history): where a contact's
    # phone number often is when no "Phone:" line gives it.
    signature: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)


@dataclass(frozen=True, slots=True)
class SubjectParse:
    """The subject read against ``Customer – Location – Issue – Priority``.

    ``problem`` is None when the subject follows the grammar; otherwise a sentence for
    the customer saying what is wrong (the ticket is still created).
    """

    cleaned: str  # the subject after reply/forward prefixes and [TAGS] were removed
    customer: str | None
    location: str | None
    issue: str | None
    priority: int | None  # the level read from the subject, before policy mapping
    priority_text: str | None  # the part the priority was read from, e.g. "Sev 1"
    problem: str | None

    @property
    def follows_grammar(self) -> bool:
        return bool(self.customer and self.location and self.issue)


@dataclass(frozen=True, slots=True)
class FieldPart:
    """One part of a field that needs several ("board" and "appliance" serial numbers)."""

    name: str  # e.g. "board"
    words: tuple[str, ...]  # qualifiers naming it in a label or value, e.g. ("board",)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One report field the contract asks for: canonical name plus accepted labels."""

    name: str  # canonical, e.g. "serial_number"
    synonyms: tuple[str, ...] = ()  # labels as customers write them, e.g. "S/N"
    # Non-empty: the field is given only when every part is (policy data, never code).
    parts: tuple[FieldPart, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldSource:
    """Where one value was read: the provenance ``intake check --explain`` prints.

    ``line`` is 1-based in the new text (None for an HTML table cell); ``text`` is that
    line or row as written, capped; ``synonym`` the policy label that matched; ``rule``
    names the reading rule ("labelled line", "value below label", "HTML table row", ...).
    ``used`` is false for a value that lost (placeholder, or a later duplicate).
    """

    field: str
    value: str
    synonym: str
    rule: str
    text: str
    line: int | None = None
    part: str | None = None
    used: bool = True


@dataclass(frozen=True, slots=True)
class CallExample:
    """One 'specific call example' (managed-PBX contract item 8)."""

    when: str | None
    calling: str | None
    called: str | None

    @property
    def complete(self) -> bool:
        return bool(self.when and self.calling and self.called)


@dataclass(frozen=True, slots=True)
class PhoneFound:
    """A contact phone number read without a ``Phone:`` label (``parsing.phones``)."""

    number: str  # international format, e.g. "+1 303-555-0142"
    e164: str  # "+13035550142"
    found_in: str  # "sentence" (the new text asks to be called there) | "signature"
    line: str  # the line it was read from (for --explain; never logged)


@dataclass(frozen=True, slots=True)
class FieldExtraction:
    """What the body says for each known label.

    ``values`` holds only non-placeholder values keyed by canonical name; ``blank`` the
    canonical names that were present but empty or a placeholder (N/A, TBD, ...).
    ``free_text`` is the new (unquoted) text with every recognised field line removed.
    ``parts`` holds, per multi-part field, the parts that were given (part -> value),
    and ``unassigned`` a value given for such a field without saying which part it is.
    ``sources`` says where every value came from; ``mentions`` the lines that name a
    field's label only in prose (read as nothing, shown by ``--explain``).
    """

    values: Mapping[str, str] = field(default_factory=dict)
    blank: frozenset[str] = frozenset()
    call_examples: tuple[CallExample, ...] = ()
    free_text: str = ""
    phone: PhoneFound | None = None  # set by parsing.phones when no label gave one
    parts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    unassigned: Mapping[str, str] = field(default_factory=dict)
    sources: tuple[FieldSource, ...] = ()
    mentions: tuple[FieldSource, ...] = ()
