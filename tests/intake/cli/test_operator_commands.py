"""Operator commands in-process: config show, policies, health, status, serve/poll errors,
customers import/list, and the errors every command shares (config, store)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from intake import __version__
from intake.cli import main
from intake.policy.policy import available_policies
from intake.settings import Settings, load_settings
from store import repository as repo
from store.db import session_scope
from tests.conftest import (
    RunningDaemon,
    Sink,
    free_port,
    make_mail,
    start_daemon,
    stop_daemon,
    wait_for,
)
from tests.intake.cli.conftest import Cli, write_config
from tests.intake.edges.dovecot import Dovecot

SECRETS = ("hunter2-outbound", "s3cret-hmac-key", "pw-in-the-url")


def dead_postgres() -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"


@pytest.fixture
def with_mailbox(tmp_path: Path) -> Cli:
    """A store plus one configured IMAP mailbox on a loopback port nothing listens on."""
    database_url = f"sqlite:///{tmp_path / 'intake.db'}"
    outbox = tmp_path / "outbox"
    mailbox = f'[[imap.mailboxes]]\nurl = "imap://alice:pw@127.0.0.1:{free_port()}/INBOX"\n'
    config = write_config(tmp_path / "intake.toml", database_url, outbox, mailbox)
    return Cli(config, database_url, outbox)


def mailbox_name(cli: Cli) -> str:
    return load_settings(cli.config).imap.mailboxes[0].name


# --- shared errors -------------------------------------------------------------------------


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"intake, version {__version__}\n")


def test_a_bad_config_key_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nprot = 25\n")
    result = CliRunner().invoke(main, ["tickets", "list", "--config", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: config error: ") and "smtp.prot" in result.stderr


def test_an_unreachable_store_is_one_line(cli: Cli) -> None:
    result = cli("tickets", "list", "--database", dead_postgres())
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot open the store: ")
    assert "Traceback" not in result.output


# --- config show / policies ----------------------------------------------------------------


def test_config_show_masks_every_secret(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'intake.db'}"
    extra = (
        f'[outbound]\npassword = "{SECRETS[0]}"\n'
        f'[intake]\nthread_secret = "{SECRETS[1]}"\n'
        f'[[imap.mailboxes]]\nurl = "imaps://alice:{SECRETS[2]}@imap.example:993/INBOX"\n'
    )
    config = tmp_path / "intake.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n{extra}')
    result = CliRunner().invoke(main, ["config", "show", "--config", str(config)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["outbound"]["password"] == "**********"
    assert shown["intake"]["thread_secret"] == "**********"
    [mailbox] = shown["imap"]["mailboxes"]
    assert mailbox["password"] == "**********" and SECRETS[2] not in mailbox["url"]
    assert not any(secret in result.output for secret in SECRETS)
    assert shown["database"]["url"] == database_url


def test_config_show_reflects_flags_over_the_file(cli: Cli) -> None:
    result = cli("config", "show", "--log-level", "WARNING", "--database", "sqlite:///other.db")
    shown = json.loads(result.stdout)
    assert shown["logging"]["level"] == "WARNING"
    assert shown["database"]["url"] == "sqlite:///other.db"


def test_policies_lists_every_shipped_contract(cli: Cli) -> None:
    result = cli("policies")
    assert result.exit_code == 0
    names = result.stdout.split()
    assert names == list(available_policies(None))
    assert {"standard", "voip-hotline", "managed-pbx"} <= set(names)


# --- health ----------------------------------------------------------------------------------


def test_health_ok_when_listener_and_store_answer(cli: Cli, sink: Sink) -> None:
    cli.deliver()
    result = cli("health", "--listen", f"{sink.host}:{sink.port}")
    assert (result.exit_code, result.stdout) == (0, "ok\n"), result.output


def test_health_fails_when_a_message_waits_too_long(cli: Cli, sink: Sink) -> None:
    cli.deliver(make_mail(), "--no-process")
    with cli.session() as session:
        [inbound_id] = repo.due_inbound_ids(session, datetime.now(UTC))
        row = repo.get_inbound(session, inbound_id)
        assert row is not None
        row.received_at = datetime.now(UTC) - timedelta(hours=1)
    result = cli("health", "--listen", f"{sink.host}:{sink.port}")
    assert result.exit_code == 1
    assert "unhealthy: stall: a message has waited to be processed since " in result.stderr


def test_health_names_every_problem_at_once(cli: Cli) -> None:
    listen = f"127.0.0.1:{free_port()}"
    result = cli("health", "--listen", listen, "--database", dead_postgres())
    assert result.exit_code == 1
    assert f"smtp: {listen} does not answer" in result.stderr
    assert "store: OperationalError" in result.stderr
    assert "; stall: OperationalError" in result.stderr


def test_health_fails_for_a_configured_mailbox_failing_too_long(
    with_mailbox: Cli, sink: Sink
) -> None:
    name = mailbox_name(with_mailbox)
    with with_mailbox.session() as session:
        repo.record_mailbox_failure(
            session, name, "connection refused", datetime(2026, 1, 1, tzinfo=UTC)
        )
        repo.record_mailbox_failure(
            session, "gone@old.example:993/INBOX", "x", datetime(2026, 1, 1, tzinfo=UTC)
        )
    result = with_mailbox("health", "--listen", f"{sink.host}:{sink.port}")
    assert result.exit_code == 1
    assert f"IMAP {name} failing since 2026-01-01T00:00:00Z: connection refused" in result.stderr
    assert "gone@old.example" not in result.stderr  # no longer configured: not our problem


def test_health_checks_the_mailboxes_given_with_imap_against_a_running_daemon(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    daemon = start_daemon(make_settings())
    url = f"imap://alice:pw@127.0.0.1:{free_port()}/INBOX"
    name = load_settings(None, {"imap.mailboxes": [{"url": url}]}).imap.mailboxes[0].name
    try:
        with session_scope(daemon.app.sessions) as session:
            repo.record_mailbox_failure(
                session, name, "connection refused", datetime(2026, 1, 1, tzinfo=UTC)
            )
        cli = daemon_cli(daemon, tmp_path)
        listen = ("--listen", f"{daemon.host}:{daemon.port}")
        ok, failing = cli("health", *listen), cli("health", *listen, "--imap", url)
    finally:
        stop_daemon(daemon)
    assert (ok.exit_code, ok.stdout) == (0, "ok\n"), ok.output  # smtp, tasks, readyz's own
    assert failing.exit_code == 1
    expected = f"unhealthy: mailboxes: IMAP {name} failing since 2026-01-01T00:00:00Z: "
    assert expected + "connection refused" in failing.stderr


def test_health_names_a_task_of_the_daemon_that_is_down(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    daemon = start_daemon(make_settings())
    try:
        cli = daemon_cli(daemon, tmp_path)
        listen = ("--listen", f"{daemon.host}:{daemon.port}")
        with daemon.app.engine.begin() as conn:  # the outbox sender's store goes away
            conn.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
        down = wait_for(lambda: (r := cli("health", *listen)).exit_code == 1 and r, 60)
    finally:
        stop_daemon(daemon)
    assert "tasks: down: outbox (OperationalError: " in down.stderr


def daemon_cli(daemon: RunningDaemon, tmp_path: Path) -> Cli:
    """The CLI configured like ``daemon``: its store, outbox and web address."""
    settings = daemon.app.settings
    url, outbox = settings.database.url, settings.outbound.directory
    config = write_config(tmp_path / "health.toml", url, outbox, web=settings.web.listen)
    return Cli(config, url, outbox)


def test_health_listen_must_be_host_and_port(cli: Cli) -> None:
    result = cli("health", "--listen", "127.0.0.1")
    assert result.exit_code == 2 and "expected HOST:PORT" in result.stderr


# --- status and poll -------------------------------------------------------------------------


def test_status_is_none_without_mailboxes(cli: Cli) -> None:
    assert cli("status").stdout == "(none)\n"


def test_poll_failure_is_reported_per_mailbox_and_shows_in_status(with_mailbox: Cli) -> None:
    name = mailbox_name(with_mailbox)
    result = with_mailbox("poll", "--once")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{name}: failed: ")
    [row] = json.loads(with_mailbox("status", "--json").stdout)
    assert (row["mailbox"], row["state"], row["lease_owner"]) == (name, "failing", None)
    assert row["failing_since"] is not None and row["last_error"]
    header, line = with_mailbox("status").stdout.splitlines()
    assert header == "mailbox  state  failing_since  last_ok_at  last_error"
    assert line.startswith(f"{name}  failing  ")


@pytest.mark.parametrize(
    ("when", "state"),
    [("ok", "ok"), ("never", "unknown")],
    ids=["polled-ok", "never-polled"],
)
def test_status_states(cli: Cli, when: str, state: str) -> None:
    with cli.session() as session:
        if when == "ok":
            repo.record_mailbox_ok(session, "alice@imap.example:993/INBOX", datetime.now(UTC), 7)
        else:
            now = datetime.now(UTC)
            repo.acquire_mailbox_lease(session, "alice@imap.example:993/INBOX", "me", now, now)
    [row] = json.loads(cli("status", "--json").stdout)
    assert row["state"] == state


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["poll"], 2, "poll needs --once"),
        (["poll", "--once"], 1, "no mailboxes: give --imap URL or configure imap.mailboxes"),
    ],
    ids=["without-once", "no-mailboxes"],
)
def test_poll_usage_errors(cli: Cli, args: list[str], code: int, message: str) -> None:
    result = cli(*args)
    assert result.exit_code == code and message in result.stderr


def test_poll_names_a_mailbox_whose_password_cannot_be_read(cli: Cli) -> None:
    url = f"imap://bob@127.0.0.1:{free_port()}/INBOX?password_env=INTAKE_TEST_UNSET_PASSWORD"
    runner = CliRunner(env={"INTAKE_TEST_UNSET_PASSWORD": None})
    result = runner.invoke(main, ["poll", "--once", "--imap", url, "--config", str(cli.config)])
    assert result.exit_code == 1
    assert "INTAKE_TEST_UNSET_PASSWORD is not set" in result.stderr
    assert result.stderr.startswith("Error: imap mailbox bob@127.0.0.1:")


def test_poll_imap_option_replaces_the_configured_mailboxes(cli: Cli) -> None:
    url = f"imap://bob:pw@127.0.0.1:{free_port()}/INBOX"
    result = cli("poll", "--once", "--no-process", "--imap", url)
    assert result.exit_code == 1
    assert result.stdout.startswith("bob@127.0.0.1:") and ": failed: " in result.stdout


def test_poll_once_stores_moves_processes_and_replies(cli: Cli, dovecot: Dovecot) -> None:
    dovecot.append([make_mail(message_id="<polled@acme.example>")])
    result = cli("poll", "--once", "--imap", dovecot.url())
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(": stored 1, moved 1, duplicates 0, quarantined 0, deferred 0\n")
    assert dovecot.count("Processed") == 1 and dovecot.count("INBOX") == 0
    assert len(cli.sent_files()) == 1
    [row] = json.loads(cli("status", "--json").stdout)
    assert row["state"] == "ok" and row["lease_owner"] is None


# --- serve: errors before it runs ------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--listen", "nowhere"], 2, "expected HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], 2, "expected HOST:PORT"),
        (["--deliver", "smtp://:25"], 1, "no host in relay URL"),
        (["--policy", "platinum"], 1, "no policy named 'platinum'"),
    ],
    ids=["listen-no-port", "listen-port-range", "deliver-no-host", "unknown-policy"],
)
def test_serve_refuses_bad_options(cli: Cli, args: list[str], code: int, message: str) -> None:
    result = cli("serve", *args)
    assert result.exit_code == code
    assert message in result.stderr and "Traceback" not in result.output


def test_serve_on_a_busy_port_is_one_line(cli: Cli, busy_port: int) -> None:
    result = cli("serve", "--listen", f"127.0.0.1:{busy_port}", "--deliver", str(cli.outbox))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{busy_port}: ")


# --- customers -------------------------------------------------------------------------------

DIRECTORY = "name,domains,support_id\nAcme Corp,acme.example,S-1\nGlobex,globex.example,S-2\n"


def directory(tmp_path: Path, text: str = DIRECTORY, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_customers_import_then_list(cli: Cli, tmp_path: Path) -> None:
    result = cli("customers", "import", str(directory(tmp_path)))
    assert (result.exit_code, result.stdout) == (0, "imported 2 new, 0 updated\n"), result.output
    rows = json.loads(cli("customers", "list", "--json").stdout)
    assert [(r["name"], r["support_id"]) for r in rows] == [("Acme Corp", "S-1"), ("Globex", "S-2")]
    lines = cli("customers", "list").stdout.splitlines()
    assert lines[0].startswith("name  ") and lines[1].startswith("Acme Corp  ")


def test_customers_dry_run_counts_new_and_updated_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    cli("customers", "import", str(directory(tmp_path, "name\nAcme Corp\n", "first.csv")))
    result = cli("customers", "import", "--dry-run", str(directory(tmp_path)))
    assert result.exit_code == 0, result.output
    assert result.stdout == "would import 1 new, 1 updated (dry run: nothing written)\n"
    assert [r["name"] for r in json.loads(cli("customers", "list", "--json").stdout)] == [
        "Acme Corp"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,timezone\nAcme,Mars/Olympus\n", ":2: timezone: unknown time zone 'Mars/Olympus'"),
        ("name,policy\nAcme,platinum\n", "no policy named 'platinum'"),
        ("name\nAcme\nACME\n", "ACME"),
    ],
    ids=["bad-zone", "unknown-policy", "same-customer-twice"],
)
def test_customers_dry_run_reports_file_errors(
    cli: Cli, tmp_path: Path, text: str, message: str
) -> None:
    path = directory(tmp_path, text)
    result = cli("customers", "import", "--dry-run", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_customers_dry_run_reports_a_support_id_taken_in_the_store(
    cli: Cli, tmp_path: Path
) -> None:
    cli("customers", "import", str(directory(tmp_path)))
    clash = directory(tmp_path, "name,support_id\nHooli,S-1\n", "clash.csv")
    result = cli("customers", "import", "--dry-run", str(clash))
    assert result.exit_code == 1
    assert "'S-1' already belongs to 'Acme Corp'" in result.stderr


def test_customers_import_of_a_missing_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    result = cli("customers", "import", str(tmp_path / "absent.csv"))
    assert result.exit_code == 1
    assert "absent.csv" in result.stderr and "Traceback" not in result.output
