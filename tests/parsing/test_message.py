"""parse_message: decoding real-world breakage without ever raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parsing.message as message_module
from parsing import ParsedMessage, content_hash, parse_message, read_headers, read_message_id
from parsing.message import (
    MAX_PARTS,
    PARSE_FAILURE_DEFECT,
    PART_LIMIT_DEFECT,
    _MemoPolicy,
    header_section,
    repair_header_names,
)
from tests.parsing.conftest import assert_clean_text


def mail(headers: str, body: bytes = b"Hello\n", *, crlf: bool = False) -> bytes:
    """A raw message from header lines (str, ASCII) and a body (bytes)."""
    raw = headers.strip("\n").encode("ascii") + b"\n\n" + body
    return raw.replace(b"\n", b"\r\n") if crlf else raw


BASE = "From: Jane <jane@Acme.Example>\nTo: support@example.com\nMessage-ID: <m1@acme.example>"

# --- subject ----------------------------------------------------------------------------

SUBJECT_CASES = [
    ("plain", b"Subject: Hello world", "Hello world"),
    ("folded", b"Subject: Hello\n  world", "Hello world"),
    ("q-word", b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
    ("b-word", b"Subject: =?UTF-8?B?w5xiZXJ3YWNodW5n?=", "Überwachung"),
    ("adjacent-words-join", b"Subject: =?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
    ("word-and-text", b"Subject: Re: =?utf-8?q?caf=C3=A9?= ok", "Re: café ok"),
    ("split-multibyte", b"Subject: =?utf-8?b?w6Q=?= =?utf-8?b?w7Y=?=", "äö"),
    ("crlf-injection", b"Subject: =?utf-8?q?a=0D=0AInjected:_x?=", "a Injected: x"),
    ("encoded-tab-and-nul", b"Subject: =?utf-8?q?a=09=00b?=", "a b"),
    ("spaces-inside-word", b"Subject: =?us-ascii?Q?ABC / 123 / West?=", "ABC / 123 / West"),
    ("missing-closing-equals", b"Subject: =?UTF-8?B?SGk=?= =?UTF-8?B?ISAg?", "Hi!"),
    ("unknown-charset-label", b"Subject: =?x-bogus?q?caf=E9?=", "café"),
    ("charset-none", b"Subject: =?NONE?B?VEVTVA=?=", "TEST"),
    ("gb2312-with-gbk-bytes", b"Subject: =?GB2312?B?g8iRqsGm?=", "內應力"),
    ("ks_c_5601", b"Subject: =?ks_c_5601-1987?B?x9GxuQ==?=", "한국"),
    ("rfc2231-language", b"Subject: =?utf-8*en?q?hi?=", "hi"),
    ("raw-utf8", "Subject: Störung – Köln".encode(), "Störung – Köln"),
    ("raw-latin1", "Subject: Formação Verão".encode("latin-1"), "Formação Verão"),
    ("raw-cp1252-dash", b"Subject: Acme \x96 Denver", "Acme – Denver"),
    ("collapses-whitespace", b"Subject:   a \t  b   ", "a b"),
    ("missing", b"X-Other: 1", ""),
]


@pytest.mark.parametrize(
    ("header", "subject"), [c[1:] for c in SUBJECT_CASES], ids=[c[0] for c in SUBJECT_CASES]
)
def test_decodes_subject(header: bytes, subject: str) -> None:
    raw = BASE.encode() + b"\n" + header + b"\n\nbody\n"
    parsed = parse_message(raw)
    assert parsed.subject == subject
    assert "\r" not in parsed.subject and "\n" not in parsed.subject


def test_headers_are_decoded_one_line_values_in_order() -> None:
    raw = mail(BASE + "\nX-Note: =?utf-8?q?line=0D=0Abreak?=\nX-Note: second")
    parsed = parse_message(raw)
    assert [name for name, _ in parsed.headers] == ["from", "to", "message-id", "x-note", "x-note"]
    assert parsed.header_all("x-note") == ("line break", "second")
    assert all("\n" not in v and "\r" not in v for _, v in parsed.headers)


def test_raw_8bit_header_uses_the_declared_body_charset_as_hint() -> None:
    # zammad mail093: a raw Shift_JIS subject in a mail whose body says ISO-2022-JP.
    raw = (
        b"From: a@b.example\nSubject: " + "ツール".encode("cp932") + b"\n"
        b"Content-Type: text/plain; charset=iso-2022-jp\n\nx\n"
    )
    assert parse_message(raw).subject == "ツール"


# --- message ids ------------------------------------------------------------------------

MSGID_CASES = [
    ("brackets", "<abc@example.com>", "abc@example.com"),
    ("spaces-around", "   <abc@example.com>  ", "abc@example.com"),
    ("comment-after", "<abc@example.com> (added by relay)", "abc@example.com"),
    ("no-brackets", "abc@example.com", "abc@example.com"),
    ("first-token-wins", "<a@x> <b@y>", "a@x"),
    ("inner-space-in-brackets", "< abc@example.com >", "abc@example.com"),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in MSGID_CASES], ids=[c[0] for c in MSGID_CASES]
)
def test_normalises_message_id(value: str, expected: str) -> None:
    parsed = parse_message(mail(f"From: a@b.example\nMessage-ID: {value}"))
    assert (parsed.message_id, parsed.message_id_generated) == (expected, False)


@pytest.mark.parametrize(
    "value",
    ["", "<>", "<no-at-sign>", "<a b@example.com>", "just words", "<" + "a" * 1000 + "@x>"],
    ids=["empty", "empty-brackets", "no-at", "inner-space", "words", "too-long"],
)
def test_unusable_message_id_is_generated_from_content(value: str) -> None:
    raw = mail(f"From: a@b.example\nMessage-ID: {value}")
    parsed = parse_message(raw)
    assert parsed.message_id == f"{content_hash(raw)}@generated.invalid"
    assert parsed.message_id_generated


def test_missing_message_id_is_deterministic() -> None:
    raw = mail("From: a@b.example\nSubject: x")
    assert parse_message(raw).message_id == parse_message(raw).message_id
    assert parse_message(raw).message_id_generated


def test_folded_message_id() -> None:
    parsed = parse_message(mail("From: a@b.example\nMessage-ID:\n <folded@example.com>"))
    assert parsed.message_id == "folded@example.com"


def test_threading_ids_keep_order_and_drop_duplicates() -> None:
    raw = mail(
        "From: a@b.example\nIn-Reply-To: <p2@x> (comment)\n"
        "References: <p0@x> <p1@x>\n <p0@x>  <p2@x> <bad id@x>"
    )
    parsed = parse_message(raw)
    assert parsed.in_reply_to == ("p2@x",)
    assert parsed.references == ("p0@x", "p1@x", "p2@x")


# --- addresses --------------------------------------------------------------------------

ADDRESS_CASES = [
    ("name-angle", "Jane Doe <Jane.Doe@Acme.EXAMPLE>", "Jane.Doe@acme.example", "Jane Doe"),
    ("bare", "jane@acme.example", "jane@acme.example", None),
    ("encoded-name", "=?utf-8?q?J=C3=B6rg?= <j@x.example>", "j@x.example", "Jörg"),
    ("quoted-name-comma", '"Doe, Jane" <j@x.example>', "j@x.example", "Doe, Jane"),
    ("comment-name", "j@x.example (Jane Doe)", "j@x.example", "Jane Doe"),
    ("two-mailboxes", "A <a@x.example>, B <b@y.example>", "a@x.example", "A"),
    ("no-domain", "MAILER-DAEMON", None, None),
    ("garbage", "Big Bug bb@bug.com", None, None),
    (
        "encoded-local-part-not-decoded",
        "=?utf-8?Q?agent?=@example.com",
        "=?utf-8?Q?agent?=@example.com",
        None,
    ),
]


@pytest.mark.parametrize(
    ("value", "address", "name"), [c[1:] for c in ADDRESS_CASES], ids=[c[0] for c in ADDRESS_CASES]
)
def test_reads_from(value: str, address: str | None, name: str | None) -> None:
    parsed = parse_message(mail(f"From: {value}\nSubject: x"))
    assert (parsed.from_address, parsed.from_name) == (address, name)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("From: Wilhelmsen Håvard <hw@nordkapp.example>".encode("latin-1"), "Wilhelmsen Håvard"),
        ("From: Jörg <j@x.example>".encode(), "Jörg"),
        (b"From: =?ISO-2022-JP?B?g2OBW4OLIEVYQU1QTEU=?= <bar@example.org>", "ツール EXAMPLE"),
    ],
    ids=["raw-latin1", "raw-utf8", "iso-2022-jp-label-shift-jis-bytes"],
)
def test_from_name_with_8bit_bytes(header: bytes, name: str) -> None:
    parsed = parse_message(header + b"\nSubject: x\n\nbody\n")
    assert parsed.from_name == name
    assert_clean_text(parsed)


def test_missing_from() -> None:
    parsed = parse_message(mail("Subject: x"))
    assert (parsed.from_address, parsed.from_name) == (None, None)


def test_recipient_lists() -> None:
    raw = mail(
        "From: a@b.example\nTo: X <x@One.Example>, y@two.example\nCc: Z <Z@Three.example>\n"
        "Reply-To: r@Four.Example"
    )
    parsed = parse_message(raw)
    assert parsed.to == ("x@one.example", "y@two.example")
    assert parsed.cc == ("Z@three.example",)
    assert parsed.reply_to == ("r@four.example",)


# --- date -------------------------------------------------------------------------------

DATE_CASES = [
    (
        "rfc5322",
        "Sun, 22 Nov 2026 09:00:00 -0700",
        datetime(2026, 11, 22, 9, tzinfo=timezone(timedelta(hours=-7))),
    ),
    (
        "unknown-zone-is-utc",
        "Sun, 22 Nov 2026 09:00:00 -0000",
        datetime(2026, 11, 22, 9, tzinfo=UTC),
    ),
    ("hour-27", "Sun, 22 Nov 2026 27:00:00 +0000", None),
    ("garbage", "yesterday-ish", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in DATE_CASES], ids=[c[0] for c in DATE_CASES]
)
def test_reads_date(value: str, expected: datetime | None) -> None:
    parsed = parse_message(mail(f"From: a@b.example\nDate: {value}"))
    assert parsed.date == expected
    assert parsed.date is None or parsed.date.tzinfo is not None


# --- bodies -----------------------------------------------------------------------------

ALTERNATIVE = b"""From: a@b.example
Content-Type: multipart/alternative; boundary="B"

