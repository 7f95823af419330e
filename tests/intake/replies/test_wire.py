"""Our replies on the wire: pre-folded headers and bodies read back as they were meant.

Each case is parsed back with ``email.policy.default`` (what a mail client does) and
must give the same header values and body text the reply was built from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.replies.render import reply_subject
from intake.replies.wire import MAX_LINE, alternative_message, fold_header

IDS = [f"<{n:032x}@customer{n}.example>" for n in range(20)]

# (id, header name, value as built: what a reader must get back)
HEADERS = [
    ("ascii-short", "Subject", "Re: printer down [TKT-000001]"),
    ("ascii-long-folds", "Subject", "Re: " + "word " * 40 + "[TKT-000001]"),
    ("non-ascii-encoded-word", "Subject", "Re: Acme – Zürich – Störung – P1 [TKT-000001]"),
    ("literal-encoded-word", "Subject", reply_subject("=?utf-8?q?not_one?= x", "TKT-000001"),),
    ("cjk-long", "Subject", "Re: " + "電話が使えません " * 12 + "[TKT-000001]"),
    ("references-chain", "References", " ".join(IDS)),
    ("message-id", "Message-ID", "<TKT-000001.confirmation.abc@example.com>"),
    ("recipients", "Cc", ", ".join(f"noc{n}@provider.example" for n in range(12))),
    ("date", "Date", format_datetime(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))),
    ("from-plain", "From", Address("Support", addr_spec="support@example.com")),
    ("from-specials-quoted", "From", Address("Support, NOC", addr_spec="s@example.com")),
    ("from-non-ascii-name", "From", Address("Soporte Técnico", addr_spec="s@example.com")),
]  # fmt: skip


def _parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _reply(headers: list[tuple[str, str | Address]], plain: str = "x\n", html: str = "") -> bytes:
    return alternative_message(headers, plain, html or "<p>x</p>\n")


@pytest.mark.parametrize(("name", "value"), [c[1:] for c in HEADERS], ids=[c[0] for c in HEADERS])
def test_a_header_reads_back_as_it_was_built(name: str, value: str | Address) -> None:
    raw = _reply([(name, value)])
    assert str(_parsed(raw)[name]) == str(value)


@pytest.mark.parametrize(("name", "value"), [c[1:] for c in HEADERS], ids=[c[0] for c in HEADERS])
def test_a_header_is_folded_into_short_crlf_lines(name: str, value: str | Address) -> None:
    folded = fold_header(name, value)
    assert folded.endswith("\r\n")
    lines = folded[:-2].split("\r\n")
    assert all(line.isascii() for line in lines)  # RFC 2047: encoded words, never raw 8-bit
    assert all(len(line) <= MAX_LINE for line in lines)
    assert all(line[:1] in (" ", "\t") for line in lines[1:])  # RFC 5322 §2.2.3 folding
    assert all(line.strip() for line in lines)  # no whitespace-only line


def test_the_header_order_is_kept() -> None:
    names = ["From", "To", "Date", "Message-ID", "In-Reply-To", "References", "Subject"]
    raw = _reply([(n, f"<v{i}@example.com>") for i, n in enumerate(names)])
    assert [k for k in _parsed(raw).keys() if k in names] == names


# (id, plain text, HTML, transfer encoding of the text part)
BODIES = [
    ("ascii-short-lines", "Hello,\n\nticket TKT-000001.\n", "<p>Hello</p>\n", "7bit"),
    ("non-ascii-short-lines", "Grüße, Zürich…\n", "<p>Grüße</p>\n", "8bit"),
    ("long-line", "Severe problems " * 20 + "\nend\n", "<p>" + "x " * 100 + "</p>\n",
     "quoted-printable"),
    ("cjk-long-line", "電話が使えません。" * 30 + "\n", "<p>電話</p>\n", "base64"),
    ("trailing-spaces", "a line with trailing spaces   \n" + "y" * 90 + "\n", "<p/>\n",
     "quoted-printable"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("plain", "html", "encoding"), [c[1:] for c in BODIES], ids=[c[0] for c in BODIES]
)
def test_both_bodies_read_back_as_written(plain: str, html: str, encoding: str) -> None:
    message = _parsed(_reply([("Subject", "x")], plain, html))
    assert message.get_content_type() == "multipart/alternative"
    text, page = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and page is not None
    assert text["Content-Transfer-Encoding"] == encoding
    # The wire has CRLF line ends (RFC 5322 §2.1); a reader's text has them as written.
    assert text.get_content().replace("\r\n", "\n") == plain
    assert page.get_content().replace("\r\n", "\n") == html
    assert not message.defects and not text.defects and not page.defects


def test_every_line_ends_in_crlf_and_no_line_is_over_the_limit() -> None:
    raw = _reply([("Subject", "Re: " + "é " * 200)], "Severe " * 50 + "\n", "<p>" * 80 + "\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= MAX_LINE


def test_the_boundary_occurs_in_no_part() -> None:
    message = _parsed(_reply([("Subject", "x")], "--=_ in the text\n", "<p>--=_</p>\n"))
    boundary = message.get_boundary()
    assert boundary is not None
    assert len(message.get_payload()) == 2  # type: ignore[arg-type]


# Subjects as customers write them: words of any script, dashes, accents, emoji.
_SUBJECT_WORDS = st.one_of(
    st.sampled_from(["Re:", "Acme", "–", "—", "Zürich", "Störung", "P1", "[TKT-000001]",
                     "電話が使えません", "😀", "a_b", "x=y", "?", "Ünïcödé,", "100%"]),
    st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1,
            max_size=30),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_SUBJECT_WORDS, min_size=1, max_size=25).map(" ".join))
def test_any_subject_is_encoded_folded_and_reads_back(subject: str) -> None:
    folded = fold_header("Subject", subject)
    lines = folded[:-2].split("\r\n")
    assert all(line.isascii() and line.strip() for line in lines)
    assert all(len(line) <= MAX_LINE for line in lines)
    assert str(_parsed(_reply([("Subject", subject)]))["Subject"]) == subject


@pytest.mark.parametrize(
    "subject",
    ["Re: Acme – Denver – P1", "Re: Zürich a Störung", "Re: 電話 [TKT-000001]"],
    ids=["dashes", "plain-word-between", "cjk"],
)
def test_only_the_words_with_non_ascii_are_encoded(subject: str) -> None:
    folded = fold_header("Subject", subject)
    plain = [w for w in subject.split(" ") if w.isascii()]
    assert all(f" {word}" in folded for word in plain)
    assert folded.count("=?utf-8?") >= 1
