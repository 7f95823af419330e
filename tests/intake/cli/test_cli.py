"""The CLI as users run it: subprocesses for deliver/check, the JSON shapes, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from intake.cli import main
from intake.settings import Settings
from store.db import create_schema, make_engine
from tests.conftest import free_port, make_mail

REPO = Path(__file__).resolve().parents[3]
CUSTOMERS = REPO / "config" / "customers.example.toml"


def intake(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "intake", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def config_file(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "test.toml"
    path.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[outbound]\ndirectory = "{settings.outbound.directory}"\n'
        f'[logging]\nformat = "json"\n'
    )
    return path


def test_deliver_stores_processes_and_replies(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    cfg = config_file(make_settings(), tmp_path)
    result = intake(
        "deliver", "--config", str(cfg), "--sender", "jane@acme.example", stdin=make_mail()
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1

    listed = intake("tickets", "list", "--json", "--config", str(cfg))
    [ticket] = json.loads(listed.stdout)
    assert ticket["number"] == "TKT-000001" and ticket["priority"] == 1
    assert set(ticket) >= {
        "number",
        "customer",
        "location",
        "issue",
        "priority",
        "status",
        "missing_fields",
        "created_at",
    }
    shown = json.loads(
        intake("tickets", "show", "TKT-000001", "--json", "--config", str(cfg)).stdout
    )
    assert shown["customer"] == "Acme Corp" and shown["charges"] == []


def test_deliver_exits_75_when_the_store_is_unreachable(tmp_path: Path) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    result = intake("deliver", "--database", dead, stdin=make_mail(), cwd=tmp_path)
    assert result.returncode == 75
    assert b"intake deliver:" in result.stderr


def test_deliver_refuses_oversize_with_65(tmp_path: Path) -> None:
    result = intake(
        "deliver",
        stdin=make_mail(body="x" * 5000),
        cwd=tmp_path,
        env={"INTAKE_SMTP__MAX_MESSAGE_SIZE": "1000"},
    )
    assert result.returncode == 65


def test_check_json_shape(tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(make_mail(body="Serials: 1 / 2\nPhone: N/A\n"))
    result = intake("check", "--json", str(mail), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["file"] == str(mail)
    assert record["message"]["subject"].startswith("Acme Corp – 123 Main St")
    assert record["classification"] == "human"
    assert record["subject"] == {
        "customer": "Acme Corp",
        "location": "123 Main St, Denver CO",
        "issue": "No dial tone on all lines",
        "priority": 1,
    }
    assert record["subject_problem"] is None and record["priority"] == 1
    assert record["fields"]["serial_number"] == "board: 1; appliance: 2"
    assert "contact_phone" in record["missing_fields"]
    [charge] = record["charges"]
    assert {k: charge[k] for k in ("kind", "amount", "currency", "status")} == {
        "kind": "missing_information",
        "amount": "100.00",
        "currency": "USD",
        "status": "applied",
    }
    assert "$100 additional charge" in charge["reason"]
    assert record["response_due"] is not None  # the standard policy's P1 4-hour target
    assert not (tmp_path / "intake.db").exists()  # a dry run stores nothing
    assert record["sender_trust"] == "none"  # no trusted Authentication-Results


def test_check_json_shows_the_sender_trust_and_no_reply_to_a_dmarc_fail(tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    results = "mx.example.com; dmarc=fail header.from=acme.example"
    mail.write_bytes(make_mail(headers={"Authentication-Results": results}))
    env = {"INTAKE_INTAKE__TRUSTED_AUTHSERV_IDS": '["mx.example.com"]'}
    result = intake("check", "--json", str(mail), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode()
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (record["sender_trust"], record["reply_to"]) == ("fail", None)
    assert "dmarc_fail" in {f["code"] for f in record["findings"]}


def test_check_explain_names_line_synonym_and_rule(tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    body = "Hello\n5. Serial Number (board): SN-1\nThe phone number is on the sticker.\n"
    mail.write_bytes(make_mail(body=body))
    result = intake("check", "--explain", str(mail), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "MISSING serial_number: still needed: the appliance serial number" in out
    assert "line 2 [board]: '5. Serial Number (board): SN-1' - synonym 'Serial Number'" in out
    assert "line 3: 'The phone number is on the sticker.' names 'Phone Number' in prose" in out
    as_json = intake("check", "--json", "--explain", str(mail), cwd=tmp_path)
    [record] = [json.loads(line) for line in as_json.stdout.splitlines()]
    serial = next(e for e in record["explain"] if e["field"] == "serial_number")
    assert [(s["line"], s["part"], s["rule"]) for s in serial["sources"]] == [
        (2, "board", "labelled line")
    ]


def test_check_reports_unreadable_inputs_and_goes_on(tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(make_mail(subject="no separators at all"))
    result = intake("check", "--json", str(tmp_path / "absent.eml"), str(tmp_path), str(good))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert "No such file" in records[0]["error"]
    assert "is a directory" in records[1]["error"]
    assert records[2]["subject"] is None and records[2]["subject_problem"]
    assert b"Traceback" not in result.stderr


def test_check_reads_the_configured_ticket_tag(tmp_path: Path) -> None:
    subject = "Re: Acme Corp – Denver – Echo on line 2 – P2 [INC0000012]"
    result = intake(
        "check",
        "--json",
        "-",
        stdin=make_mail(subject=subject),
        cwd=tmp_path,
        env={"INTAKE_INTAKE__TICKET_NUMBER_FORMAT": "INC{:07d}"},
    )
    assert result.returncode == 0, result.stderr.decode()
    record = json.loads(result.stdout)
    assert record["subject"]["issue"] == "Echo on line 2"
    assert record["subject"]["priority"] == 2 and record["subject_problem"] is None


def test_check_reads_stdin(tmp_path: Path) -> None:
    result = intake("check", "--json", "-", stdin=make_mail(), cwd=tmp_path)
    assert json.loads(result.stdout)["file"] == "-"


@pytest.mark.parametrize(
    ("args", "expected", "store"),
    [
        (["check", "--received-at", "yesterday", "x"], "--received-at", False),
        (["serve", "--listen", "nowhere"], "--listen", False),
        (["check", "--policy", "nope", "x"], "no policy named 'nope'", False),
        (["tickets", "show", "TKT-999999"], "no ticket TKT-999999", True),
        (["tickets", "show", "TKT-999999"], "no intake database at", False),
    ],
    ids=["bad-instant", "bad-listen", "unknown-policy", "unknown-ticket", "no-store"],
)
def test_cli_errors_are_one_clear_line(
    tmp_path: Path, args: list[str], expected: str, store: bool
) -> None:
    if store:
        assert intake("db", "upgrade", cwd=tmp_path).returncode == 0
    result = intake(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_bad_config_key_fails_at_startup_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[smtp]\nprot = 25\n")
    result = intake("serve", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    assert "smtp.prot: unknown key" in result.stderr.decode()


def test_help_lists_every_command() -> None:
    out = intake("--help").stdout.decode()
    for command in (
        "serve",
        "deliver",
        "check",
        "tickets",
        "quarantine",
        "outbox",
        "health",
        "config",
        "policies",
    ):
        assert command in out


def test_health_fails_when_nothing_listens(tmp_path: Path) -> None:
    result = intake("health", "--listen", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert result.returncode == 1 and "does not answer" in result.stderr.decode()


def test_check_in_an_empty_directory_creates_no_file(tmp_path: Path) -> None:
    mail, empty = tmp_path / "m.eml", tmp_path / "empty"
    mail.write_bytes(make_mail())
    empty.mkdir()
    result = intake("check", str(mail), cwd=empty)  # default store: sqlite:///./intake.db
    assert result.returncode == 0, result.stderr.decode()
    assert "human → new_ticket" in result.stdout.decode()
    assert list(empty.iterdir()) == []


def test_check_reads_the_customer_directory_of_the_configured_store(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'intake.db'}"
    imported = intake("customers", "import", str(CUSTOMERS), "--database", db, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr.decode()
    mail = tmp_path / "m.eml"
    mail.write_bytes(make_mail(subject="ACME HQ – Denver – No dial tone – P2"))
    before = (tmp_path / "intake.db").read_bytes()
    result = intake("check", "--json", "--database", db, str(mail), cwd=tmp_path)
    record = json.loads(result.stdout)
    assert record["customer"] == "Acme Corp" and record["policy"]["name"] == "managed-pbx"
    assert (tmp_path / "intake.db").read_bytes() == before  # read, never written


def test_health_reports_a_store_that_does_not_exist_and_creates_none(tmp_path: Path) -> None:
    result = intake("health", "--listen", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"no intake database at {tmp_path / 'intake.db'}" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tickets", "list"], "(none)"),
        (["tickets", "autoclose"], "closed 0 tickets"),
        (["charges", "list", "--json"], "[]"),
        (["quarantine", "list"], "(none)"),
        (["outbox", "list", "--json"], "[]"),
        (["outbox", "flush"], "attempted 0 replies"),
        (["status"], "(none)"),
        (["customers", "list"], "(none)"),
    ],
    ids=[
        "tickets-list",
        "tickets-autoclose",
        "charges-list-json",
        "quarantine-list",
        "outbox-list-json",
        "outbox-flush",
        "status",
        "customers-list",
    ],
)
def test_every_group_answers_on_an_empty_store(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    database = ("--database", f"sqlite:///{tmp_path / 'intake.db'}")
    engine = make_engine(database[1])
    create_schema(engine)  # what `intake serve` or `intake db upgrade` leave behind
    engine.dispose()
    result = intake(*args, *database, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == expected


READ_ONLY = [
    ["tickets", "list"],
    ["tickets", "show", "TKT-000001"],
    ["tickets", "autoclose"],
    ["charges", "list"],
    ["quarantine", "list"],
    ["quarantine", "retry", "1"],
    ["outbox", "list"],
    ["outbox", "retry", "1"],
    ["outbox", "flush"],
    ["status"],
    ["customers", "list"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=["-".join(a) for a in READ_ONLY])
def test_commands_on_a_missing_store_say_where_they_looked_and_create_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Run from another directory, nothing appears there: no ./intake.db, no WAL files."""
    monkeypatch.chdir(tmp_path)
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("INTAKE_")}
    runner = CliRunner(env={**env, "INTAKE_DATABASE__URL": "sqlite:///./intake.db"})
    result = runner.invoke(main, args)
    stderr = result.stderr
    assert result.exit_code == 78, stderr  # EX_CONFIG
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"no intake database at {tmp_path / 'intake.db'}" in stderr
    assert "--config" in stderr and "INTAKE_DATABASE__URL" in stderr
    assert list(tmp_path.iterdir()) == []


def test_config_show_and_policies_read_only_the_configuration(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    shown = json.loads(intake("config", "show", "--database", db, cwd=tmp_path).stdout)
    assert shown["database"]["url"] == db and shown["logging"]["format"] == "auto"
    names = intake("policies", cwd=tmp_path).stdout.decode().split()
    assert names == sorted(p.stem for p in (REPO / "config" / "policies").glob("*.toml"))
    assert list(tmp_path.iterdir()) == []


def test_check_explain_names_a_phone_read_without_a_label(tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    body = "Phones are down since 8am, please call me on my cell at 303-555-0142.\n"
    mail.write_bytes(make_mail(body=body))
    result = intake("check", "--explain", str(mail), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert "contact_phone: read without a label from the sentence" in result.stdout.decode()
