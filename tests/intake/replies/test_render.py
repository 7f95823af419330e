"""The subject of our replies (one ``Re:``, our ticket tag once, at the end), and the
confirmation as a mail client reads it back."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default

import pytest

from intake.pipeline.assess import assess
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook, load_policy
from intake.replies.render import (
    Sender,
    make_template_environment,
    render_confirmation,
    reply_subject,
)
from parsing import parse_message

# (id, the customer's subject, our reply's subject)
SUBJECT_CASES = [
    ("plain", "Acme – Denver – Echo – P1", "Re: Acme – Denver – Echo – P1 [TKT-000001]"),
    ("counter", "RE[2]: x", "Re: x [TKT-000001]"),
    ("parenthesised-counter", "Re(2): x", "Re: x [TKT-000001]"),
    ("repeated", "Re: Re: x", "Re: x [TKT-000001]"),
    ("german", "AW: x", "Re: x [TKT-000001]"),
    ("forward", "Fwd: x", "Re: x [TKT-000001]"),
    ("our-tag-first", "RE: [TKT-000001] x", "Re: x [TKT-000001]"),
    ("our-tag-last", "Re: x [TKT-000001]", "Re: x [TKT-000001]"),
    ("prefix-after-our-tag", "RE: [TKT-000001] Re: x", "Re: x [TKT-000001]"),
    ("other-tag-kept", "Re: [EXTERNAL] x", "Re: [EXTERNAL] x [TKT-000001]"),
    ("word-starting-with-re", "Replacement handset", "Re: Replacement handset [TKT-000001]"),
    ("only-prefixes", "Re: Fwd:", "Your support request [TKT-000001]"),
    ("header-injection", "x\r\nBcc: a@b", "Re: x Bcc: a@b [TKT-000001]"),
]


@pytest.mark.parametrize(
    ("original", "expected"), [c[1:] for c in SUBJECT_CASES], ids=[c[0] for c in SUBJECT_CASES]
)
def test_reply_subject_has_one_re_and_one_tag(original: str, expected: str) -> None:
    subject = reply_subject(original, "TKT-000001")
    assert subject == expected
    assert subject.count("[TKT-000001]") == 1
    assert subject.lower().count("re:") <= 1


@pytest.mark.parametrize(
    "number", ["INC0000012", "case-00012"], ids=["inc-format", "lower-case-format"]
)
def test_reply_subject_uses_the_number_it_is_given(number: str) -> None:
    assert reply_subject(f"RE: [{number}] x", number) == f"Re: x [{number}]"


# --- the confirmation on the wire, read back by a mail client (issue 11) -----------------

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
IDENTITY = Identity(("support@example.com",), "support@example.com", (), ("provider.example",))
PARENT = "a1@acme.example"
CHAIN = [f"r{n}@acme.example" for n in range(25)]

# (id, From display name, Subject)
ROUND_TRIPS = [
    ("ascii", "Jane Doe", "Acme Corp - Denver office - No dial tone - P1"),
    ("non-ascii", "Jürgen Müller", "Acme – Zürich – Störung der Telefonanlage – P1"),
    ("long-ascii", "Jane Doe", "Acme Corp - Denver office - " + "very " * 30 + "long - P2"),
    # Non-ASCII, so the inbound subject is encoded and reads back with a literal "=?".
    ("literal-encoded-word", "Jane", "Acme – =?utf-8?b?/w==?= – Echo – P3"),
]


def _inbound(name: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = Address(name, addr_spec="jane@acme.example")
    message["To"] = "support@example.com"
    message["Message-ID"] = f"<{PARENT}>"
    message["References"] = " ".join(f"<{r}>" for r in CHAIN)
    message.set_content("Company Name: Acme Corp\nContact Phone Number: 303-555-0142\n")
    # Encoded by hand (RFC 2047): the email package's folder raises on a literal "=?".
    encoded = Header(subject, "us-ascii" if subject.isascii() else "utf-8").encode()
    return f"Subject: {encoded}\n".encode("ascii") + message.as_bytes()


@pytest.mark.parametrize(
    ("name", "subject"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS]
)
def test_the_confirmation_reads_back_with_the_headers_it_was_built_from(
    name: str, subject: str
) -> None:
    assessment = assess(
        parse_message(_inbound(name, subject)),
        "jane@acme.example",
        PolicyBook(load_policy("managed-pbx")),
        IDENTITY,
        MONDAY,
    )
    sender = Sender("support@example.com", "Support – NOC", ("noc@provider.example",), "x-loop")
    reply = render_confirmation(
        make_template_environment(),
        assessment,
        number="TKT-000001",
        message_id="c1@example.com",
        sender=sender,
        now=MONDAY,
    )
    parsed = message_from_bytes(reply.raw, policy=default)
    assert str(parsed["From"]) == str(Address("Support – NOC", addr_spec="support@example.com"))
    assert parsed["To"] == "jane@acme.example"
    assert parsed["Cc"] == "noc@provider.example"
    assert assessment.message.subject == subject
    assert parsed["Subject"] == reply_subject(subject, "TKT-000001")
    assert parsed["Message-ID"] == "<c1@example.com>"
    assert parsed["Date"].datetime == MONDAY
    assert parsed["In-Reply-To"] == f"<{PARENT}>"
    # RFC 5322 §3.6.4: the last 20 of the parent's References, then the parent.
    assert parsed["References"] == " ".join(f"<{r}>" for r in [*CHAIN[-20:], PARENT])
    assert parsed["Auto-Submitted"] == "auto-replied"  # RFC 3834 §5
    assert parsed["X-Loop"] == "x-loop"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    assert "TKT-000001" in text.get_content() and "TKT-000001" in html.get_content()
    assert reply.recipients == ("jane@acme.example", "noc@provider.example")
    assert all(len(line) <= 78 for line in reply.raw.split(b"\r\n"))
