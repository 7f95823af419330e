"""Turning bytes, header words and HTML into clean text, and finding the new part of a reply.

This module owns every *text-level* decoding decision of the parsing package:

* bytes -> str with a declared charset that may lie (alias table, then UTF-8, then
  Windows-1252, then Latin-1, which cannot fail);
* RFC 2047 encoded words, read tolerantly (spaces inside, missing ``?=``, bad padding);
* the header-safety rule: no CR, LF or other control character survives in a header value;
* HTML -> plain text with ``html2text`` (no links, images or emphasis; table rows as
  ``cell | cell``; script and style contents never appear);
* the "new text" of a reply: quoted history and signature removed.

Everything here is pure and total: no function raises on any input.
"""

from __future__ import annotations

import binascii
import codecs
import contextlib
import functools
import itertools
import re
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from re import _parser as _sre  # type: ignore[attr-defined]  # no stub: sre_parse, now private
from typing import Any, Final

import html2text
from mailparser_reply.parser import EmailMessage as _ReplyMessage
from mailparser_reply.parser import EmailReply

# Our decoder for Microsoft's ISO-2022-JP (no Python codec has that name): see _decode_cp50220.
_CP50220: Final = "x-cp50220"

# Labels seen in real mail that Python does not know or that lie about their bytes. Each maps
# to the codecs to try, in order, before the generic UTF-8 / Windows-1252 / Latin-1 chain.
# The WHATWG Encoding Standard makes the same substitutions (Latin-1 -> Windows-1252,
# GB2312 -> GB18030, KS C 5601 -> windows-949, Big5 -> Big5-HKSCS).
_CHARSET_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "": (),
    "none": (),
    "default": (),
    "unknown": (),
    "x-unknown": (),
    "unknown-8bit": (),
    "x-user-defined": (),
    "us-ascii": ("ascii",),
    "iso-8859-1": ("cp1252",),
    "latin1": ("cp1252",),
    "latin-1": ("cp1252",),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601": ("cp949",),
    "ksc5601": ("cp949",),
    "euc-kr": ("cp949",),
    "gb2312": ("gb18030",),  # zammad mail031: labelled GB2312, carries GBK bytes
    "gb_2312-80": ("gb18030",),
    "csgb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "x-gbk": ("gb18030",),
    "cp936": ("gb18030",),
    "big5": ("big5hkscs",),
    "shift_jis": ("cp932",),
    "shift-jis": ("cp932",),
    "sjis": ("cp932",),
    "x-sjis": ("cp932",),
    "windows-31j": ("cp932",),
    # ISO-2022-JP is 7-bit; 8-bit bytes under that label are Shift_JIS in practice
    # (zammad mail093), so the Japanese 8-bit codecs follow the strict ones.
    # Outlook and Exchange write Microsoft's variant (CP50220/CP50221): the escapes of
    # RFC 1468, but the NEC and IBM characters of CP932 (①, ㈱, Ⅱ, 髙) in the JIS X 0208
    # rows the standard leaves empty; Python's strict codecs refuse those bytes.
    "iso-2022-jp": (
        "iso2022_jp",
        _CP50220,
        "iso2022_jp_ext",
        "iso2022_jp_2",
        "cp932",
        "euc_jp",
    ),
    "csiso2022jp": ("iso2022_jp", _CP50220),
    "cp50220": (_CP50220,),
    "euc-jp": ("euc_jp", "cp932"),
    "iso-8859-8-i": ("iso-8859-8",),
    "tis-620": ("cp874",),
    "windows-874": ("cp874",),
    "unicode-1-1-utf-7": ("utf-7",),
    "macintosh": ("mac_roman",),
    "x-mac-roman": ("mac_roman",),
}

# Codecs that exist in Python but are not a charset a mail could mean.
_NOT_CHARSETS: Final = frozenset(
    {"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"}
)
_FALLBACK_CODECS: Final = ("utf-8", "cp1252")

