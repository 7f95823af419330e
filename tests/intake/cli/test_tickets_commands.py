"""``intake deliver``, ``check`` and ``tickets list|show|autoclose`` run in-process."""

from __future__ import annotations

import getpass
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from intake.cli import main
from store import repository as repo
from store.models import TicketStatus
from tests.conftest import make_mail
from tests.intake.cli.conftest import Cli

PARTIAL_BODY = "Serial Number: MX-1\nPhone: N/A\n"  # missing fields: an applied charge


def test_deliver_stores_processes_and_sends_the_confirmation(cli: Cli) -> None:
    result = cli.deliver()
    assert result.stdout == ""  # stdout stays clean for the MTA; logs go to stderr
    assert len(cli.sent_files()) == 1
    with cli.session() as session:
        [ticket] = repo.list_tickets(session)
        assert (ticket.number, ticket.customer, ticket.priority) == ("TKT-000001", "Acme Corp", 1)


def test_deliver_no_process_only_stores(cli: Cli) -> None:
    cli.deliver(make_mail(), "--no-process")
    assert cli.sent_files() == []
    with cli.session() as session:
        assert repo.list_tickets(session) == []
        assert len(repo.due_inbound_ids(session, datetime.now(UTC))) == 1


def test_deliver_refuses_an_oversize_message_with_65(cli: Cli) -> None:
    runner = CliRunner(env={"INTAKE_SMTP__MAX_MESSAGE_SIZE": "1000"})
    args = ["deliver", "--config", str(cli.config)]
    result = runner.invoke(main, args, input=make_mail(body="x" * 5000))
    assert result.exit_code == 65
    assert "intake deliver: message larger than 1000 bytes" in result.stderr
    with cli.session() as session:
        assert repo.due_inbound_ids(session, datetime.now(UTC)) == []


def test_deliver_exits_tempfail_when_the_store_refuses_the_message(cli: Cli) -> None:
    """Invariant 1: exit 75 (EX_TEMPFAIL), so the MTA keeps the mail and tries again."""
    with cli.session() as session:  # the store is up, but every insert fails
        session.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON inbound_message"
                " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    result = cli("deliver", stdin=make_mail())
    assert result.exit_code == 75
    assert "intake deliver: could not store the message: " in result.stderr
    assert cli.sent_files() == []


def test_deliver_with_a_bad_config_exits_tempfail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nprot = 25\n")
    result = CliRunner().invoke(main, ["deliver", "--config", str(bad)], input=make_mail())
    assert result.exit_code == 75
    assert "intake deliver:" in result.stderr and "smtp.prot" in result.stderr


# --- check (dry run) ---------------------------------------------------------------------------


def test_check_text_shows_the_decision_missing_fields_and_charges(cli: Cli, tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(make_mail(body=PARTIAL_BODY))
    result = cli("check", str(mail), "--received-at", "2026-11-23T16:00:00Z")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{mail}: human → new_ticket"
    assert lines[3] == "  priority: 1"
    assert lines[4].startswith("  response: 2026-11-23T")
    assert "contact_phone" in lines[5] and lines[5].startswith("  missing:  ")
    assert lines[6] == "  charges:  100.00 USD"
    assert any(line.startswith("  finding:  ") for line in lines[7:])


def test_check_text_reports_an_unreadable_file_and_fails(cli: Cli, tmp_path: Path) -> None:
    result = cli("check", str(tmp_path / "absent.eml"))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{tmp_path / 'absent.eml'}: error: ")


def test_check_received_at_needs_an_offset(cli: Cli, tmp_path: Path) -> None:
    result = cli("check", "-", "--received-at", "2026-11-23T16:00:00", stdin=make_mail())
    assert result.exit_code == 2
    assert "needs a UTC offset or Z" in result.stderr


def test_check_matches_the_stored_customer_directory(cli: Cli, tmp_path: Path) -> None:
    directory = tmp_path / "customers.csv"
    directory.write_text("name,domains\nAcme Corp,acme.example\n")
    assert cli("customers", "import", str(directory)).exit_code == 0
    record = json.loads(cli("check", "--json", "-", stdin=make_mail()).stdout)
    assert record["customer"] == "Acme Corp"
    assert "unknown_customer" not in {f["code"] for f in record["findings"]}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--policy", "platinum", "-"], 1, "no policy named 'platinum'"),
        (["--received-at", "soon", "-"], 2, "'soon' is not ISO 8601"),
    ],
    ids=["unknown-policy", "bad-instant"],
)
def test_check_bad_options(cli: Cli, args: list[str], code: int, message: str) -> None:
    result = cli("check", *args, stdin=make_mail())
    assert result.exit_code == code and message in result.stderr


