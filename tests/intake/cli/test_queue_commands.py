"""``intake charges``, ``quarantine`` and ``outbox`` run in-process, with their error paths."""

from __future__ import annotations

import asyncio
import email
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from intake.app import utc_now
from intake.replies.sender import OutboxSender, Transport
from intake.settings import OutboundSettings
from store import repository as repo
from store.db import make_engine, make_session_factory
from store.models import ChargeRow, InboundStatus, OutboxMessage, OutboxStatus
from tests.conftest import Sink, make_mail
from tests.intake.cli.conftest import Cli


def pending_charge(cli: Cli) -> int:
    """A delivered ticket plus a pending off-hours line (as voip-hotline records it)."""
    cli.deliver()
    with cli.session() as session:
        ticket = repo.ticket_by_number(session, "TKT-000001")
        assert ticket is not None
        repo.add_charge(
            session,
            ledger_key="test:off_hours",
            ticket_id=ticket.id,
            kind="off_hours_emergency",
            amount=Decimal("200.00"),
            currency="USD",
            reason="P1 outside support hours",
            status="pending",
            now=datetime.now(UTC),
        )
        [row] = repo.list_charges(session, "pending")
        return row.id


# --- charges -----------------------------------------------------------------------------------


def test_charges_list_is_none_on_an_empty_ledger(cli: Cli) -> None:
    assert cli("charges", "list").stdout == "(none)\n"


def test_charges_list_json_and_status_filter(cli: Cli) -> None:
    charge_id = pending_charge(cli)
    [row] = json.loads(cli("charges", "list", "--json", "--status", "pending").stdout)
    assert (row["id"], row["ticket"], row["amount"], row["currency"], row["status"]) == (
        charge_id,
        "TKT-000001",
        "200.00",
        "USD",
        "pending",
    )
    assert json.loads(cli("charges", "list", "--json", "--status", "billed").stdout) == []


def test_charges_list_text_columns(cli: Cli) -> None:
    pending_charge(cli)
    header, row = cli("charges", "list").stdout.splitlines()
    assert header == "id  ticket  kind  amount  currency  status  created_at  reverses"
    assert row.startswith("1  TKT-000001  off_hours_emergency  200.00  USD  pending  ")
    assert row.endswith("  -")


@pytest.mark.parametrize(
    ("flag", "outcome"), [("--bill", "billed"), ("--waive", "waived")], ids=str
)
def test_settle_a_pending_charge(cli: Cli, flag: str, outcome: str) -> None:
    charge_id = pending_charge(cli)
    result = cli("charges", "settle", str(charge_id), flag, "--note", "fault found")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"charge {charge_id}: 200.00 USD {outcome}\n"
    with cli.session() as session:
        row = session.get_one(ChargeRow, charge_id)
        assert (row.status, row.settled_note) == (outcome, "fault found")
        assert row.settled_at is not None


def test_settle_needs_bill_or_waive(cli: Cli) -> None:
    charge_id = pending_charge(cli)
    result = cli("charges", "settle", str(charge_id))
    assert result.exit_code == 2 and "say --bill or --waive" in result.stderr
    with cli.session() as session:
        assert session.get_one(ChargeRow, charge_id).status == "pending"


@pytest.mark.parametrize("which", ["settled", "unknown"], ids=str)
def test_settle_refuses_what_is_not_pending(cli: Cli, which: str) -> None:
    charge_id = pending_charge(cli)
    cli("charges", "settle", str(charge_id), "--bill")
    target = charge_id if which == "settled" else 4711
    result = cli("charges", "settle", str(target), "--waive")
    assert result.exit_code == 1
    assert result.stderr == f"Error: charge {target} is not pending (or does not exist)\n"
    with cli.session() as session:
        assert session.get_one(ChargeRow, charge_id).status == "billed"


def test_settle_needs_a_numeric_id(cli: Cli) -> None:
    result = cli("charges", "settle", "first", "--bill")
    assert result.exit_code == 2 and "CHARGE_ID" in result.stderr


# --- quarantine --------------------------------------------------------------------------------


def quarantined(cli: Cli) -> int:
    """A stored, unprocessed message that failed for good (as after max_attempts)."""
    cli.deliver(make_mail(), "--no-process")
    with cli.session() as session:
        [inbound_id] = repo.due_inbound_ids(session, datetime.now(UTC))
        repo.record_failure(session, inbound_id, "RuntimeError: parser blew up", None)
        return inbound_id


