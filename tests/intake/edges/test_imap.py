"""The IMAP edge against a real Dovecot: ticketed and moved, exactly once, always on, poison mail.

Mail goes in with a real IMAP APPEND (imapclient); the poller runs in-process (poll once
or the daemon's poller threads inside ``serve``) or as ``intake poll --once`` subprocesses
where the test needs to SIGKILL it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from intake.app import App, build_app, imap_pollers, utc_now
from intake.edges import imap as edge_imap
from intake.edges.imap import MailboxPoller, PollResult
from intake.errors import MailboxError, StoreError
from intake.settings import Settings
from store import repository as repo
from store.db import session_scope
from store.models import InboundMessage, MailboxState, Ticket
from tests.conftest import make_mail, start_daemon, stop_daemon, wait_for
from tests.intake.edges.dovecot import Dovecot, Introspection, dovecot_binary, make_dovecot

FAST = {
    "imap.backoff_initial": 0.1,
    "imap.backoff_max": 0.5,
    "imap.lease_duration": 3,
    "imap.poll_interval": 0.5,
}


@pytest.fixture
def imap_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def factory(*urls: str | dict[str, Any], db: str | None = None, **overrides: Any) -> Settings:
        boxes = [u if isinstance(u, dict) else {"url": u} for u in urls]
        return make_settings(db, **{"imap.mailboxes": boxes, **FAST, **overrides})

    return factory


@pytest.fixture
def app_for() -> Iterator[Callable[[Settings], App]]:
    apps: list[App] = []

    def factory(settings: Settings) -> App:
        apps.append(build_app(settings))
        return apps[-1]

    yield factory
    for app in apps:
        app.engine.dispose()


def pollers(app: App) -> list[MailboxPoller]:
    return imap_pollers(app, app.pipeline.process)


def poll(app: App) -> PollResult:
    return pollers(app)[0].poll_once()


def count(app: App, model: Any) -> int:
    with session_scope(app.sessions) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def ticket_message_ids(app: App) -> list[str]:
    with session_scope(app.sessions) as session:
        return sorted(session.execute(select(Ticket.message_id)).scalars())


def mails(n: int, prefix: str = "m") -> list[bytes]:
    return [make_mail(message_id=f"<{prefix}{i}@acme.example>") for i in range(n)]


# -- ticketed and moved ---------------------------------------------------------------------


def test_appended_mail_is_ticketed_and_moved_without_being_marked_seen(
    dovecot: Dovecot, imap_settings: Callable[..., Settings], app_for: Callable[[Settings], App]
) -> None:
    raw = make_mail(message_id="<one@acme.example>", headers={"Return-Path": "<jane@acme.example>"})
    dovecot.append([raw])
    app = app_for(imap_settings(dovecot.url()))

    result = poll(app)

    assert (len(result.stored), result.moved) == (1, 1)
    assert ticket_message_ids(app) == ["one@acme.example"]
    assert dovecot.count("INBOX") == 0 and dovecot.message_ids("Processed") == [
        "<one@acme.example>"
    ]
    client = dovecot.client()
    client.select_folder("Processed", readonly=True)
    assert client.search("UNSEEN") == client.search("ALL")  # BODY.PEEK[]: no \Seen set
    client.logout()
    with session_scope(app.sessions) as session:
        row = session.execute(select(InboundMessage)).scalar_one()
        assert row.origin == "imap" and row.envelope_from == "jane@acme.example"
        assert row.origin_ref is not None and row.origin_ref.startswith("alice@127.0.0.1:")
    assert dovecot.count("Quarantine") == 0  # created when missing, empty


@pytest.mark.slow
def test_500_messages_are_processed_exactly_once(
    dovecot: Dovecot,
    imap_settings: Callable[..., Settings],
    app_for: Callable[[Settings], App],
    db_url: str,
) -> None:
    dovecot.append(mails(500))
    app = app_for(imap_settings(dovecot.url(), db=db_url, **{"imap.batch_size": 64}))

    first, again = poll(app), poll(app)

    assert (len(first.stored), first.moved, first.duplicates) == (500, 500, 0)
    assert (len(again.stored), again.moved) == (0, 0)
    assert count(app, Ticket) == 500 and count(app, InboundMessage) == 500
    assert len(set(ticket_message_ids(app))) == 500
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 500


def test_a_backlog_of_many_fetch_batches_is_stored_once_and_each_move_follows_its_commit(
    dovecot: Dovecot,
    imap_settings: Callable[..., Settings],
    app_for: Callable[[Settings], App],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches overlap (FETCH of the next while the last is stored): every UID that a MOVE
    names is already committed by then, each exactly once, batch by batch."""
    dovecot.append(mails(23))
    app = app_for(imap_settings(dovecot.url(), **{"imap.batch_size": 5}))
    (poller,) = imap_pollers(app, lambda _id: None)
    real_move = edge_imap.move
    moves: list[list[int]] = []

    def checked_move(client: Any, uids: list[int], folder: str) -> None:
        refs = [f"{poller.mailbox.name}/{poller._uidvalidity}/{u}" for u in uids]
        with session_scope(app.sessions) as session:
            assert repo.stored_origin_refs(session, "imap", refs) == set(refs)  # COMMIT 1 first
        moves.append(list(uids))
        real_move(client, uids, folder)

    real_ingest = app.pipeline.ingest

    def slow_ingest(items: Any) -> Any:
        time.sleep(0.05)  # not a wait: widens the window in which an early MOVE is caught
        return real_ingest(items)

    monkeypatch.setattr("intake.edges.imap.move", checked_move)
    monkeypatch.setattr(app.pipeline, "ingest", slow_ingest)
    result = poller.poll_once()

    assert (len(result.stored), result.moved, result.duplicates) == (23, 23, 0)
    assert [len(uids) for uids in moves] == [5, 5, 5, 5, 3]
    moved = [uid for uids in moves for uid in uids]
    assert len(moved) == len(set(moved)) == 23  # each UID moved once
    assert count(app, InboundMessage) == 23
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 23
    assert poller.poll_once().moved == 0