def test_check_names_a_directory_and_goes_on(cli: Cli, tmp_path: Path) -> None:
    result = cli("check", "--json", str(tmp_path), "-", stdin=make_mail())
    assert result.exit_code == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert "is a directory" in first["error"] and second["decision"] == "new_ticket"


def test_check_json_reads_stdin(cli: Cli) -> None:
    result = cli("check", "--json", "-", stdin=make_mail())
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["file"], record["decision"], record["priority"]) == ("-", "new_ticket", 1)


# --- tickets list ------------------------------------------------------------------------------


def test_tickets_list_is_none_on_an_empty_store(cli: Cli) -> None:
    result = cli("tickets", "list")
    assert (result.exit_code, result.stdout) == (0, "(none)\n")


def test_tickets_list_text_is_an_aligned_table(cli: Cli) -> None:
    cli.deliver()
    cli.deliver(make_mail(body=PARTIAL_BODY))
    lines = cli("tickets", "list", "--sort", "newest").stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "number",
        "priority",
        "status",
        "customer",
        "issue",
        "response_due",
        "breached",
        "assignee",
        "missing_fields",
    ]
    rows = [re.split(r"\s{2,}", line) for line in lines[1:]]
    assert [row[0] for row in rows] == ["TKT-000002", "TKT-000001"]
    assert rows[1][-3:] == ["False", "-", "-"]  # not breached, unassigned, nothing missing
    assert "contact_phone" in rows[0][-1]
    starts = {line.index(word) for line, word in zip(lines, ["status", "open", "open"])}
    assert len(starts) == 1  # the columns line up


def test_tickets_list_sorts_by_the_next_deadline(cli: Cli) -> None:
    for _ in range(3):
        cli.deliver()
    with cli.session() as session:
        for number, hours in [("TKT-000001", 5), ("TKT-000002", -1), ("TKT-000003", 2)]:
            ticket = repo.ticket_by_number(session, number)
            assert ticket is not None
            ticket.response_due_at = datetime.now(UTC) + timedelta(hours=hours)
    listed = json.loads(cli("tickets", "list", "--json").stdout)
    assert [row["number"] for row in listed] == ["TKT-000002", "TKT-000003", "TKT-000001"]
    newest = json.loads(cli("tickets", "list", "--json", "--sort", "newest").stdout)
    assert [row["number"] for row in newest] == ["TKT-000003", "TKT-000002", "TKT-000001"]
    first = json.loads(cli("tickets", "list", "--json", "--limit", "1").stdout)
    assert [row["number"] for row in first] == ["TKT-000002"]


def test_close_assign_and_note_are_recorded_with_who(cli: Cli) -> None:
    cli.deliver()
    assert cli("tickets", "assign", "TKT-000001", "bob", "--by", "ann").stdout == (
        "TKT-000001: assigned to bob\n"
    )
    assert cli("tickets", "note", "TKT-000001", "called Jane", "--by", "bob").exit_code == 0
    assert cli("tickets", "close", "TKT-000001").exit_code == 0  # by the login name
    again = cli("tickets", "close", "TKT-000001")
    assert again.exit_code == 1 and "TKT-000001 is closed already" in again.stderr
    unknown = cli("tickets", "note", "TKT-000009", "x")
    assert unknown.exit_code == 1 and "no ticket TKT-000009" in unknown.stderr
    with cli.session() as session:
        ticket = repo.ticket_by_number(session, "TKT-000001")
        assert ticket is not None
        assert (ticket.status, ticket.assignee) == (TicketStatus.CLOSED, "bob")
        events = [(e.actor, e.action, e.detail) for e in repo.ticket_events(session, ticket.id)]
    assert events == [
        ("ann", "assign", "bob"),
        ("bob", "note", "called Jane"),
        (getpass.getuser(), "close", None),
    ]
    [row] = json.loads(cli("tickets", "list", "--json", "--status", "closed").stdout)
    assert row["assignee"] == "bob"


