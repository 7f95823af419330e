"""The contact's phone number when no ``Phone:`` line gives it.

This module owns reading a callback number out of what a customer wrote in their own
words: a sentence of the new text that asks to be called ("call me on my cell at
303-555-0142"), a signature-style line (``Direct: …``, ``Mobile …``, ``T +1 …``) or the
signature block below the new text. Numbers are found and validated by ``phonenumbers``
(Google's libphonenumber metadata), with the policy's default region for numbers written
without a country code.

It reads only the text it is given: the free text of the report (quoted history and
every recognised field and call-example line already removed by ``parsing.fields``) and
the signature block (quoted history removed by ``parsing.text``), so a number from
quoted history or a calling/called number of a call example is never taken. A number
in a sentence that talks about a call made ("I called 720-555-0199") is not a callback
number either. Pure; never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Final

import phonenumbers

from parsing.types import ParsedMessage, PhoneFound

DEFAULT_REGION: Final = "US"

# Words before a number that ask to be called back on it (EN, DE, FR, ES).
_CALLBACK: Final = re.compile(
    r"\b(?:call|ring|reach|contact|text|phone)\s+(?:me|us)\b|\bcall\s*-?\s*back\b"
    r"|\bmy\s+(?:cell|mobile|phone|number|direct\s+line|direct|desk|office|landline)\b"
    r"|\b(?:cell|mobile|phone|callback)\s*(?:number|#|no\.?)?\s*(?:is|:)"
    r"|\bruf(?:en\s+sie)?\s+mich\b|\bmeine\s+(?:handy|telefon|mobil)?nummer\b"
    r"|\bappelez[- ]moi\b|\bmon\s+(?:portable|num[ée]ro)\b"
    r"|\bll[áa]m(?:e|a)me\b|\bmi\s+(?:celular|m[óo]vil|tel[ée]fono|n[úu]mero)\b",
    re.IGNORECASE,
)
# Words that make a number part of a call that was made, not a number to call back.
_CALL_MADE: Final = re.compile(
    r"\b(?:called|calling|caller|dial(?:l)?ed|dial(?:l)?ing|rang|ringing|calls?\s+(?:to|from)"
    r"|from\s+ext|to\s+ext|angerufen|anruf|appel(?:é|e|ant)|llam(?:é|ada|ando))\b",
    re.IGNORECASE,
)
# A signature-style line: a short phone label, then the number ("Direct: +1 …", "T +1 …").
_PHONE_LABEL: Final = re.compile(
    r"[\s>*|•·-]*(?:direct(?:\s+line)?|dir|mobile|mob|cell(?:\s*phone)?|tel(?:ephone)?|phone"
    r"|ph|office|work|main|desk|t|m|d|o|c|handy|mobil|telefon|t[ée]l(?:[ée]phone)?|portable"
    r"|tel[ée]fono|m[óo]vil|celular)\b\.?\s*[:.]?\s*(?:\(\w+\)\s*)?",
    re.IGNORECASE,
)
_FAX: Final = re.compile(r"\b(?:fax|telefax|f)\b\s*[:.]?\s*$", re.IGNORECASE)
_WINDOW: Final = 60  # characters before a number that say what it is
_MAX_LINE: Final = 500  # a longer "line" is not a signature line or a sentence to scan
_MIN_DIGITS: Final = 5  # no valid number, national or international, has fewer digits


def contact_phone(
    message: ParsedMessage, free_text: str, region: str = DEFAULT_REGION
) -> PhoneFound | None:
    """The contact's number from the report's free text, else its signature block.

    For a forward the forwarded report's own lines and signature come first (its sender
    reported the problem), then the forwarder's note and signature.
    """
    forwarded = message.forwarded
    if forwarded is None:
        return find_contact_phone(free_text, message.signature, region)
    own = set(forwarded.text.split("\n"))
    reported = "\n".join(line for line in free_text.split("\n") if line in own)
    return find_contact_phone(reported, forwarded.signature, region) or find_contact_phone(
        free_text, message.signature, region
    )


def find_contact_phone(
    free_text: str, signature: str, region: str = DEFAULT_REGION
) -> PhoneFound | None:
    """A sentence asking to be called wins, then a labelled line, then the signature block."""
    text_lines = _lines(free_text)
    # Each rule's cheap necessary condition picks the lines worth the (slow) matcher.
    asking = [line for line in text_lines if _CALLBACK.search(line)]
    labelled = [line for line in text_lines if _PHONE_LABEL.match(line)]
    return (
        _first(asking, region, "sentence", _asks_for_callback)
        or _first(labelled, region, "signature", _is_labelled)
        or _first(_lines(signature), region, "signature", _in_signature)
    )


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip() and len(line) <= _MAX_LINE]


def _first(
    lines: list[str], region: str, found_in: str, accept: Callable[[str], bool]
) -> PhoneFound | None:
    """The first number on ``lines`` whose text before it on its line ``accept`` takes."""
    for line in lines:
        for match in _numbers(line, region):
            if accept(line[: match.start]):
                return _found(match, found_in, line)
    return None


def _asks_for_callback(before: str) -> bool:
    window = before[-_WINDOW:]
    return bool(_CALLBACK.search(window)) and not _CALL_MADE.search(window)


def _is_labelled(before: str) -> bool:
    return bool(_PHONE_LABEL.fullmatch(before)) and not _FAX.search(before)


def _in_signature(before: str) -> bool:
    return not _FAX.search(before) and not _CALL_MADE.search(before)


def _numbers(line: str, region: str) -> Iterator[phonenumbers.PhoneNumberMatch]:
    if sum(ch.isdigit() for ch in line) < _MIN_DIGITS:
        return  # the matcher is pure Python: lines that cannot hold a number skip it
    try:
        yield from phonenumbers.PhoneNumberMatcher(
            line, region, leniency=phonenumbers.Leniency.VALID
        )
    except Exception:  # the matcher on hostile text: no number, never a failure
        return


def _found(match: phonenumbers.PhoneNumberMatch, found_in: str, line: str) -> PhoneFound:
    number = match.number
    return PhoneFound(
        number=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        found_in=found_in,
        line=line.strip(),
    )
