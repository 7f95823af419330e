"""Delivery status notifications: which recipients of our mail bounced, and how badly.

This module owns reading a bounce into a ``DeliveryReport``: the per-recipient groups of
an RFC 3464 ``message/delivery-status`` part (or RFC 6533 ``message/global-delivery-status``),
the Message-ID and threading headers of the returned message (``message/rfc822``,
``text/rfc822-headers`` per RFC 6522, ``message/global-headers`` per RFC 6533), and a
small best-effort fallback for the plain-text bounces Postfix, qmail and Exim send
without a DSN part. Like ``parse_message`` it never raises: any bytes give a report or
None. Deciding what a bounce means for future mail is the daemon's job, not this one's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from io import BytesIO
from typing import Final

from parsing.addresses import address_key, normalise_address
from parsing.headers import is_header_line
from parsing.message import bound_parts, message_ids, normalise_message_id
from parsing.text import clean_header_text, decode_bytes, decode_words, normalise_newlines


@dataclass(frozen=True, slots=True)
class BouncedRecipient:
    """One recipient's delivery outcome as the reporting MTA stated it."""

    address: str  # addr-spec, domain lower-cased
    action: str  # failed | delayed | delivered | relayed | expanded (RFC 3464 §2.3.3)
    status: str | None  # RFC 3463 enhanced status code, e.g. "5.1.1"
    permanent: bool  # action failed with a 5.x.x status (or failed with no status)
    diagnostic: str | None  # Diagnostic-Code (or the fallback's reason text), one line


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a bounce says: the recipients, and which of our messages it is about."""

    recipients: tuple[BouncedRecipient, ...]
    original_message_id: str | None  # normalised like ParsedMessage.message_id
    references: tuple[str, ...]  # In-Reply-To + References of the returned message


_REPORT_TYPES: Final = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_TYPES: Final = frozenset(
    {
        "message/rfc822",
        "message/global",  # RFC 6532 §3.7
        "text/rfc822-headers",  # RFC 6522 §4
        "message/rfc822-headers",  # the pre-RFC 6522 spelling some MTAs still send
        "message/global-headers",  # RFC 6533 §6.3
    }
)
_ACTIONS: Final = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_MAX_PARTS_WALKED: Final = 200
_MAX_DIAGNOSTIC: Final = 500
# RFC 3463 §2: class.subject.detail, class 2, 4 or 5.
_ENHANCED: Final = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
# RFC 5321 §4.2 reply code, not part of a dotted number (an IP address, a version).
_BASIC: Final = re.compile(r"(?<![\d.])([245])\d\d(?=[ -])")


def read_delivery_report(raw: bytes) -> DeliveryReport | None:
    """The delivery report in ``raw``; None when no recipient could be read. Never raises."""
    try:
        return _read(raw)
    except Exception:  # a bounce that cannot be read is no worse than no bounce
        return None


def _read(raw: bytes) -> DeliveryReport | None:
    bounded, _ = bound_parts(raw)
    msg = BytesParser(policy=compat32).parsebytes(bounded)
    parts = list(_walk(msg))
    recipients = [r for part in parts if _type(part) in _REPORT_TYPES for r in _dsn(part)]
    returned = next((p for p in parts if _type(p) in _RETURNED_TYPES), None)
    headers = _returned_headers(returned) if returned is not None else None
    if not recipients and _looks_like_bounce(msg):
        text = _report_text(parts)
        recipients = plain_text_recipients(text)
        headers = headers or _inline_returned_headers(text)
    if not recipients:
        return None
    return DeliveryReport(
        recipients=_unique(recipients),
        original_message_id=_original_id(headers),
        references=_threading_ids(headers),
    )


def _walk(msg: Message) -> Iterator[Message]:
    """Parts in document order; a returned message is a leaf (its bounces are not ours)."""
    stack, seen = [msg], 0
    while stack and seen < _MAX_PARTS_WALKED:
        part = stack.pop()
        seen += 1
        yield part
        payload = part.get_payload()
        if _type(part) in _RETURNED_TYPES or _type(part) in _REPORT_TYPES:
            continue
        if isinstance(payload, list):
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))


def _type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # a junk Content-Type header reads as plain text
        return "text/plain"


def _text(value: object) -> str:
    """A compat32 header value (str, or Header for raw 8-bit) as one clean line."""
    return clean_header_text(decode_words(str(value)))


def _payload_text(part: Message) -> str:
    """A leaf part's decoded payload as text (RFC 6533 global parts are UTF-8)."""
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return normalise_newlines(decode_bytes(data, part.get_content_charset() or "utf-8"))
    return ""


