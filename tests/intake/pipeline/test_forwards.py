"""Forwarded reports (issue 10 item 5): the report is the forwarded content.

One case per client shape, built from the shapes of the corpus samples (Gmail and
Thunderbird separators as in mikel-mail raw_email8 and django-helpdesk, Outlook's
From/Sent/To/Subject block as in talon outlook.eml, Apple Mail's quoted block, a
message/rfc822 attachment). Each states what a careful NOC operator derives: the
subject read, the missing list and the charge. Quoted history in a *reply* stays out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from intake.pipeline.assess import Assessment, assess
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook, load_policy
from parsing import parse_message
from tests.conftest import COMPLETE_BODY, make_mail

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 10:00 in Denver: business hours
IDENTITY = Identity(("support@example.com",), "support@example.com", (), ())
REPORT_SUBJECT = "Acme Corp – 123 Main St, Denver CO – No dial tone on all lines – P1"
QUOTED = "".join(f"> {line}\n" for line in COMPLETE_BODY.splitlines())


def assessed(raw: bytes) -> Assessment:
    policies = PolicyBook(load_policy("standard"))
    return assess(parse_message(raw), "bob@acme.example", policies, IDENTITY, MONDAY)


def forward(subject: str, body: str) -> bytes:
    return make_mail(subject=subject, body=body, sender="Bob Smith <bob@acme.example>")


GMAIL = f"""FYI, Jane's report below.

---------- Forwarded message ---------
From: Jane Doe <jane@acme.example>
Date: Mon, Nov 23, 2026 at 8:20 AM
Subject: {REPORT_SUBJECT}
To: Bob Smith <bob@acme.example>


{COMPLETE_BODY}
Thanks,
Jane
"""
THUNDERBIRD = f"""Forwarding, please help.

-------- Forwarded Message --------
Subject: \t{REPORT_SUBJECT}
Date: \tMon, 23 Nov 2026 08:20:00 -0700
From: \tJane Doe <jane@acme.example>
To: \tBob Smith <bob@acme.example>

{COMPLETE_BODY}"""
OUTLOOK = f"""Please look at this one urgently.

Bob

________________________________
From: Jane Doe <jane@acme.example>
Sent: Monday, November 23, 2026 8:20 AM
To: Bob Smith <bob@acme.example>
Subject: {REPORT_SUBJECT}

{COMPLETE_BODY}"""
OUTLOOK_DE = f"""Bitte ansehen.

-----Ursprüngliche Nachricht-----
Von: Jane Doe <jane@acme.example>
Gesendet: Montag, 23. November 2026 08:20
An: Bob Smith <bob@acme.example>
Betreff: {REPORT_SUBJECT}

{COMPLETE_BODY}"""
APPLE = f"""See below.

Begin forwarded message:

> From: Jane Doe <jane@acme.example>
> Subject: {REPORT_SUBJECT}
> Date: November 23, 2026 at 8:20:00 AM MST
> To: Bob Smith <bob@acme.example>
>
{QUOTED}"""

# (id, outer subject, body): complete forwarded reports: nothing missing, no charge.
FORWARD_CASES = [
    ("gmail", "Fwd: phones", GMAIL),
    ("gmail-grammar-subject-kept", f"Fwd: {REPORT_SUBJECT}", GMAIL),
    ("thunderbird", "Fwd: phones", THUNDERBIRD),
    ("outlook-fw", "FW: phones down", OUTLOOK),
    ("outlook-de-wg", "WG: Telefone", OUTLOOK_DE),
    ("apple-quoted-block", "Fwd: phones", APPLE),
]


@pytest.mark.parametrize(
    ("subject", "body"), [c[1:] for c in FORWARD_CASES], ids=[c[0] for c in FORWARD_CASES]
)
def test_a_forwarded_complete_report_is_read_and_not_charged(subject: str, body: str) -> None:
    assessment = assessed(forward(subject, body))
    read = assessment.subject
    assert (read.customer, read.location, read.issue, read.priority) == (
        "Acme Corp",
        "123 Main St, Denver CO",
        "No dial tone on all lines",
        1,
    )
    assert assessment.missing_fields == ()
    assert assessment.charges == ()
    assert assessment.fields["serial_number"] == "board: MX-0042-7781; appliance: MXA-0042-7782"
    assert assessment.reply_address == "bob@acme.example"  # the forwarder gets the answer


def attached(note: str, inner: bytes) -> bytes:
    outer = EmailMessage()
    outer["From"] = "Bob Smith <bob@acme.example>"
    outer["To"] = "support@example.com"
    outer["Subject"] = "Fwd: phones"
    outer["Message-ID"] = "<outer-1@acme.example>"
    outer.set_content(note)
    outer.add_attachment(parse_message_bytes(inner), filename="report.eml")
    return outer.as_bytes()


def parse_message_bytes(raw: bytes) -> EmailMessage:
    from email import message_from_bytes, policy

    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_an_attached_message_is_the_report() -> None:
    inner = make_mail(subject=REPORT_SUBJECT, body=COMPLETE_BODY)
    assessment = assessed(attached("See the attached report.\n", inner))
    assert assessment.subject.customer == "Acme Corp" and assessment.subject.priority == 1
    assert assessment.missing_fields == () and assessment.charges == ()
    assert assessment.message.forwarded is not None
    assert assessment.message.forwarded.how == "attached"


def test_the_forwarders_note_counts_too() -> None:
    body = GMAIL.replace("FYI, Jane's report below.", "SW Version: 17.0.5 (updated today)")
    body = body.replace("SW Version: 17.0.4\n", "")
    assessment = assessed(forward("Fwd: phones", body))
    assert assessment.fields["software_version"] == "17.0.5 (updated today)"
    assert assessment.missing_fields == ()


def test_a_forward_of_an_incomplete_report_is_charged_for_what_is_missing() -> None:
    body = GMAIL.replace("Board Serial Number: MX-0042-7781\n", "")
    assessment = assessed(forward("Fwd: phones", body))
    assert assessment.missing_fields == ("serial_number",)
    assert [(c.kind, str(c.amount)) for c in assessment.charges] == [
        ("missing_information", "100.00")
    ]


# A reply: the same Outlook block under "RE:" is quoted history, never the report.
REPLY_CASES = [
    (
        "outlook-re",
        "RE: " + REPORT_SUBJECT,
        OUTLOOK.replace("Please look", "Any news? Please look"),
    ),
    ("outlook-aw", "AW: " + REPORT_SUBJECT, OUTLOOK_DE),
    (
        "gmail-reply",
        "Re: " + REPORT_SUBJECT,
        f"Any news?\n\nOn Mon, Nov 23, 2026 at 8:20 AM Jane <jane@acme.example> wrote:\n{QUOTED}",
    ),
]


@pytest.mark.parametrize(
    ("subject", "body"), [c[1:] for c in REPLY_CASES], ids=[c[0] for c in REPLY_CASES]
)
def test_quoted_history_in_a_reply_is_not_the_report(subject: str, body: str) -> None:
    assessment = assessed(forward(subject, body))
    assert assessment.message.forwarded is None
    assert "serial_number" in assessment.missing_fields
    assert "serial_number" not in assessment.fields