# RFC 2047 §2 encoded word, read tolerantly: the text may hold spaces (zammad mail050),
# the charset may carry an RFC 2231 language (``utf-8*en``), and a missing ``=`` of the
# closing ``?=`` at the end of a word is forgiven (mikel bad_subject).
_ENCODED_WORD: Final = re.compile(
    r"=\?(?P<charset>[^?\s*]+)(?:\*[^?\s]*)?\?(?P<enc>[bBqQ])\?(?P<text>[^?]*)(?:\?=|\?(?=\s|$))"
)
_Q_ESCAPE: Final = re.compile(rb"=([0-9A-Fa-f]{2})")
_FOLD: Final = re.compile(r"\r?\n(?=[ \t])|\r(?=[ \t])")
_WHITESPACE_RUN: Final = re.compile(r"\s+")
_SURROGATE: Final = re.compile("[\udc80-\udcff]")

_QUOTE_HEADER: Final = re.compile(
    r"^\s*(?:On\s.{0,200}wrote:|Am\s.{0,200}schrieb.{0,80}:|Le\s.{0,200}a\s+écrit\s*:"
    r"|-{3,}\s*Original Message\s*-{3,}|-{3,}\s*Ursprüngliche Nachricht\s*-{3,})\s*$",
    re.IGNORECASE,
)
# A rule line left at the end once the quote below it is gone (Outlook's "____" line).
_RULE_LINE: Final = re.compile(r"[_\-=*]{5,}")
_REPLY_LANGUAGES: Final = ("en", "de", "fr", "es", "it", "nl", "pl", "sv")
# The reply library costs ~4 µs a character; longer bodies go to the line rule alone.
_MAX_REPLY_INPUT: Final = 100_000
# Its header regexes (``^On\s(.+?\s?.+?)\s?wrote:$`` and the like) backtrack: a line
# costs about the square of its length (100 lines of 300 "On " took 6 s). The longest
# lines are hidden from it behind a token until the sum of squares fits this budget
# (~1 s worst case, while ordinary 76-character text passes whole up to ~25 KB).
_REPLY_LINE_BUDGET: Final = 2_000_000
_HIDDEN_LINE: Final = "intakehiddenline"
# We keep only the library's first reply, which its first header matches decide (a header
# at the very top opens an empty reply, then the next one closes the first): ``_first_reply``
# takes matches one at a time and stops there. Scanning the quoted history with the header
# regex, then scanning again in ``read``, was ~13 % of a ticket (issue 11).
_HIDDEN_TOKEN: Final = re.compile(_HIDDEN_LINE + r"(\d+)x")


def codecs_for(charset: str | None) -> tuple[str, ...]:
    """The codecs to try for a declared ``charset``, most likely first."""
    label = (charset or "").strip().strip("\"'").lower()
    declared = _CHARSET_ALIASES.get(label, (label,) if label else ())
    usable = tuple(name for name in declared if _is_text_codec(name))
    return (*usable, *_FALLBACK_CODECS)


def _is_text_codec(name: str) -> bool:
    if name == _CP50220:
        return True
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return False
    return info.name.replace("-", "_") not in _NOT_CHARSETS


def decode_bytes(data: bytes, charset: str | None = None, hints: Sequence[str] = ()) -> str:
    """Decode ``data`` with ``charset``, then each of ``hints``, then UTF-8 and Windows-1252.

    Latin-1 is the last resort because every byte string is valid Latin-1, so this never
    raises and never drops bytes.
    """
    for codec in _candidate_codecs(charset, hints):
        try:
            return _decode_cp50220(data) if codec == _CP50220 else data.decode(codec)
        except (UnicodeError, LookupError, ValueError):
            continue
    return data.decode("latin-1", errors="replace")


# ISO-2022 escape sequences (RFC 1468) -> the character set they switch to.
_JIS_ESCAPES: Final[dict[bytes, str]] = {
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",  # JIS X 0201 Roman: ASCII but for ¥ and ‾, read as ASCII by mailers
    b"\x1b(I": "katakana",  # JIS X 0201 half-width katakana (CP50222)
    b"\x1b$@": "jis0208",
    b"\x1b$B": "jis0208",
    b"\x1b&@\x1b$B": "jis0208",  # JIS X 0208-1990, announced by "&@"
}
_JIS_ESCAPE: Final = re.compile(rb"\x1b&@\x1b\$B|\x1b[($][@BJI]")