def _flatten(msg: Message) -> str:
    buffer = BytesIO()
    BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(msg)
    return normalise_newlines(decode_bytes(buffer.getvalue(), "utf-8"))


def _unique(recipients: list[BouncedRecipient]) -> tuple[BouncedRecipient, ...]:
    found: dict[str, BouncedRecipient] = {}
    for recipient in recipients:
        found.setdefault(address_key(recipient.address), recipient)
    return tuple(found.values())


# --- RFC 3464 / RFC 6533 delivery-status fields ------------------------------------------


def _dsn(part: Message) -> Iterator[BouncedRecipient]:
    for block in _field_blocks(part):
        recipient = _recipient(block)
        if recipient is not None:
            yield recipient


def _field_blocks(part: Message) -> list[Message]:
    """The header-like blocks of a DSN body (RFC 3464 §2.1): per-message, then per-recipient.

    The email package splits ``message/delivery-status`` into blocks itself; the RFC 6533
    global variant arrives as one enclosed message (or text) and is split here.
    """
    payload = part.get_payload()
    if isinstance(payload, list) and _type(part) == "message/delivery-status":
        return [p for p in payload if isinstance(p, Message)]
    # The email package reads other message/* types as one enclosed message, so the
    # first block arrives as its headers and the rest as its body: flatten it back.
    enclosed = payload[0] if isinstance(payload, list) and payload else None
    text = _flatten(enclosed) if isinstance(enclosed, Message) else _payload_text(part)
    return [HeaderParser(policy=compat32).parsestr(b) for b in re.split(r"\n\s*\n", text) if b]


def _recipient(block: Message) -> BouncedRecipient | None:
    """One per-recipient block (RFC 3464 §2.3); None for the per-message block."""
    # Original-Recipient is the address as we gave it (RFC 3464 §2.3.1), so the one our
    # outbox knows; Final-Recipient may be an alias it expanded to.
    address = _recipient_address(block.get("original-recipient"))
    address = address or _recipient_address(block.get("final-recipient"))
    if address is None:
        return None
    status = _status_code(_text(block.get("status", "")))
    action = _action(_text(block.get("action", "")), status)
    diagnostic = _diagnostic(_text(block.get("diagnostic-code", "")))
    return BouncedRecipient(address, action, status, _is_permanent(action, status), diagnostic)


def _recipient_address(value: object) -> str | None:
    """``rfc822; user@example.com`` (RFC 3464 §2.3.2) or ``utf-8; …`` (RFC 6533 §3)."""
    if value is None:
        return None
    text = _text(value)
    _, _, address = text.rpartition(";")
    return normalise_address(address)


def _status_code(value: str) -> str | None:
    match = _ENHANCED.search(value)
    return ".".join(match.groups()) if match else None


def _action(value: str, status: str | None) -> str:
    """The Action token; a missing or unknown one is read off the status class."""
    token = value.split(None, 1)[0].lower() if value.strip() else ""
    if token in _ACTIONS:
        return token
    by_class = {"2": "delivered", "4": "delayed"}
    return by_class.get(status[0], "failed") if status else "failed"


def _is_permanent(action: str, status: str | None) -> bool:
    # RFC 3464 §2.3.3: "failed" means the MTA gave up; a 4.x.x status there (e.g. 4.4.7,
    # delivery time expired) says the cause was transient, so the address is not dead.
    return action == "failed" and (status is None or status.startswith("5"))


def _diagnostic(value: str) -> str | None:
    """``smtp; 550 5.1.1 User unknown`` -> ``550 5.1.1 User unknown`` (RFC 3464 §2.3.6)."""
    _, _, text = value.partition(";") if ";" in value else ("", "", value)
    text = " ".join(text.split())
    return text[:_MAX_DIAGNOSTIC] or None


# --- the returned message ----------------------------------------------------------------