def test_quarantine_list_is_none_when_nothing_failed(cli: Cli) -> None:
    cli.deliver()
    assert cli("quarantine", "list").stdout == "(none)\n"


def test_quarantine_list_shows_the_last_error(cli: Cli) -> None:
    inbound_id = quarantined(cli)
    [row] = json.loads(cli("quarantine", "list", "--json").stdout)
    assert (row["id"], row["status"], row["attempts"], row["origin"]) == (
        inbound_id,
        "quarantined",
        1,
        "pipe",
    )
    assert row["last_error"] == "RuntimeError: parser blew up"
    header, line = cli("quarantine", "list").stdout.splitlines()
    assert header == "id  message_id  origin  attempts  received_at  last_error"
    assert line.endswith("  RuntimeError: parser blew up")


def test_quarantine_retry_processes_and_replies(cli: Cli) -> None:
    inbound_id = quarantined(cli)
    result = cli("quarantine", "retry", str(inbound_id))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{inbound_id}: ticket_created TKT-000001\n"
    assert len(cli.sent_files()) == 1
    assert json.loads(cli("quarantine", "list", "--json").stdout) == []


def test_quarantine_retry_refuses_a_message_that_is_not_stuck(cli: Cli) -> None:
    cli.deliver()
    result = cli("quarantine", "retry", "1")
    assert result.exit_code == 1
    assert result.stderr == "Error: message 1 is not quarantined or failed\n"
    with cli.session() as session:
        row = repo.get_inbound(session, 1)
        assert row is not None and row.status == InboundStatus.PROCESSED


def test_quarantine_retry_needs_ids(cli: Cli) -> None:
    result = cli("quarantine", "retry")
    assert result.exit_code == 2 and "IDS" in result.stderr


# --- outbox ------------------------------------------------------------------------------------


def dead_reply(cli: Cli) -> int:
    cli.deliver()
    with cli.session() as session:
        [reply] = repo.list_outbox(session)
        row = session.get_one(OutboxMessage, reply.id)
        row.status, row.attempts, row.last_error = OutboxStatus.DEAD, 10, "550 5.1.1 no user"
    for sent in cli.sent_files():  # a resend writes the same file (same Message-ID) again
        sent.unlink()
    return reply.id


def test_outbox_list_json_shows_the_sent_confirmation(cli: Cli) -> None:
    cli.deliver()
    [row] = json.loads(cli("outbox", "list", "--json").stdout)
    assert (row["kind"], row["status"], row["recipients"]) == (
        "confirmation",
        "sent",
        ["jane@acme.example"],
    )
    assert row["sent_at"] is not None and row["last_error"] is None


@pytest.mark.parametrize(
    ("status", "count"),
    [("sent", 1), ("queued", 0), ("dead", 0)],
    ids=str,
)
def test_outbox_list_status_filter(cli: Cli, status: str, count: int) -> None:
    cli.deliver()
    assert len(json.loads(cli("outbox", "list", "--json", "--status", status).stdout)) == count


def test_outbox_list_text_shows_the_error_of_a_dead_reply(cli: Cli) -> None:
    dead_reply(cli)
    header, row = cli("outbox", "list", "--status", "dead").stdout.splitlines()
    assert header == "id  status  kind  recipients  attempts  next_attempt_at  last_error"
    assert row.startswith("1  dead  confirmation  jane@acme.example  10  ")
    assert row.endswith("  550 5.1.1 no user")


def test_outbox_retry_queues_for_the_daemon_and_sends_nothing_itself(cli: Cli, sink: Sink) -> None:
    """The shell's settings (here: the outbox directory) are not the daemon's (a relay)."""
    reply_id = dead_reply(cli)
    result = cli("outbox", "retry", str(reply_id))
    assert (result.exit_code, result.stdout) == (0, "queued 1 replies for the daemon's sender\n")
    assert cli.sent_files() == [] and sink.messages == []
    [row] = json.loads(cli("outbox", "list", "--json").stdout)
    assert (row["status"], row["attempts"]) == ("queued", 0)
    # The daemon's sender, with the daemon's relay settings, delivers it.
    relay = OutboundSettings(relay_host=sink.host, relay_port=sink.port)
    engine = make_engine(cli.database_url)
    try:
        daemon = OutboxSender(make_session_factory(engine), Transport(relay), relay, utc_now)
        assert asyncio.run(daemon.flush_once()) == 1
    finally:
        engine.dispose()
    [envelope] = sink.messages
    assert email.message_from_bytes(envelope.original_content)["Message-ID"] == (
        f"<{row['message_id']}>"
    )
    [row] = json.loads(cli("outbox", "list", "--json").stdout)
    assert row["status"] == "sent" and cli.sent_files() == []


