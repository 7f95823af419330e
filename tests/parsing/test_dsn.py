"""Delivery reports: RFC 3464/6533 DSNs, the plain-text fallback, and the flufl.bounce corpus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsing import BouncedRecipient, read_delivery_report
from tests.parsing.test_corpus import CORPUS, RECORDS

OUR_ID = "reply.t1.abc123@support.example.com"


def dsn(
    groups: list[str],
    returned: str = "message/rfc822",
    report: str = "message/delivery-status",
    returned_headers: str = f"Message-ID: <{OUR_ID}>\nIn-Reply-To: <customer-1@acme.example>\n",
) -> bytes:
    """A multipart/report (RFC 6522) with one per-message block and the given groups."""
    body = "Reporting-MTA: dns; mx.example.net\n\n" + "\n\n".join(groups) + "\n"
    original = (
        "From: Support <support@example.com>\nTo: jane@acme.example\n"
        f"Subject: Re: [TKT-000001]\n{returned_headers}"
    )
    if returned == "message/rfc822":
        original += "\nThe reply text.\n"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        "To: support@example.com\nSubject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        f"--B\nContent-Type: {report}\n\n{body}\n"
        f"--B\nContent-Type: {returned}\n\n{original}\n--B--\n"
    ).encode()


FAILED_511 = (
    "Final-Recipient: rfc822; Jane@ACME.Example\nAction: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <jane@acme.example>: Recipient address rejected"
)
DELAYED_441 = (
    "Final-Recipient: rfc822; bob@acme.example\nAction: delayed\n"
    "Status: 4.4.1 (no answer from host)\nWill-Retry-Until: Mon, 23 Nov 2026 10:00:00 +0000"
)
NO_STATUS = "Final-Recipient: rfc822;<carol@acme.example>\nAction: failed"
EXPIRED_447 = "Final-Recipient: rfc822; dave@acme.example\nAction: failed\nStatus: 4.4.7"
FORWARDED = (
    "Original-Recipient: rfc822; team@acme.example\n"
    "Final-Recipient: rfc822; erin@mail.acme.example\nAction: failed\nStatus: 5.2.2"
)
GLOBAL = "Final-Recipient: utf-8; jörg@bücher.example\nAction: failed\nStatus: 5.1.1"
DELIVERED = "Final-Recipient: rfc822; frank@acme.example\nAction: delivered\nStatus: 2.0.0"


@dataclass(frozen=True)
class Case:
    raw: bytes
    # (address, action, status, permanent) per recipient, in order
    recipients: list[tuple[str, str, str | None, bool]]
    original_message_id: str | None = OUR_ID


DSN_CASES = {
    "failed-5.1.1": Case(dsn([FAILED_511]), [("Jane@acme.example", "failed", "5.1.1", True)]),
    "delayed-4.4.1": Case(dsn([DELAYED_441]), [("bob@acme.example", "delayed", "4.4.1", False)]),
    "multiple-recipients": Case(
        dsn([FAILED_511, DELAYED_441, DELIVERED]),
        [
            ("Jane@acme.example", "failed", "5.1.1", True),
            ("bob@acme.example", "delayed", "4.4.1", False),
            ("frank@acme.example", "delivered", "2.0.0", False),
        ],
    ),
    "rfc822-headers-return": Case(
        dsn([FAILED_511], returned="text/rfc822-headers"),
        [("Jane@acme.example", "failed", "5.1.1", True)],
    ),
    "old-message-rfc822-headers-return": Case(
        dsn([FAILED_511], returned="message/rfc822-headers"),
        [("Jane@acme.example", "failed", "5.1.1", True)],
    ),
    "global-delivery-status": Case(
        dsn(
            [GLOBAL],
            report="message/global-delivery-status; charset=utf-8",
            returned="message/global-headers",
        ),
        [("jörg@bücher.example", "failed", "5.1.1", True)],
    ),
    "no-status-is-permanent": Case(
        dsn([NO_STATUS]), [("carol@acme.example", "failed", None, True)]
    ),
    "failed-4.x.x-is-not-permanent": Case(
        dsn([EXPIRED_447]), [("dave@acme.example", "failed", "4.4.7", False)]
    ),
    "original-recipient-wins": Case(
        dsn([FORWARDED]), [("team@acme.example", "failed", "5.2.2", True)]
    ),
    "no-returned-message": Case(
        dsn([FAILED_511], returned="text/plain", returned_headers=""),
        [("Jane@acme.example", "failed", "5.1.1", True)],
        original_message_id=None,
    ),
}


def summary(raw: bytes) -> list[tuple[str, str, str | None, bool]]:
    report = read_delivery_report(raw)
    assert report is not None
    return [(r.address, r.action, r.status, r.permanent) for r in report.recipients]


@pytest.mark.parametrize("case", DSN_CASES.values(), ids=DSN_CASES.keys())
def test_dsn_recipients(case: Case) -> None:
    report = read_delivery_report(case.raw)
    assert report is not None
    assert [(r.address, r.action, r.status, r.permanent) for r in report.recipients] == (
        case.recipients
    )
    assert report.original_message_id == case.original_message_id


def test_diagnostic_code_drops_its_type() -> None:
    report = read_delivery_report(dsn([FAILED_511]))
    assert report is not None
    assert report.recipients[0].diagnostic == (
        "550 5.1.1 <jane@acme.example>: Recipient address rejected"
    )


def test_returned_threading_headers_are_references() -> None:
    headers = (
        f"Message-ID: <{OUR_ID}>\nIn-Reply-To: <c-2@acme.example>\n"
        "References: <c-1@acme.example>\n <c-2@acme.example>\n"
    )
    report = read_delivery_report(dsn([FAILED_511], returned_headers=headers))
    assert report is not None
    assert report.references == ("c-2@acme.example", "c-1@acme.example")


def test_duplicate_groups_give_one_recipient() -> None:
    assert len(summary(dsn([FAILED_511, FAILED_511.replace("Jane", "jane")]))) == 1


# --- the plain-text fallback --------------------------------------------------------------


def plain_bounce(
    body: str, subject: str = "failure notice", sender: str = "MAILER-DAEMON@mx.example.net"
) -> bytes:
    return (f"From: {sender}\nTo: support@example.com\nSubject: {subject}\n\n{body}").encode()


POSTFIX = """\
This is the Postfix program at host mx.example.net.

