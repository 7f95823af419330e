"""is_header_line: the one test for "this line starts a header field", str and bytes."""

from __future__ import annotations

import re

import pytest

from parsing import header_line_regex, is_header_line

# (id, line, starts a header field)
LINE_CASES = [
    ("simple", "Subject: hi", True),
    ("no-space-after-colon", "X-Loop:support@example.com", True),
    ("obsolete-space-before-colon", "Subject : hi", True),  # RFC 5322 §4.5.8
    ("obsolete-tab-before-colon", "Subject\t: hi", True),
    ("empty-value", "X-Empty:", True),
    ("continuation-line", " folded value", False),
    ("space-inside-the-name", "Original message: below", False),
    ("no-colon", "Hello there", False),
    ("starts-with-colon", ": nothing", False),
    ("blank", "", False),
    ("non-ascii-name", "Betreff\u00e4: x", False),
]


@pytest.mark.parametrize(
    ("line", "starts"), [c[1:] for c in LINE_CASES], ids=[c[0] for c in LINE_CASES]
)
def test_is_header_line(line: str, starts: bool) -> None:
    assert is_header_line(line) is starts
    if line.isascii():
        assert is_header_line(line.encode("ascii")) is starts


@pytest.mark.parametrize(
    ("line", "starts"),
    [
        ("Return-Path: <a@b>", True),
        ("return-path : <a@b>", True),
        ("Return-Pathway: <a@b>", False),
        ("ReturnXPath: <a@b>", False),
    ],
    ids=["exact", "case-and-obsolete-space", "longer-name", "hyphen-is-literal"],
)
def test_a_named_header_line(line: str, starts: bool) -> None:
    pattern = re.compile(header_line_regex("Return-Path"), re.IGNORECASE)
    assert (pattern.match(line) is not None) is starts
