"""Conversations over the real SMTP listener: follow-ups, staff replies, strangers, loops."""

from __future__ import annotations

import email
import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.settings import Settings
from store.db import session_scope
from store.models import InboundMessage, OutboxMessage, Ticket
from tests.conftest import (
    CORPUS,
    RunningDaemon,
    free_port,
    make_mail,
    start_daemon,
    stop_daemon,
    tickets,
    wait_for,
)

STAFF = {
    "intake.staff_domains": ["provider.example"],
    "intake.trusted_authserv_ids": ["mx.example.com"],
}
# Our MTA's verdict on a staff member's mail (RFC 8601), and forgeries of it.
STAFF_PASS = "mx.example.com; dmarc=pass header.from=provider.example"


@pytest.fixture
def staffed(make_settings: Callable[..., Settings], db_url: str) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings(db_url, **STAFF))
    yield running
    stop_daemon(running)


def send(daemon: RunningDaemon, message: EmailMessage | bytes, sender: str) -> None:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    with smtplib.SMTP(daemon.host, daemon.port, timeout=10) as client:
        client.sendmail(sender, ["support@example.com"], raw.replace(b"\n", b"\r\n"))


def replies(daemon: RunningDaemon) -> list[Message]:
    paths = sorted(daemon.app.settings.outbound.directory.glob("*.eml"))
    return [email.message_from_bytes(p.read_bytes(), policy=default) for p in paths]


