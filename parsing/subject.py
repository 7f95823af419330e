"""The subject grammar ``Customer – Location – Issue – Priority``.

This module owns reading a decoded subject line against that grammar: removing reply and
forward prefixes and system tags (ours anywhere, another system's at the end), splitting
on the separators customers really type (en dash, em dash, a spaced hyphen, a spaced
``--``, with any Unicode white space), and reading a priority from the last part or glued
to the issue (``Phones down (P1)``), in English, German, French and Spanish. A subject
that does not follow the grammar is a finding, not an error: the result says what is
wrong in ``problem`` (best effort when one separator is missing) and the function never
raises.
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

# The words that say "priority" or "severity" in the languages our customers write:
# English, German (Priorität, Dringlichkeit), French (priorité, gravité), Spanish
# (prioridad, gravedad), Italian (priorità).
_QUALIFIER_WORDS: Final = (
    r"priority|prio|pri|severity|sev|priorit(?:ä|ae?)t|dringlichkeit|priorit[ée]"
    r"|gravit[ée]|prioridad|gravedad|priorità"
)
_NUMBERED: Final = re.compile(
    rf"(?:(?:{_QUALIFIER_WORDS}|p)\.?\s*(?:level\s*|niveau\s*|nivel\s*|stufe\s*)?[-–—:#=]?\s*)?"
    r"([0-9])",
    re.IGNORECASE,
)
# "Priority High", "Priority: Low", "Severity Level Critical", "High Priority",
# "Priorité haute", "Prioridad alta", "Hohe Priorität", "Alta prioridad".
_QUALIFIER: Final = re.compile(
    rf"^(?:{_QUALIFIER_WORDS})\b\s*(?:level\b\s*)?[-–—:=]?\s*"
    rf"|\s+(?:{_QUALIFIER_WORDS})$",
    re.IGNORECASE,
)
_BARE_QUALIFIER: Final = re.compile(rf"(?:{_QUALIFIER_WORDS})\s*:?", re.IGNORECASE)
# What may start (or end) a priority glued to the issue ("… Phones down P1"): a
# qualifier word or a P-number. A bare "high" or "2" at the end of an issue is the
# issue's own ("Line 2", "Volume too high"), so it is not read as a priority there.
_GLUED_START: Final = re.compile(rf"(?:p\s?-?[0-9]\b|(?:{_QUALIFIER_WORDS})\b)", re.IGNORECASE)
_GLUED_END: Final = re.compile(rf"\b(?:{_QUALIFIER_WORDS})$", re.IGNORECASE)
# Searched from a literal bracket, never from white space: a long run of spaces would
# otherwise be rescanned from every position (quadratic).
_BRACKETED_TAIL: Final = re.compile(r"[(\[][^()\[\]]{1,40}[)\]]\Z")
_MAX_GLUED_WORDS: Final = 3  # "Priority Level 1", "Prio: Urgent", "P1"
# Another system's ticket tag at the end ("… – P1 [TKT-004711]", "[CASE#123]"): an
# upper-case prefix, a mark, a number; read after our own tag is gone.
_TRAILING_TAG: Final = re.compile(r"\[ ?[A-Z][A-Z0-9]{1,11} ?[-#:] ?\d[\d-]{0,20} ?\]\Z")

DEFAULT_PRIORITY_WORDS: Final[Mapping[str, int]] = {
    "critical": 1,
    "urgent": 1,
    "emergency": 1,
    "high": 2,
    "medium": 3,
    "normal": 3,
    "low": 4,
    # German, French, Spanish words no subject part means anything else by.
    "kritisch": 1,
    "dringend": 1,
    "critique": 1,
    "urgente": 1,
    "crítico": 1,
    "crítica": 1,
    "hoch": 2,
    "niedrig": 4,
}
# Words that name a level only next to a qualifier ("Priorité haute", "Prioridad alta"):
# alone at the end of a subject, "Alta" or "Baja" may be a place.
QUALIFIED_PRIORITY_WORDS: Final[Mapping[str, int]] = {
    "hohe": 2,
    "hohe priorität": 2,
    "mittel": 3,
    "mittlere": 3,
    "niedrige": 4,
    "haute": 2,
    "élevée": 2,
    "moyenne": 3,
    "normale": 3,
    "basse": 4,
    "faible": 4,
    "alta": 2,
    "media": 3,
    "baja": 4,
    "critica": 1,
    "critico": 1,
}
_MAX_PRIORITY_TEXT: Final = 40  # "Priority Level: Emergency" is 25; longer is an issue
_PUNCTUATION: Final = string.punctuation + "¡¿…"
# A part holding location and issue run together ("Denver Phones down"): a few words.
_MERGED_MIN_WORDS: Final = 3


@dataclass(frozen=True, slots=True)
class _Reading:
    """The parts before the priority, the separators between them, and the priority."""

    body: list[str]
    separators: list[str]
    level: int | None = None
    text: str | None = None


def parse_subject(
    subject: str,
    priority_aliases: Mapping[str, int] | None = None,
    ticket_tag: TicketTag = DEFAULT_TICKET_TAG,
) -> SubjectParse:
    """Read ``subject`` against the grammar; ``priority_aliases`` add or override words.

    ``ticket_tag`` is our own tag (from the configured number format), removed first so
    that a reply's "… – P1 [TKT-000012]" still ends in its priority; another system's
    trailing tag goes too.
    """
    cleaned = _drop_trailing_tag(clean_subject(subject, ticket_tag))
    parts, separators = split_parts(cleaned)
    count = len(parts)
    dangling = _drop_dangling(parts, separators)
    reading = _read_priority_part(parts, separators, priority_aliases)
    body = reading.body if count >= 2 else []  # no separator: no telling who is who
    merged = reading.level is not None and len(body) == 2 and _looks_merged(body[1])
    customer = _part(body, 0)
    location = None if merged else _part(body, 1)
    issue = body[1] if merged else (_join(body[2:], reading.separators[2:]) or None)
    problem = _problem(cleaned, count, customer, location, issue)
    if merged and issue:
        problem = _merged_problem(issue)
    return SubjectParse(
        cleaned=cleaned,
        customer=customer,
        location=location,
        issue=issue,
        priority=reading.level,
        priority_text=reading.text,
        problem=problem or (_DANGLING if dangling else None),
    )


_DANGLING: Final = f"The subject ends in a separator with nothing after it; expected '{GRAMMAR}'."


def _drop_trailing_tag(text: str) -> str:
    found = _TRAILING_TAG.search(text)
    return text[: found.start()].rstrip() if found else text


def _drop_dangling(parts: list[str], separators: list[str]) -> bool:
    """Remove empty parts after a trailing separator ("Acme – Denver – Echo –")."""
    dropped = False
    while len(parts) > 1 and not parts[-1] and any(parts[:-1]):
        parts.pop()
        separators.pop()
        dropped = True
    return dropped


def _read_priority_part(
    parts: list[str], separators: list[str], aliases: Mapping[str, int] | None
) -> _Reading:
    """The priority as its own last part, split by a spaced hyphen, or glued to the issue."""
    if len(parts) >= 3 and _BARE_QUALIFIER.fullmatch(parts[-2]):
        # "Priority - High": the spaced hyphen is part of the priority, not a separator.
        joined = parts[-2] + separators[-1] + parts[-1]
        if read_priority(joined, aliases) is not None:
            parts, separators = [*parts[:-2], joined], separators[:-1]
    if len(parts) >= 2:
        level = read_priority(parts[-1], aliases)
        if level is not None:
            return _Reading(parts[:-1], separators[:-1], level, parts[-1])
    glued = _glued_priority(parts[-1], aliases) if parts else None
    if glued is None:
        return _Reading(parts, separators)
    rest, text, level = glued
    return _Reading([*parts[:-1], rest], separators, level, text)


def _glued_priority(part: str, aliases: Mapping[str, int] | None) -> tuple[str, str, int] | None:
    """(issue, priority text, level) when ``part`` ends in a priority: "Echo (P1)", "Echo P1"."""
    bracketed = _BRACKETED_TAIL.search(part)
    rest = part[: bracketed.start()].rstrip() if bracketed else ""
    if bracketed and rest and not bracketed[0][1:-1].strip().isdigit():
        level = read_priority(bracketed[0], aliases)
        if level is not None:
            return rest, bracketed[0], level
    words = part.split()
    for count in range(min(_MAX_GLUED_WORDS, len(words) - 1), 0, -1):
        tail = " ".join(words[-count:])
        if not (_GLUED_START.match(tail) or _GLUED_END.search(tail)):
            continue
        level = read_priority(tail, aliases)
        if level is not None:
            return part[: part.rindex(words[-count])].rstrip(" ,;:"), tail, level
    return None


def _looks_merged(part: str) -> bool:
    """A part that is probably location and issue run together: several words, not a street."""
    words = part.split()
    return len(words) >= _MERGED_MIN_WORDS and not words[0][:1].isdigit()


def _merged_problem(issue: str) -> str:
    return (
        f"The subject has one ' – ' separator too few: '{issue}' was read as the issue and "
        f"no location; expected '{GRAMMAR}'."
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
    """The level a part names ("P1", "Sev-2", "High Priority", "Prioridad alta"), or None."""
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
    if word == bare:
        return words.get(word)
    return words.get(word, QUALIFIED_PRIORITY_WORDS.get(word))


def _part(parts: list[str], index: int) -> str | None:
    return (parts[index] or None) if index < len(parts) else None


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