--B
Content-Type: text/html; charset=utf-8

<p>HTML version</p>
--B
Content-Type: text/plain; charset=utf-8

Plain version
--B--
"""


def test_prefers_text_plain_of_alternative() -> None:
    parsed = parse_message(ALTERNATIVE)
    assert parsed.body_text.strip() == "Plain version"
    assert parsed.body_html is not None and "<p>HTML version</p>" in parsed.body_html
    assert parsed.content_type == "multipart/alternative"


HTML_ONLY = b"""From: a@b.example
Content-Type: text/html; charset=utf-8

<html><head><title>T</title><style>p { color: red }</style>
<script>alert("secret-script")</script></head>
<body><p>Hello <b>there</b> <a href="http://x">link</a> <img src="y" alt="img"></p>
<style>.late { x: 1 }</style><script>var late = "late-script";</script>
<table><tr><td>Serial</td><td>SN-1</td></tr><tr><td>Version</td><td>2</td></tr></table>
</body></html>
"""


def test_html_only_becomes_text_without_script_or_style() -> None:
    parsed = parse_message(HTML_ONLY)
    text = parsed.body_text
    assert "Hello there link" in text
    assert "Serial | SN-1" in text and "Version | 2" in text
    for hidden in ("secret-script", "late-script", "color: red", ".late", "alert"):
        assert hidden not in text
    assert "http://x" not in text and "img" not in text


def test_attachment_text_is_not_the_body() -> None:
    raw = b"""From: a@b.example
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/plain; charset=utf-8; name="log.txt"
Content-Disposition: attachment; filename="log.txt"