def reply_to(parent: Message, sender: str, body: str, quote: bool = True) -> EmailMessage:
    """A mail client's reply: threading headers, Re: subject, quoted history."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = "RE: " + str(parent["Subject"]).removeprefix("Re: ")
    message["Message-ID"] = f"<{datetime.now(UTC).timestamp()}.{abs(hash(body))}@client.example>"
    message["In-Reply-To"] = parent["Message-ID"]
    message["References"] = f"{parent.get('References', '')} {parent['Message-ID']}".strip()
    quoted = "\n".join(
        "> " + line for line in parent.get_body(("plain",)).get_content().splitlines()
    )
    message.set_content(body + ("\n\nOn Sun, Support wrote:\n" + quoted if quote else ""))
    return message


def test_a_whole_conversation_threads_into_one_ticket(staffed: RunningDaemon) -> None:
    first = EmailMessage()
    first["From"], first["To"] = "Jane Doe <jane@acme.example>", "support@example.com"
    first["Subject"] = "Acme Corp – Denver – No dial tone – P1"
    first["Message-ID"] = "<start@acme.example>"
    first.set_content("Phone: +1 303 555 0100\nAll our phones are dead since this morning.\n")
    send(staffed, first, "jane@acme.example")
    [confirmation] = wait_for(lambda: replies(staffed))
    [ticket] = tickets(staffed)
    assert "serial_number" in ticket.missing_fields

    details = (
        "Serial Number: board MX-0042, appliance MXA-0042\nSW Version: 17.0.4\nReproducible: yes\n"
        "Description: every handset in the Denver office lost dial tone at 08:10 and "
        "nobody can place or receive calls since then\n"
        "Date/Time: 2026-11-22 08:15\nCalling Number: x2201\nCalled Number: 555 0199\n"
    )
    send(
        staffed,
        reply_to(confirmation, "Jane Doe <jane@acme.example>", details),
        "jane@acme.example",
    )
    ack = wait_for(lambda: len(replies(staffed)) == 2 and replies(staffed)[1])
    assert ack["In-Reply-To"] != confirmation["Message-ID"]
    assert "[TKT-000001]" in ack["Subject"]
    assert "Your report is now complete" in ack.get_body(("plain",)).get_content()
    [ticket] = tickets(staffed)
    assert (
        ticket.missing_fields == []
        and ticket.fields["serial_number"] == "board: MX-0042; appliance: MXA-0042"
    )

    # Issue 13: a forged staff From, bare and under a spoofed Authentication-Results (our
    # id, below a foreign one: written by the sender), is a claim: no response, no "met".
    forged = reply_to(ack, "Sam NOC <sam@provider.example>", "Closing this, all fine.")
    send(staffed, forged, "sam@provider.example")
    spoofed = reply_to(ack, "Sam NOC <sam@provider.example>", "Closing this, really.")
    spoofed["Authentication-Results"] = "relay.evil.example; none"
    spoofed["Authentication-Results"] = STAFF_PASS
    send(staffed, spoofed, "sam@provider.example")

    def claims() -> list[str]:
        [current] = tickets(staffed)
        return [f["code"] for f in current.findings if f["code"] == "unauthenticated_staff"]

    wait_for(lambda: len(claims()) == 2)
    [ticket] = tickets(staffed)
    assert (ticket.first_response_at, ticket.response_met) == (None, None)

    staff = reply_to(ack, "Sam NOC <sam@provider.example>", "We are on it; a tech is dispatched.")
    staff["Authentication-Results"] = STAFF_PASS
    send(staffed, staff, "sam@provider.example")

    def answered() -> Ticket | None:
        [current] = tickets(staffed)
        return current if current.first_response_at else None

    ticket = wait_for(answered)
    assert ticket.response_met is True
    assert len(tickets(staffed)) == 1 and len(replies(staffed)) == 2  # staff get no ack
    with session_scope(staffed.app.sessions) as session:
        outcomes = [
            m.outcome
            for m in session.execute(select(InboundMessage).order_by(InboundMessage.id)).scalars()
        ]
    assert outcomes == ["ticket_created", "follow_up", "staff_claim", "staff_claim", "staff_reply"]


def test_a_stranger_quoting_the_number_opens_a_new_ticket(staffed: RunningDaemon) -> None:
    send(staffed, make_mail(), "jane@acme.example")
    wait_for(lambda: replies(staffed))
    intruder = make_mail(
        subject="Re: [TKT-000001] add me",
        sender="mallory@evil.example",
        body="Please send me the details of this ticket.\n",
    )
    send(staffed, intruder, "mallory@evil.example")
    assert [
        t.requester_email for t in wait_for(lambda: len(tickets(staffed)) == 2 and tickets(staffed))
    ] == ["jane@acme.example", "mallory@evil.example"]


def test_a_participant_may_use_the_subject_number(staffed: RunningDaemon) -> None:
    send(staffed, make_mail(body="Phones are dead.\n"), "jane@acme.example")
    wait_for(lambda: replies(staffed))
    follow = make_mail(subject="Fwd: [TKT-000001]", body="Serial Numbers: X-1 / X-2\n")
    send(staffed, follow, "jane@acme.example")
    wait_for(lambda: len(replies(staffed)) == 2)
    [ticket] = tickets(staffed)
    assert ticket.fields["serial_number"] == "board: X-1; appliance: X-2"


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        (
            {"In-Reply-To": "<TKT-000001.confirmation.abc.0000000000deadbeef00@example.com>"},
            "Re: hi",
        ),
        ({"References": "<never-seen@nowhere.example>"}, "Re: hello"),
        ({}, "Re: [TKT-009999] old ticket"),
    ],
    ids=["forged-token", "unknown-reference", "number-does-not-exist"],
)
def test_bad_thread_evidence_starts_a_new_ticket(
    staffed: RunningDaemon, headers: dict[str, str], subject: str
) -> None:
    send(staffed, make_mail(), "jane@acme.example")
    wait_for(lambda: replies(staffed))
    send(
        staffed,
        make_mail(subject=subject, headers=headers, body="Still broken here.\n"),
        "jane@acme.example",
    )
    assert len(wait_for(lambda: len(tickets(staffed)) == 2 and tickets(staffed))) == 2


def test_empty_follow_up_is_recorded_without_an_answer(staffed: RunningDaemon) -> None:
    send(staffed, make_mail(body="Phones are dead.\n"), "jane@acme.example")
    [confirmation] = wait_for(lambda: replies(staffed))
    empty = reply_to(confirmation, "jane@acme.example", "")
    send(staffed, empty, "jane@acme.example")

    def recorded() -> bool:
        with session_scope(staffed.app.sessions) as session:
            rows = list(session.execute(select(InboundMessage)).scalars())
            return len(rows) == 2 and rows[1].outcome == "follow_up"

    wait_for(recorded)
    assert len(replies(staffed)) == 1 and len(tickets(staffed)) == 1


def test_out_of_office_on_the_thread_is_recorded_not_answered(staffed: RunningDaemon) -> None:
    send(staffed, make_mail(), "jane@acme.example")
    [confirmation] = wait_for(lambda: replies(staffed))
    ooo = reply_to(confirmation, "jane@acme.example", "I am out of the office until Monday.")
    ooo["Auto-Submitted"] = "auto-replied"
    send(staffed, ooo, "jane@acme.example")

    def on_ticket() -> list[str]:
        with session_scope(staffed.app.sessions) as session:
            return [m.outcome or "" for m in session.execute(select(InboundMessage)).scalars()]

    assert wait_for(lambda: "machine_on_ticket" in on_ticket() and on_ticket())
    assert len(replies(staffed)) == 1


def app_at(make_settings: Callable[..., Settings], db: str) -> App:
    return build_app(make_settings(db, **STAFF))


def test_closed_ticket_reopens_within_the_window_else_a_linked_ticket(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_at(make_settings, db_url)
    start = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)

    def deliver(raw: bytes, at: datetime) -> str:
        app.pipeline.clock = lambda: at
        [stored] = app.pipeline.ingest(
            [prepare_inbound(raw, Envelope("smtp", "t", "jane@acme.example"), at)]
        )
        return app.pipeline.process(stored.inbound_id).result

    assert deliver(make_mail(message_id="<m1@acme.example>"), start) == "ticket_created"
    with session_scope(app.sessions) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        ticket.status, ticket.closed_at = "closed", start
    follow = make_mail(
        subject="Re: x",
        headers={"In-Reply-To": "<m1@acme.example>"},
        body="It is broken again.\n",
        message_id="<m2@acme.example>",
    )
    assert deliver(follow, start + timedelta(days=3)) == "follow_up"
    with session_scope(app.sessions) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.status == "open" and ticket.closed_at is None
        ticket.status, ticket.closed_at = "closed", start + timedelta(days=3)
    late = make_mail(
        subject="Re: x",
        headers={"In-Reply-To": "<m2@acme.example>"},
        body="And again, weeks later.\n",
        message_id="<m3@acme.example>",
    )
    assert deliver(late, start + timedelta(days=30)) == "ticket_created"
    with session_scope(app.sessions) as session:
        first, second = session.execute(select(Ticket).order_by(Ticket.id)).scalars()
        assert second.parent_ticket_id == first.id


AUTOMATIC = (
    sorted([*(CORPUS / "flufl-bounce").glob("*"), *(CORPUS / "sisimai").rglob("*")])
    if CORPUS.is_dir()
    else []
)
AUTOMATIC = [p for p in AUTOMATIC if p.is_file() and "/not/" not in str(p)]


@pytest.mark.skipif(not AUTOMATIC, reason=f"corpus folder absent: {CORPUS}")
def test_corpus_bounces_and_auto_replies_get_no_answer(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_at(make_settings, db_url)
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    items = [prepare_inbound(p.read_bytes(), Envelope("smtp", p.name, ""), now) for p in AUTOMATIC]
    stored = app.pipeline.ingest(items)
    results = {app.pipeline.process(s.inbound_id).result for s in stored if not s.duplicate}
    assert results <= {"ignored", "machine_on_ticket"}
    with session_scope(app.sessions) as session:
        assert list(session.execute(select(OutboxMessage)).scalars()) == []
        assert list(session.execute(select(Ticket)).scalars()) == []


def test_two_daemons_mailing_each_other_stop_at_once(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    port_a, port_b = free_port(), free_port()

    def settings(me: str, port: int, peer: int, db: str) -> Settings:
        return make_settings(
            f"sqlite:///{tmp_path / db}",
            **{
                "smtp.port": port,
                "intake.support_addresses": [me],
                "outbound.relay_host": "127.0.0.1",
                "outbound.relay_port": peer,
            },
        )

    a = start_daemon(settings("support@a.example", port_a, port_b, "a.db"))
    b = start_daemon(settings("support@b.example", port_b, port_a, "b.db"))
    try:
        opener = make_mail(sender="support@b.example", to="support@a.example")
        with smtplib.SMTP(a.host, a.port, timeout=10) as client:
            client.sendmail(
                "support@b.example", ["support@a.example"], opener.replace(b"\n", b"\r\n")
            )

        def b_got_it() -> bool:  # and read it (in a worker process that may still start)
            with session_scope(b.app.sessions) as session:
                rows = list(session.execute(select(InboundMessage)).scalars())
                return len(rows) == 1 and rows[0].processed_at is not None

        wait_for(b_got_it)
        time.sleep(2.0)  # room for a ping-pong to show up if there were one
        with session_scope(a.app.sessions) as session:
            a_out = len(list(session.execute(select(OutboxMessage)).scalars()))
            a_in = len(list(session.execute(select(InboundMessage)).scalars()))
        with session_scope(b.app.sessions) as session:
            b_out = len(list(session.execute(select(OutboxMessage)).scalars()))
            [b_row] = session.execute(select(InboundMessage)).scalars()
    finally:
        stop_daemon(a)
        stop_daemon(b)
    # A answered B's mail once; B saw an automatic reply and never answered it.
    assert (a_in, a_out, b_out) == (1, 1, 0)
    assert b_row.classification == "auto_reply" and b_row.status == "ignored"


def test_tickets_show_prints_the_thread(staffed: RunningDaemon, tmp_path: Path) -> None:
    send(staffed, make_mail(body="Phones are dead.\n"), "jane@acme.example")
    [confirmation] = wait_for(lambda: replies(staffed))
    send(
        staffed,
        reply_to(confirmation, "jane@acme.example", "Serial Numbers: Z-9 / Z-10"),
        "jane@acme.example",
    )
    wait_for(lambda: len(replies(staffed)) == 2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "intake",
            "tickets",
            "show",
            "TKT-000001",
            "--json",
            "--database",
            staffed.app.settings.database.url,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    thread = json.loads(result.stdout)["thread"]
    assert [(e["direction"], e.get("outcome") or e.get("kind")) for e in thread] == [
        ("in", "ticket_created"),
        ("out", "confirmation"),
        ("in", "follow_up"),
        ("out", "acknowledgement"),
    ]
    assert thread[2]["changes"]["supplied"] == ["serial_number"]


def dsn_for(our_message_id: str, recipient: str, status: str = "5.1.1") -> bytes:
    """An RFC 3464 delivery status notification returning the headers of our reply."""
    return (
        "From: MAILER-DAEMON@mx.acme.example\r\nTo: support@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-" + status + "-" + recipient + "@mx.acme.example>\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.acme.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: support@example.com\r\nTo: {recipient}\r\nMessage-ID: <{our_message_id}>\r\n"
        "Subject: Re: something\r\n\r\n--B--\r\n"
    ).encode()


def deliver_at(app: App, raw: bytes, at: datetime, mail_from: str = "jane@acme.example") -> str:
    app.pipeline.clock = lambda: at
    [stored] = app.pipeline.ingest([prepare_inbound(raw, Envelope("smtp", "t", mail_from), at)])
    return app.pipeline.process(stored.inbound_id).result


def outbox_rows(app: App) -> list[OutboxMessage]:
    with session_scope(app.sessions) as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def test_a_permanent_bounce_suppresses_further_automatic_mail(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_at(make_settings, db_url)
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert deliver_at(app, make_mail(), now) == "ticket_created"
    [confirmation] = outbox_rows(app)
    assert (
        deliver_at(
            app,
            dsn_for(confirmation.message_id, "jane@acme.example"),
            now + timedelta(minutes=1),
            mail_from="",
        )
        == "machine_on_ticket"
    )
    with session_scope(app.sessions) as session:
        dsn_row = session.execute(
            select(InboundMessage).where(InboundMessage.classification == "bounce")
        ).scalar_one()
        assert dsn_row.changes["bounced"][0]["permanent"] is True
    assert (
        deliver_at(
            app, make_mail(subject="Acme – Denver – New issue – P3"), now + timedelta(hours=1)
        )
        == "ticket_created"
    )
    second = outbox_rows(app)[1]
    assert second.status == "suppressed" and "bouncing until" in (second.last_error or "")
    assert (
        deliver_at(app, make_mail(subject="Acme – Denver – Later – P3"), now + timedelta(days=8))
        == "ticket_created"
    )
    assert outbox_rows(app)[2].status == "queued"  # the suppression period is over


def test_a_bounce_for_an_address_we_never_wrote_to_changes_nothing(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_at(make_settings, db_url)
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert (
        deliver_at(
            app, dsn_for("x@elsewhere.example", "stranger@nowhere.example"), now, mail_from=""
        )
        == "ignored"
    )
    with session_scope(app.sessions) as session:
        row = session.execute(select(InboundMessage)).scalar_one()
        assert row.changes["never_written_to"] == ["stranger@nowhere.example"]


def test_replies_per_hour_budget(make_settings: Callable[..., Settings], db_url: str) -> None:
    app = build_app(make_settings(db_url, **{"intake.replies_per_hour": 2}))
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    for minute in range(3):
        deliver_at(
            app, make_mail(subject=f"A – B – issue {minute} – P3"), now + timedelta(minutes=minute)
        )
    assert [r.status for r in outbox_rows(app)] == ["queued", "queued", "suppressed"]
    deliver_at(app, make_mail(subject="A – B – issue later – P3"), now + timedelta(minutes=61))
    assert outbox_rows(app)[3].status == "queued"
    with session_scope(app.sessions) as session:
        third = (
            session.execute(select(InboundMessage).order_by(InboundMessage.id).offset(2))
            .scalars()
            .first()
        )
        assert third is not None and "jane@acme.example" in third.changes["suppressed"]


NUMBER_FORMATS = [
    ("TKT-{:06d}", "TKT-000001"),
    ("INC{:07d}", "INC0000001"),
    ("T-{:06d}", "T-000001"),
    ("case-{:05d}", "case-00001"),
]


@pytest.mark.parametrize(
    ("number_format", "number"),
    NUMBER_FORMATS,
    ids=["default-tkt", "inc-no-hyphen", "one-letter-prefix", "lower-case-prefix"],
)
def test_the_configured_ticket_tag_threads_and_leaves_the_priority_readable(
    make_settings: Callable[..., Settings], db_url: str, number_format: str, number: str
) -> None:
    app = build_app(make_settings(db_url, **{"intake.ticket_number_format": number_format}))
    start = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    subject = "Acme Corp – Denver – Echo on line 2 – P2"
    assert deliver_at(app, make_mail(subject=subject, body="Phones echo.\n"), start) == (
        "ticket_created"
    )
    [confirmation] = outbox_rows(app)
    confirmation_subject = str(
        email.message_from_bytes(confirmation.raw, policy=default)["Subject"]
    )
    assert confirmation_subject == f"Re: {subject} [{number}]"

    # Only the subject says which ticket: no In-Reply-To, no References.
    reply_subject = "RE: " + confirmation_subject.removeprefix("Re: ")
    follow = make_mail(subject=reply_subject, body="Serial Numbers: X-1 / X-2\n")
    assert deliver_at(app, follow, start + timedelta(minutes=5)) == "follow_up"
    with session_scope(app.sessions) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert (ticket.number, ticket.fields["serial_number"]) == (
            number,
            "board: X-1; appliance: X-2",
        )
        ticket.status, ticket.closed_at = "closed", start

    # Long after it closed, the same reply opens a linked ticket read from that subject.
    late = make_mail(subject=reply_subject, body="It is back.\n")
    assert deliver_at(app, late, start + timedelta(days=60)) == "ticket_created"
    with session_scope(app.sessions) as session:
        first, second = session.execute(select(Ticket).order_by(Ticket.id)).scalars()
        assert second.parent_ticket_id == first.id
        assert (second.customer, second.location, second.issue) == (
            "Acme Corp",
            "Denver",
            "Echo on line 2",
        )
        assert second.priority == 2
        assert "subject" not in {f["code"] for f in second.findings}
