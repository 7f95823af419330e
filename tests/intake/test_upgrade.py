"""Upgrading a deployment: the oldest schema with its data, the daemon's refusal, many starts.

The oldest schema is the first landed release's own ``create_all`` (tests/store/
models_1abcf39.py), filled with the rows that release wrote: a ticket, the message that
opened it, our confirmation and the thread secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from intake.app import build_app, upgrade_store
from intake.cli import main
from intake.errors import SchemaError
from intake.pipeline.core import Envelope, prepare_inbound
from intake.settings import Settings
from store import migrate
from store.db import make_engine, session_scope
from store.models import InboundMessage, OutboxMessage, Ticket
from tests.conftest import PG_ADMIN, _pg_available, free_port, make_mail, wait_for
from tests.store import models_1abcf39 as old

OPENED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
OLD_MESSAGE_ID = "<opened-long-ago@acme.example>"
OLD_REPLY_ID = "<confirmation-long-ago@example.com>"


def intake(*args: str, stdin: bytes | None = None) -> Result:
    """The real command line, in-process (the shell's INTAKE_* variables dropped)."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("INTAKE_")}
    return CliRunner(env=env).invoke(main, list(args), input=stdin)


def oldest_store(url: str) -> None:
    """The first release's schema and the rows it wrote, with no alembic_version."""
    engine = make_engine(url)
    try:
        old.Base.metadata.create_all(engine)
        raw = make_mail(message_id=OLD_MESSAGE_ID, body="Phones are dead.\n")
        with Session(engine) as session, session.begin():
            inbound = old.InboundMessage(
                idempotency_key=hashlib.sha256(raw).hexdigest(),
                message_id=OLD_MESSAGE_ID,
                origin="smtp",
                envelope_from="jane@acme.example",
                envelope_to=["support@example.com"],
                raw=raw,
                size=len(raw),
                received_at=OPENED,
                status="processed",
                attempts=1,
                processed_at=OPENED,
                classification="human",
                outcome="ticket_created",
                sender="jane@acme.example",
            )
            session.add(inbound)
            session.flush()
            ticket = old.Ticket(
                number="TKT-000001",
                subject="Acme Corp – Denver – No dial tone – P1",
                customer="Acme Corp",
                location="Denver",
                issue="No dial tone",
                priority=1,
                status="open",
                fields={},
                missing_fields=["serial_number"],
                requester_email="jane@acme.example",
                requester_name="Jane Doe",
                message_id=OLD_MESSAGE_ID,
                policy_name="standard",
                policy_version="1",
                participants=["jane@acme.example"],
                inbound_message_id=inbound.id,
                created_at=OPENED,
                updated_at=OPENED,
            )
            session.add(ticket)
            session.flush()
            inbound.ticket_id = ticket.id
            reply = old.OutboxMessage(
                message_id=OLD_REPLY_ID,
                kind="confirmation",
                ticket_id=ticket.id,
                inbound_message_id=inbound.id,
                sender="support@example.com",
                recipients=["jane@acme.example"],
                raw=b"Subject: Re: [TKT-000001]\r\n\r\nthanks\r\n",
                status="sent",
                attempts=1,
                next_attempt_at=OPENED,
                created_at=OPENED,
                sent_at=OPENED,
            )
            session.add(reply)
            session.flush()
            session.add(
                old.OutboxRecipient(
                    outbox_id=reply.id, address="jane@acme.example", created_at=OPENED
                )
            )
            session.add(old.AppSecret(name="thread_hmac", value="0" * 64, created_at=OPENED))
    finally:
        engine.dispose()


@pytest.mark.fault
def test_the_oldest_store_with_data_is_upgraded_and_takes_a_follow_up(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    oldest_store(db_url)
    settings = make_settings(db_url)
    with pytest.raises(SchemaError, match="intake db upgrade"):
        build_app(settings)  # behind: the daemon refuses before touching anything

    done = upgrade_store(settings)
    assert done.before.legacy and done.after.up_to_date and done.changed
    assert done.after.current == migrate.head()

    app = build_app(settings)
    try:
        follow = make_mail(
            subject="Re: Acme Corp – Denver – No dial tone – P1 [TKT-000001]",
            headers={"In-Reply-To": OLD_REPLY_ID, "References": OLD_REPLY_ID},
            body="Serial Number: board MX-0042-7781, appliance MX-0042-7782\n",
        )
        when = OPENED + timedelta(days=1)
        app.pipeline.clock = lambda: when
        [stored] = app.pipeline.ingest(
            [prepare_inbound(follow, Envelope("smtp", "t", "jane@acme.example"), when)]
        )
        outcome = app.pipeline.process(stored.inbound_id)
        assert (outcome.result, outcome.ticket_number) == ("follow_up", "TKT-000001")
        with session_scope(app.sessions) as session:
            [ticket] = session.execute(select(Ticket)).scalars()
            assert ticket.fields["serial_number"] == "board: MX-0042-7781; appliance: MX-0042-7782"
            assert "serial_number" not in ticket.missing_fields
            rows = session.execute(select(InboundMessage).order_by(InboundMessage.id)).scalars()
            assert [(r.message_id == OLD_MESSAGE_ID, r.ticket_id) for r in rows] == [
                (True, ticket.id),
                (False, ticket.id),
            ]
            replies = session.execute(select(OutboxMessage.message_id)).scalars().all()
            assert OLD_REPLY_ID in replies
    finally:
        app.engine.dispose()


def test_the_cli_upgrades_the_oldest_store_and_says_from_what(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    oldest_store(url)
    behind = intake("db", "current", "--database", url)
    assert behind.exit_code == 1 and "intake db upgrade" in behind.stdout
    upgraded = intake("db", "upgrade", "--database", url)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert f"upgraded unversioned -> {migrate.head()}" in upgraded.stdout
    again = intake("db", "upgrade", "--database", url)
    assert f"already at {migrate.head()}" in again.stdout
    current = intake("db", "current", "--database", url)
    assert (current.exit_code, current.stdout) == (0, f"{migrate.head()} (head)\n")
    listed = intake("tickets", "list", "--database", url)
    assert listed.exit_code == 0 and "TKT-000001" in listed.stdout


def test_db_current_json_and_a_missing_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = intake("db", "current", "--json", "--database", url)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "database": str(tmp_path / "none.db"),
        "current": None,
        "head": migrate.head(),
        "up_to_date": False,
        "exists": False,
        "newer": False,
    }
    assert list(tmp_path.iterdir()) == []  # looking created nothing


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["serve", "--listen", "127.0.0.1:0"], 78),
        (["deliver", "--sender", "jane@acme.example"], 75),
        (["tickets", "list"], 78),
        (["customers", "list"], 78),
    ],
    ids=["serve-78", "deliver-75-mta-retries", "tickets-list-78", "customers-list-78"],
)
def test_a_schema_that_is_behind_is_refused_in_one_line_naming_the_command(
    tmp_path: Path, args: list[str], code: int
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    oldest_store(url)
    result = intake(*args, "--database", url, stdin=make_mail())
    assert result.exit_code == code, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "is behind" in result.stderr and "run `intake db upgrade`" in result.stderr
    engine = make_engine(url)
    try:  # nothing was stored, stamped or created
        assert "alembic_version" not in inspect(engine).get_table_names()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM inbound_message")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_db_commands_on_an_unreachable_server_fail_in_one_line(command: str) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    result = intake("db", command, "--database", url)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot ") and result.stderr.count("\n") == 1