def future(hours: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], ["TKT-000002", "TKT-000001"]),
        (["--status", "open"], ["TKT-000002", "TKT-000001"]),
        (["--status", "closed"], []),
        (["--priority", "1"], ["TKT-000002", "TKT-000001"]),
        (["--priority", "3"], []),
        (["--customer", "ACME CORP"], ["TKT-000002", "TKT-000001"]),
        (["--customer", "acme"], ["TKT-000002", "TKT-000001"]),
        (["--customer", "Globex"], []),
        (["--due-before", "FUTURE"], ["TKT-000002", "TKT-000001"]),
        (["--due-before", "2020-01-01T00:00:00Z"], []),
        (["--breached"], []),
        (["--limit", "1"], ["TKT-000002"]),
    ],
    ids=[
        "all",
        "open",
        "closed",
        "priority-1",
        "priority-3",
        "customer-any-case",
        "customer-as-the-directory-matches",
        "other-customer",
        "due-before-later",
        "due-before-past",
        "breached",
        "limit",
    ],
)
def test_tickets_list_json_filters(cli: Cli, options: list[str], expected: list[str]) -> None:
    cli.deliver()
    cli.deliver()
    options = [future(100) if o == "FUTURE" else o for o in options]
    result = cli("tickets", "list", "--json", "--sort", "newest", *options)
    assert result.exit_code == 0, result.output
    assert [row["number"] for row in json.loads(result.stdout)] == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--due-before", "tomorrow"], "'tomorrow' is not ISO 8601"),
        (["--due-before", "2026-11-23T16:00:00"], "needs a UTC offset or Z"),
        (["--limit", "0"], "--limit"),
        (["--priority", "high"], "--priority"),
    ],
    ids=["due-before-not-iso", "due-before-naive", "limit-zero", "priority-not-int"],
)
def test_tickets_list_bad_options_are_usage_errors(
    cli: Cli, options: list[str], message: str
) -> None:
    result = cli("tickets", "list", *options)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_a_breached_ticket_is_listed_and_flagged(cli: Cli) -> None:
    cli.deliver()
    cli.deliver()
    with cli.session() as session:
        late = repo.ticket_by_number(session, "TKT-000001")
        assert late is not None
        late.response_due_at = datetime.now(UTC) - timedelta(minutes=1)
    [row] = json.loads(cli("tickets", "list", "--json", "--breached").stdout)
    assert (row["number"], row["breached"]) == ("TKT-000001", True)


# --- tickets show ------------------------------------------------------------------------------


