"""Decoding that real clients need (issue 10 item 8), one case per client habit.

Eudora's raw 8-bit bytes inside an encoded word, Outlook's ISO-2022-JP (Microsoft's
CP50220: NEC and IBM characters in rows the standard leaves empty), a text part marked
inline that carries a filename, and a header name followed by white space before its
colon (RFC 5322 §4.5.2). Each message is built here in the shape of the corpus samples.
"""

from __future__ import annotations

import base64

import pytest

from parsing import parse_message
from parsing.text import decode_bytes, decode_words

ESC = b"\x1b"
# ①, ㈱ and Ⅱ are NEC row 13 (0x2D21, 0x2D6A, 0x2D36): CP50220 only. 回線 is JIS X 0208.
MS_JIS = ESC + b"$B" + b"-!-j-6" + b"2s@~" + ESC + b"(B"
MS_TEXT = "①㈱Ⅱ回線"


def mail(headers: bytes, body: bytes = b"Serial Number: SN-1\n") -> bytes:
    return headers + b"\n" + body


ENCODED_WORD_CASES = [
    ("eudora-raw-latin1-in-q", b"=?iso-8859-1?Q?Fr\xf6sche_im_Teich?=", "Frösche im Teich"),
    ("raw-utf8-in-q-word", b"=?utf-8?Q?Gr\xc3\xbc=C3=9Fe?=", "Grüße"),
    ("word-then-raw-gap", b"=?iso-8859-1?Q?Fr=F6sche?= und Kr\xf6ten", "Frösche und Kröten"),
    ("plain-q-still-works", b"=?iso-8859-1?Q?Fr=F6sche?=", "Frösche"),
]


@pytest.mark.parametrize(
    ("value", "decoded"),
    [c[1:] for c in ENCODED_WORD_CASES],
    ids=[c[0] for c in ENCODED_WORD_CASES],
)
def test_raw_bytes_inside_an_encoded_word_are_that_words_charset(
    value: bytes, decoded: str
) -> None:
    raw = mail(b"From: Eudora <e@example.com>\nSubject: " + value + b"\n")
    assert parse_message(raw).subject == decoded


def test_decode_words_never_raises_on_a_lone_surrogate() -> None:
    assert decode_words("=?utf-8?Q?a\ud800b?=") == "a?b"


JIS_CASES = [
    ("ms-variant-nec-row-13", MS_JIS, MS_TEXT),
    ("standard-jis-unchanged", "日本語の件名".encode("iso2022_jp"), "日本語の件名"),
    ("half-width-katakana-escape", ESC + b"(I" + b"6@6E" + ESC + b"(B", "ｶﾀｶﾅ"),
]


@pytest.mark.parametrize(
    ("data", "text"), [c[1:] for c in JIS_CASES], ids=[c[0] for c in JIS_CASES]
)
def test_iso_2022_jp_reads_microsofts_variant(data: bytes, text: str) -> None:
    assert decode_bytes(data, "iso-2022-jp") == text


def test_outlook_iso_2022_jp_subject_and_body() -> None:
    word = b"=?iso-2022-jp?B?" + base64.b64encode(MS_JIS) + b"?="
    raw = mail(
        b"From: a@example.jp\nSubject: " + word + b"\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=iso-2022-jp\nContent-Transfer-Encoding: 7bit\n",
        MS_JIS + b"\n",
    )
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.body_text.strip()) == (MS_TEXT, MS_TEXT)


def test_escape_sequences_are_never_shown_as_text() -> None:
    assert "\x1b" not in decode_bytes(MS_JIS + b"\n" + MS_JIS, "ISO-2022-JP")


MIXED = b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n'


def named_part(disposition: bytes) -> bytes:
    return mail(
        b"From: a@example.com\nSubject: x\n" + MIXED,
        b'--b\nContent-Type: text/plain; charset=utf-8; name="message.txt"\n'
        b"Content-Disposition: " + disposition + b'; filename="message.txt"\n\n'
        b"Serial Number: SN-1\n"
        b'--b\nContent-Type: application/pdf; name="x.pdf"\n'
        b'Content-Disposition: attachment; filename="x.pdf"\n\nJVBER\n--b--\n',
    )


def test_an_inline_text_part_with_a_filename_is_the_body() -> None:
    parsed = parse_message(named_part(b"inline"))
    assert parsed.body_text.strip() == "Serial Number: SN-1"
    assert parsed.new_text.strip() == "Serial Number: SN-1"


def test_an_attached_text_file_is_still_not_the_body() -> None:
    assert parse_message(named_part(b"attachment")).body_text == ""


def test_an_unnamed_text_part_wins_over_a_named_inline_one() -> None:
    raw = mail(
        b"From: a@example.com\nSubject: x\n" + MIXED,
        b"--b\nContent-Type: text/plain\n\nthe body\n"
        b'--b\nContent-Type: text/plain; name="log.txt"\n'
        b'Content-Disposition: inline; filename="log.txt"\n\nlog lines\n--b--\n',
    )
    assert parse_message(raw).body_text.strip() == "the body"


SPACED_CASES = [
    ("subject", b"Subject : Acme - Denver - Echo - P2\n", "subject"),
    ("from", b"From : Jane <jane@acme.example>\n", "from"),
    ("tab", b"Subject\t: Acme - Denver - Echo - P2\n", "subject"),
]


@pytest.mark.parametrize(
    ("line", "name"), [c[1:] for c in SPACED_CASES], ids=[c[0] for c in SPACED_CASES]
)
def test_white_space_before_a_colon_does_not_end_the_headers(line: bytes, name: str) -> None:
    raw = mail(b"To: support@example.com\n" + line + b"Message-ID: <m1@acme.example>\n")
    parsed = parse_message(raw)
    assert parsed.header(name) is not None
    assert parsed.message_id == "m1@acme.example"
    assert parsed.body_text == "Serial Number: SN-1\n"
    assert "MissingHeaderBodySeparatorDefect" not in parsed.defects


def test_the_body_keeps_its_spaced_colons() -> None:
    raw = mail(b"From: a@example.com\nSubject: x\n", b"Note : keep me\n")
    assert parse_message(raw).body_text == "Note : keep me\n"
