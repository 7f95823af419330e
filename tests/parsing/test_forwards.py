"""find_forward and report_text: which text is the report when a message forwards one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsing import find_forward, parse_message, report_text

REPORT = "Serial Number: MX-1\nPhone: +1 303 555 0100"
SUBJECT = "Acme Corp – Denver – No dial tone – P1"

# (id, outer subject, body, expected how, expected note)
SHAPES = [
    (
        "gmail",
        "Fwd: x",
        f"FYI\n\n---------- Forwarded message ---------\nFrom: Jane <j@acme.example>\n"
        f"Date: Mon, Nov 23, 2026\nSubject: {SUBJECT}\nTo: bob@acme.example\n\n\n{REPORT}\n",
        "marker",
        "FYI",
    ),
    (
        "gmail-german",
        "WG: x",
        f"---------- Weitergeleitete Nachricht ---------\nVon: Jane <j@acme.example>\n"
        f"Datum: Mo., 23. Nov. 2026\nBetreff: {SUBJECT}\nAn: bob@acme.example\n\n{REPORT}\n",
        "marker",
        "",
    ),
    (
        "apple-unquoted",
        "Fwd: x",
        f"Begin forwarded message:\n\nFrom: Jane <j@acme.example>\nSubject: {SUBJECT}\n"
        f"Date: November 23, 2026\nTo: bob@acme.example\n\n{REPORT}\n",
        "marker",
        "",
    ),
    (
        "outlook-bold-from-html",
        "FW: x",
        f"Please handle.\n\n*From:* Jane <j@acme.example>\n*Sent:* Monday\n*To:* Bob\n"
        f"*Subject:* {SUBJECT}\n\n{REPORT}\n",
        "outlook",
        "Please handle.",
    ),
    (
        "outlook-french-tr",
        "TR: x",
        f"Voir ci-dessous.\n\n________________________________\nDe : Jane <j@acme.example>\n"
        f"Envoyé : lundi 23 novembre 2026 08:20\nÀ : Bob\nObjet : {SUBJECT}\n\n{REPORT}\n",
        "outlook",
        "Voir ci-dessous.",
    ),
    (
        "outlook-spanish-rv",
        "RV: x",
        f"-----Mensaje original-----\nDe: Jane <j@acme.example>\nEnviado el: lunes\n"
        f"Para: Bob\nAsunto: {SUBJECT}\n\n{REPORT}\n",
        "outlook",
        "",
    ),
]


@pytest.mark.parametrize(
    ("subject", "body", "how", "note"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES]
)
def test_finds_the_forwarded_report(subject: str, body: str, how: str, note: str) -> None:
    found = find_forward(body, subject)
    assert found is not None
    assert (found.how, found.subject, found.note) == (how, SUBJECT, note)
    assert found.sender == "Jane <j@acme.example>"
    assert found.text.strip() == REPORT


NOT_FORWARDS = [
    (
        "outlook-block-under-reply",
        "RE: x",
        f"Thanks\n\nFrom: Jane <j@acme.example>\nSent: Mon\nSubject: {SUBJECT}\n\n{REPORT}",
    ),
    (
        "outlook-block-no-prefix",
        SUBJECT,
        f"Thanks\n\nFrom: Jane <j@acme.example>\nSent: Mon\nSubject: {SUBJECT}\n\n{REPORT}",
    ),
    (
        "marker-without-headers",
        "Fwd: x",
        "---------- Forwarded message ---------\nno headers here\n",
    ),
    ("fw-subject-no-block", "FW: x", REPORT),
    ("a-from-field-in-the-report", "FW: x", "From: the Denver office\nSerial Number: MX-1\n"),
]


@pytest.mark.parametrize(
    ("subject", "body"), [n[1:] for n in NOT_FORWARDS], ids=[n[0] for n in NOT_FORWARDS]
)
def test_replies_and_plain_mail_forward_nothing(subject: str, body: str) -> None:
    assert find_forward(body, subject) is None


def test_an_outlook_html_only_forward() -> None:
    html = (
        "<p class=MsoNormal>Please handle.</p><div style='border-top:solid #E1E1E1 1.0pt'>"
        "<p class=MsoNormal><b>From:</b> Jane Doe &lt;j@acme.example&gt;<br><b>Sent:</b> Monday"
        f"<br><b>To:</b> Bob<br><b>Subject:</b> {SUBJECT}</p></div>"
        "<p class=MsoNormal>Serial Number: MX-1</p>"
    )
    raw = (
        "From: Bob <bob@acme.example>\nSubject: FW: phones\nMIME-Version: 1.0\n"
        f"Content-Type: text/html; charset=utf-8\n\n{html}"
    ).encode()
    message = parse_message(raw)
    assert message.forwarded is not None and message.forwarded.subject == SUBJECT
    assert "Serial Number: MX-1" in report_text(message)


def test_report_text_is_the_new_text_without_a_forward() -> None:
    message = parse_message(b"From: a@acme.example\nSubject: x\n\nSerial: 1\n\n> Serial: 2\n")
    assert message.forwarded is None and report_text(message) == message.new_text


_LINE = st.text(alphabet="abcdef XYZ019.,", min_size=1, max_size=30).filter(str.strip)


@settings(max_examples=100, deadline=None)
@given(note=st.lists(_LINE, max_size=4), tail=st.lists(_LINE, max_size=4))
def test_the_note_never_changes_the_forwarded_report(note: list[str], tail: list[str]) -> None:
    body = "\n".join(note) + "\n\n" + SHAPES[0][2] + "\n".join(tail)
    found = find_forward(body, "Fwd: x")
    assert found is not None and found.subject == SUBJECT
    assert found.text.startswith(REPORT)