def test_health_fails_on_a_schema_the_daemon_would_refuse(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    oldest_store(url)
    result = intake("health", "--listen", f"127.0.0.1:{free_port()}", "--database", url)
    assert result.exit_code == 1
    assert "is behind" in result.stderr and "intake db upgrade" in result.stderr


def test_a_schema_from_a_newer_version_is_refused(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaError, match="9999_future, newer than this intake"):
        build_app(make_settings(db_url))


# --- instances starting together on an empty database ----------------------------------------


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (never the session's shared one)."""
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"intake_race_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def at_head(url: str) -> bool:
    engine: Engine = make_engine(url)
    try:
        return migrate.schema_status(engine).up_to_date
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.fault
def test_three_daemons_started_at_once_on_an_empty_postgresql_database_all_run(
    tmp_path: Path, empty_pg_url: str
) -> None:
    """The race create_all lost (13 of 24 processes crashed): now one migrates, all run.

    (tests/store/test_migrate.py races the migration itself on SQLite and PostgreSQL.)
    """
    url = empty_pg_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["INTAKE_WEB__LISTEN"] = "127.0.0.1:0"  # three instances: no shared HTTP port
    ports = [free_port() for _ in range(3)]
    daemons = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "intake",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--deliver",
                str(tmp_path / f"outbox-{port}"),
                "--database",
                url,
                "--log-format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for port in ports
    ]
    try:
        logs = [""] * 3

        def all_started() -> bool:
            for i, daemon in enumerate(daemons):
                if daemon.poll() is not None:  # exited: a crash, show why
                    _, logs[i] = daemon.communicate()
                    raise AssertionError(f"daemon {i} exited {daemon.returncode}: {logs[i]}")
            return all(_answers(port) for port in ports)

        wait_for(all_started, timeout=120, interval=0.2)
        assert at_head(url)
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        codes = [daemon.wait(60) for daemon in daemons]
    assert codes == [0, 0, 0], [d.stderr.read() if d.stderr else "" for d in daemons]


def _answers(port: int) -> bool:
    import smtplib

    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            return client.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False
