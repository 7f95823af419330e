"""The SMTP listener's session rules, over real SMTP on loopback (smtplib, raw sockets).

Errors of ours are 451 never 5xx, postmaster is accepted, long lines are accepted up to
the size limit, a client that keeps erring is cut off with 421, a client that hangs up
while its message is being stored harms nobody else, and ``message.stored`` says who
sent what to whom. The in-process daemon (``start_daemon``) runs on SQLite: these are
properties of the edge, not of the store.
"""

from __future__ import annotations

import logging
import smtplib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

import intake.edges.smtp as smtp_edge
from intake.app import build_app, pipe_edge
from intake.pipeline.core import Envelope
from intake.settings import Settings
from store.db import session_scope
from store.models import InboundMessage
from tests.conftest import CORPUS, RunningDaemon, make_mail, start_daemon, stop_daemon


@pytest.fixture
def daemon(make_settings: Callable[..., Settings]) -> Iterator[RunningDaemon]:
    running = start_daemon(make_settings())
    yield running
    stop_daemon(running)


def wire(raw: bytes) -> bytes:
    """SMTP lines end in CRLF (RFC 5321 §2.3.8); smtplib leaves bytes as they are."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def client(daemon: RunningDaemon) -> smtplib.SMTP:
    connection = smtplib.SMTP(daemon.host, daemon.port, timeout=30)
    connection.ehlo("client.test")
    return connection


def send(daemon: RunningDaemon, raw: bytes, rcpt: str = "support@example.com") -> tuple[int, bytes]:
    with client(daemon) as connection:
        connection.mail("jane@acme.example")
        code, message = connection.rcpt(rcpt)
        assert code == 250, message
        return connection.data(wire(raw))


def stored_raw(daemon: RunningDaemon, reply: bytes) -> bytes | None:
    """The raw bytes stored under the id in ``250 2.0.0 Ok: queued as ID``."""
    with session_scope(daemon.app.sessions) as session:
        row = session.get(InboundMessage, int(reply.decode().rsplit(" ", 1)[1]))
        return None if row is None else row.raw


def count_stored(daemon: RunningDaemon, message_id: str) -> int:
    with session_scope(daemon.app.sessions) as session:
        return session.execute(
            select(func.count()).where(InboundMessage.message_id == message_id)
        ).scalar_one()


def test_an_error_outside_the_hooks_try_is_451_not_500(
    daemon: RunningDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("a bug in our code")

    with client(daemon) as connection:
        connection.mail("jane@acme.example")
        monkeypatch.setattr(smtp_edge, "address_key", broken)
        code, message = connection.rcpt("support@example.com")
        monkeypatch.undo()
        assert (code, message[:5]) == (451, b"4.3.0")
        assert b"a bug" not in message  # nothing of ours leaks to the client
        assert connection.rcpt("support@example.com")[0] == 250  # the session goes on


@pytest.mark.parametrize(
    "rcpt",
    ["postmaster", "Postmaster", "POSTMASTER@example.com", "postmaster@EXAMPLE.COM"],
    ids=["bare", "capitalised", "upper-with-domain", "upper-domain"],
)
def test_postmaster_is_accepted_and_stored_like_support_mail(
    daemon: RunningDaemon, rcpt: str
) -> None:
    raw = make_mail(message_id="<to-postmaster@acme.example>", to=rcpt)
    code, reply = send(daemon, raw, rcpt=rcpt)
    assert code == 250, reply
    with session_scope(daemon.app.sessions) as session:
        row = session.execute(select(InboundMessage)).scalar_one()
        assert row.envelope_to == [rcpt]


def test_postmaster_of_another_domain_is_still_refused(daemon: RunningDaemon) -> None:
    with client(daemon) as connection:
        connection.mail("jane@acme.example")
        code, message = connection.rcpt("postmaster@elsewhere.example")
    assert code == 550 and message.startswith(b"5.1.1")


def long_line_mail(message_id: str, width: int) -> bytes:
    """Lines past RFC 5321's 1,000 octets in a header and the body, as Outlook writes them."""
    return wire(
        b"From: Jane Doe <jane@acme.example>\n"
        b"To: support@example.com\n"
        b"Subject: Acme Corp - 123 Main St, Denver CO - Long lines - P2\n"
        b"Message-ID: " + message_id.encode() + b"\n"
        b"X-Long-Header: " + b"h" * width + b"\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"Serial Number: MX-1 " + "é".encode() * (width // 2) + b"\n"
        b".leading dot, transparency applies (RFC 5321 4.5.2)\n"
        b"end\n"
    )


@pytest.mark.parametrize("width", [1001, 20_000], ids=["just-over-1000", "20k-octets"])
def test_lines_over_1000_octets_are_accepted_and_stored_intact(
    daemon: RunningDaemon, width: int
) -> None:
    raw = long_line_mail(f"<long-{width}@acme.example>", width)
    code, reply = send(daemon, raw)
    assert code == 250, reply
    assert stored_raw(daemon, reply) == raw


