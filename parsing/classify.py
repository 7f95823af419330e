"""Who wrote a message: a person, or a machine we must never answer (ARCHITECTURE invariant 4).

This module owns the evidence rules, applied in a fixed order where the first match wins:
our own mail coming back (loop), delivery reports (bounce), automatic replies, mailing
lists, and otherwise a human. Each rule is a small named function; the verdict's reason
names the header and value that decided, for logs and the ticket.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Final

from parsing.addresses import canonical_address
from parsing.types import Classification, ParsedMessage, Verdict

_DAEMON_LOCAL_PARTS: Final = frozenset(
    {"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "postmaster"}
)
# RFC 3464 delivery status, and the other machine reports that ride in multipart/report
# (RFC 6522): disposition notifications (RFC 8098) and ARF feedback (RFC 5965).
_REPORT_PART_TYPES: Final = frozenset(
    {"message/delivery-status", "message/global-delivery-status", "message/feedback-report"}
)
# Subject prefixes that vacation and out-of-office responders write (Exchange/Outlook
# in several languages, Gmail, Zimbra). A subject prefix alone is enough for these.
_AUTO_REPLY_SUBJECT: Final = re.compile(
    r"(?:auto(?:matic)?[- ]?(?:reply|response|answer)?|out of (?:the )?office(?: autoreply)?"
    r"|autosvar|abwesenheitsnotiz|automatische antwort|réponse automatique"
    r"|respuesta automática|risposta automatica|automatisch antwoord"
    r"|fuera de la oficina|absence du bureau)\s*:",
    re.IGNORECASE,
)
_COMMENT: Final = re.compile(r"\([^()]*\)")  # RFC 5322 §3.2.2 comments, e.g. "no (test)"
_LIST_HEADERS: Final = ("list-id", "list-unsubscribe", "list-post", "x-mailing-list")
_LIST_PRECEDENCE: Final = frozenset({"list", "bulk", "junk"})


@dataclass(frozen=True, slots=True)
class _Context:
    envelope_sender: str | None  # None: unknown; "": the null reverse-path <>
    own_addresses: frozenset[str]  # canonical_address spellings
    loop_marker: str | None


_Rule = Callable[[ParsedMessage, _Context], str | None]


def classify(
    msg: ParsedMessage,
    envelope_sender: str | None,
    own_addresses: Iterable[str] = (),
    loop_marker: str | None = None,
) -> Verdict:
    """The first rule with evidence decides; no evidence at all means a human wrote it."""
    context = _Context(
        envelope_sender=envelope_sender,
        own_addresses=frozenset(filter(None, map(canonical_address, own_addresses))),
        loop_marker=loop_marker.strip().casefold() if loop_marker else None,
    )
    for kind, rules in _RULES:
        for rule in rules:
            reason = rule(msg, context)
            if reason:
                return Verdict(kind, reason)
    return Verdict(Classification.HUMAN, "no machine markers")


def _token(value: str) -> str:
    """The value before any ``;`` parameters, without (comments), trimmed and casefolded."""
    return _COMMENT.sub(" ", value).split(";", 1)[0].strip().casefold()


# --- loop: our own mail coming back ------------------------------------------------------


def _loop_header(msg: ParsedMessage, context: _Context) -> str | None:
    for value in msg.header_all("x-loop"):
        folded = value.strip().casefold()
        if context.loop_marker and folded == context.loop_marker:
            return f"X-Loop: {value} is our loop marker"
        named = next((a for a in context.own_addresses if a in folded), None)
        if named:
            return f"X-Loop: {value} names our address {named}"
    return None


def _own_sender(msg: ParsedMessage, context: _Context) -> str | None:
    if msg.from_address and canonical_address(msg.from_address) in context.own_addresses:
        return f"From: {msg.from_address} is our own address"
    return None


# --- bounce: delivery reports ------------------------------------------------------------


def _null_sender(msg: ParsedMessage, context: _Context) -> str | None:
    # RFC 5321 §4.5.5: notifications are sent with a null reverse-path, MAIL FROM:<>.
    if context.envelope_sender is not None:
        if context.envelope_sender.strip().strip("<>").strip() == "":
            return "null envelope sender (MAIL FROM:<>)"
        return None
    return_path = msg.header("return-path")
    if return_path is not None and return_path.strip().strip("<>").strip() == "":
        return f"Return-Path: {return_path.strip() or '<>'} (null reverse-path)"
    return None


def _report_type(msg: ParsedMessage, context: _Context) -> str | None:
    # RFC 6522: multipart/report carries machine-generated reports of any report-type.
    if msg.content_type == "multipart/report":
        return f"Content-Type: {(msg.header('content-type') or msg.content_type)[:120]}"
    return None


def _daemon_sender(msg: ParsedMessage, context: _Context) -> str | None:
    for address in _from_candidates(msg):
        local = address.rpartition("@")[0] if "@" in address else address
        if local.strip().casefold() in _DAEMON_LOCAL_PARTS:
            return f"From: {address} is a mail system sender"
    return None


def _from_candidates(msg: ParsedMessage) -> list[str]:
    if msg.from_address:
        return [msg.from_address]
    # "From: Mail Delivery Subsystem <MAILER-DAEMON>" has no domain, so no from_address.
    try:
        return [a for _, a in getaddresses([msg.header("from") or ""]) if a]
    except Exception:  # getaddresses is lenient but not total on every junk string
        return []


def _report_part(msg: ParsedMessage, context: _Context) -> str | None:
    part = next((t for t in msg.part_types if t in _REPORT_PART_TYPES), None)
    return f"a {part} part" if part else None


# --- auto-reply: RFC 3834 and the de-facto markers ---------------------------------------


def _auto_submitted(msg: ParsedMessage, context: _Context) -> str | None:
    # RFC 3834 §5: any value but "no" (parameters after ";" ignored) marks machine mail.
    value = msg.header("auto-submitted")
    if value is not None and _token(value) not in {"no", ""}:
        return f"Auto-Submitted: {value}"
    return None


def _auto_reply_headers(msg: ParsedMessage, context: _Context) -> str | None:
    # X-Autoreply / X-Autorespond are set by vacation programs on their replies.
    # X-Auto-Response-Suppress is a *request* to others not to auto-reply: not evidence.
    for name in ("x-autoreply", "x-autorespond"):
        value = msg.header(name)
        if value is not None and _token(value) not in {"no", "false", "0"}:
            return f"{name.title()}: {value}"
    generated = msg.header("x-autogenerated")
    if generated is not None and _token(generated) == "reply":
        return f"X-Autogenerated: {generated}"
    precedence = msg.header("precedence")
    if precedence is not None and _token(precedence) == "auto_reply":
        return f"Precedence: {precedence}"
    return None


def _auto_reply_subject(msg: ParsedMessage, context: _Context) -> str | None:
    if _AUTO_REPLY_SUBJECT.match(msg.subject):
        return f"Subject: {msg.subject[:80]} (auto-reply prefix)"
    return None


# --- list: RFC 2369 / RFC 2919 and Precedence --------------------------------------------


def _list_headers(msg: ParsedMessage, context: _Context) -> str | None:
    for name in _LIST_HEADERS:
        value = msg.header(name)
        if value is not None:
            return f"{name.title()}: {value[:120]}"
    precedence = msg.header("precedence")
    if precedence is not None and _token(precedence) in _LIST_PRECEDENCE:
        return f"Precedence: {precedence}"
    return None


_RULES: Final[tuple[tuple[Classification, tuple[_Rule, ...]], ...]] = (
    (Classification.LOOP, (_loop_header, _own_sender)),
    (Classification.BOUNCE, (_null_sender, _report_type, _daemon_sender, _report_part)),
    (Classification.AUTO_REPLY, (_auto_submitted, _auto_reply_headers, _auto_reply_subject)),
    (Classification.LIST, (_list_headers,)),
)
