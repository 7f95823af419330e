"""The parse budget's input bounds: no super-linear step sees unbounded input (issue 13).

Each input here took the old code from tens of seconds to many minutes; the
``timeout`` marks are generous bounds on a loaded machine, not measurements.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsing import content_hash, parse_message, read_delivery_report
from parsing.headers import bound_header_value
from parsing.message import HEADER_LIMIT_DEFECT
from parsing.text import split_reply

BASE = "From: Jane <jane@acme.example>\r\nTo: support@example.com\r\nMessage-ID: <m1@x>\r\n"


def mail(headers: str, body: str = "Hello\r\n") -> bytes:
    return (headers + "\r\n" + body).encode("utf-8")


@pytest.mark.timeout(60)
def test_a_line_of_dashes_in_a_bounce_is_read_in_linear_time() -> None:
    notice = "<gone@example.net>: host x said: 550 5.1.1 unknown\n\n" + "-" * 200_000 + "\n"
    raw = mail(
        "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n",
        notice,
    )
    report = read_delivery_report(raw)
    assert report is not None
    assert [r.address for r in report.recipients] == ["gone@example.net"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("width", "lines"), [(30_000, 1), (300, 300), (100, 900)], ids=["one-long", "many", "short"]
)
def test_long_lines_of_on_are_bounded_before_the_reply_library(width: int, lines: int) -> None:
    text = "Thanks for the help.\n" + "\n".join(["On " * width] * lines)
    new_text, _ = split_reply(text)
    assert new_text.startswith("Thanks for the help.")
    assert new_text.count("On") == width * lines  # hidden lines come back whole


def test_the_reply_library_still_splits_an_ordinary_reply() -> None:
    text = "Fixed now.\n\nOn Tue, 1 Dec 2026, Bob <b@x> wrote:\n> old\n" + "x " * 5000
    assert split_reply(text)[0] == "Fixed now."


HUGE_HEADERS = [
    ("cte", "Content-Transfer-Encoding: " + 'x"' * 50_000),
    (
        "rfc2231",
        "Content-Type: text/plain; "
        + ";\r\n ".join(f"p{i}*{i}*=utf-8''%41" for i in range(10_000)),
    ),
    ("to-30000", "To: " + ",\r\n ".join(f"u{i}@x.example" for i in range(30_000))),
    ("params", "Content-Type: text/plain; " + "; ".join(f"a{i}=b" for i in range(20_000))),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "header"), HUGE_HEADERS, ids=[c[0] for c in HUGE_HEADERS])
def test_huge_structured_headers_are_capped_and_recorded(name: str, header: str) -> None:
    raw = mail(
        f"From: Jane <jane@acme.example>\r\nMessage-ID: <m1@x>\r\nSubject: s\r\n{header}\r\n"
    )
    parsed = parse_message(raw)
    assert HEADER_LIMIT_DEFECT in parsed.defects
    assert parsed.from_address == "jane@acme.example"
    assert parsed.body_text.strip() == "Hello"


def test_a_capped_list_is_cut_after_a_separator() -> None:
    value = ", ".join(f"u{i}@x.example" for i in range(5_000))
    bounded, cut = bound_header_value("To", value)
    assert cut and bounded.endswith(".example") and len(bounded) <= 8_192
    assert bound_header_value("Subject", "short") == ("short", False)


BROKEN_NAMES = [
    ("crlf-q", "=?utf-8?q?Jane=0D=0A_victim@evil.example?= <jane@acme.example>"),
    ("unterminated", "=?utf-8?q?_victim@evil.example?= <jane@acme.example>"),
    ("crlf-b-angle", "=?utf-8?b?SmFuZQ0KPGV2aWxAZXZpbC5leGFtcGxlPg==?= <jane@acme.example>"),
]


@pytest.mark.parametrize("header", [c[1] for c in BROKEN_NAMES], ids=[c[0] for c in BROKEN_NAMES])
def test_a_broken_display_name_never_changes_the_address(header: str) -> None:
    parsed = parse_message(mail(f"From: {header}\r\nTo: s@x.example\r\nSubject: x\r\n"))
    assert parsed.from_address == "jane@acme.example"


def _encoded(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return "=?utf-8?q?" + "".join(f"={b:02X}" for b in data) + "?="


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_no_display_name_changes_the_sender(name: str) -> None:
    raw = mail(f"From: {_encoded(name)} <jane@acme.example>\r\nTo: s@x.example\r\nSubject: x\r\n")
    assert parse_message(raw).from_address == "jane@acme.example"


@pytest.mark.timeout(60)
def test_a_megabyte_folded_subject_is_capped_and_hashed_in_linear_time() -> None:
    subject = "\r\n ".join(["dial tone gone"] * 70_000)  # ~1.1 MB of folded lines
    raw = mail(BASE + f"Subject: {subject}\r\n")
    parsed = parse_message(raw)
    assert HEADER_LIMIT_DEFECT in parsed.defects
    assert parsed.subject.startswith("dial tone gone") and len(parsed.subject) <= 16_384
    # The content hash (the accept path's idempotency key) split fields quadratically.
    assert content_hash(b"X-Spam-Score: 1\r\n" + raw) == content_hash(raw)


def test_a_broken_name_in_a_list_drops_only_its_fragment() -> None:
    to = "a@x.example, =?utf-8?q?_victim@evil.example?= <b@y.example>"
    parsed = parse_message(mail(f"From: j@acme.example\r\nTo: {to}\r\nSubject: x\r\n"))
    assert parsed.to == ("a@x.example", "b@y.example")