def _decode_cp50220(data: bytes) -> str:
    """Microsoft's ISO-2022-JP: each JIS X 0208 pair maps to its Shift_JIS pair in CP932.

    The JIS -> Shift_JIS arithmetic is the standard one (JIS X 0208 Annex 1); CP932 then
    holds the NEC row 13 and the IBM rows 89-92 that the strict codec rejects. Raises
    UnicodeDecodeError on bytes that are not this encoding, so the next codec is tried.
    """
    out: list[str] = []
    mode = "ascii"
    position = 0
    for match in _JIS_ESCAPE.finditer(data):
        out.append(_decode_jis_run(data[position : match.start()], mode))
        mode = _JIS_ESCAPES[match[0]]
        position = match.end()
    out.append(_decode_jis_run(data[position:], mode))
    return "".join(out)


def _decode_jis_run(run: bytes, mode: str) -> str:
    if mode == "jis0208":
        if len(run) % 2 or any(not 0x21 <= b <= 0x7E for b in run):
            raise UnicodeDecodeError("x-cp50220", run, 0, len(run), "not a JIS X 0208 pair")
        pairs = (_jis_to_sjis(run[i], run[i + 1]) for i in range(0, len(run), 2))
        return b"".join(pairs).decode("cp932")
    if mode == "katakana":
        return bytes(b + 0x80 for b in run).decode("cp932")
    if any(b > 0x7F for b in run):
        raise UnicodeDecodeError("x-cp50220", run, 0, len(run), "8-bit byte in 7-bit text")
    return run.decode("ascii")


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    # Odd JIS rows take the low half of a Shift_JIS trail byte (skipping 0x7F), even the high.
    odd = j2 + (0x1F if j2 <= 0x5F else 0x20)
    return bytes([s1, odd if j1 % 2 else j2 + 0x7E])


def _candidate_codecs(charset: str | None, hints: Sequence[str]) -> Iterator[str]:
    seen: set[str] = set()
    for label in (charset, *hints, None):
        for codec in codecs_for(label):
            if codec not in seen:
                seen.add(codec)
                yield codec


def has_surrogates(value: str) -> bool:
    """True when ``value`` still carries raw bytes as surrogate escapes (not yet text)."""
    return bool(_SURROGATE.search(value))


