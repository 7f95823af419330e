"""Outbound delivery through a real aiosmtpd relay sink: threading, escaping, retries."""

from __future__ import annotations

import asyncio
import email
import shutil
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from intake.app import App, build_app
from intake.pipeline.core import Envelope, prepare_inbound
from intake.settings import Settings
from store.db import session_scope
from store.models import OutboxMessage
from tests.conftest import Sink, free_port, make_mail, start_daemon, stop_daemon, wait_for
from tests.intake.edges.dovecot import _self_signed


def relay_settings(make_settings: Callable[..., Settings], sink: Sink, **extra: object) -> Settings:
    return make_settings(
        **{
            "outbound.relay_host": sink.host,
            "outbound.relay_port": sink.port,
            "outbound.backoff_initial": 0.1,
            "outbound.backoff_max": 0.3,
            "intake.noc_cc": ["noc@example.com"],
            **extra,
        }
    )


def deliver(settings: Settings, raw: bytes) -> None:
    import smtplib

    with smtplib.SMTP(settings.smtp.host, settings.smtp.port, timeout=10) as client:
        client.sendmail("jane@acme.example", ["support@example.com"], raw.replace(b"\n", b"\r\n"))


def test_confirmation_goes_through_the_relay_threaded_and_escaped(
    make_settings: Callable[..., Settings], sink: Sink
) -> None:
    settings = relay_settings(make_settings, sink)
    running = start_daemon(settings)
    try:
        deliver(
            settings,
            make_mail(
                subject="<script>alert(1)</script> – Denver – Phones <b>dead</b> – P2",
                sender='"Jane <b>Doe</b>" <jane@acme.example>',
                message_id="<cust-1@acme.example>",
                headers={"References": "<older@acme.example>"},
            ),
        )
        [envelope] = wait_for(lambda: sink.messages)
    finally:
        stop_daemon(running)
    assert envelope.mail_from == "support@example.com"
    assert sorted(envelope.rcpt_tos) == ["jane@acme.example", "noc@example.com"]
    reply = email.message_from_bytes(envelope.original_content, policy=default)
    assert reply["In-Reply-To"] == "<cust-1@acme.example>"
    assert reply["References"].split() == ["<older@acme.example>", "<cust-1@acme.example>"]
    assert reply["Cc"] == "noc@example.com"
    assert reply["X-Auto-Response-Suppress"] == "All"
    html = reply.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>dead</b>" not in html and "Phones &lt;b&gt;dead&lt;/b&gt;" in html


def test_relay_down_then_back_delivers_each_reply_exactly_once(
    make_settings: Callable[..., Settings], sink: Sink
) -> None:
    settings = relay_settings(make_settings, sink)
    running = start_daemon(settings)
    try:
        sink.stop()  # the relay is down while mail comes in
        for i in range(3):
            deliver(settings, make_mail(subject=f"C – L – issue {i} – P3"))

        def failed_attempts() -> bool:
            with session_scope(running.app.sessions) as session:
                rows = list(session.execute(select(OutboxMessage)).scalars())
                return len(rows) == 3 and all(r.attempts >= 1 for r in rows)

        wait_for(failed_attempts)
        sink.start()
        wait_for(lambda: len(sink.messages) == 3, timeout=30)
        time.sleep(1.0)  # give a duplicate the chance to show up
    finally:
        stop_daemon(running)
    assert len(sink.messages) == 3
    ids = [email.message_from_bytes(e.original_content)["Message-ID"] for e in sink.messages]
    assert len(set(ids)) == 3
    with session_scope(running.app.sessions) as session:
        assert {r.status for r in session.execute(select(OutboxMessage)).scalars()} == {"sent"}


def test_permanent_refusal_makes_the_reply_dead(
    make_settings: Callable[..., Settings], sink: Sink
) -> None:
    sink.refuse_with = "554 5.7.1 rejected by policy"
    settings = relay_settings(make_settings, sink)
    running = start_daemon(settings)
    try:
        deliver(settings, make_mail())

        def dead() -> list[OutboxMessage]:
            with session_scope(running.app.sessions) as session:
                return [
                    r
                    for r in session.execute(select(OutboxMessage)).scalars()
                    if r.status == "dead"
                ]

        [row] = wait_for(dead)
    finally:
        stop_daemon(running)
    assert row.attempts == 1 and "554" in (row.last_error or "")


def _tls_sink(tmp_path: Path, **controller_args: object) -> tuple[Sink, Controller]:
    cert = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, tmp_path / "key.pem")
    sink = Sink("127.0.0.1", free_port())
    controller = Controller(
        sink,
        hostname=sink.host,
        port=sink.port,
        **{k: (context if v == "CONTEXT" else v) for k, v in controller_args.items()},
    )
    controller.start()
    return sink, controller


def _authenticator(
    server: object, session: object, envelope: object, mechanism: str, auth_data: object
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"intake",
        b"s3cret",
    )
    return AuthResult(success=ok)


def _send_one(make_settings: Callable[..., Settings], **outbound: object) -> App:
    app = build_app(make_settings(**{f"outbound.{k}": v for k, v in outbound.items()}))
    now = datetime.now(UTC)
    [stored] = app.pipeline.ingest([prepare_inbound(make_mail(), Envelope("smtp"), now)])
    assert app.pipeline.process(stored.inbound_id).result == "ticket_created"
    asyncio.run(app.outbox.flush_once())
    return app


def _outbox(app: App) -> OutboxMessage:
    with session_scope(app.sessions) as session:
        return session.execute(select(OutboxMessage)).scalar_one()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_starttls_with_auth_delivers(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    sink, controller = _tls_sink(
        tmp_path,
        tls_context="CONTEXT",
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    try:
        app = _send_one(
            make_settings,
            relay_host=sink.host,
            relay_port=sink.port,
            security="starttls",
            verify_certificates=False,
            username="intake",
            password="s3cret",
        )
    finally:
        controller.stop()
    assert _outbox(app).status == "sent" and len(sink.messages) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_untrusted_certificate_is_refused_by_default(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    sink, controller = _tls_sink(tmp_path, tls_context="CONTEXT", require_starttls=True)
    try:
        app = _send_one(
            make_settings, relay_host=sink.host, relay_port=sink.port, security="starttls"
        )
    finally:
        controller.stop()
    row = _outbox(app)
    assert row.status == "queued" and row.attempts == 1  # retried later, never sent in clear
    assert "certificate" in (row.last_error or "").lower() and sink.messages == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_implicit_tls_delivers(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    sink, controller = _tls_sink(tmp_path, ssl_context="CONTEXT")
    try:
        app = _send_one(
            make_settings,
            relay_host=sink.host,
            relay_port=sink.port,
            security="tls",
            verify_certificates=False,
        )
    finally:
        controller.stop()
    assert _outbox(app).status == "sent" and len(sink.messages) == 1