attached log
--B
Content-Type: text/plain; charset=utf-8

the body
--B--
"""
    parsed = parse_message(raw)
    assert parsed.body_text.strip() == "the body"
    assert [(a.filename, a.content_type, a.size) for a in parsed.attachments] == [
        ("log.txt", "text/plain", len(b"attached log"))
    ]


def test_inline_text_parts_around_an_image_are_joined() -> None:
    raw = b"""From: a@b.example
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/plain

Hello
--B
Content-Type: image/jpeg; name=photo.jpg
Content-Disposition: inline; filename=photo.jpg
Content-Transfer-Encoding: base64

/9j/4AAQ
--B
Content-Type: text/plain

~Danielle
--B--
"""
    parsed = parse_message(raw)
    assert "Hello" in parsed.body_text and "~Danielle" in parsed.body_text
    assert [a.filename for a in parsed.attachments] == ["photo.jpg"]
    assert parsed.attachments[0].size == 6


def test_rfc2231_filename() -> None:
    raw = b"""From: a@b.example
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/plain

body
--B
Content-Type: application/pdf
Content-Disposition: attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf

%PDF
--B--
"""
    assert [a.filename for a in parse_message(raw).attachments] == ["Rechnung März.pdf"]


def test_body_of_an_attached_message_when_there_is_no_other_text() -> None:
    raw = b"""From: a@b.example
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/plain

