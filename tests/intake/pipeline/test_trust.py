"""What sender trust gates in COMMIT 2 (issue 13): backscatter, reply addresses, DKIM, the row."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from intake.app import App, build_app
from intake.logs import configure_logging
from intake.pipeline.core import Envelope, prepare_inbound
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage, OutboxMessage, Ticket
from tests.conftest import configure_test_logging, make_mail
from tests.intake.pipeline.test_dkimcheck import signed, stub_resolver, txt_record

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
AR = "Authentication-Results"


def app_for(make_settings: Callable[..., Settings], db_url: str) -> App:
    return build_app(make_settings(db_url, **{"intake.trusted_authserv_ids": ["mx.example.com"]}))


def process(app: App, raw: bytes) -> tuple[Ticket, InboundMessage, int]:
    """The ticket, its inbound row and how many replies were queued for it."""
    app.pipeline.clock = lambda: MONDAY
    [stored] = app.pipeline.ingest([prepare_inbound(raw, Envelope("smtp", "t", "x@y"), MONDAY)])
    outcome = app.pipeline.process(stored.inbound_id)
    assert outcome.result == "ticket_created"
    with session_scope(app.sessions) as session:
        ticket = repo.ticket_by_number(session, outcome.ticket_number or "")
        row = session.get(InboundMessage, stored.inbound_id)
        assert ticket is not None and row is not None
        queued = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.ticket_id == ticket.id)
        )
        return ticket, row, queued or 0


def test_a_dmarc_fail_is_ticketed_and_recorded_but_never_answered(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url)
    raw = make_mail(headers={AR: "mx.example.com; dmarc=fail header.from=acme.example"})
    with structlog.testing.capture_logs() as logs:
        ticket, row, queued = process(app, raw)
    assert queued == 0  # before issue 13 a confirmation went to the forged From (backscatter)
    assert row.sender_trust == "fail"
    assert "dmarc_fail" in {f["code"] for f in ticket.findings}
    [line] = [e for e in logs if e["event"] == "message.processed"]
    assert line["sender_trust"] == "fail"


def test_a_passing_sender_is_answered_and_its_trust_stored(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url)
    raw = make_mail(headers={AR: "mx.example.com; dmarc=pass header.from=acme.example"})
    _, row, queued = process(app, raw)
    assert (queued, row.sender_trust) == (1, "dmarc pass")


def test_a_fragment_cut_from_a_broken_display_name_gets_no_reply(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    # The encoded word decodes to CR/LF; the fragment =?utf-8?q?A=0D=0A_victim@evil.example?=
    # is never a mailbox we write to: the raw header's <addr-spec> is (issue 13 item 5).
    app = app_for(make_settings, db_url)
    raw = make_mail().replace(
        b"From: Jane Doe <jane@acme.example>",
        b"From: =?utf-8?q?A=0D=0A_victim@evil.example?= <jane@acme.example>",
    )
    ticket, _, queued = process(app, raw)
    assert ticket.requester_email == "jane@acme.example"
    with session_scope(app.sessions) as session:
        recipients = [
            r for m in session.execute(select(OutboxMessage)).scalars() for r in m.recipients
        ]
    assert "victim@evil.example" not in " ".join(recipients)
    assert queued == 1 and "jane@acme.example" in recipients


def test_an_invalid_reply_to_falls_back_to_a_valid_from(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    app = app_for(make_settings, db_url)
    _, _, queued = process(app, make_mail(headers={"Reply-To": "victim@evil.example?="}))
    with session_scope(app.sessions) as session:
        [reply] = session.execute(select(OutboxMessage)).scalars()
        assert reply.recipients == ["jane@acme.example"]
    assert queued == 1


def test_the_daemon_verifies_dkim_itself_when_asked(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app = build_app(make_settings(db_url, **{"intake.verify_dkim": True}))
    assert app.pipeline.dkim is not None  # the setting wires a verifier
    verifier, _ = stub_resolver({b"s1._domainkey.acme.example.": txt_record(key)})
    app.pipeline.dkim = verifier  # same verifier, DNS from the stub
    _, row, _ = process(app, signed(key, make_mail()))
    assert row.sender_trust == "dkim aligned"


def test_a_failure_logs_ids_and_the_type_never_the_exceptions_text(
    make_settings: Callable[..., Settings], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 13 item 7: before, message.failed carried str(exc) and its traceback, which
    # quote whatever the failing step held (here a serial number from the body).
    secret = "MX-0042-7781"

    def failing(*_args: object, **_kwargs: object) -> object:
        raise ValueError(f"cannot render serial {secret}")

    monkeypatch.setattr("intake.pipeline.core.render_confirmation", failing)
    app = app_for(make_settings, db_url)
    app.pipeline.clock = lambda: MONDAY
    [stored] = app.pipeline.ingest(
        [prepare_inbound(make_mail(), Envelope("smtp", "t", "x@y"), MONDAY)]
    )
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)  # the DEBUG line must be there to be told apart
    try:
        assert app.pipeline.process(stored.inbound_id).result == "failed"
    finally:
        configure_test_logging()
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    loud = [e for e in lines if e["level"] in ("warning", "error")]
    events = {e["event"] for e in loud}
    assert events == {"logging.debug_enabled", "message.failed", "message.processed"}
    assert all(secret not in json.dumps(e) and "exception" not in e for e in loud)
    failed = next(e for e in loud if e["event"] == "message.failed")
    assert failed["error"] == "ValueError" and "test_trust.py" in failed["where"]
    [detail] = [e for e in lines if e["event"] == "message.failed_detail"]
    assert secret in detail["exception"]  # DEBUG may show more, and says so
