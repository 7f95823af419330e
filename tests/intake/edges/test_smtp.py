"""The SMTP listener end to end: smtplib and swaks against the real daemon on loopback."""

from __future__ import annotations

import asyncio
import email
import smtplib
from collections.abc import Callable
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select, text

from intake.edges import smtp as edge
from intake.settings import Settings
from store.db import session_scope
from store.models import ChargeRow, InboundMessage, OutboxMessage, Ticket
from tests.conftest import (
    RunningDaemon,
    make_mail,
    needs_swaks,
    start_daemon,
    stop_daemon,
    swaks,
    tickets,
    wait_for,
)


def send(
    daemon: RunningDaemon,
    raw: bytes,
    rcpt: str = "support@example.com",
    sender: str = "jane@acme.example",
) -> tuple[int, bytes]:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=10) as client:
        client.ehlo("client.test")
        client.mail(sender)
        code, message = client.rcpt(rcpt)
        assert code == 250, message
        # SMTP lines end in CRLF (RFC 5321 §2.3.8); smtplib leaves bytes as they are.
        return client.data(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def outbox_files(daemon: RunningDaemon) -> list[Path]:
    return sorted(daemon.app.settings.outbound.directory.glob("*.eml"))


def test_mail_becomes_ticket_and_threaded_confirmation(daemon: RunningDaemon) -> None:
    raw = make_mail(message_id="<first@acme.example>")
    code, reply = send(daemon, raw)
    assert code == 250 and reply.startswith(b"2.0.0 Ok: queued as ")

    [ticket] = wait_for(lambda: tickets(daemon))
    assert ticket.number == "TKT-000001"
    assert (ticket.customer, ticket.location) == ("Acme Corp", "123 Main St, Denver CO")
    assert ticket.issue == "No dial tone on all lines"
    assert ticket.priority == 1
    assert ticket.missing_fields == []

    [path] = wait_for(lambda: outbox_files(daemon))
    confirmation = email.message_from_bytes(path.read_bytes(), policy=default)
    assert confirmation["Subject"] == (
        "Re: Acme Corp – 123 Main St, Denver CO – No dial tone on all lines – P1 [TKT-000001]"
    )
    assert confirmation["In-Reply-To"] == "<first@acme.example>"
    assert "<first@acme.example>" in confirmation["References"]
    assert confirmation["Auto-Submitted"] == "auto-replied"
    assert confirmation["To"] == "jane@acme.example"
    assert confirmation["Message-ID"].endswith("@example.com>")
    body = confirmation.get_body(("plain",))
    assert body is not None and "TKT-000001" in body.get_content()
    assert confirmation.get_body(("html",)) is not None


def test_raw_bytes_are_stored_before_250(daemon: RunningDaemon) -> None:
    raw = make_mail().replace(b"\n", b"\r\n")  # on the wire, as RFC 5321 §2.3.8 has it
    code, reply = send(daemon, raw)
    inbound_id = int(reply.decode().rsplit(" ", 1)[1])
    with session_scope(daemon.app.sessions) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        stored = row.raw
    assert stored == raw  # exactly what came over the wire, byte for byte


def test_missing_fields_charge_once_and_are_listed(daemon: RunningDaemon) -> None:
    raw = make_mail(body="Phones are dead.\n")
    send(daemon, raw)
    [ticket] = wait_for(lambda: tickets(daemon))
    assert set(ticket.missing_fields) == {
        "contact_phone",
        "serial_number",
        "software_version",
        "description",
        "reproducible",
        "call_examples",
    }
    with session_scope(daemon.app.sessions) as session:
        charges = list(session.execute(select(ChargeRow)).scalars())
    assert [(c.kind, str(c.amount), c.currency) for c in charges] == [
        ("missing_information", "100.00", "USD")
    ]
    [path] = wait_for(lambda: outbox_files(daemon))
    text_body = email.message_from_bytes(path.read_bytes(), policy=default).get_body(("plain",))
    assert text_body is not None
    content = text_body.get_content()
    assert "Serial Number of Zultys System" in content and "100.00 USD" in content


def test_redelivered_message_creates_nothing_twice(daemon: RunningDaemon) -> None:
    raw = make_mail(message_id="<same@acme.example>", body="Phones are dead.\n")
    first = send(daemon, raw)
    second = send(daemon, raw)
    assert first == second  # same stored message, same queue id
    wait_for(lambda: outbox_files(daemon))
    with session_scope(daemon.app.sessions) as session:
        counts = [
            session.execute(select(text("count(*)")).select_from(model)).scalar_one()
            for model in (InboundMessage, Ticket, ChargeRow, OutboxMessage)
        ]
    assert counts == [1, 1, 1, 1]


def test_reused_message_id_with_other_content_is_a_new_message(daemon: RunningDaemon) -> None:
    send(daemon, make_mail(message_id="<reused@acme.example>", subject="A – B – one – P2"))
    send(daemon, make_mail(message_id="<reused@acme.example>", subject="A – B – two – P2"))
    # Two tickets, whichever the workers opened first.
    found = wait_for(lambda: len(tickets(daemon)) == 2 and tickets(daemon))
    assert sorted(t.issue or "" for t in found) == ["one", "two"]


def test_unknown_recipient_is_refused_never_relayed(daemon: RunningDaemon) -> None:
    with smtplib.SMTP(daemon.host, daemon.port, timeout=10) as client:
        client.ehlo("client.test")
        client.mail("jane@acme.example")
        code, message = client.rcpt("someone@elsewhere.example")
    assert code == 550 and message.startswith(b"5.1.1")


def test_oversize_message_is_refused_with_552(make_settings: Callable[..., Settings]) -> None:
    running = start_daemon(make_settings(**{"smtp.max_message_size": 2000}))
    try:
        code, message = send(running, make_mail(body=("x" * 70 + "\n") * 100))
        assert code == 552, message
        assert tickets(running) == []
    finally:
        stop_daemon(running)


def test_store_failure_answers_451_and_keeps_nothing_half_done(daemon: RunningDaemon) -> None:
    with daemon.app.engine.begin() as conn:  # break the real store underneath the daemon
        conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_gone"))
    try:
        code, message = send(daemon, make_mail())
    finally:
        with daemon.app.engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbound_message_gone RENAME TO inbound_message"))
    assert code == 451 and message.startswith(b"4.3.0")
    # The store is back: the client's retry is accepted (nothing was half-written).
    code, _ = send(daemon, make_mail())
    assert code == 250


def test_null_sender_bounce_is_stored_but_never_answered(daemon: RunningDaemon) -> None:
    raw = make_mail(
        subject="Undelivered Mail Returned to Sender", sender="MAILER-DAEMON@mx.example"
    )
    code, reply = send(daemon, raw, sender="")
    assert code == 250
    inbound_id = int(reply.decode().rsplit(" ", 1)[1])

    def ignored() -> bool:
        with session_scope(daemon.app.sessions) as session:
            row = session.get(InboundMessage, inbound_id)
            return row is not None and row.status == "ignored"

    wait_for(ignored)
    assert tickets(daemon) == []
    assert outbox_files(daemon) == []


def test_crlf_smuggled_in_encoded_subject_never_reaches_a_header(daemon: RunningDaemon) -> None:
    subject = (
        "=?utf-8?q?Acme_=E2=80=93_Denver_=E2=80=93_Down=0D=0ABcc:_victim@evil.example"
        "_=E2=80=93_P1?="
    )
    raw = make_mail().replace(
        b"Subject: Acme Corp", b"Subject: " + subject.encode() + b"\nX-Old-Subject: Acme Corp", 1
    )
    send(daemon, raw)
    [path] = wait_for(lambda: outbox_files(daemon))
    confirmation = email.message_from_bytes(path.read_bytes(), policy=default)
    assert confirmation["Bcc"] is None
    assert "victim@evil.example" in confirmation["Subject"]  # kept as text, on one line
    assert all("\n" not in value and "\r" not in value for value in confirmation.values())


@needs_swaks
def test_swaks_delivers_a_ticket(daemon: RunningDaemon) -> None:
    result = swaks(
        daemon,
        "--from",
        "noc@customer.example",
        "--to",
        "support@example.com",
        "--header",
        "Subject: Globex – 9 Elm Rd, Austin – Calls drop after 30 s – P2",
        "--body",
        "Phone: 512 555 0101\nSerial: GX-1\nVersion: 16.2\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 Ok: queued as" in result.stdout
    [ticket] = wait_for(lambda: tickets(daemon))
    assert (ticket.customer, ticket.priority) == ("Globex", 2)


@needs_swaks
def test_swaks_to_a_stranger_gets_550(daemon: RunningDaemon) -> None:
    result = swaks(
        daemon,
        "--from",
        "a@b.example",
        "--to",
        "postmaster@other.example",
        "--quit-after",
        "RCPT",
    )
    assert "550 5.1.1" in result.stdout


def test_message_without_message_id_gets_a_deterministic_one(daemon: RunningDaemon) -> None:
    raw = b"\n".join(
        line for line in make_mail().split(b"\n") if not line.lower().startswith(b"message-id:")
    )
    first, again = send(daemon, raw), send(daemon, raw)
    assert first == again  # the same content is the same message: stored once
    [ticket] = wait_for(lambda: tickets(daemon))
    assert ticket.message_id.endswith("@generated.invalid")
    [path] = wait_for(lambda: outbox_files(daemon))
    confirmation = email.message_from_bytes(path.read_bytes(), policy=default)
    assert confirmation["In-Reply-To"] is None  # nothing real to point at


def test_html_only_mail_with_script_is_ticketed_without_the_script(daemon: RunningDaemon) -> None:
    html = (
        "<html><head><script>steal()</script></head><body><table>"
        "<tr><td>Board Serial Number</td><td>HX-77</td></tr>"
        "<tr><td>Appliance Serial Number</td><td>HA-78</td></tr></table></body></html>"
    )
    message = email.message_from_bytes(make_mail(), policy=default)
    message.set_content(html, subtype="html")
    send(daemon, message.as_bytes())
    [ticket] = wait_for(lambda: tickets(daemon))
    assert ticket.fields["serial_number"] == "board: HX-77; appliance: HA-78"
    [path] = wait_for(lambda: outbox_files(daemon))
    assert b"steal()" not in path.read_bytes()


def test_a_large_message_is_keyed_off_the_event_loop_and_a_small_one_on_it(
    daemon: RunningDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: the idempotency key of a typical report is computed on the loop (a thread
    hand-off costs more than the hash), but a large message's is not, so no other session
    waits while it is hashed. Both are stored byte for byte either way."""
    on_loop: dict[int, bool] = {}
    real = edge.prepare_inbound

    def recording(raw: bytes, *args: object) -> object:
        try:
            asyncio.get_running_loop()
            on_loop[len(raw)] = True
        except RuntimeError:  # a worker thread runs no loop
            on_loop[len(raw)] = False
        return real(raw, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(edge, "prepare_inbound", recording)
    small = make_mail().replace(b"\n", b"\r\n")
    filler = b"".join(b"Log line %06d: carrier alarm cleared\r\n" % n for n in range(4000))
    large = small.replace(b"\r\n\r\n", b"\r\n\r\n" + filler, 1)
    assert len(small) <= edge.INLINE_PREPARE < len(large)
    for raw in (small, large):
        code, reply = send(daemon, raw)
        assert code == 250, reply
        with session_scope(daemon.app.sessions) as session:
            row = session.get(InboundMessage, int(reply.decode().rsplit(" ", 1)[1]))
            assert row is not None and row.raw == raw
    assert on_loop == {len(small): True, len(large): False}
