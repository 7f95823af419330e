"""The subject grammar ``Customer – Location – Issue – Priority``.

This module owns reading a decoded subject line against that grammar: removing reply and
forward prefixes and system tags, splitting on the separators customers really type
(en dash, em dash, a spaced hyphen, a spaced ``--``, with any Unicode white space), and
reading a priority from the last part. A subject that does not follow the grammar is a
finding, not an error: the result says what is wrong in ``problem`` and the function
never raises.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from parsing.types import SubjectParse

GRAMMAR: Final = "Customer – Location – Issue – Priority"

# Reply/forward markers in the languages our customers' clients use (RFC 5322 §3.6.5
# only suggests "Re: "; everything else is client custom): English, German (AW, WG,
# Antw), Scandinavian (SV, VS), Dutch (Antw, Doorst, VB), Italian (R, RIF), French (TR),
# Spanish (RV), Polish (Odp, PD). "Re[2]:", "Re(2):" and "RE :" are counters and sloppiness.
_REPLY_PREFIX: Final = re.compile(
    r"(?:re|fwd?|aw|wg|sv|vs|antw|doorst|vb|r|rif|tr|rv|odp|pd)"
    r"\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*:",
    re.IGNORECASE,
)
# Tags mail systems put in front: [EXTERNAL], [SPAM], [rt-users], (EXT). A bracket with a
# colon inside is content ("[Fwd: Netscape …]"), not a tag.
_LEADING_TAG: Final = re.compile(r"\[[^\[\]:]{1,40}\]|\([A-Z0-9]{2,12}\)")


@dataclass(frozen=True, slots=True)
class TicketTag:
    """How our ticket numbers appear in subjects (``[TKT-000123]``), for one number format."""

    prefix: str  # the format's text before the number: "TKT-"
    suffix: str  # and after it
    exact: re.Pattern[str]  # as our replies write it: what ``clean_subject`` removes
    any_case: re.Pattern[str]  # as a customer may retype it: what threading reads

    def number_in(self, subject: str) -> str | None:
        """The ticket number ``subject`` names, spelt the way we issue it, or None."""
        found = self.any_case.search(subject)
        return f"{self.prefix}{found['digits']}{self.suffix}" if found else None


def ticket_tag(number_format: str) -> TicketTag:
    """``TKT-{:06d}`` (``intake.ticket_number_format``) -> the tag ``[TKT-000123]``.

    The one space before a tag goes with it, so removing it leaves no double space.
    """
    prefix, suffix = format_literals(number_format)
    body = rf" ?\[\s*{re.escape(prefix)}(?P<digits>\d+){re.escape(suffix)}\s*\]"
    return TicketTag(prefix, suffix, re.compile(body), re.compile(body, re.IGNORECASE))


def format_literals(number_format: str) -> tuple[str, str]:
    """The literal text before and after a format's one replacement field.

    ``string.Formatter`` reads the format as ``str.format`` does, so escaped braces
    (``T{{X}}-{:04d}`` -> ``T{X}-0005``) stay literal text instead of being taken for the field.
    Raises ValueError unless the format has exactly one replacement field.
    """
    pieces = list(string.Formatter().parse(number_format))
    fields = [i for i, (_, name, _, _) in enumerate(pieces) if name is not None]
    if len(fields) != 1:
        raise ValueError(f"needs exactly one replacement field, found {len(fields)}")
    at = fields[0]
    prefix = "".join(literal for literal, *_ in pieces[: at + 1])
    suffix = "".join(literal for literal, *_ in pieces[at + 1 :])
    return prefix, suffix


DEFAULT_TICKET_TAG: Final = ticket_tag("TKT-{:06d}")

# The core of a separator: an en/em dash (spaced or not), or a hyphen / "--" with white
# space on both sides. Python's \s covers NBSP (U+00A0), figure space (U+2007), U+202F
# and tabs. The white space around it is added by scanning, not by the regex, so a long
# run of spaces costs linear time instead of quadratic backtracking.
_DASH: Final = re.compile(r"[–—]+|(?<=\s)--?(?=\s)")

_NUMBERED: Final = re.compile(
    r"(?:(?:priority|prio|pri|severity|sev|p)\.?\s*(?:level\s*)?[-:#=]?\s*)?([0-9])",
    re.IGNORECASE,
)
# "Priority High", "Priority: Low", "Severity Level Critical", "High Priority".
_QUALIFIER: Final = re.compile(
    r"^(?:priority|prio|pri|severity|sev)\b\s*(?:level\b\s*)?[-:=]?\s*|\s+(?:priority|prio)$",
    re.IGNORECASE,
)
DEFAULT_PRIORITY_WORDS: Final[Mapping[str, int]] = {
    "critical": 1,
    "urgent": 1,
    "emergency": 1,
    "high": 2,
    "medium": 3,
    "normal": 3,
    "low": 4,
}
_MAX_PRIORITY_TEXT: Final = 40  # "Priority Level: Emergency" is 25; longer is an issue
_PUNCTUATION: Final = string.punctuation + "¡¿…"


def parse_subject(
    subject: str,
    priority_aliases: Mapping[str, int] | None = None,
    ticket_tag: TicketTag = DEFAULT_TICKET_TAG,
) -> SubjectParse:
    """Read ``subject`` against the grammar; ``priority_aliases`` add or override words.

    ``ticket_tag`` is our own tag (from the configured number format), removed first so
    that a reply's "… – P1 [TKT-000012]" still ends in its priority.
    """
    cleaned = clean_subject(subject, ticket_tag)
    parts, separators = split_parts(cleaned)
    priority = read_priority(parts[-1], priority_aliases) if len(parts) >= 2 else None
    # Without a separator there is no telling which words name the customer.
    body_end = 0 if len(parts) < 2 else len(parts) - (priority is not None)
    customer = _part(parts, 0, body_end)
    location = _part(parts, 1, body_end)
    issue = _join(parts[2:body_end], separators[2 : body_end - 1]) or None
    return SubjectParse(
        cleaned=cleaned,
        customer=customer,
        location=location,
        issue=issue,
        priority=priority,
        priority_text=parts[-1] if priority is not None else None,
        problem=_problem(cleaned, len(parts), customer, location, issue),
    )


def split_parts(text: str) -> tuple[list[str], list[str]]:
    """The trimmed parts of ``text`` and the exact separator text between them."""
    if not text:
        return [], []
    parts: list[str] = []
    separators: list[str] = []
    start = 0
    for match in _DASH.finditer(text):
        left, right = match.start(), match.end()
        while left > start and text[left - 1].isspace():
            left -= 1
        while right < len(text) and text[right].isspace():
            right += 1
        parts.append(text[start:left].strip())
        separators.append(text[left:right])
        start = right
    parts.append(text[start:].strip())
    return parts, separators


def clean_subject(subject: str, ticket_tag: TicketTag = DEFAULT_TICKET_TAG) -> str:
    """The subject without reply/forward prefixes, leading tags and our ticket tags."""
    text = ticket_tag.exact.sub("", subject).strip()
    return text[_skip_leading(text, (_REPLY_PREFIX, _LEADING_TAG)) :]


def strip_reply_prefixes(subject: str) -> str:
    """``subject`` without its leading reply/forward markers ("Re: AW: RE[2]:", "Fwd:")."""
    text = subject.strip()
    return text[_skip_leading(text, (_REPLY_PREFIX,)) :]


def _skip_leading(text: str, markers: tuple[re.Pattern[str], ...]) -> int:
    """Where ``text`` starts once every leading marker and the space after it is skipped."""
    position = 0
    while match := _match_any(markers, text, position):
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return position


def _match_any(
    markers: tuple[re.Pattern[str], ...], text: str, position: int
) -> re.Match[str] | None:
    for marker in markers:
        if found := marker.match(text, position):
            return found
    return None


def read_priority(part: str, aliases: Mapping[str, int] | None = None) -> int | None:
    """The level a subject part names ("P1", "Sev-2", "High Priority", "urgent"), or None."""
    words = {**DEFAULT_PRIORITY_WORDS, **{k.lower(): v for k, v in (aliases or {}).items()}}
    text = " ".join(part.split()).lower()
    if len(text) > _MAX_PRIORITY_TEXT:
        return None
    bare = text.strip(_PUNCTUATION + " ")
    for candidate in (text, bare):
        if candidate in words:
            return words[candidate]
    number = _NUMBERED.fullmatch(bare)
    if number:
        return int(number[1])
    word = _QUALIFIER.sub("", bare).strip(_PUNCTUATION + " ")
    return words.get(word)


def _part(parts: list[str], index: int, end: int) -> str | None:
    return (parts[index] or None) if index < end else None


def _join(parts: list[str], separators: list[str]) -> str:
    """Re-join issue parts with the separator text the sender typed."""
    joined = parts[0] if parts else ""
    for separator, part in zip(separators, parts[1:], strict=False):
        joined += separator + part
    return joined.strip()


def _problem(
    cleaned: str, count: int, customer: str | None, location: str | None, issue: str | None
) -> str | None:
    if not cleaned:
        return "The subject is empty."
    if count == 1:
        return f"The subject has no ' – ' separators; expected '{GRAMMAR}'."
    missing = [
        name
        for name, value in (("customer", customer), ("location", location), ("issue", issue))
        if not value
    ]
    if not missing:
        return None
    names = " or ".join(missing) if len(missing) <= 2 else "customer, location or issue"
    return f"The subject names no {names}; expected '{GRAMMAR}'."