def test_tickets_show_json_has_the_thread_in_and_out(cli: Cli) -> None:
    cli.deliver(make_mail(body=PARTIAL_BODY))
    result = cli("tickets", "show", "TKT-000001", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["policy"].startswith("standard ") and view["closed_at"] is None
    [charge] = view["charges"]
    assert (charge["kind"], charge["amount"], charge["ticket"]) == (
        "missing_information",
        "100.00",
        "TKT-000001",
    )
    inbound, outbound = view["thread"]
    assert (inbound["direction"], inbound["from"], inbound["outcome"]) == (
        "in",
        "jane@acme.example",
        "ticket_created",
    )
    assert inbound["sender_trust"] == "none"
    assert (outbound["direction"], outbound["kind"], outbound["status"]) == (
        "out",
        "confirmation",
        "sent",
    )
    assert outbound["to"] == ["jane@acme.example"]


def test_tickets_show_text_prints_fields_then_the_thread(cli: Cli) -> None:
    cli.deliver()
    lines = cli("tickets", "show", "TKT-000001").stdout.splitlines()
    assert lines[0] == "number: TKT-000001"
    assert "first_response_at: -" in lines and "charges: []" in lines
    fields = next(line for line in lines if line.startswith("fields: "))
    assert (
        json.loads(fields.removeprefix("fields: "))["serial_number"]
        == "board: MX-0042-7781; appliance: MXA-0042-7782"
    )
    inbound, outbound = lines[-2:]
    assert inbound.startswith("  ") and "<- jane@acme.example  human ticket_created" in inbound
    assert "ticket_created  sender none" in inbound  # no trusted Authentication-Results
    assert outbound.endswith("-> jane@acme.example  confirmation (sent)")


def test_tickets_show_an_unknown_number_fails_in_one_line(cli: Cli) -> None:
    result = cli("tickets", "show", "TKT-999999", "--json")
    assert result.exit_code == 1
    assert result.stderr == "Error: no ticket TKT-999999\n"


# --- tickets autoclose -------------------------------------------------------------------------


def test_autoclose_with_nothing_waiting(cli: Cli) -> None:
    cli.deliver()
    result = cli("tickets", "autoclose")
    assert (result.exit_code, result.stdout) == (0, "closed 0 tickets\n")


def test_autoclose_closes_a_long_waiting_ticket_and_notifies(cli: Cli) -> None:
    cli.deliver()
    with cli.session() as session:
        ticket = repo.ticket_by_number(session, "TKT-000001")
        assert ticket is not None
        ticket.policy_name = "managed-pbx"  # the contract with an auto-close allowance
        ticket.status = TicketStatus.WAITING_CUSTOMER
        ticket.waiting_since = datetime.now(UTC) - timedelta(days=30)
    result = cli("tickets", "autoclose")
    assert (result.exit_code, result.stdout) == (0, "closed 1 tickets: TKT-000001\n")
    assert len(cli.sent_files()) == 2  # the confirmation, then the closing notice
    shown = json.loads(cli("tickets", "show", "TKT-000001", "--json").stdout)
    assert shown["status"] == "closed" and shown["closed_at"] is not None


# --- never a charge for what is not a report (issue 10 item 9) ---------------------------------

AUTO_REPLY = make_mail(
    subject="Automatic reply: Acme Corp – Denver – Phones down – P1",
    body="I am out of the office until Monday.\n",
    headers={"Auto-Submitted": "auto-replied"},
)
NOT_A_REPORT = {
    "auto-reply": AUTO_REPLY,
    "empty-input": b"",
    "no-header-section": b"the phones are down, please call\nSerial: X\n",
    "blank-lines-only": b"\r\n\r\n",
}


@pytest.mark.parametrize("raw", NOT_A_REPORT.values(), ids=NOT_A_REPORT.keys())
def test_check_shows_no_charge_for_what_is_not_a_report(cli: Cli, raw: bytes) -> None:
    record = json.loads(cli("check", "--json", "-", stdin=raw).stdout)
    assert (record["charges"], record["reply_to"]) == ([], None)
    machine = raw is AUTO_REPLY
    assert record["decision"] == ("ignore" if machine else "new_ticket")
    codes = {f["code"] for f in record["findings"]}
    assert ("not_a_mail" in codes) is not machine


@pytest.mark.parametrize("raw", NOT_A_REPORT.values(), ids=NOT_A_REPORT.keys())
def test_the_daemon_agrees_with_check_no_charge_no_reply(cli: Cli, raw: bytes) -> None:
    cli("deliver", "--sender", "jane@acme.example", stdin=raw)
    with cli.session() as session:
        assert repo.list_charges(session) == []
        # Bytes that are no mail are still recorded on a ticket; machine mail is not.
        assert len(repo.list_tickets(session)) == (0 if raw is AUTO_REPLY else 1)
    assert cli.sent_files() == []


def test_check_and_the_daemon_charge_the_same_partial_report(cli: Cli) -> None:
    raw = make_mail(body=PARTIAL_BODY)
    record = json.loads(cli("check", "--json", "-", stdin=raw).stdout)
    cli.deliver(raw)
    with cli.session() as session:
        ledger = [(c.kind, f"{c.amount:.2f}", c.status) for c in repo.list_charges(session)]
    assert ledger == [(c["kind"], c["amount"], c["status"]) for c in record["charges"]]
    assert ledger  # a partial report is charged, by both
