"""Forwarded reports: finding the message a customer forwarded, and what the report is.

This module owns telling a *forward* (the report is the forwarded content) from a *reply*
(the quoted history is not ours to read). It knows the shapes clients write:

* Gmail ``---------- Forwarded message ---------`` and Thunderbird
  ``-------- Forwarded Message --------`` (and their German, French, Spanish forms);
* Apple Mail ``Begin forwarded message:``, its header lines often quoted with ``>``;
* Outlook's ``From:/Sent:/To:/Subject:`` block (``Von:/Gesendet:/An:/Betreff:`` …), after
  a rule line or not, which Outlook writes for replies too: it is a forward only when the
  subject starts with a forward marker (``FW:``, ``WG:``, ``TR:``, ``RV:`` …);
* a ``message/rfc822`` attachment, read by ``parsing.message``.

Pure: text in, frozen values out; never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from parsing.text import split_reply
from parsing.types import Forwarded, ParsedMessage

# Separator lines that announce a forwarded message whatever the subject says.
_FORWARD_MARKER: Final = re.compile(
    r"\s*(?:-{5,}\s*(?:forwarded\s+message|weitergeleitete\s+nachricht|message\s+transf[ée]r[ée]"
    r"|mensaje\s+reenviado|original-nachricht)\s*-{5,}"
    r"|begin\s+forwarded\s+message\s*:|anfang\s+der\s+weitergeleiteten\s+nachricht\s*:"
    r"|d[ée]but\s+du\s+message\s+r[ée]exp[ée]di[ée]\s*:|inicio\s+del\s+mensaje\s+reenviado\s*:)\s*",
    re.IGNORECASE,
)
# Outlook's lines above its header block (it writes the same block under a reply).
_OUTLOOK_RULE: Final = re.compile(
    r"\s*(?:-{3,}\s*(?:original\s+message|urspr[üu]ngliche\s+nachricht|message\s+d'origine"
    r"|mensaje\s+original)\s*-{3,}|_{10,})\s*",
    re.IGNORECASE,
)
# The first marker of the subject says what the message is: "FW: RE: x" forwards a reply.
_FORWARD_SUBJECT: Final = re.compile(
    r"\s*(?:\[[^\[\]:]{1,40}\]\s*)*(?:fwd?|wg|tr|rv|vb|doorst|pd)\s*(?:\[\d{1,4}\])?\s*:",
    re.IGNORECASE,
)
# One header line of a forwarded block: "> *From:* Jane <j@x>" (quoted, bold, localized).
_HEADER_LINE: Final = re.compile(
    r"(?P<quote>(?:\s*>)*)\s*\*{0,2}(?P<name>[^\W\d_][\w' -]{0,24}?)\s*\*{0,2}\s*:\s*\*{0,2}"
    r"\s*(?P<value>.*)"
)
_FROM: Final = frozenset({"from", "von", "de", "van", "da", "från", "fra"})
_SENT: Final = frozenset(
    {
        "sent",
        "date",
        "gesendet",
        "datum",
        "envoyé",
        "date d'envoi",
        "enviado",
        "enviado el",
        "fecha",
        "verzonden",
        "inviato",
        "data",
        "skickat",
        "sendt",
    }
)
_SUBJECT: Final = frozenset(
    {"subject", "betreff", "objet", "asunto", "onderwerp", "oggetto", "ämne", "emne"}
)
_OTHER: Final = frozenset(
    {
        "to",
        "an",
        "à",
        "a",
        "para",
        "aan",
        "cc",
        "bcc",
        "reply-to",
        "antwort an",
        "répondre à",
        "importance",
        "wichtigkeit",
        "till",
        "til",
    }
)
_KNOWN: Final = _FROM | _SENT | _SUBJECT | _OTHER
_MAX_BLOCK: Final = 12  # header lines a forwarded block may hold (Outlook writes 4-6)
_MAX_GAP: Final = 3  # blank lines allowed between a marker and its header block


@dataclass(frozen=True, slots=True)
class _Block:
    start: int  # index of the block's first header line
    end: int  # index of the first line after it
    headers: dict[str, str]  # lower-case name -> value
    quoted: bool  # the header lines were ">"-quoted (Apple Mail)


def find_forward(body_text: str, subject: str) -> Forwarded | None:
    """The forwarded report inside ``body_text``, or None when there is none (or a reply)."""
    lines = body_text.split("\n")
    for index, line in enumerate(lines):
        if _FORWARD_MARKER.fullmatch(line):
            block = _header_block(lines, index + 1)
            return _forwarded("marker", lines, index, block) if block else None
    if not _FORWARD_SUBJECT.match(subject):
        return None  # Outlook's block under a reply is quoted history: never the report
    for index, line in enumerate(lines):
        start = index + 1 if _OUTLOOK_RULE.fullmatch(line) else index
        block = _header_block(lines, start, gap=start > index)
        if block and _is_outlook_block(block):
            return _forwarded("outlook", lines, index, block)
    return None


def report_text(message: ParsedMessage) -> str:
    """The text the report's fields are read from: the new text, or note + forwarded report."""
    forwarded = message.forwarded
    if forwarded is None:
        return message.new_text
    return "\n\n".join(part for part in (forwarded.note, forwarded.text) if part.strip())


def attached_forward(
    note: str, subject: str, sender: str, body: str, html: str | None
) -> Forwarded:
    """A ``message/rfc822`` attachment as the forwarded report (``parsing.message`` reads it)."""
    text, signature = split_reply(body)
    return Forwarded(
        how="attached",
        subject=subject,
        sender=sender,
        note=note,
        text=text,
        body=body.strip(),
        html=html,
        signature=signature,
    )


def _forwarded(how: str, lines: list[str], at: int, block: _Block) -> Forwarded:
    rest = lines[block.end :]
    body = "\n".join(_unquote(line) for line in rest) if block.quoted else "\n".join(rest)
    text, signature = split_reply(body)
    return Forwarded(
        how=how,
        subject=_first(block.headers, _SUBJECT),
        sender=_first(block.headers, _FROM),
        note=split_reply("\n".join(lines[:at]))[0],
        text=text,
        body=body.strip(),
        signature=signature,
    )


def _header_block(lines: list[str], start: int, *, gap: bool = True) -> _Block | None:
    """The known header lines from ``start`` on (after up to _MAX_GAP blank lines)."""
    position = start
    while (
        gap
        and position < len(lines)
        and position - start < _MAX_GAP
        and not _quoted_text(lines[position])
    ):
        position += 1
    headers: dict[str, str] = {}
    quoted = False
    first = position
    while position < len(lines) and position - first < _MAX_BLOCK:
        match = _HEADER_LINE.fullmatch(lines[position])
        name = " ".join(match["name"].casefold().split()) if match else ""
        if not match or name not in _KNOWN:
            break
        headers.setdefault(name, match["value"].strip().strip("*").strip())
        quoted = quoted or bool(match["quote"].strip())
        position += 1
    if not (headers.keys() & _FROM):
        return None
    return _Block(first, position, headers, quoted)


def _quoted_text(line: str) -> str:
    return line.strip().lstrip(">").strip()


def _is_outlook_block(block: _Block) -> bool:
    names = block.headers.keys()
    return bool(names & _FROM and names & _SENT and names & _SUBJECT)


def _first(headers: dict[str, str], names: frozenset[str]) -> str:
    return next((value for name, value in headers.items() if name in names), "")


def _unquote(line: str) -> str:
    """One level of ">" quoting off a line of an Apple Mail forward."""
    stripped = line.lstrip()
    if stripped.startswith(">"):
        return stripped[1:].removeprefix(" ")
    return line