--B
Content-Type: message/rfc822
Content-Disposition: attachment; filename="fwd.eml"

From: c@d.example
Subject: inner

forwarded text
--B--
"""
    parsed = parse_message(raw)
    assert parsed.body_text.strip() == "forwarded text"
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("fwd.eml", "message/rfc822")
    ]


def test_unquoted_boundary_with_equals_sign() -> None:
    raw = b"""From: a@b.example
Content-Type: multipart/alternative;
    boundary=----=_NextPart_000_0023

------=_NextPart_000_0023
Content-Type: text/plain; charset="windows-1251"

Filter2: scanned
------=_NextPart_000_0023--
"""
    assert parse_message(raw).body_text.strip() == "Filter2: scanned"


CHARSET_CASES = [
    ("declared-utf8", "utf-8", "Grüße".encode(), "Grüße"),
    ("declared-latin1", "iso-8859-1", "Grüße".encode("latin-1"), "Grüße"),
    ("latin1-label-cp1252-bytes", "iso-8859-1", b"a \x93quoted\x94", "a \u201cquoted\u201d"),
    ("x-unknown-utf8-bytes", "x-unknown", "Grüße".encode(), "Grüße"),
    ("x-unknown-latin-bytes", "x-unknown", "Grüße".encode("cp1252"), "Grüße"),
    ("none-label", "none", b"plain", "plain"),
    ("ks_c_5601-1987", "ks_c_5601-1987", "스티해".encode("cp949"), "스티해"),
    ("gb2312-label-gbk-bytes", "gb2312", "內應力".encode("gbk"), "內應力"),
    ("utf-7", "utf-7", "Grüße".encode("utf-7"), "Grüße"),
    ("lying-ascii", "us-ascii", "Grüße".encode(), "Grüße"),
    ("no-charset-8bit", None, "Grüße".encode(), "Grüße"),
    ("unknown-label-undecodable", "x-nonsense", b"\x81\x8d\x8f", "\x81\x8d\x8f"),
]


@pytest.mark.parametrize(
    ("charset", "payload", "text"),
    [c[1:] for c in CHARSET_CASES],
    ids=[c[0] for c in CHARSET_CASES],
)
def test_body_charset_fallbacks(charset: str | None, payload: bytes, text: str) -> None:
    ctype = f"text/plain; charset={charset}" if charset else "text/plain"
    raw = mail(
        f"From: a@b.example\nContent-Type: {ctype}\nContent-Transfer-Encoding: 8bit", payload
    )
    assert parse_message(raw).body_text.strip() == text


def test_line_endings_become_lf() -> None:
    assert parse_message(mail(BASE, b"a\r\nb\rc\n", crlf=False)).body_text == "a\nb\nc\n"
    assert "\r" not in parse_message(mail(BASE, b"a\nb\n", crlf=True)).body_text


def test_new_text_drops_quoted_history() -> None:
    body = (
        b"The phones are down again.\n\nOn Sun, Nov 22, 2026 at 9:00 AM Support "
        b"<support@example.com> wrote:\n> Ticket TKT-1 was closed.\n> Regards\n"
    )
    parsed = parse_message(mail(BASE, body))
    assert parsed.new_text == "The phones are down again."


def test_new_text_keeps_hyphen_bullets() -> None:
    body = b"Details:\n- Serial: X1\n- Version: 2\n"
    assert "- Serial: X1\n- Version: 2" in parse_message(mail(BASE, body)).new_text


def test_collects_defects() -> None:
    raw = b"From: a@b.example\nContent-Type: multipart/mixed; boundary=B\n\nno parts here\n"
    defects = parse_message(raw).defects
    assert "StartBoundaryNotFoundDefect" in defects
    assert list(defects) == sorted(set(defects))


def test_headers_only_message() -> None:
    parsed = parse_message(b"From: a@b.example\nSubject: test")
    assert (parsed.subject, parsed.body_text, parsed.new_text) == ("test", "", "")


def test_body_only_fragment() -> None:
    parsed = parse_message(b"Just a line of text\nand another\n")
    assert "Just a line of text" in parsed.body_text


# --- budget -----------------------------------------------------------------------------


def nested_bomb(levels: int) -> bytes:
    raw = b"From: a@b.example\nSubject: inner\n\ninnermost\n"
    for level in range(levels):
        raw = (
            f"From: a@b.example\nSubject: level {level}\nContent-Type: message/rfc822\n\n".encode()
            + raw
        )
    return raw


@pytest.mark.timeout(60)
def test_recursion_bomb_is_bounded() -> None:
    raw = nested_bomb(MAX_PARTS + 200)
    parsed = parse_message(raw)
    assert PART_LIMIT_DEFECT in parsed.defects
    assert parsed.subject == f"level {MAX_PARTS + 199}"


@pytest.mark.timeout(60)
def test_many_parts_are_bounded() -> None:
    parts = b"".join(b"--B\nContent-Type: text/plain\n\npart %d\n" % i for i in range(30_000))
    raw = b"From: a@b.example\nContent-Type: multipart/mixed; boundary=B\n\n" + parts + b"--B--\n"
    parsed = parse_message(raw)
    assert PART_LIMIT_DEFECT in parsed.defects
    assert parsed.body_text.startswith("part 0")


@pytest.mark.timeout(60)
def test_huge_header_is_linear() -> None:
    # A guard against super-linear blow-up, not a speed test: the input is large enough that a
    # quadratic path takes minutes, and the generous timeout (not a stopwatch) catches that.
    words = " ".join(["=?utf-8?q?Die_hei=C3=9Fe_Zypernsonne?="] * 50_000)
    parsed = parse_message(f"From: a@b.example\nSubject: {words}\n\nx\n".encode())
    assert parsed.subject.startswith("Die heiße Zypernsonne")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_never_raises_on_bytes(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert "\n" not in parsed.subject and "\r" not in parsed.subject
    assert not any(d.startswith(PARSE_FAILURE_DEFECT) for d in parsed.defects)
    assert_clean_text(parsed)


_HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "Date",
        "Content-Type",
        "References",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Reply-To",
        "In-Reply-To",
    ]
)
_HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "=?utf-8?q?",
            "?=",
            "=?x?b?",
            "<",
            ">",
            "multipart/mixed; boundary=",
            "base64",
            "attachment; filename*=",
            '"',
            "@",
            ",",
            ";",
            "\t",
            " ",
        ]
    ),
).map(lambda v: v.replace("\n", " ").replace("\r", " "))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(_HEADER_NAMES, st.lists(_HEADER_VALUES, max_size=4).map("".join)), max_size=8
    ),
    st.binary(max_size=300),
)
def test_never_raises_on_header_soup(headers: list[tuple[str, str]], body: bytes) -> None:
    raw = "".join(f"{n}: {v}\n" for n, v in headers).encode("utf-8", "surrogatepass") + b"\n" + body
    parsed = parse_message(raw)
    assert not any(d.startswith(PARSE_FAILURE_DEFECT) for d in parsed.defects)
    assert_clean_text(parsed)


# --- read_headers: the header section alone (the board's quarantine page) -----------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            mail("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nFrom: Jane <jane@acme.example>"),
            (("subject", "Grüße"), ("from", "Jane <jane@acme.example>")),
        ),
        (mail("Subject: Hello\n  world", crlf=True), (("subject", "Hello world"),)),
        (b"Subject: no body at all", (("subject", "no body at all"),)),
        (mail("Subject: a", b"Subject: in the body\n"), (("subject", "a"),)),
        (b"\x00\xff\xfe junk without any header", ()),
    ],
    ids=["encoded-words", "folded-crlf", "no-body", "body-not-read", "junk"],
)
def test_read_headers_decodes_the_header_section_only(
    raw: bytes, expected: tuple[tuple[str, str], ...]
) -> None:
    assert read_headers(raw) == expected


# --- header_section: the prefix the header parser reads (the accept path's cost) -----------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n", b"A: 1\r\nB: 2\r\n\r\n"),
        (b"A: 1\nB: 2\n\nbody\n", b"A: 1\nB: 2\n\n"),
        (b"A: 1\rB: 2\r\rbody\r", b"A: 1\rB: 2\r\r"),
        (b"A: 1\r\nB: 2\n\nbody", b"A: 1\r\nB: 2\n\n"),
        (b"A: 1\r\n\nbody", b"A: 1\r\n\n"),
        (b"A: 1\r\r\nbody", b"A: 1\r\r\n"),
        (b"A: 1\r\nB: 2\r\nno empty line", b"A: 1\r\nB: 2\r\nno empty line"),
        (b"A: 1\r\n \r\nB: 2\r\n\r\nbody", b"A: 1\r\n \r\nB: 2\r\n\r\n"),
    ],
    ids=["crlf", "lf", "cr", "mixed", "crlf-then-lf", "cr-then-crlf", "no-body", "blank-fold"],
)
def test_header_section_ends_after_the_first_empty_line(raw: bytes, expected: bytes) -> None:
    assert header_section(raw) == expected


def _full_header_parse(raw: bytes) -> list[tuple[str, str]]:
    """What read_message_id parsed before it cut the header section: the whole message."""
    msg = BytesParser(policy=_MemoPolicy()).parsebytes(repair_header_names(raw), headersonly=True)
    return [(k, str(v)) for k, v in msg.raw_items()]


_LINES = st.lists(
    st.sampled_from(
        [b"Message-ID: <a@b>", b"Subject : x", b" folded", b"", b"no header", b":odd", b"From x"]
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(_LINES, st.lists(st.sampled_from([b"\r\n", b"\n", b"\r"]), min_size=8, max_size=8))
def test_the_header_section_parses_to_the_same_headers_as_the_whole_message(
    lines: list[bytes], breaks: list[bytes]
) -> None:
    raw = b"".join(line + br for line, br in zip(lines, breaks, strict=False))
    raw += b"Message-ID: <z@y>"
    parsed = BytesParser(policy=_MemoPolicy()).parsebytes(
        repair_header_names(header_section(raw)), headersonly=True
    )
    assert [(k, str(v)) for k, v in parsed.raw_items()] == _full_header_parse(raw)
    assert read_message_id(raw) == parse_message(raw).message_id


# --- plain mailboxes: read without the policy's header objects (issue 11) -----------------

_ATOMS = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
_SPECS = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.lists(_ATOMS, min_size=1, max_size=2).map(".".join),
    st.sampled_from(["acme.example", "Acme.Example", "x", "mail.b-c.example", "[127.0.0.1]"]),
)
_SPACE = st.sampled_from(["", " ", "  ", "\t", "\r\n ", " \r\n\t"])
_MAILBOX = st.one_of(
    _SPECS,
    st.builds(lambda s: f"<{s}>", _SPECS),
    st.builds(
        lambda words, space, spec: f"{' '.join(words)}{space}<{spec}>",
        st.lists(_ATOMS, min_size=1, max_size=3),
        _SPACE,
        _SPECS,
    ),
    st.sampled_from(
        ['"Doe, Jane" <j@x.example>', "Jane (Ops) <j@x.example>", "j@x.example (Jane)",
         "Jane Q. Doe <j@x.example>", "=?utf-8?q?J=C3=A4ne?= <j@x.example>", "Ops: a@x.example;",
         "<@route:j@x.example>", "Jäne <j@x.example>", ""]
    ),
)  # fmt: skip
_MAILBOX_LISTS = st.builds(
    lambda boxes, space: ("," + space).join(boxes),
    st.lists(_MAILBOX, min_size=1, max_size=3),
    _SPACE,
)


def _read_without_the_plain_path(raw: bytes) -> ParsedMessage:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(message_module, "plain_mailboxes", lambda _value: None)
        return parse_message(raw)


@settings(max_examples=300, deadline=None)
@given(sender=_MAILBOX_LISTS, to=_MAILBOX_LISTS, space=_SPACE)
def test_plain_mailboxes_read_as_the_policy_reads_them(sender: str, to: str, space: str) -> None:
    raw = (
        f"From: {sender}\r\nTo:{space}{to}\r\nCc: {to}\r\nReply-To: {sender}\r\n"
        "Subject: Acme - 1 Main St - down - P1\r\nMessage-ID: <m1@x.example>\r\n\r\nbody\r\n"
    ).encode()
    assert parse_message(raw) == _read_without_the_plain_path(raw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jane Doe <jane@Acme.example>", [("Jane Doe", "jane@acme.example")]),
        ("jane@acme.example", [("", "jane@acme.example")]),
        ("<j@x.example>, Bob <b@y.example>", [("", "j@x.example"), ("Bob", "b@y.example")]),
        ('"Doe, Jane" <j@x.example>', None),
        ("=?utf-8?q?J?= <j@x.example>", None),
        ("=?utf-8?q?boss?=@x.example", None),
        ("Jane (Ops) <j@x.example>", None),
        ("Jane Q. Doe <j@x.example>", None),
        ("a@x.example,", None),
    ],
    ids=["named", "bare", "list", "quoted", "encoded-name", "encoded-local", "comment",
         "dotted-name", "trailing-comma"],
)  # fmt: skip
def test_only_plain_mailbox_lists_skip_the_policy(
    value: str, expected: list[tuple[str, str]] | None
) -> None:
    assert message_module.plain_mailboxes(value) == expected


def _corpus_mails() -> list[Path]:
    root = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
    return sorted(root.rglob("*.eml")) if root.is_dir() else []


@pytest.mark.skipif(not _corpus_mails(), reason="../shared/corpus is absent")
def test_every_corpus_mail_reads_the_same_with_the_plain_mailbox_path() -> None:
    for path in _corpus_mails():
        raw = path.read_bytes()
        assert parse_message(raw) == _read_without_the_plain_path(raw), path.name