def _returned_headers(part: Message) -> Message | None:
    """The returned message's header block, whether attached whole or as headers only."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return next((p for p in payload if isinstance(p, Message)), None)
    return HeaderParser(policy=compat32).parsestr(_payload_text(part).lstrip())


def _original_id(headers: Message | None) -> str | None:
    value = headers.get("message-id") if headers is not None else None
    return normalise_message_id(_text(value)) if value is not None else None


def _threading_ids(headers: Message | None) -> tuple[str, ...]:
    if headers is None:
        return ()
    values = [*headers.get_all("in-reply-to", []), *headers.get_all("references", [])]
    found = dict.fromkeys(i for v in values for i in message_ids(_text(v)))
    return tuple(found)


# --- the fallback for plain-text bounces -------------------------------------------------

_DAEMON: Final = re.compile(r"(?i)\b(mailer-daemon|postmaster|mail delivery (sub)?system)\b")
_BOUNCE_SUBJECT: Final = re.compile(
    r"(?i)(undeliver|failure notice|delivery (status|failure|failed|notification)"
    r"|mail delivery failed|returned mail|returned to sender|delivery problem"
    r"|delayed mail|warning: message)"
)
# Where the plain-text report ends and the returned copy begins (qmail, Exim, Postfix).
_COPY_MARKER: Final = re.compile(
    r"(?im)^[ \t]*--[^\n]*"
    r"(below (?:this|the next) line|copy of the message|original message)[^\n]*$"
)
_ADDRESS: Final = r"[^\s<>@:;,\"]+@[A-Za-z0-9.\[\]:-]+"
# Postfix "<a@b>: host x said: 550 …" and qmail "<a@b>:" then the reason (RFC 5321 codes).
_ANGLE_BLOCK: Final = re.compile(
    rf"(?m)^<({_ADDRESS})>(?:\s*\(expanded from <[^>]*>\))?:[ \t]*(.*(?:\n(?!\n|<).*)*)"
)
# Exim: a header sentence, then "  a@b" (optionally "a@b:") and more-indented reason lines.
_EXIM_HEADER: Final = re.compile(
    r"(?i)(following address(?:es|\(es\))? failed"
    r"|(?:has|have) not yet been delivered (?:is|are))\s*:[ \t]*\n"
)
_EXIM_BLOCK: Final = re.compile(
    rf"(?m)^[ \t]{{1,4}}<?({_ADDRESS})>?:?[ \t]*\n((?:[ \t]{{3,}}.*\n?)*)"
)
_DELAYED: Final = re.compile(r"(?i)(not yet been delivered|warning only|has been delayed)")


def _looks_like_bounce(msg: Message) -> bool:
    """The fallback reads only mail a mail system sent, never a person's text."""
    if _type(msg) == "multipart/report":
        return True
    sender = _text(msg.get("from", ""))
    return bool(_DAEMON.search(sender) or _BOUNCE_SUBJECT.search(_text(msg.get("subject", ""))))


def _report_text(parts: list[Message]) -> str:
    """The first text/plain part: the human-readable notice (RFC 3464 §2.1 calls it the first)."""
    first = next((p for p in parts if _type(p) == "text/plain"), None)
    return _payload_text(first) if first is not None else ""


def plain_text_recipients(text: str) -> list[BouncedRecipient]:
    """Recipients of a Postfix/qmail/Exim plain-text bounce notice (best effort)."""
    notice = _notice(text)
    delayed = bool(_DELAYED.search(notice))
    blocks = [(m[1], m[2]) for m in _ANGLE_BLOCK.finditer(notice)]
    header = _EXIM_HEADER.search(notice)
    if header is not None:
        blocks += [(m[1], m[2]) for m in _EXIM_BLOCK.finditer(notice, header.end())]
    return [r for a, reason in blocks if (r := _fallback_recipient(a, reason, delayed))]


def _notice(text: str) -> str:
    marker = _COPY_MARKER.search(text)
    return normalise_newlines(text if marker is None else text[: marker.start()])


def _fallback_recipient(address: str, reason: str, delayed: bool) -> BouncedRecipient | None:
    normalised = normalise_address(address)
    if normalised is None:
        return None
    status = _status_code(reason) or _basic_status(reason)
    action = "delayed" if delayed else "failed"
    diagnostic = " ".join(reason.split())[:_MAX_DIAGNOSTIC] or None
    return BouncedRecipient(normalised, action, status, _is_permanent(action, status), diagnostic)


def _basic_status(reason: str) -> str | None:
    """A bare SMTP reply code as its RFC 3463 class: ``550`` -> ``5.0.0``."""
    match = _BASIC.search(reason)
    return f"{match[1]}.0.0" if match else None


def _inline_returned_headers(text: str) -> Message | None:
    """The header block of a copy pasted in after the notice (qmail, Exim)."""
    marker = _COPY_MARKER.search(text)
    if marker is None:
        return None
    lines = text[marker.end() :].lstrip("\n").split("\n")
    # Some notices add a translated marker line or two before the copy (newmail.ru).
    start = next((i for i, line in enumerate(lines[:4]) if is_header_line(line)), None)
    if start is None:
        return None
    return HeaderParser(policy=compat32).parsestr("\n".join(lines[start:]))