<jane@Acme.Example>: host mail.acme.example[192.0.2.25] said: 550 5.1.1
    <jane@acme.example>... User unknown (in reply to RCPT TO command)

<bob@acme.example>: host mail.acme.example[192.0.2.25] said: 452 too many
    connections (in reply to RCPT TO command)
"""
QMAIL = f"""\
Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<jane@acme.example>:
Sorry, no mailbox here by that name. (#5.1.1)

<bob@acme.example>:

--- Below this line is a copy of the message.

Return-Path: <support@example.com>
Message-ID: <{OUR_ID}>
Subject: Re: [TKT-000001]

The reply text.
"""
EXIM = """\
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  jane@acme.example
    host mail.acme.example [192.0.2.25]
    SMTP error from remote mail server after RCPT TO:<jane@acme.example>:
    550 No such user here

------ This is a copy of the message, including all the headers. ------
"""
EXIM_DELAY = """\
This message was created automatically by mail delivery software.

A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.net.

The address to which the message has not yet been delivered is:

  bob@acme.example
    host mail.acme.example [192.0.2.25]: Connection timed out

No action is required on your part.
"""
FALLBACK_CASES = {
    "postfix": (
        POSTFIX,
        [
            ("jane@acme.example", "failed", "5.1.1", True),
            ("bob@acme.example", "failed", "4.0.0", False),
        ],
    ),
    "qmail": (
        QMAIL,
        [
            ("jane@acme.example", "failed", "5.1.1", True),
            ("bob@acme.example", "failed", None, True),
        ],
    ),
    "exim": (EXIM, [("jane@acme.example", "failed", "5.0.0", True)]),
    "exim-delay": (EXIM_DELAY, [("bob@acme.example", "delayed", None, False)]),
}


@pytest.mark.parametrize(("body", "expected"), FALLBACK_CASES.values(), ids=FALLBACK_CASES.keys())
def test_plain_text_fallback(body: str, expected: list[Any]) -> None:
    assert summary(plain_bounce(body)) == expected


def test_fallback_reads_the_returned_copy_headers() -> None:
    report = read_delivery_report(plain_bounce(QMAIL))
    assert report is not None
    assert report.original_message_id == OUR_ID


def test_fallback_ignores_addresses_in_the_returned_copy() -> None:
    body = QMAIL.replace("The reply text.", "<mallory@evil.example>: host x said: 550 no")
    assert [r[0] for r in summary(plain_bounce(body))] == ["jane@acme.example", "bob@acme.example"]


def test_fallback_needs_a_mail_system_sender_or_subject() -> None:
    person = plain_bounce(POSTFIX, subject="About the logs", sender="jane@acme.example")
    assert read_delivery_report(person) is None


GARBAGE = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "headers-only": b"Subject: hello\n",
    "human-mail": b"From: jane@acme.example\nSubject: help\n\nNo dial tone.\n",
    "report-without-recipients": dsn(["Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000"]),
    "broken-boundary": b'Content-Type: multipart/report; boundary="X"\n\n--X\n--',
}


@pytest.mark.parametrize("raw", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_gives_none(raw: bytes) -> None:
    assert read_delivery_report(raw) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_never_raises(raw: bytes) -> None:
    report = read_delivery_report(raw)
    assert report is None or all(isinstance(r, BouncedRecipient) for r in report.recipients)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_on_mangled_dsn(noise: str) -> None:
    read_delivery_report(dsn([FAILED_511 + "\n" + noise, noise]))


# --- the corpus: flufl.bounce's expectations ----------------------------------------------

BOUNCE_RECORDS = [r for r in RECORDS if r.get("extra", {}).get("bounced_recipients")]
# Bounce formats the fallback deliberately does not read (it stays small; a DSN part or a
# Postfix/qmail/Exim notice covers the MTAs that send mail to us).
KNOWN_DIFFERENCES = {
    "flufl-bounce/aol_01.txt": (
        "AOL names the recipient as a bare screen name ('screenname'), not an address"
    ),
    "flufl-bounce/groupwise_01.txt": (
        "Exchange/GroupWise 'did not reach the following recipient(s)' text with no DSN part"
    ),
    "flufl-bounce/groupwise_02.txt": (
        "Exchange 5.5 notice as HTML only ('did not reach the following recipient(s)')"
    ),
}


@pytest.mark.parametrize("record", BOUNCE_RECORDS, ids=[r["file"] for r in BOUNCE_RECORDS])
def test_corpus_bounced_recipients(record: dict[str, Any], request: pytest.FixtureRequest) -> None:
    name = record["file"]
    if name in KNOWN_DIFFERENCES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[name]))
    report = read_delivery_report((CORPUS / name).read_bytes())
    found = {r.address.casefold() for r in report.recipients} if report else set()
    assert {a.casefold() for a in record["extra"]["bounced_recipients"]} <= found
    if record["extra"]["temporary_failure"] and report is not None:
        assert not any(r.permanent for r in report.recipients)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"mail corpus not found at {CORPUS}")
def test_corpus_coverage() -> None:
    assert len(BOUNCE_RECORDS) == 12
    assert set(KNOWN_DIFFERENCES) <= {r["file"] for r in BOUNCE_RECORDS}
    assert len(BOUNCE_RECORDS) - len(KNOWN_DIFFERENCES) >= 9