def test_outbox_retry_names_what_it_cannot_retry_and_queues_nothing(cli: Cli) -> None:
    reply_id = dead_reply(cli)
    result = cli("outbox", "retry", str(reply_id), "4711")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: not retryable (unknown, already sent, or being sent now): [4711]\n"
    )
    [row] = json.loads(cli("outbox", "list", "--json").stdout)
    assert row["status"] == "dead"  # all or nothing


def test_outbox_flush_delivers_what_is_due(cli: Cli) -> None:
    reply_id = dead_reply(cli)
    with cli.session() as session:
        repo.retry_outbox(session, reply_id, datetime.now(UTC))
    result = cli("outbox", "flush")
    assert (result.exit_code, result.stdout) == (0, "attempted 1 replies\n")
    assert cli("outbox", "flush").stdout == "attempted 0 replies\n"
    assert len(cli.sent_files()) == 1


# --- charges waive: a credit line, never a deletion ----------------------------------------


def applied_charge(cli: Cli) -> int:
    """A partial report: the missing-information charge, applied at once."""
    cli.deliver(make_mail(body="Serial Number: MX-1\nPhone: N/A\n"))
    with cli.session() as session:
        [row] = repo.list_charges(session, "applied")
        return row.id


def test_waive_records_a_credit_and_keeps_the_charge(cli: Cli) -> None:
    charge_id = applied_charge(cli)
    result = cli("charges", "waive", str(charge_id), "--note", "serials were in the table")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"charge {charge_id}: credited -100.00 USD as charge {charge_id + 1}\n"
    rows = json.loads(cli("charges", "list", "--json").stdout)
    shown = [(r["id"], r["kind"], r["amount"], r["status"], r["reverses"]) for r in rows]
    assert shown == [
        (charge_id + 1, "waiver", "-100.00", "applied", charge_id),
        (charge_id, "missing_information", "100.00", "applied", None),
    ]
    assert rows[0]["reason"] == "serials were in the table" and rows[0]["ticket"] == "TKT-000001"
    with cli.session() as session:
        total = sum(c.amount for c in repo.list_charges(session))
    assert total == Decimal("0.00")


@pytest.mark.parametrize("which", ["twice", "the-credit", "pending", "unknown"], ids=str)
def test_waive_refuses_what_cannot_be_reversed(cli: Cli, which: str) -> None:
    charge_id = applied_charge(cli)
    cli("charges", "waive", str(charge_id), "--note", "first")
    target = {
        "twice": charge_id,
        "the-credit": charge_id + 1,
        "pending": pending_charge_on_existing(cli),
        "unknown": 999,
    }[which]
    result = cli("charges", "waive", str(target), "--note", "again")
    assert result.exit_code == 1 and "cannot be waived" in result.stderr
    with cli.session() as session:
        assert [c.kind for c in repo.list_charges(session)].count("waiver") == 1


def pending_charge_on_existing(cli: Cli) -> int:
    with cli.session() as session:
        ticket = repo.ticket_by_number(session, "TKT-000001")
        assert ticket is not None
        repo.add_charge(
            session,
            ledger_key="test:pending",
            ticket_id=ticket.id,
            kind="off_hours_emergency",
            amount=Decimal("200.00"),
            currency="USD",
            reason="P1 outside support hours",
            status="pending",
            now=datetime.now(UTC),
        )
        [row] = repo.list_charges(session, "pending")
        return row.id


@pytest.mark.parametrize("args", [[], ["--note", "  "]], ids=["no-note", "blank-note"])
def test_waive_needs_a_reason(cli: Cli, args: list[str]) -> None:
    charge_id = applied_charge(cli)
    result = cli("charges", "waive", str(charge_id), *args)
    assert result.exit_code == 2
    with cli.session() as session:
        assert [c.kind for c in repo.list_charges(session)] == ["missing_information"]