def unsurrogate(value: str, hints: Sequence[str] = ()) -> str:
    """Decode raw 8-bit bytes the parser kept as surrogate escapes (RFC 6532 or plain junk)."""
    if not has_surrogates(value):
        return value
    raw = value.encode("utf-8", errors="surrogateescape")
    return decode_bytes(raw, None, hints)


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3: unfolding removes each CRLF that is followed by white space."""
    return _FOLD.sub("", value)


def decode_words(value: str, hints: Sequence[str] = ()) -> str:
    """Unfold ``value`` and decode its RFC 2047 encoded words; keep what cannot be decoded.

    White space between two adjacent encoded words is dropped (RFC 2047 §6.2); adjacent
    words in the same charset are joined as bytes first, so a multi-byte character split
    across two words still decodes.
    """
    # Raw 8-bit bytes stay surrogate escapes until we know where they are: inside an
    # encoded word they are that word's charset (Eudora wrote "=?iso-8859-1?Q?Fr\xf6sche?="
    # with the byte unencoded), outside it they are decoded with the message's hints.
    text = unfold(value)
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[position : match.start()]
        if gap and (gap.strip() or not pending):
            out.append(_flush(pending, hints))
            out.append(unsurrogate(gap, hints))
        pending.append((match["charset"], _decode_word_bytes(match["enc"], match["text"])))
        position = match.end()
    out.append(_flush(pending, hints))
    out.append(unsurrogate(text[position:], hints))
    return "".join(out)


def _flush(pending: list[tuple[str, bytes]], hints: Sequence[str]) -> str:
    decoded = [
        decode_bytes(b"".join(data for _, data in group), charset, hints)
        for charset, group in itertools.groupby(pending, key=lambda word: word[0].lower())
    ]
    pending.clear()
    return "".join(decoded)


def _decode_word_bytes(encoding: str, text: str) -> bytes:
    if encoding.lower() == "q":
        # RFC 2047 §4.2: "_" is a space, "=XX" a byte, anything else stands for itself.
        data = _word_bytes(text.replace("_", " "))
        return _Q_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), data)
    return _decode_b(text)


def _word_bytes(text: str) -> bytes:
    """The bytes an encoded word's text stands for; raw 8-bit bytes come back as they were."""
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte made (a caller's own text)
        return text.encode("utf-8", errors="replace")


def _decode_b(text: str) -> bytes:
    compact = "".join(text.split())
    if len(compact.rstrip("=")) % 4 == 1:
        compact = compact.rstrip("=")[:-1]  # a dangling sixth of a byte carries nothing
    try:
        return binascii.a2b_base64(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        return compact.encode("ascii", errors="replace")


def clean_header_text(value: str) -> str:
    """Make a decoded header value safe for one line: control characters become spaces.

    CR/LF smuggled inside an encoded word (``=0D=0A``) would otherwise let a subject
    inject headers into our replies (ARCHITECTURE invariant 8). Runs of white space are
    collapsed and the ends stripped.
    """
    return _WHITESPACE_RUN.sub(" ", _CONTROL_CHARS.sub(" ", value)).strip()


# Unicode categories Cc, Zl and Zp, as one regex rather than a category lookup per
# character: Cc is fixed by the Unicode stability policy (U+0000-U+001F, U+007F-U+009F),
# Zl and Zp are U+2028 and U+2029 alone (tests/parsing/test_text.py checks every code point).
_CONTROL_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def normalise_newlines(text: str) -> str:
    """CRLF and lone CR (old Mac mail, sisimai ``mac/``) become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# html2text escapes Markdown syntax in text ("1\. ", "\- ", "\\"); we want plain text.
_MD_ESCAPES: Final = (
    (re.compile(r"(?m)^([ \t]*\d+)\\\.(?=\s)"), r"\1."),
    (re.compile(r"(?m)^([ \t]*)\\([-+])(?=\s|-)"), r"\1\2"),
    (re.compile(r"\\\\(?=[\\`*_{}\[\]()#+\-.!])"), r"\\"),
)
_TABLE_RULE: Final = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_BLANK_RUNS: Final = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Render HTML as plain text; table rows come out as ``cell | cell``.

    html2text drops <script>, <style> and <head> contents; when it fails on hostile
    markup a tag stripper that also drops those elements takes over.
    """
    converter = html2text.HTML2Text()
    converter.ignore_links = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.body_width = 0
    try:
        rendered = str(converter.handle(_compact_whitespace(html)))
    except Exception:  # html2text is not total on malformed markup; the stripper is
        rendered = strip_tags(html)
    return _tidy_rendered(rendered)


def _compact_whitespace(html: str) -> str:
    r"""Collapse each white-space run to one space or one newline before html2text sees it.

    White space in HTML is insignificant (only <pre> layout is lost), and html2text's
    Markdown-escaping regexes (``^(\s*\d+)\.`` with MULTILINE) backtrack quadratically
    over long runs of blank lines: 40 KB of them took 20 s.
    """
    return _WHITESPACE_RUN.sub(lambda m: "\n" if "\n" in m[0] else " ", html)


def _tidy_rendered(text: str) -> str:
    for pattern, replacement in _MD_ESCAPES:
        text = pattern.sub(replacement, text)
    lines = [line.rstrip() for line in _join_table_rows(text.split("\n"))]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _join_table_rows(lines: list[str]) -> list[str]:
    """Rewrite html2text's Markdown tables (``a| b`` + ``---|---``) as ``a | b`` rows."""
    out: list[str] = []
    in_table = False
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if "|" in line and _TABLE_RULE.match(line):
            in_table = True
            continue
        starts_table = "|" in following and bool(_TABLE_RULE.match(following))
        in_table = "|" in line and (in_table or starts_table)
        out.append(_format_row(line) if in_table else line)
    return out


def _format_row(line: str) -> str:
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return " | ".join(cells)


class _TagStripper(HTMLParser):
    """Collects character data outside <script>, <style>, <head> and <title>."""

    _HIDDEN: Final = frozenset({"script", "style", "head", "title", "template"})
    _BREAKS: Final = frozenset({"br", "p", "div", "tr", "li", "table", "h1", "h2", "h3"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag in self._BREAKS:
            self.chunks.append("\n")
        elif tag in {"td", "th"}:
            self.chunks.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.chunks.append(data)


def strip_tags(html: str) -> str:
    """A last-resort HTML -> text that never raises and never shows script/style text."""
    stripper = _TagStripper()
    # HTMLParser is lenient, but whatever it may raise, keep what was collected so far.
    with contextlib.suppress(Exception):
        stripper.feed(html)
        stripper.close()
    return "".join(stripper.chunks)


def extract_new_text(text: str) -> str:
    """The part of a reply its author wrote: quoted history and signature removed.

    mail-parser-reply does the work; when it finds nothing in a non-empty body (or the
    body is too large for its regexes) the whole body goes to the line-based rule, which
    also cleans the library's answer: ``>`` lines go, and so does everything after an
    ``On … wrote:`` / ``-----Original Message-----`` line.
    """
    return split_reply(text)[0]


def split_reply(text: str) -> tuple[str, str]:
    """(new text, signature) of a reply: ``extract_new_text`` and the signature block below it.

    The signature is what mail-parser-reply tells apart from the new text ("Thanks,\nJane
    Doe\nDirect: …", "Sent from my iPhone"), quoted history removed the same way; empty
    when the library finds none (its lines then stay in the new text).
    """
    if not text.strip():
        return "", ""
    reply = _reply_from_library(text) if len(text) <= _MAX_REPLY_INPUT else None
    body, signature = reply or (None, "")
    # The library leaves ">" lines that no "On … wrote:" header introduces; drop them too.
    new_text = _drop_trailing_rules(strip_quoted(body or text))
    return new_text, _drop_trailing_rules(strip_quoted(signature)) if signature else ""


def _drop_trailing_rules(text: str) -> str:
    lines = text.rstrip().split("\n")
    while len(lines) > 1 and (not lines[-1].strip() or _RULE_LINE.fullmatch(lines[-1].strip())):
        lines.pop()
    return "\n".join(lines).strip()


def _reply_from_library(text: str) -> tuple[str | None, str] | None:
    """(new text or None when empty, signature) as mail-parser-reply reads them."""
    bounded, hidden = _hide_long_lines(text)
    try:
        # keep_hyphen_lists: "- Serial: X" bullets are report fields, not a "-Name" signature.
        message = _ReplyMessage(
            text=bounded, languages=list(_REPLY_LANGUAGES), keep_hyphen_lists=True
        )
        reply = _first_reply(message)
        body = str(reply.body) if reply else ""
        signature = str(reply.signatures or "") if reply else ""
    except Exception:  # a third-party regex engine on hostile text: fall back, never fail
        return None
    if hidden:
        body, signature = (
            _HIDDEN_TOKEN.sub(lambda m: hidden[int(m[1])], t) for t in (body, signature)
        )
    return (body.strip() or None), signature.strip()


def _first_reply(message: _ReplyMessage) -> EmailReply | None:
    """``message.read().replies[0]``, read lazily: the same reply from the same header
    matches, taken only until the first reply with content (``EmailMessage.read`` finds
    every header of the text, then cuts it at each).
    """
    pattern = message.HEADER_REGEX
    if pattern.groups < 2:  # read() flattens group tuples; mirror only that shape
        message.read()
        return message.replies[0] if message.replies else None
    text = message.text
    headers = (g for m in line_matches(pattern, text) for g in m.groups() if g)
    current, previous = 0, ""
    for header in headers:
        # As read() does: found again from just past the previous header (-1: not found).
        position = text.find(header, current + 1 if current > 0 else current)
        content = text[current:position]
        if content.strip():  # read() skips a reply whose stripped content is empty
            return _reply_of(message, previous, content)
        current = position if position >= 0 else 0
        previous = header
    return _reply_of(message, previous, text[current:])


def _reply_of(message: _ReplyMessage, header: str, content: str) -> EmailReply:
    disclaimers, signatures = message._process_signatures_disclaimers(content)
    return EmailReply(
        headers=header, content=content, signatures=signatures, disclaimers=disclaimers
    )


def line_matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, tried only where a match can start when every match of
    ``pattern`` starts at a line start or on a newline (``starts_at_lines``).

    mail-parser-reply's header regex is ~30 alternatives, each opening with ``^`` or
    ``\\n``; ``re`` tries them all at every character, ~1.7 ms for a 5 KB body. At the
    ~2 positions a line this is about 40 times less work, with the same matches: a
    match can begin nowhere else, and ``match`` at a position is what ``search`` tries
    there. An empty match (none of these patterns has one) goes back to ``finditer``,
    whose rule for the next match after it this does not copy.
    """
    if not starts_at_lines(pattern):
        yield from pattern.finditer(text)
        return
    candidate: int | None = 0
    while candidate is not None:
        match = pattern.match(text, candidate)
        if match is None:
            candidate = _next_line_position(text, candidate + 1)
            continue
        if match.end() == match.start():
            yield from pattern.finditer(text, match.start())
            return
        yield match
        candidate = _next_line_position(text, match.end())


def _next_line_position(text: str, position: int) -> int | None:
    """The first position from ``position`` on that is a line start or a newline."""
    if position > len(text):
        return None
    if position == 0 or text[position - 1] == "\n":
        return position
    newline = text.find("\n", position)
    return newline if newline >= 0 else None


@functools.lru_cache(maxsize=16)
def starts_at_lines(pattern: re.Pattern[str]) -> bool:
    """Whether every match of ``pattern`` begins at ``^`` or ``\\A`` or on a ``\\n``,
    on every path through it; False when unsure (the caller then scans everywhere)."""
    return _opens_at_lines(_sre.parse(pattern.pattern, pattern.flags))


def _opens_at_lines(items: Any) -> bool:  # noqa: PLR0911 - a return per opcode
    for op, value in items:
        if op in (_sre.ASSERT, _sre.ASSERT_NOT):
            continue  # a lookaround takes no character: the next item decides
        if op is _sre.AT:
            return value in (_sre.AT_BEGINNING, _sre.AT_BEGINNING_STRING)
        if op is _sre.LITERAL:
            return bool(value == ord("\n"))
        if op is _sre.SUBPATTERN:
            return _opens_at_lines(value[-1])
        if op is _sre.BRANCH:
            return all(_opens_at_lines(branch) for branch in value[1])
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT) and value[0] >= 1:
            return _opens_at_lines(value[2])
        return False
    return False  # an empty pattern matches anywhere


def _hide_long_lines(text: str) -> tuple[str, dict[int, str]]:
    """``text`` with its longest lines replaced by tokens until it fits the line budget."""
    lines = text.split("\n")
    cost = sum(len(line) ** 2 for line in lines)
    hidden: dict[int, str] = {}
    for index in sorted(range(len(lines)), key=lambda i: -len(lines[i])):
        if cost <= _REPLY_LINE_BUDGET:
            break
        cost -= len(lines[index]) ** 2
        hidden[index], lines[index] = lines[index], f"{_HIDDEN_LINE}{index}x"
    return "\n".join(lines), hidden


def strip_quoted(text: str) -> str:
    """Drop ``>``-quoted lines and everything from the first reply-header line on."""
    kept: list[str] = []
    for line in text.split("\n"):
        if _QUOTE_HEADER.match(line):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
    return "\n".join(kept).strip()
