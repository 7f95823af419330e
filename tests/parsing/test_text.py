"""parsing.text helpers: charset chain, encoded words, HTML -> text, new-text extraction."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mailparser_reply.parser import EmailMessage as ReplyMessage

import parsing.text as text_module
from parsing import parse_message
from parsing.text import (
    clean_header_text,
    decode_bytes,
    decode_words,
    extract_new_text,
    html_to_text,
    strip_quoted,
    strip_tags,
)


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("Grüße".encode(), "utf-8", "Grüße"),
        ("Grüße".encode("cp1252"), "utf-8", "Grüße"),
        (b"\x81\x8d", None, "\x81\x8d"),
        (b"abc", "base64", "abc"),
        (b"abc", "idna", "abc"),
        (b"abc", "'UTF-8'", "abc"),
        ("тест".encode("koi8-r"), "KOI8-R", "тест"),
    ],
    ids=[
        "utf8",
        "lying-utf8",
        "latin1-last-resort",
        "not-a-charset",
        "idna-refused",
        "quoted",
        "koi8-r",
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, text: str) -> None:
    assert decode_bytes(data, charset) == text


def test_decode_words_keeps_undecodable_text() -> None:
    assert decode_words("=?utf-8?q?broken") == "=?utf-8?q?broken"
    assert decode_words("a =?utf-8?x?y?= b") == "a =?utf-8?x?y?= b"


def test_clean_header_text_controls_are_exactly_cc_zl_zp() -> None:
    # The regex stands for the categories: every code point is a space exactly when
    # unicodedata says Cc, Zl or Zp (so a newer Unicode cannot drift silently).
    import unicodedata

    odd = [
        cp
        for cp in range(sys.maxunicode + 1)
        if (clean_header_text(f"a{chr(cp)}b") == "a b")
        != (unicodedata.category(chr(cp)) in {"Cc", "Zl", "Zp"} or chr(cp).isspace())
    ]
    assert odd == []


def test_clean_header_text_removes_controls() -> None:
    assert clean_header_text("a\r\nb\x00c\x7fd\u2028e\u0085f") == "a b c d e f"


def test_html_to_text_tables_and_escapes() -> None:
    html = "<ol><li>one</li></ol><p>1. not a list</p><p>- dash</p>"
    html += "<table><tr><td>A</td><td>B</td></tr><tr><td>C</td><td>D</td></tr></table>"
    text = html_to_text(html)
    assert "A | B" in text and "C | D" in text
    assert "---" not in text
    assert "1. not a list" in text and "- dash" in text
    assert "\\" not in text


@pytest.mark.parametrize(
    "html",
    [
        "<script>evil()</script>ok",
        "<p>a<script>evil()</p>",
        "<style>.evil{}</style>ok",
        "<STYLE TYPE='text/css'>.evil{}</STYLE>ok",
        "<head><script>evil()</script></head><body>ok</body>",
        "<svg><script>evil()</script></svg>ok",
        "<table><tr><td><script>evil()</script>x</td></tr></table>",
        "<!--[if mso]><style>.evil{}</style><![endif]-->ok",
    ],
    ids=["script", "unclosed", "style", "upper", "head", "svg", "in-table", "conditional"],
)
def test_script_and_style_never_appear(html: str) -> None:
    assert "evil" not in html_to_text(html)
    assert "evil" not in strip_tags(html)


def test_strip_quoted_fallback() -> None:
    text = "New text\n> old\nmore new\nOn Mon, 1 Jan 2024, Bob wrote:\nquoted without >\n"
    assert strip_quoted(text) == "New text\nmore new"
    assert strip_quoted("top\n-----Original Message-----\nold") == "top"


def test_new_text_falls_back_when_everything_is_quoted_header() -> None:
    assert extract_new_text("") == ""
    assert extract_new_text("> only quoted\n> lines") == ""


def test_new_text_drops_outlook_block_and_rule_line() -> None:
    text = (
        "Reply above the line\n________________________________________\n"
        "From: A [a@x]\nSent: Friday, 23 March 2012 5:08 p.m.\nTo: B\nSubject: x\n\nold text\n"
    )
    assert extract_new_text(text) == "Reply above the line"


def test_new_text_on_a_huge_body_uses_the_fallback() -> None:
    text = "top\n" + "> " * 400_000
    assert extract_new_text(text) == "top"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_html_to_text_never_raises(html: str) -> None:
    html_to_text(html)
    extract_new_text(html)


@pytest.mark.parametrize(
    "html",
    [" \n" * 20_000, "1." + " \n" * 20_000, "\n\u00a0" * 20_000, "<pre>" + " \n" * 20_000],
    ids=["blank-lines", "number-then-blank-lines", "nbsp-lines", "pre"],
)
@pytest.mark.timeout(60)
def test_html_to_text_is_not_quadratic_on_white_space(html: str) -> None:
    # A guard against super-linear blow-up, not a speed test: the input is large enough that a
    # quadratic path takes minutes, and the generous timeout (not a stopwatch) catches that.
    assert isinstance(html_to_text(html * 5), str)


# --- the reply library reads only up to its first headers (issue 11) ------------------

_QUOTED = "> Thank you for your report.\n> We will keep this ticket open.\n>\n"
# (id, body): each must read the same whether the library sees all of it or not.
THREADS = [
    ("no-header", "Serial: MX-1\nPhone: 303\n\nThanks,\nJane Doe\n"),
    ("one-wrote", "Serial: MX-1\n\nOn Mon, Nov 1 2026 at 09:01, Support wrote:\n" + _QUOTED),
    ("many-wrote", "Serial: MX-1\n\n" + "".join(
        f"> On Mon, Nov {n} 2026 at 09:{n:02}, Support wrote:\n{_QUOTED}" for n in range(1, 30))),
    ("header-at-top", "On Mon, Nov 1 2026 at 09:01, Support wrote:\n" + _QUOTED * 3
     + "On Mon, Nov 2 2026, Support wrote:\n" + _QUOTED * 40),
    ("outlook-blocks", "Please see below.\n\nJane\n\n" + "".join(
        f"From: Support <s@example.com>\nSent: Monday {n}\nTo: Jane\nSubject: Re: x\n\n"
        + _QUOTED for n in range(20))),
    ("french-inner-group", "Voici.\n\n" + "".join(
        f"Le lun. {n} nov. 2026, Support a écrit :\n{_QUOTED}" for n in range(10))),
    ("signature-then-thread", "Serial: MX-1\n\nBest regards,\nJane\n\n" + "".join(
        f"-----Original Message-----\nFrom: a\nSent: {n}\n" + _QUOTED for n in range(10))),
]  # fmt: skip


def _corpus_bodies() -> list[tuple[str, str]]:
    root = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
    if not root.is_dir():
        return []
    bodies = []
    for path in sorted(root.rglob("*.eml")):
        text = parse_message(path.read_bytes()).body_text
        if text.strip():
            bodies.append((str(path.relative_to(root)), text))
    return bodies


def _library_reply(text: str) -> tuple[str, str, str]:
    message = ReplyMessage(
        text=text, languages=list(text_module._REPLY_LANGUAGES), keep_hyphen_lists=True
    )
    reply = message.read().replies[0]
    return reply.body, reply.signatures or "", reply.headers or ""


def _lazy_reply(text: str) -> tuple[str, str, str]:
    message = ReplyMessage(
        text=text, languages=list(text_module._REPLY_LANGUAGES), keep_hyphen_lists=True
    )
    reply = text_module._first_reply(message)
    assert reply is not None
    return reply.body, reply.signatures or "", reply.headers or ""


@pytest.mark.parametrize(
    "text",
    [t[1] for t in THREADS] + [b[1] for b in _corpus_bodies()],
    ids=[t[0] for t in THREADS] + [b[0] for b in _corpus_bodies()],
)
def test_the_first_reply_read_lazily_is_the_librarys_first_reply(text: str) -> None:
    assert _lazy_reply(text) == _library_reply(text)


_HEADER = ReplyMessage(
    text="x", languages=list(text_module._REPLY_LANGUAGES), keep_hyphen_lists=True
).HEADER_REGEX
_PIECES = [
    "On Mon, Nov 1 2026, Support wrote:", "Am 1. Nov. 2026 schrieb Support:", "wrote:",
    "From: a", "Sent: b", "To: c", "Subject: d", "Von: a", "Gesendet: b", "> ", ">",
    "-----Original Message-----", "Le lun. 1 nov. 2026, Support a écrit :", "On ", "\n",
    "\n\n", " ", "text", "*From:* x", "_" * 32, "Serial: MX-1",
]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [t[1] for t in THREADS] + [b[1] for b in _corpus_bodies()],
    ids=[t[0] for t in THREADS] + [b[0] for b in _corpus_bodies()],
)
def test_header_matches_at_line_positions_are_finditers(text: str) -> None:
    assert text_module.starts_at_lines(_HEADER)  # else the fast path is not under test
    lazy = [(m.span(), m.groups()) for m in text_module.line_matches(_HEADER, text)]
    assert lazy == [(m.span(), m.groups()) for m in _HEADER.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_header_matches_at_line_positions_are_finditers_on_any_text(text: str) -> None:
    lazy = [(m.span(), m.groups()) for m in text_module.line_matches(_HEADER, text)]
    assert lazy == [(m.span(), m.groups()) for m in _HEADER.finditer(text)]
    assert _lazy_reply(text) == _library_reply(text)


@pytest.mark.parametrize(
    ("pattern", "at_lines"),
    [
        (r"^a|\nb", True),
        (r"(?:^|\n|\n(?:> ?)*)From:", True),
        (r"(?!On)^x", True),
        (r"(?:^x){2,}", True),
        (r"a|^b", False),
        (r"\s*^x", False),
        (r"(?:^|\n)?x", False),
        (r"(?:^x)*y", False),
        (r"", False),
    ],
    ids=["both", "header-block", "lookahead-first", "repeat", "one-branch-free",
         "spaces-first", "optional-anchor", "repeat-may-skip", "empty"],
)  # fmt: skip
def test_only_patterns_anchored_on_every_path_are_scanned_at_lines(
    pattern: str, at_lines: bool
) -> None:
    compiled = re.compile(pattern, re.MULTILINE)
    assert text_module.starts_at_lines(compiled) is at_lines
    text = "b\nx a y\nFrom: z\nxx\n\nb"
    spans = [m.span() for m in text_module.line_matches(compiled, text)]
    assert spans == [m.span() for m in compiled.finditer(text)]


def test_an_empty_match_goes_back_to_finditer() -> None:
    compiled = re.compile(r"^(?:x)?", re.MULTILINE)  # anchored, and may match empty
    text = "x\n\nax\nx"
    spans = [m.span() for m in text_module.line_matches(compiled, text)]
    assert spans == [m.span() for m in compiled.finditer(text)]


def test_the_reply_library_stops_reading_after_its_first_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[int] = []
    original = text_module.line_matches

    def spy(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
        for match in original(pattern, text):
            taken.append(match.start())
            yield match

    many = dict(THREADS)["many-wrote"]
    monkeypatch.setattr(text_module, "line_matches", spy)
    text_module.split_reply(many)
    assert len(taken) == 1  # the first of its 29 headers closes the first reply