def corpus_mails_with_long_lines() -> list[Path]:
    """The corpus mails with a line over 998 octets (+CRLF: RFC 5321's 1,000), if any."""
    if not CORPUS.is_dir():
        return []
    found = []
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file() and path.suffix in (".eml", ".txt"):
            if max((len(line) for line in path.read_bytes().splitlines()), default=0) > 998:
                found.append(path)
    return found


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus folder absent: {CORPUS}")
def test_corpus_mails_with_long_lines_are_accepted_and_stored_intact(
    daemon: RunningDaemon,
) -> None:
    paths = corpus_mails_with_long_lines()
    assert paths, "the corpus has mail with long lines (Outlook, pathological quoting)"
    for path in paths:
        raw = wire(path.read_bytes())
        code, reply = send(daemon, raw)
        assert code == 250, (path.name, reply)
        # smtplib dot-stuffs and ends the data with CRLF; what we store is what was meant.
        expected = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        assert stored_raw(daemon, reply) == expected, path.name


def test_a_session_with_too_many_errors_gets_421_and_is_disconnected(
    daemon: RunningDaemon,
) -> None:
    limit = daemon.app.settings.smtp.max_errors
    with client(daemon) as connection:
        connection.mail("jane@acme.example")
        for n in range(limit - 1):
            assert connection.rcpt(f"nobody{n}@elsewhere.example")[0] == 550
        # Delivering a message resets the count (Postfix: errors "without delivering mail").
        assert connection.rcpt("support@example.com")[0] == 250
        assert connection.data(wire(make_mail()))[0] == 250
        connection.mail("jane@acme.example")
        for n in range(limit):
            assert connection.rcpt(f"again{n}@elsewhere.example")[0] == 550
        assert connection.getreply() == (421, b"4.7.0 Too many errors, closing connection")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            connection.getreply()


def test_message_stored_line_names_peer_sender_and_recipients(daemon: RunningDaemon) -> None:
    with capture_logs() as logs:
        with client(daemon) as connection:
            host, port = connection.sock.getsockname()
            peer = f"{host}:{port}"
            connection.mail("jane@acme.example")
            connection.rcpt("support@example.com")
            connection.rcpt("Postmaster")
            code, _ = connection.data(wire(make_mail(message_id="<logged@acme.example>")))
    assert code == 250
    [line] = [entry for entry in logs if entry["event"] == "message.stored"]
    assert line["peer"] == peer
    assert (line["mail_from"], line["rcpt_to"]) == (
        "jane@acme.example",
        ["support@example.com", "Postmaster"],
    )
    assert (line["origin"], line["message_id"]) == ("smtp", "logged@acme.example")
    assert not any("No dial tone" in repr(entry) for entry in logs)  # never the body


class AiosmtpdEvents(logging.Handler):
    """aiosmtpd's own log (``mail.log``): tells the test when the server saw a hang-up."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lost = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "Connection lost" in record.getMessage() or "EOF received" in record.getMessage():
            self.lost.set()


@pytest.fixture
def aiosmtpd_events() -> Iterator[AiosmtpdEvents]:
    logger, handler = logging.getLogger("mail.log"), AiosmtpdEvents()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.fault
def test_a_client_hanging_up_during_a_slow_store_harms_no_other_client(
    daemon: RunningDaemon,
    aiosmtpd_events: AiosmtpdEvents,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inserting = threading.Event()
    ingest = daemon.app.pipeline.ingest

    def storing(items: Any) -> Any:
        # COMMIT 1 has the message in hand: from here it waits for the store (its write
        # gate, then SQLite's lock held below; an outbox claim may be waiting there first).
        inserting.set()
        return ingest(items)

    monkeypatch.setattr(daemon.app.pipeline, "ingest", storing)
    lock = sqlite3.connect(tmp_path / "intake.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the store is slow: the writer waits for this lock
    try:
        impatient = client(daemon)
        impatient.mail("jane@acme.example")
        impatient.rcpt("support@example.com")
        assert impatient.docmd("DATA")[0] == 354
        impatient.send(wire(make_mail(message_id="<impatient@acme.example>")) + b".\r\n")
        assert inserting.wait(30), "the writer never started storing the message"
        impatient.close()  # gone before its answer (socket and its reader: the fd closes)
        assert aiosmtpd_events.lost.wait(30), "the server never noticed the hang-up"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    for n in range(3):  # the next clients are served as if nothing had happened
        code, reply = send(daemon, make_mail(message_id=f"<patient-{n}@acme.example>"))
        assert code == 250, reply
    # Not acknowledged, so its MTA sends it again: stored once either way.
    assert send(daemon, make_mail(message_id="<impatient@acme.example>"))[0] == 250
    assert count_stored(daemon, "impatient@acme.example") == 1


def test_message_stored_line_is_the_same_from_the_pipe(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(make_settings())
    envelope = Envelope("pipe", "stdin", "jane@acme.example", ("support@example.com",))
    try:
        with capture_logs() as logs:
            pipe_edge(app).deliver_bytes(make_mail(), envelope, process=False)
    finally:
        app.engine.dispose()
    [line] = [entry for entry in logs if entry["event"] == "message.stored"]
    assert (line["origin"], line["peer"], line["mail_from"], line["rcpt_to"]) == (
        "pipe",
        "stdin",
        "jane@acme.example",
        ["support@example.com"],
    )
