"""Raw RFC 5322 bytes -> ``ParsedMessage``: the one place that walks MIME and reads headers.

It owns the choice of body part, the header decoding chain, address and Message-ID
normalisation, and the parsing budget. ``parse_message`` never raises: real mail is
broken in every way (the corpus has lying charsets, 8-bit headers, missing boundaries,
a 3 MB recursion bomb and a 210 KB header), and a bad message must never block others
(ARCHITECTURE invariant 3). What cannot be read becomes an empty value or a defect name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import StartBoundaryNotFoundDefect
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy, Policy, compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Final, TypeVar

from parsing.addresses import normalise_address
from parsing.forwards import attached_forward, find_forward
from parsing.headers import bound_header_value, header_line_regex
from parsing.idempotency import content_hash
from parsing.text import (
    clean_header_text,
    decode_bytes,
    decode_words,
    has_surrogates,
    html_to_text,
    normalise_newlines,
    split_reply,
    unfold,
    unsurrogate,
)
from parsing.types import Attachment, Forwarded, ParsedMessage

_T = TypeVar("_T")

# The parse budget. A message may nest message/rfc822 without end (flanker's
# enclosed-endless.eml); nothing a support request needs sits deeper than this.
MAX_DEPTH: Final = 20
MAX_PARTS: Final = 500
# Parts beyond MAX_PARTS are cut off before the parser sees them: each part costs the
# email package a few Content-Type parses, so the raw part count bounds parse time.
_PART_HEADER: Final = re.compile(rb"(?im)^" + header_line_regex("content-type").encode())
PART_LIMIT_DEFECT: Final = "PartLimitExceeded"
# RFC 5322 §4.5.2 obs-optional: field-name *WSP ":". A name is printable ASCII but ":".
_SPACED_NAME: Final = re.compile(rb"(?m)^([\x21-\x39\x3b-\x7e]+)[ \t]+:")
# The first line that is no header field, no spaced one, no continuation and no mbox
# "From " line: the end of the header section as the repaired parser will read it.
_HEADER_SECTION_END: Final = re.compile(rb"(?m)^(?![\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]|From )")
PARSE_FAILURE_DEFECT: Final = "ParseFailure"
# A header value longer than the parsers' budget was cut (parsing.headers.bound_header_value).
HEADER_LIMIT_DEFECT: Final = "HeaderLimitExceeded"

# The first empty line ends the header section (RFC 5322 §2.1). The email package breaks
# lines at CRLF, CR or LF, so an empty line is two breaks in a row, CR LF counting as one.
_EMPTY_LINE: Final = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
_MSGID_TOKEN: Final = re.compile(r"<([^<>]*)>")
_MAX_MSGID_LENGTH: Final = 998  # RFC 5322 §2.1.1 line limit; longer is garbage, not an id


class _MemoPolicy(EmailPolicy):
    """``policy.default`` that parses each distinct header value once per message.

    The parser asks for a part's Content-Type about five times, and the default policy
    re-parses it each time (about 80 % of its cost); memoising keeps the recursion bomb
    at ~0.15 s instead of ~1.5 s. A fresh instance per message: no shared state.

    Values longer than ``bound_header_value`` allows are cut before they are parsed, and
    ``capped`` says so (a finding, not a failure).
    """

    def __init__(self) -> None:
        super().__init__(message_factory=EmailMessage)
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "_capped", [False])

    @property
    def capped(self) -> bool:
        flag: list[bool] = self.__dict__["_capped"]
        return flag[0]

    def header_fetch_parse(self, name: str, value: str) -> Any:
        memo: dict[tuple[str, str], Any] = self.__dict__["_memo"]
        key = (name, value)
        if key not in memo:
            bounded, cut = bound_header_value(name, value)
            if cut:
                self.__dict__["_capped"][0] = True
            memo[key] = super().header_fetch_parse(name, bounded)
        return memo[key]


@dataclass(frozen=True, slots=True)
class _Visit:
    part: Message
    depth: int
    in_attachment: bool  # the part sits inside an attached message; not our body


def parse_message(raw: bytes) -> ParsedMessage:
    """Decode ``raw`` into a ``ParsedMessage``; never raises, whatever the bytes."""
    try:
        return _parse(raw)
    except Exception as exc:  # the last line of defence for invariant 3; see defects
        return _unparsed(raw, exc)


def _parse(raw: bytes) -> ParsedMessage:
    bounded, cut = bound_parts(repair_header_names(raw))
    msg = _parse_tree(bounded)
    visits = list(_walk(msg))
    hints = _declared_charsets(visits)
    headers = _decode_headers(msg, hints)
    first = _first_values(headers)
    undecoded = _first_values(
        (k.lower(), unsurrogate(unfold(v), hints)) for k, v in _raw_headers(msg)
    )
    body_text, body_html, from_attachment = _select_bodies(visits)
    new_text, signature = split_reply(body_text)
    subject = first.get("subject", "")
    forwarded = find_forward(body_text, subject) or _attached_report(
        visits, "" if from_attachment else new_text, hints
    )
    from_name, from_address = _first_mailbox(msg, undecoded.get("from", ""))
    reply_to, to, cc = (_addr_specs(msg, name, undecoded) for name in ("reply-to", "to", "cc"))
    attachments = tuple(_attachments(visits))
    part_types = tuple(_type_of(visit.part) for visit in visits)
    message_id = _message_id(msg)
    # Last: the policy parses header values lazily, so only now is every cut known.
    capped = (isinstance(msg.policy, _MemoPolicy) and msg.policy.capped) or _any_capped(msg)
    defects = _defect_names(visits) | ({PART_LIMIT_DEFECT} if cut else set())
    defects |= {HEADER_LIMIT_DEFECT} if capped else set()
    return ParsedMessage(
        message_id=message_id or generated_message_id(raw),
        message_id_generated=message_id is None,
        subject=subject,
        from_address=from_address,
        from_name=from_name,
        reply_to=reply_to,
        to=to,
        cc=cc,
        in_reply_to=message_ids(first.get("in-reply-to", "")),
        references=message_ids(" ".join(v for k, v in headers if k == "references")),
        date=parse_date(first.get("date", "")),
        content_type=_type_of(msg),
        body_text=body_text,
        body_html=body_html,
        new_text=new_text,
        attachments=attachments,
        headers=headers,
        defects=tuple(sorted(defects)),
        part_types=part_types,
        forwarded=forwarded,
        signature=signature,
    )


def read_message_id(raw: bytes) -> str:
    """``parse_message(raw).message_id`` from the header block alone.

    Cheap enough for the accept path (no MIME walk, no body decoding), for callers that
    need the idempotency key before they parse the whole message.
    """
    try:
        # compat32: the id comes from the raw source values (``raw_items``), which every
        # policy splits alike; policy.default would also build a Content-Type header
        # object at the end of the parse (~0.3 ms) that nothing here reads.
        msg = _parse_header_section(raw, compat32)
        return _message_id(msg) or generated_message_id(raw)
    except Exception:  # parse_message falls back to the generated id in the same case
        return generated_message_id(raw)


def read_headers(raw: bytes) -> tuple[tuple[str, str], ...]:
    """Every header of ``raw``'s header section as (lower-case name, decoded one-line
    value), in order, decoded as ``parse_message`` decodes them; the body is never read.

    For showing a message that could not be processed (the board's quarantine page):
    junk gives what could be read, never an exception.
    """
    try:
        msg = _parse_header_section(raw)
        return _decode_headers(msg, ())
    except Exception:  # a message that breaks the parser still gets its page
        return ()


def header_section(raw: bytes) -> bytes:
    """``raw`` up to and including its first empty line (all of it when there is none).

    The header parser never reads further, so it gives the same headers from this prefix
    as from the whole message, without splitting and decoding every body line (which was
    most of the accept path's cost for a 5 KB mail). A non-header line before the empty
    line ends the headers earlier; the parser still finds that end inside the prefix.
    """
    end = _EMPTY_LINE.search(raw)
    return raw[: end.end()] if end else raw


def _parse_header_section(raw: bytes, policy: Policy | None = None) -> Message:
    section = repair_header_names(header_section(raw))
    return BytesParser(policy=policy or _MemoPolicy()).parsebytes(section, headersonly=True)


def _message_id(msg: Message) -> str | None:
    # Decoded without charset hints, so the header block alone always gives the same id.
    value = next((v for k, v in _raw_headers(msg) if k.lower() == "message-id"), "")
    return normalise_message_id(clean_header_text(decode_words(value)))


def _unparsed(raw: bytes, exc: Exception) -> ParsedMessage:
    """What is left when even the tolerant path failed: the bytes as text, flagged."""
    body = normalise_newlines(decode_bytes(raw))
    return ParsedMessage(
        message_id=generated_message_id(raw),
        message_id_generated=True,
        subject="",
        from_address=None,
        from_name=None,
        reply_to=(),
        to=(),
        cc=(),
        in_reply_to=(),
        references=(),
        date=None,
        content_type="text/plain",
        body_text=body,
        body_html=None,
        new_text=body,
        attachments=(),
        headers=(),
        defects=(f"{PARSE_FAILURE_DEFECT}:{type(exc).__name__}",),
    )


def _guard(read: Callable[[], _T], default: _T) -> _T:
    """Call a lazy accessor of the email package; its header parsers raise on junk."""
    try:
        return read()
    except Exception:
        return default


def _parse_tree(raw: bytes) -> Message:
    """Parse with ``policy.default``; use compat32's tree where it finds lost boundaries.

    The default policy's parameter parser stops an unquoted boundary at "="
    (``boundary=----=_NextPart_000_…`` from Outlook Express reads as ``----``), so the
    multipart is never split; compat32 reads the same header as Outlook meant it.
    """
    tree: Message = BytesParser(policy=_MemoPolicy()).parsebytes(raw)
    lost = _lost_boundaries(tree)
    if not lost:
        return tree
    legacy: Message = BytesParser(policy=compat32).parsebytes(raw)
    return legacy if _lost_boundaries(legacy) < lost else tree


def _lost_boundaries(msg: Message) -> int:
    return sum(
        isinstance(defect, StartBoundaryNotFoundDefect)
        for visit in _walk(msg)
        for defect in visit.part.defects
    )


def repair_header_names(raw: bytes) -> bytes:
    """``Subject : x`` -> ``Subject: x`` in the top-level header section.

    RFC 5322 §4.5.2 (obsolete syntax) allows white space between a field name and its
    colon, and old clients wrote it; the email package takes such a line for the first
    body line and loses every header after it. Continuation lines start with white space
    and never match; the rest of the message is left byte for byte as it was.
    """
    end = _HEADER_SECTION_END.search(raw)
    head = raw[: end.start()] if end else raw
    if not _SPACED_NAME.search(head):
        return raw
    return _SPACED_NAME.sub(rb"\1:", head) + raw[len(head) :]


def bound_parts(raw: bytes) -> tuple[bytes, bool]:
    """Cut ``raw`` before its (MAX_PARTS + 1)-th Content-Type line; say whether it was cut."""
    for count, match in enumerate(_PART_HEADER.finditer(raw), start=1):
        if count > MAX_PARTS:
            return raw[: match.start()], True
    return raw, False


def _walk(msg: Message) -> Iterator[_Visit]:
    """Depth-first, in document order, at most MAX_PARTS parts and MAX_DEPTH levels."""
    stack = [_Visit(msg, 0, in_attachment=False)]
    visited = 0
    while stack and visited < MAX_PARTS:
        visit = stack.pop()
        visited += 1
        yield visit
        if visit.depth >= MAX_DEPTH:
            continue
        inside = visit.in_attachment or (visit.depth > 0 and is_attachment(visit.part))
        children = _children(visit.part)
        stack.extend(_Visit(c, visit.depth + 1, inside) for c in reversed(children))


def _children(part: Message) -> list[Message]:
    payload = _guard(part.get_payload, None)
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def is_attachment(part: Message) -> bool:
    """A part the sender attached: Content-Disposition attachment, or any part with a name."""
    disposition = _guard(part.get_content_disposition, None)
    return disposition == "attachment" or _filename(part) is not None


def _filename(part: Message) -> str | None:
    name = _guard(part.get_filename, None) or _guard(lambda: part.get_param("name"), None)
    if not isinstance(name, str):
        return None
    cleaned = clean_header_text(decode_words(name))
    return cleaned or None


def _declared_charsets(visits: Iterable[_Visit]) -> tuple[str, ...]:
    """Charsets the parts declare, as hints for raw 8-bit header bytes (same sender's client)."""
    found: dict[str, None] = {}
    for visit in visits:
        charset = _guard(visit.part.get_content_charset, None)
        if isinstance(charset, str) and charset not in {"us-ascii", "ascii"}:
            found[charset] = None
    return tuple(found)


def _raw_headers(msg: Message) -> list[tuple[str, str]]:
    # raw_items() yields the stored, unparsed source values (str, 8-bit as surrogates),
    # each cut to its budget before any decoding (bound_header_value).
    return [(name, bound_header_value(name, str(value))[0]) for name, value in msg.raw_items()]


def _any_capped(msg: Message) -> bool:
    return any(bound_header_value(name, str(value))[1] for name, value in msg.raw_items())


def _decode_headers(msg: Message, hints: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Every header as (lower-case name, decoded one-line value), in order.

    Values are decoded from the stored source by ``decode_words`` rather than by the
    default policy's header objects: those replace raw 8-bit bytes with U+FFFD, cannot
    map lying charset labels (GB2312 carrying GBK), raise lazily on some junk, and take
    ~0.5 s on flanker's 210 KB header. The policy is still used where structure matters
    (addresses, content types, parameters), behind ``_guard``.
    """
    return tuple(
        (clean_header_text(name).lower(), clean_header_text(decode_words(value, hints)))
        for name, value in _raw_headers(msg)
    )


def _first_values(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    return first


def _select_bodies(visits: list[_Visit]) -> tuple[str, str | None, bool]:
    """(body_text, body_html, taken from an attached message) from the inline parts, else
    from the first attached message.

    Inline parts of one type in a multipart/mixed are joined (iPhone and Apple Mail split
    the text around inline images: flanker iphone.eml, zammad mail085's two HTML parts);
    in a multipart/alternative the first branch that has the wanted type wins. HTML
    becomes the text only when there is no text/plain at all.
    """
    walked = {id(v.part) for v in visits}
    roots = [visits[0].part] if visits else []
    roots += [v.part for v in visits if _is_attached_message(v)]
    for index, root in enumerate(roots):
        text, html = _bodies_of(root, walked)
        if text or html:
            return text, html, index > 0
    return "", None, False


def _bodies_of(root: Message, walked: set[int]) -> tuple[str, str | None]:
    for named in (False, True):
        plain = _collect(root, "text/plain", walked, named_inline=named)
        html = _collect(root, "text/html", walked, named_inline=named)
        if plain or html:
            joined_html = "\n".join(html) or None
            return ("\n".join(plain) if plain else html_to_text(joined_html or "")), joined_html
    return "", None


def _attached_report(visits: list[_Visit], note: str, hints: tuple[str, ...]) -> Forwarded | None:
    """The first attached message (message/rfc822) as a forwarded report, or None."""
    walked = {id(v.part) for v in visits}
    for visit in visits:
        inner = _children(visit.part)
        if not (_is_attached_message(visit) and inner):
            continue
        headers = _first_values(_decode_headers(inner[0], hints))
        text, html = _bodies_of(visit.part, walked)
        return attached_forward(
            note, headers.get("subject", ""), headers.get("from", ""), text, html
        )
    return None


def _is_attached_message(visit: _Visit) -> bool:
    return (
        visit.depth > 0
        and not visit.in_attachment
        and _type_of(visit.part).startswith("message/")
        and is_attachment(visit.part)
    )


def _collect(
    part: Message, wanted: str, walked: set[int], depth: int = 0, *, named_inline: bool = False
) -> list[str]:
    """Non-blank texts of type ``wanted`` under ``part``, skipping attachments.

    Only parts the bounded walk visited are entered, so the parse budget holds here too.
    ``named_inline``: a text part marked ``inline`` counts even when it has a filename
    (the second pass, for clients that name their only text part; RFC 2183 §2.1 makes
    ``inline`` mean "show it as the body", whatever the name).
    """
    if id(part) not in walked or (depth and is_attachment(part) and _children(part)):
        return []
    children = [c for c in _children(part) if id(c) in walked]
    if not children:
        return _leaf_text(part, wanted, depth, named_inline)
    collect = functools.partial(_collect, wanted=wanted, walked=walked, named_inline=named_inline)
    if _type_of(part) == "multipart/alternative":
        for child in children:
            found = collect(child, depth=depth + 1)
            if found:
                return found
        return []
    # Parts of this message first; an enclosed inline message only if this one has no text.
    enclosed = [c for c in children if _type_of(c).startswith("message/")]
    own = [c for c in children if not _type_of(c).startswith("message/")]
    found = [text for child in own for text in collect(child, depth=depth + 1)]
    for child in enclosed:
        found = found or collect(child, depth=depth + 1)
    return found


def _leaf_text(part: Message, wanted: str, depth: int, named_inline: bool) -> list[str]:
    if _type_of(part) != wanted:
        return []
    if depth and is_attachment(part) and not (named_inline and _is_inline(part)):
        return []
    text = _part_text(part)
    return [text] if text.strip() else []


def _is_inline(part: Message) -> bool:
    return _guard(part.get_content_disposition, None) == "inline"


def _type_of(part: Message) -> str:
    content_type = _guard(part.get_content_type, "text/plain")
    return "application/octet-stream" if has_surrogates(content_type) else content_type


def _part_text(part: Message) -> str:
    """A leaf part's payload as text, trying its declared charset before the fallbacks."""
    charset = _guard(part.get_content_charset, None)
    return normalise_newlines(decode_bytes(_payload_bytes(part), charset))


def _payload_bytes(part: Message) -> bytes:
    data = _guard(lambda: part.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    text = _guard(part.get_payload, None)
    if isinstance(text, str):
        return text.encode("utf-8", errors="surrogateescape")
    return b""


def _attachments(visits: list[_Visit]) -> Iterator[Attachment]:
    """Top-level attachments (not the ones inside an attached message), in order."""
    for visit in visits:
        if visit.depth == 0 or visit.in_attachment or not is_attachment(visit.part):
            continue
        yield Attachment(
            filename=_filename(visit.part),
            content_type=_type_of(visit.part),
            size=_decoded_size(visit.part),
        )


def _decoded_size(part: Message) -> int:
    """Decoded payload bytes; for an attached message, the sum over its bounded walk."""
    if not _children(part):
        return len(_payload_bytes(part))
    return sum(len(_payload_bytes(v.part)) for v in _walk(part) if not _children(v.part))


def _defect_names(visits: Iterable[_Visit]) -> set[str]:
    return {type(defect).__name__ for visit in visits for defect in visit.part.defects}


def _first_mailbox(msg: Message, undecoded: str) -> tuple[str | None, str | None]:
    """(display name, addr-spec) of the first mailbox of From, or (None, None)."""
    mailboxes = _mailboxes(msg, "from", undecoded)
    if not mailboxes:
        return None, None
    name, address = mailboxes[0]
    return (name or None), address


def _addr_specs(msg: Message, name: str, undecoded: dict[str, str]) -> tuple[str, ...]:
    return tuple(address for _, address in _mailboxes(msg, name, undecoded.get(name, "")))


def _mailboxes(msg: Message, name: str, undecoded: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs: the default policy's parser, else ``getaddresses``.

    ``undecoded`` is the unfolded source value. Encoded words inside an addr-spec stay
    as they are: RFC 2047 §5 forbids them there, and the default policy would decode
    ``=?utf-8?q?boss?=@x`` into ``boss@x`` (zammad mail117/118), so a policy result whose
    local part is not literally in the source is not trusted.
    """
    nothing: list[tuple[str, str]] = []
    undecoded, cut = bound_header_value(name, undecoded)  # getaddresses is super-linear too
    plain = None if cut else plain_mailboxes(undecoded)
    if plain is not None:
        return plain

    def fallback() -> list[tuple[str, str]]:
        return [
            (clean_header_text(decode_words(n)), a)
            for n, a in (_split(p) for p in _guard(lambda: getaddresses([undecoded]), nothing))
            if a
        ]

    parsed = _guard(lambda: _policy_mailboxes(msg, name), nothing)
    if not parsed or not _trustworthy(parsed, undecoded):
        return _angle_checked(fallback(), undecoded)
    # "j@x (Jane Doe)": RFC 5322 keeps the name in a comment, which the policy drops. Only
    # then is the second parse needed (issue 11: it was ~2 ms of every message's reading).
    if all(display for display, _ in parsed) or "(" not in undecoded:
        return parsed
    names = {spec.casefold(): display for display, spec in fallback() if display}
    return [(display or names.get(spec.casefold(), ""), spec) for display, spec in parsed]


# The plainest mailbox list, which is most mail's From and To (RFC 5322 §3.4): a display
# name of atoms one space apart, then a dot-atom addr-spec in angle brackets, or the
# addr-spec alone; comma-separated. No quoted string, comment, group, obsolete route or
# 8-bit text: anything else goes to the policy's parser.
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 §3.2.3
_DOT_ATOM: Final = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_PLAIN_MAILBOX: Final = re.compile(
    rf"[ \t]*(?:(?:(?P<name>{_ATEXT}+(?: {_ATEXT}+)*)[ \t]*)?<(?P<spec>{_DOT_ATOM}@{_DOT_ATOM})>"
    rf"|(?P<bare>{_DOT_ATOM}@{_DOT_ATOM}))[ \t]*"
)


def plain_mailboxes(value: str) -> list[tuple[str, str]] | None:
    """(display name, addr-spec) pairs of ``value`` when it is a list of plain mailboxes
    (``_PLAIN_MAILBOX``), read as the default policy reads them; None for any other shape.

    Building the policy's header object for a plain ``Jane Doe <jane@x>`` was ~5 % of a
    ticket (issue 11). ``=?`` is atext too, so a value holding it (an encoded word, RFC
    2047) is never plain.
    """
    if "=?" in value or not value.isascii():
        return None
    mailboxes = []
    for piece in value.split(","):
        match = _PLAIN_MAILBOX.fullmatch(piece)
        if match is None:
            return None
        spec = normalise_address(match["spec"] or match["bare"])
        if not spec:
            return None
        mailboxes.append((clean_header_text(match["name"] or ""), spec))
    return mailboxes


# What a display name may hide an address in: quoted strings, comments, encoded words
# (not one written as a local part, ``=?utf-8?q?boss?=@x``, which RFC 2047 §5 forbids).
_NOT_ADDRESS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|\([^()]*\)|=\?[^?\s]*\?[bBqQ]\?[^?]*\?=(?!@)')
_ANGLE_SPEC: Final = re.compile(r"<([^<>\s\"]+@[^<>\s\"]+)>")


def _angle_checked(mailboxes: list[tuple[str, str]], undecoded: str) -> list[tuple[str, str]]:
    """``mailboxes`` without the ones cut from inside a display name; the raw header's
    ``<addr-spec>``s (RFC 5322 §3.4) stand in for them.

    ``getaddresses`` on text whose display name decodes to CR/LF or holds a broken
    encoded word reads a fragment of the name as the address (``_victim@evil.example?=``).
    An address the sender gave stands outside quoted strings, comments and encoded words,
    so only those are kept, and the angle brackets there say which address was meant.
    """
    visible = _NOT_ADDRESS.sub(" ", undecoded)
    folded = visible.casefold()
    genuine = [(name, spec) for name, spec in mailboxes if spec.casefold() in folded]
    if len(genuine) == len(mailboxes):
        return mailboxes
    known = {spec.casefold() for _, spec in genuine}
    angle = [s for found in _ANGLE_SPEC.findall(visible) if (s := normalise_address(found))]
    checked = genuine + [("", s) for s in dict.fromkeys(angle) if s.casefold() not in known]
    return checked or mailboxes  # a quoted local part ("j doe"@x) is no fragment to drop


def _trustworthy(parsed: list[tuple[str, str]], undecoded: str) -> bool:
    """The policy's reading is used unless it decoded an addr-spec or kept raw 8-bit bytes.

    Undecodable bytes come back from the policy as surrogate escapes; the fallback
    decodes them with the message's charset hints instead.
    """
    source = undecoded.casefold()
    return all(
        spec.rpartition("@")[0].casefold() + "@" in source and not has_surrogates(display + spec)
        for display, spec in parsed
    )


def _policy_mailboxes(msg: Message, name: str) -> list[tuple[str, str]]:
    header = msg.get(name)
    result: list[tuple[str, str]] = []
    for address in getattr(header, "addresses", ()):
        spec = normalise_address(f"{address.username}@{address.domain}")
        if spec:
            result.append((clean_header_text(address.display_name), spec))
    return result


def _split(pair: tuple[str, str]) -> tuple[str, str]:
    name, address = pair
    return name, normalise_address(address) or ""


def normalise_message_id(value: str) -> str | None:
    """The id inside the first ``<...>`` (or the whole value), or None when unusable."""
    match = _MSGID_TOKEN.search(value)
    candidate = (match[1] if match else value).strip()
    if _is_usable_id(candidate):
        return candidate
    return None


def _is_usable_id(candidate: str) -> bool:
    return (
        bool(candidate)
        and "@" in candidate
        and len(candidate) <= _MAX_MSGID_LENGTH
        and not any(ch.isspace() for ch in candidate)
    )


def message_ids(value: str) -> tuple[str, ...]:
    """Every message id in In-Reply-To / References, in order, duplicates dropped."""
    tokens = _MSGID_TOKEN.findall(value) or value.split()
    found: dict[str, None] = {}
    for token in tokens:
        normalised = normalise_message_id(f"<{token}>")
        if normalised:
            found[normalised] = None
    return tuple(found)


def generated_message_id(raw: bytes) -> str:
    """The deterministic id of a message without a usable one (ARCHITECTURE invariant 2)."""
    return f"{content_hash(raw)}@generated.invalid"


def parse_date(value: str) -> datetime | None:
    """The Date header as an aware datetime (naive -> UTC), None when it is not a date."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:  # ValueError (hour 27), TypeError, IndexError, OverflowError ...
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed
