"""parsing.text helpers: charset chain, encoded words, HTML -> text, new-text extraction."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