def test_a_failed_commit_moves_nothing_of_its_batch_nor_of_the_next(
    dovecot: Dovecot,
    imap_settings: Callable[..., Settings],
    app_for: Callable[[Settings], App],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store stops answering in batch 2 of 3: batch 1 is moved, the rest stays."""
    dovecot.append(mails(9))
    app = app_for(imap_settings(dovecot.url(), **{"imap.batch_size": 3}))
    (poller,) = imap_pollers(app, lambda _id: None)
    real_ingest, calls = app.pipeline.ingest, []

    def failing_ingest(items: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 2:
            raise StoreError("the disk went away")
        return real_ingest(items)

    monkeypatch.setattr(app.pipeline, "ingest", failing_ingest)
    monkeypatch.setattr(poller, "_store_answers", lambda: False)  # a down store, not bad mail
    with pytest.raises(MailboxError, match="disk went away"):
        poller.poll_once()

    assert count(app, InboundMessage) <= 6  # batch 3 may have been stored, never moved
    assert dovecot.count("Processed") == 3 and dovecot.count("INBOX") == 6
    monkeypatch.setattr(app.pipeline, "ingest", real_ingest)
    again = poller.poll_once()
    assert again.moved == 6 and count(app, InboundMessage) == 9
    assert dovecot.count("Processed") == 9


def test_a_crash_between_store_and_move_makes_no_second_ticket(
    dovecot: Dovecot,
    imap_settings: Callable[..., Settings],
    app_for: Callable[[Settings], App],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dovecot.append(mails(3))
    app = app_for(imap_settings(dovecot.url()))

    def crash(*_: Any) -> None:
        raise ConnectionResetError("killed before MOVE")

    with monkeypatch.context() as patch:
        patch.setattr("intake.edges.imap.move", crash)
        with pytest.raises(Exception, match="killed before MOVE"):
            poll(app)
    assert dovecot.count("INBOX") == 3 and count(app, InboundMessage) == 3

    result = poll(app)  # the UIDs are known by mailbox/UIDVALIDITY/UID: no FETCH, just MOVE

    assert (len(result.stored), result.duplicates, result.moved) == (0, 3, 3)
    assert count(app, Ticket) == 3 and dovecot.count("Processed") == 3


@pytest.mark.slow
def test_poller_killed_mid_batch_and_restarted_tickets_every_message_once(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    total = 500
    dovecot.append(mails(total))
    db = tmp_path / "intake.db"
    env = {
        **os.environ,
        "INTAKE_DATABASE__URL": f"sqlite:///{db}",
        "INTAKE_OUTBOUND__DIRECTORY": str(tmp_path / "outbox"),
        "INTAKE_IMAP__BATCH_SIZE": "5",
        "INTAKE_IMAP__LEASE_DURATION": "2",
        "INTAKE_LOGGING__FORMAT": "json",
    }
    command = [sys.executable, "-m", "intake", "poll", "--once", "--imap", dovecot.url()]
    victim = subprocess.Popen(
        command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    wait_for(lambda: _stored(db) >= 60, timeout=60, interval=0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert _stored(db) < total, "the poller finished before it could be killed"

    done = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=180
    )

    assert done.returncode == 0, done.stderr[-2000:]
    app = build_app(_settings_from_env(env))
    try:
        assert count(app, InboundMessage) == total and count(app, Ticket) == total
        assert len(set(ticket_message_ids(app))) == total
    finally:
        app.engine.dispose()
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == total


def _stored(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=0.1) as conn:
            return int(conn.execute("SELECT count(*) FROM inbound_message").fetchone()[0])
    except sqlite3.Error:
        return 0


def _settings_from_env(env: dict[str, str]) -> Settings:
    from intake.settings import load_settings

    return load_settings(
        None,
        {
            "database.url": env["INTAKE_DATABASE__URL"],
            "outbound.directory": env["INTAKE_OUTBOUND__DIRECTORY"],
        },
    )


def test_uidvalidity_change_rescans_and_idempotency_absorbs_repeats(
    dovecot: Dovecot, imap_settings: Callable[..., Settings], app_for: Callable[[Settings], App]
) -> None:
    first = mails(2, prefix="u")
    dovecot.append(first, folder="Support")
    app = app_for(imap_settings(dovecot.url(folder="Support")))
    assert len(poll(app).stored) == 2
    # Recreating the folder gives it a new UIDVALIDITY; the same two mails come back
    # (a restore from backup) with UIDs that start at 1 again, plus one new mail.
    client = dovecot.client()
    client.delete_folder("Support")
    client.logout()
    dovecot.append([*first, make_mail(message_id="<new@acme.example>")], folder="Support")

    with capture_logs() as logs:
        result = poll(app)

    assert any(e["event"] == "imap.uidvalidity_changed" for e in logs)
    assert (len(result.stored), result.duplicates, result.moved) == (1, 2, 3)
    assert count(app, Ticket) == 3


# -- always on ------------------------------------------------------------------------------


def test_serve_with_imap_flag_polls_beside_smtp_and_stops_cleanly(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    from tests.conftest import free_port

    db = tmp_path / "intake.db"
    command = [
        sys.executable, "-m", "intake", "serve", "--listen", f"127.0.0.1:{free_port()}",
        "--imap", dovecot.url(), "--database", f"sqlite:///{db}", "--log-format", "json",
    ]  # fmt: skip
    env = {**os.environ, "INTAKE_OUTBOUND__DIRECTORY": str(tmp_path / "outbox")}
    daemon = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        dovecot.append([make_mail(message_id="<served@acme.example>")])
        wait_for(lambda: _stored(db) == 1 and dovecot.count("INBOX") == 0, timeout=30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr[-2000:]
    assert '"event": "intake.stopped"' in stderr
    assert dovecot.message_ids("Processed") == ["<served@acme.example>"]


@pytest.mark.parametrize("extra", ["UIDPLUS", ""], ids=["uidplus", "plain-rfc3501"])
def test_a_server_without_move_or_idle_gets_copy_expunge_and_polling(
    extra: str, imap_settings: Callable[..., Settings]
) -> None:
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    server = make_dovecot(capabilities=f"IMAP4rev1 LITERAL+ SASL-IR {extra}".strip())
    try:
        with capture_logs() as logs:
            daemon = start_daemon(imap_settings(server.url()))
            try:
                server.append([make_mail(message_id="<c1@acme.example>")])
                wait_for(lambda: count(daemon.app, Ticket) == 1, timeout=20)
                server.append([make_mail(message_id="<c2@acme.example>")])  # found by polling
                wait_for(lambda: count(daemon.app, Ticket) == 2, timeout=20)
                wait_for(lambda: server.count("INBOX") == 0, timeout=10)
            finally:
                stop_daemon(daemon)
        assert server.message_ids("Processed") == ["<c1@acme.example>", "<c2@acme.example>"]
        # COPY + \Deleted + EXPUNGE, not MOVE (Dovecot logs deleted=0 expunged=0 for a MOVE)
        assert re.search(r"deleted=[12] expunged=[12]", server.log())
        assert not [e for e in logs if e["event"] == "imap.failing"]
    finally:
        server.destroy()


@pytest.mark.slow
def test_dovecot_restarted_during_idle_the_poller_reconnects(
    dovecot: Dovecot, imap_settings: Callable[..., Settings]
) -> None:
    daemon = start_daemon(imap_settings(dovecot.url()))
    app = daemon.app
    try:
        dovecot.append([make_mail(message_id="<before@acme.example>")])
        wait_for(lambda: count(app, Ticket) == 1, timeout=20)
        time.sleep(0.5)  # the poller is back in IDLE
        with capture_logs() as logs:
            dovecot.restart()
            dovecot.append([make_mail(message_id="<after@acme.example>")])
            wait_for(lambda: count(app, Ticket) == 2, timeout=30)
        events = [e["event"] for e in logs]
        assert "imap.failing" in events and "imap.recovered" in events
        assert ticket_message_ids(app) == ["after@acme.example", "before@acme.example"]
        assert dovecot.count("INBOX") == 0
    finally:
        stop_daemon(daemon)


@pytest.mark.slow
def test_a_wrong_password_backs_off_while_another_mailbox_keeps_working(
    dovecot: Dovecot, imap_settings: Callable[..., Settings]
) -> None:
    with capture_logs() as logs:
        daemon = start_daemon(
            imap_settings(dovecot.url("alice", password="wrong"), dovecot.url("bob"))
        )
        try:
            dovecot.append([make_mail(message_id="<bob@acme.example>")], user="bob")
            wait_for(lambda: count(daemon.app, Ticket) == 1, timeout=20)
            with smtplib.SMTP(daemon.host, daemon.port, timeout=10) as client:  # SMTP unaffected
                client.sendmail(
                    "jane@acme.example",
                    ["support@example.com"],
                    make_mail(message_id="<smtp@acme.example>"),
                )
            wait_for(lambda: count(daemon.app, Ticket) == 2, timeout=20)
            failing = wait_for(
                lambda: _failures(logs, "alice") if len(_failures(logs, "alice")) >= 3 else None
            )
            state = _state(daemon.app, "alice")
        finally:
            stop_daemon(daemon)
    assert "AUTHENTICATIONFAILED" in failing[0]["error"]
    delays = [e["retry_in"] for e in failing[:3]]
    assert delays[0] < delays[1] < delays[2]  # exponential backoff (jitter ±20 %)
    assert len({e["failing_since"] for e in failing}) == 1  # failing since the first failure
    assert state.failing_since is not None and "AUTHENTICATIONFAILED" in (state.last_error or "")
    assert _state_bob_ok(daemon.app)
    assert ticket_message_ids(daemon.app) == ["bob@acme.example", "smtp@acme.example"]


def _failures(logs: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "imap.failing" and e["mailbox"].startswith(user + "@")]


def _state(app: App, user: str) -> MailboxState:
    with session_scope(app.sessions) as session:
        return next(s for s in repo.list_mailbox_states(session) if s.name.startswith(user + "@"))


def _state_bob_ok(app: App) -> bool:
    bob = _state(app, "bob")
    return bob.failing_since is None and bob.last_ok_at is not None


def test_poll_once_reports_a_failing_mailbox_and_still_polls_the_other(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    dovecot.append([make_mail(message_id="<b@acme.example>")], user="bob")
    command = [
        sys.executable, "-m", "intake", "poll", "--once",
        "--imap", dovecot.url("alice", password="wrong"), "--imap", dovecot.url("bob"),
        "--database", f"sqlite:///{tmp_path / 'i.db'}", "--log-format", "json",
    ]  # fmt: skip
    env = {**os.environ, "INTAKE_OUTBOUND__DIRECTORY": str(tmp_path / "outbox")}
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "alice@127.0.0.1" in done.stdout and "failed" in done.stdout
    assert "bob@127.0.0.1" in done.stdout and "stored 1" in done.stdout
    assert dovecot.count("Processed", user="bob") == 1
    status = subprocess.run(
        [sys.executable, "-m", "intake", "status", "--json", "--database", command[-3]],
        check=True,
        capture_output=True,
        text=True,
    )
    states = {row["mailbox"].split("@")[0]: row for row in json.loads(status.stdout)}
    assert states["alice"]["state"] == "failing" and states["alice"]["failing_since"]
    assert "AUTHENTICATIONFAILED" in states["alice"]["last_error"]
    assert states["bob"]["state"] == "ok"


def test_health_reports_a_mailbox_failing_longer_than_the_threshold(
    dovecot: Dovecot, imap_settings: Callable[..., Settings], app_for: Callable[[Settings], App]
) -> None:
    from intake.errors import MailboxError
    from intake.web.checks import mailboxes_problem

    settings = imap_settings(dovecot.url("alice", password="wrong"), dovecot.url("bob"))
    app = app_for(settings)
    pollers(app)[1].poll_once()  # bob first: Dovecot slows logins after a failure
    with pytest.raises(MailboxError):
        pollers(app)[0].poll_once()
    names = [m.name for m in settings.imap.mailboxes]
    soon = mailboxes_problem(app.sessions, names, settings, utc_now())
    later = utc_now() + timedelta(seconds=settings.imap.failing_after + 1)
    problem = mailboxes_problem(app.sessions, names, settings, later)
    assert soon is None
    assert problem is not None and problem.startswith("IMAP alice@127.0.0.1")
    assert "bob@" not in problem


# -- poison mail ----------------------------------------------------------------------------


def test_oversize_and_unparseable_mail_ends_in_quarantine_with_one_log_line_each(
    dovecot: Dovecot, imap_settings: Callable[..., Settings], app_for: Callable[[Settings], App]
) -> None:
    big = make_mail(message_id="<big@acme.example>", body="x" * 20_000)
    dovecot.append(
        [big, b"this is not a mail message at all\r\n", make_mail(message_id="<ok@acme.example>")]
    )
    app = app_for(imap_settings(dovecot.url(), **{"imap.max_message_size": 10_000}))

    with capture_logs() as logs:
        result = poll(app)

    quarantined = [e for e in logs if e["event"] == "imap.quarantined"]
    assert sorted(e["reason"].split(" (")[0] for e in quarantined) == [
        "larger than 10000 bytes",
        "the message has no RFC 5322 header section",
    ]
    assert (result.quarantined, result.moved) == (2, 1)
    assert dovecot.count("Quarantine") == 2 and dovecot.count("Processed") == 1
    assert dovecot.count("INBOX") == 0 and ticket_message_ids(app) == ["ok@acme.example"]
    assert poll(app).moved == 0  # never retried


def test_a_message_that_cannot_be_stored_is_quarantined_after_max_attempts(
    dovecot: Dovecot,
    imap_settings: Callable[..., Settings],
    app_for: Callable[[Settings], App],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dovecot.append(
        [make_mail(message_id="<poison@acme.example>"), make_mail(message_id="<fine@acme.example>")]
    )
    app = app_for(imap_settings(dovecot.url(), **{"imap.max_attempts": 2}))
    real_ingest = app.pipeline.ingest

    def ingest(items: Any) -> Any:  # the store refuses this one message, answers otherwise
        if any(item.message_id == "poison@acme.example" for item in items):
            from intake.errors import StoreError

            raise StoreError("value too long for column")
        return real_ingest(items)

    monkeypatch.setattr(app.pipeline, "ingest", ingest)
    poller = pollers(app)[0]

    first, second = poller.poll_once(), poller.poll_once()

    assert (first.deferred, first.moved, len(first.stored)) == (1, 1, 1)
    assert (second.quarantined, second.deferred) == (1, 0)
    assert dovecot.message_ids("Quarantine") == ["<poison@acme.example>"]
    assert dovecot.count("INBOX") == 0 and ticket_message_ids(app) == ["fine@acme.example"]


# -- security -------------------------------------------------------------------------------


def test_imaps_and_starttls_with_a_trusted_certificate(
    dovecot_tls: Dovecot, imap_settings: Callable[..., Settings], app_for: Callable[[Settings], App]
) -> None:
    dovecot_tls.append(mails(2, prefix="t"))
    ca = str(dovecot_tls.cert)
    imaps = {"url": dovecot_tls.url("alice", folder="INBOX", scheme="imaps"), "ca_file": ca}
    starttls = {"url": dovecot_tls.url("bob", scheme="imap+starttls"), "ca_file": ca}
    dovecot_tls.append(mails(1, prefix="s"), user="bob")
    app = app_for(imap_settings(imaps, starttls))

    results = [p.poll_once() for p in pollers(app)]

    assert [r.moved for r in results] == [2, 1]
    assert count(app, Ticket) == 3


def test_certificate_verification_is_on_unless_disabled(
    dovecot_tls: Dovecot, imap_settings: Callable[..., Settings], app_for: Callable[[Settings], App]
) -> None:
    from intake.errors import MailboxError

    dovecot_tls.append(mails(1, prefix="v"))
    url = dovecot_tls.url(scheme="imaps")
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        poll(app_for(imap_settings(url)))
    unverified = app_for(imap_settings({"url": url, "verify_certificates": False}))
    with capture_logs() as logs:
        assert poll(unverified).moved == 1
    assert any(e["event"] == "imap.certificate_verification_disabled" for e in logs)


def test_starttls_refused_never_falls_back_to_plaintext(
    dovecot: Dovecot, imap_settings: Callable[..., Settings], app_for: Callable[[Settings], App]
) -> None:
    from intake.errors import MailboxError

    dovecot.append(mails(1, prefix="p"))
    app = app_for(imap_settings(dovecot.url(scheme="imap+starttls")))  # server has ssl = no
    logins = dovecot.log().count("Login:")
    with pytest.raises(MailboxError, match="STARTTLS"):
        poll(app)
    assert dovecot.log().count("Login:") == logins  # the password was never sent
    assert dovecot.count("INBOX") == 1


# -- leases ---------------------------------------------------------------------------------


def test_only_the_lease_holder_polls_a_mailbox(
    dovecot: Dovecot,
    imap_settings: Callable[..., Settings],
    app_for: Callable[[Settings], App],
    db_url: str,
) -> None:
    from intake.errors import MailboxError

    # Two instances sharing one store (each imap_pollers call is a new lease owner).
    app = app_for(imap_settings(dovecot.url(), db=db_url, **{"imap.lease_duration": 1}))
    holder = imap_pollers(app, lambda _: None)[0]
    other = imap_pollers(app, lambda _: None)[0]
    assert holder.hold_lease() and holder.hold_lease()  # taken, then renewed
    with pytest.raises(MailboxError, match="lease"):
        other.poll_once(wait_for_lease=0)
    time.sleep(1.1)  # the holder died: its lease runs out
    dovecot.append(mails(1, prefix="l"))
    assert other.poll_once(wait_for_lease=0).moved == 1
    assert holder.hold_lease()  # released after the poll: free again


# -- XOAUTH2 --------------------------------------------------------------------------------


def _token_file(path: Path, token: str, expires_at: datetime, refresh_expires: datetime) -> None:
    path.write_text(
        json.dumps(
            {
                "access_token": token,
                "expires_at": expires_at.isoformat(),
                "refresh_token_expires_at": refresh_expires.isoformat(),
            }
        )
    )


def test_xoauth2_with_a_token_command_logs_in(
    dovecot_oauth: tuple[Dovecot, Introspection],
    imap_settings: Callable[..., Settings],
    app_for: Callable[[Settings], App],
) -> None:
    server, endpoint = dovecot_oauth
    endpoint.valid["cmd-token"] = "alice"
    server.append(mails(1, prefix="x"))
    command = f"{sys.executable} -c \"print('cmd-token')\""
    app = app_for(imap_settings({"url": server.url(password=""), "oauth2_token_command": command}))

    assert poll(app).moved == 1
    assert "cmd-token" in endpoint.seen and count(app, Ticket) == 1


@pytest.mark.slow
def test_xoauth2_token_is_refreshed_before_expiry_and_refresh_token_expiry_is_warned(
    dovecot_oauth: tuple[Dovecot, Introspection],
    imap_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    server, endpoint = dovecot_oauth
    token_file = tmp_path / "token.json"
    now = datetime.now(UTC)
    refresh_expires = now + timedelta(days=3)  # within the 14-day warning window
    # Expires in 5 min 2 s: inside the 5-minute refresh margin within two seconds.
    _token_file(token_file, "first-token", now + timedelta(minutes=5, seconds=2), refresh_expires)
    endpoint.valid["first-token"] = "alice"
    box = {"url": server.url(password=""), "oauth2_token_file": str(token_file)}
    with capture_logs() as logs:
        daemon = start_daemon(imap_settings(box))
        try:
            server.append([make_mail(message_id="<o1@acme.example>")])
            wait_for(lambda: count(daemon.app, Ticket) == 1, timeout=20)
            # The file is renewed by whatever owns the refresh token; the old one is revoked.
            later = datetime.now(UTC) + timedelta(hours=1)
            _token_file(token_file, "second-token", later, refresh_expires)
            endpoint.valid["second-token"] = "alice"
            wait_for(lambda: "second-token" in endpoint.seen, timeout=20)
            del endpoint.valid["first-token"]
            server.append([make_mail(message_id="<o2@acme.example>")])
            wait_for(lambda: count(daemon.app, Ticket) == 2, timeout=20)
        finally:
            stop_daemon(daemon)
    warnings = [e for e in logs if e["event"] == "imap.refresh_token_expiring"]
    assert warnings and refresh_expires.isoformat() in warnings[0]["detail"]
    assert not [e for e in logs if e["event"] == "imap.failing"]
