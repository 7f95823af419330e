"""The ``intake`` command line: serve, deliver, check, tickets, charges, quarantine, outbox…

Every command takes ``--config`` and ``--database``; flags win over environment variables,
which win over the config file. Bad configuration ends with one line naming the key and
exit status 1 (75, EX_TEMPFAIL, for ``deliver``, so the MTA keeps the mail and retries).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from intake import __version__
from intake.app import App, build_app, serve, utc_now
from intake.cli.views import (
    charge_view,
    check_record,
    format_check_text,
    health_problems,
    inbound_view,
    outbox_view,
    read_directory_if_present,
    thread_view,
    ticket_view,
)
from intake.errors import ConfigError, IntakeError
from intake.pipeline.customers import CustomerRecord
from intake.settings import Settings, load_settings, parse_deliver_target

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """--config, --database and the logging flags, on every command."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path),
            help="TOML config file (default: $INTAKE_CONFIG, else the shipped one).",
        ),
        click.option(
            "--database",
            "database_url",
            metavar="URL",
            help="SQLAlchemy URL, e.g. sqlite:///./intake.db or postgresql+psycopg://…",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["auto", "json", "console"]),
            help="Log format on stderr (auto: JSON unless a TTY).",
        ),
        click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(common: dict[str, Any], **overrides: Any) -> Settings:
    values = {
        "database.url": common.pop("database_url", None),
        "logging.format": common.pop("log_format", None),
        "logging.level": common.pop("log_level", None),
        **overrides,
    }
    try:
        settings = load_settings(common.pop("config_path", None), values)
    except ConfigError as exc:
        raise click.ClickException(f"config error: {exc}") from None
    return settings  # build_app wires logging from these settings


def open_app(settings: Settings, policy: str | None = None) -> App:
    try:
        return build_app(settings, policy_name=policy)
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # database unreachable, bad URL, ...
        raise click.ClickException(f"cannot open the store: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="intake")
def main() -> None:
    """ticket-intake: support mail in, contract-checked tickets and confirmations out."""


imap_option = click.option(
    "--imap",
    "imap_urls",
    multiple=True,
    metavar="URL",
    help="IMAP mailbox, repeatable: imap[s]://USER:PASS@HOST:PORT/FOLDER or "
    "imap+starttls://…; replaces the configured imap.mailboxes.",
)


def imap_overrides(urls: tuple[str, ...]) -> dict[str, Any]:
    return {"imap.mailboxes": [{"url": url} for url in urls]} if urls else {}


@main.command(name="serve")
@click.option("--listen", metavar="HOST:PORT", help="SMTP listen address (default 127.0.0.1:2525).")
@click.option(
    "--deliver",
    metavar="DIR|smtp://HOST:PORT",
    help="Write replies as .eml into DIR, or send them through this relay.",
)
@click.option("--policy", metavar="NAME", help="Policy from config/policies (default: standard).")
@imap_option
@common_options
def serve_command(
    listen: str | None,
    deliver: str | None,
    policy: str | None,
    imap_urls: tuple[str, ...],
    **common: Any,
) -> None:
    """Run the SMTP listener, the IMAP pollers, the processing worker and the outbox sender."""
    overrides: dict[str, Any] = imap_overrides(imap_urls)
    if listen:
        host, port = _split_listen(listen)
        overrides |= {"smtp.host": host, "smtp.port": port}
    if deliver:
        try:
            overrides |= {f"outbound.{k}": v for k, v in parse_deliver_target(deliver).items()}
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    settings = settings_from(common, **overrides)
    app = open_app(settings, policy)
    try:
        asyncio.run(serve(app))
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.smtp.host}:{settings.smtp.port}: {exc}"
        ) from None


@main.command(name="poll")
@click.option("--once", is_flag=True, help="Take what is waiting in each mailbox, then exit.")
@click.option("--no-process", is_flag=True, help="Only store and move; leave processing to serve.")
@imap_option
@common_options
def poll_command(once: bool, no_process: bool, imap_urls: tuple[str, ...], **common: Any) -> None:
    """Poll the IMAP mailboxes once (cron, tests): store, move, process, send replies.

    Exit 0 when every mailbox was polled, 1 when any failed (the others still ran).
    """
    from intake.app import imap_pollers
    from intake.edges.imap import poll_all_once

    if not once:
        raise click.UsageError("poll needs --once; `intake serve` polls continuously")
    settings = settings_from(common, **imap_overrides(imap_urls))
    if not settings.imap.mailboxes:
        raise click.ClickException("no mailboxes: give --imap URL or configure imap.mailboxes")
    app = open_app(settings)
    try:
        pollers = imap_pollers(app, lambda _id: None)
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from None
    reports = poll_all_once(pollers, settings.imap.lease_duration + 1)
    if not no_process:
        _process_waiting(app)
    for report in reports:
        click.echo(_poll_line(report.name, report.result, report.error))
    if any(report.error for report in reports):
        sys.exit(1)


def _process_waiting(app: App) -> None:
    """Process everything due (what was just stored, and what an earlier crash left)."""
    from store import repository as repo
    from store.db import session_scope

    while True:
        with session_scope(app.sessions) as session:
            due = repo.due_inbound_ids(session, utc_now())
        if not due:
            break
        for inbound_id in due:
            app.pipeline.process(inbound_id)
    asyncio.run(app.outbox.flush_once())


def _poll_line(name: str, result: Any, error: str | None) -> str:
    if error is not None:
        return f"{name}: failed: {error}"
    return (
        f"{name}: stored {len(result.stored)}, moved {result.moved}, "
        f"duplicates {result.duplicates}, quarantined {result.quarantined}, "
        f"deferred {result.deferred}"
    )


@main.command()
@click.option(
    "--sender",
    "mail_from",
    metavar="ADDRESS",
    help="Envelope sender from the MTA (Postfix pipe: ${sender}); empty for <>.",
)
@click.option(
    "--recipient",
    "rcpt_to",
    multiple=True,
    metavar="ADDRESS",
    help="Envelope recipient(s) from the MTA (Postfix pipe: ${recipient}).",
)
@click.option("--no-process", is_flag=True, help="Only store; leave processing to `intake serve`.")
@common_options
def deliver(
    mail_from: str | None, rcpt_to: tuple[str, ...], no_process: bool, **common: Any
) -> None:
    """Store one message from stdin (MTA pipe). Exit 0 once stored, 75 if it could not be."""
    from intake.app import pipe_edge

    try:
        settings = settings_from(common)
        app = build_app(settings)
    except Exception as exc:  # config or store: the MTA must keep the mail
        click.echo(f"intake deliver: {getattr(exc, 'message', exc)}", err=True)
        sys.exit(os.EX_TEMPFAIL)  # sysexits.h: the MTA keeps the message and retries
    sys.exit(pipe_edge(app).deliver_from_stdin(mail_from, rcpt_to, process=not no_process))


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--policy", metavar="NAME", help="Policy to check against (default: the configured one)."
)
@click.option(
    "--received-at", metavar="ISO8601", help="Pretend the message arrived then (deadlines)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, one per line.")
@common_options
def check(
    files: tuple[str, ...],
    policy: str | None,
    received_at: str | None,
    as_json: bool,
    **common: Any,
) -> None:
    """Dry run: show what the daemon would do with FILE... (or - for stdin). Stores nothing."""
    from intake.app import load_policies, make_identity

    settings = settings_from(common)
    when = _parse_instant(received_at) if received_at else utc_now()
    try:
        policies = load_policies(settings, policy)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    directory = read_directory_if_present(settings)
    identity = make_identity(settings)
    failed = False
    for name, raw, error in _read_inputs(files):
        record = check_record(name, raw, error, policies, identity, when, directory)
        failed |= "error" in record
        click.echo(json.dumps(record, ensure_ascii=False) if as_json else format_check_text(record))
    sys.exit(1 if failed else 0)


@main.group()
def tickets() -> None:
    """List and show tickets."""


@tickets.command(name="list")
@click.option("--status", help="open | waiting_customer | closed")
@click.option("--priority", type=int)
@click.option("--customer", help="Customer name (case-insensitive).")
@click.option("--due-before", metavar="ISO8601", help="Only tickets whose response is due before.")
@click.option("--breached", is_flag=True, help="Only tickets whose response target was missed.")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@common_options
def tickets_list(
    status: str | None,
    priority: int | None,
    customer: str | None,
    due_before: str | None,
    breached: bool,
    limit: int,
    as_json: bool,
    **common: Any,
) -> None:
    """Newest tickets first."""
    from store import repository as repo
    from store.db import session_scope

    before = _parse_instant(due_before, "--due-before") if due_before else None
    app = open_app(settings_from(common))
    now = utc_now()
    with session_scope(app.sessions) as session:
        found = repo.list_tickets(
            session,
            status=status,
            priority=priority,
            customer=customer,
            due_before=before,
            breached_at=now if breached else None,
            limit=limit,
        )
        rows = [ticket_view(t, now=now) for t in found]
    columns = ["number", "priority", "status", "customer", "issue", "response_due", "breached"]
    _print_rows(rows, as_json, [*columns, "missing_fields"])


@tickets.command(name="show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@common_options
def tickets_show(number: str, as_json: bool, **common: Any) -> None:
    """One ticket with its fields, findings, charges and its thread of messages."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        view = ticket_view(ticket, full=True, now=utc_now()) if ticket else None
        if ticket is not None and view is not None:
            view["thread"] = thread_view(session, ticket)
    if view is None:
        raise click.ClickException(f"no ticket {number}")
    _print_one(view, as_json)


@tickets.command(name="autoclose")
@common_options
def tickets_autoclose(**common: Any) -> None:
    """Close tickets left waiting on the customer past the policy's allowance (and notify)."""
    app = open_app(settings_from(common))
    closed = app.autocloser.run_once(utc_now())
    asyncio.run(app.outbox.flush_once())
    click.echo(f"closed {len(closed)} tickets{': ' + ', '.join(closed) if closed else ''}")


@main.group()
def charges() -> None:
    """The charge ledger: list charges, settle pending ones."""


@charges.command(name="list")
@click.option("--status", help="applied | pending | billed | waived")
@click.option("--json", "as_json", is_flag=True)
@common_options
def charges_list(status: str | None, as_json: bool, **common: Any) -> None:
    """Newest charges first."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [charge_view(c) for c in repo.list_charges(session, status)]
    columns = ["id", "ticket", "kind", "amount", "currency", "status", "created_at"]
    _print_rows(rows, as_json, columns)


@charges.command(name="settle")
@click.argument("charge_id", type=int)
@click.option("--bill", "outcome", flag_value="billed", help="The condition held: bill it.")
@click.option("--waive", "outcome", flag_value="waived", help="It did not hold: waive it.")
@click.option("--note", help="Why, for the record.")
@common_options
def charges_settle(charge_id: int, outcome: str | None, note: str | None, **common: Any) -> None:
    """Settle a pending charge (e.g. an off-hours P1 once fault is determined)."""
    from store import repository as repo
    from store.db import session_scope

    if outcome is None:
        raise click.UsageError("say --bill or --waive")
    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        row = repo.settle_charge(session, charge_id, outcome, note, utc_now())
        view = charge_view(row) if row else None
    if view is None:
        raise click.ClickException(f"charge {charge_id} is not pending (or does not exist)")
    click.echo(f"charge {charge_id}: {view['amount']} {view['currency']} {outcome}")


@main.group()
def quarantine() -> None:
    """Messages that failed processing too often."""


@quarantine.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@common_options
def quarantine_list(as_json: bool, **common: Any) -> None:
    """Quarantined messages with their last error."""
    from store import repository as repo
    from store.db import session_scope
    from store.models import InboundStatus

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [inbound_view(r) for r in repo.list_inbound(session, InboundStatus.QUARANTINED)]
    _print_rows(
        rows, as_json, ["id", "message_id", "origin", "attempts", "received_at", "last_error"]
    )


@quarantine.command(name="retry")
@click.argument("ids", nargs=-1, type=int, required=True)
@common_options
def quarantine_retry(ids: tuple[int, ...], **common: Any) -> None:
    """Give quarantined messages a fresh set of attempts and process them now."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    for inbound_id in ids:
        with session_scope(app.sessions) as session:
            requeued = repo.requeue_inbound(session, inbound_id)
        if not requeued:
            raise click.ClickException(f"message {inbound_id} is not quarantined or failed")
        outcome = app.pipeline.process(inbound_id)
        click.echo(f"{inbound_id}: {outcome.result} {outcome.ticket_number or ''}".rstrip())
    asyncio.run(app.outbox.flush_once())


@main.group()
def outbox() -> None:
    """Replies waiting for, or done with, delivery."""


@outbox.command(name="list")
@click.option("--status", help="queued | sending | sent | dead")
@click.option("--json", "as_json", is_flag=True)
@common_options
def outbox_list(status: str | None, as_json: bool, **common: Any) -> None:
    """Newest replies first."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [outbox_view(r) for r in repo.list_outbox(session, status)]
    _print_rows(
        rows,
        as_json,
        ["id", "status", "kind", "recipients", "attempts", "next_attempt_at", "last_error"],
    )


@outbox.command(name="retry")
@click.argument("ids", nargs=-1, type=int, required=True)
@common_options
def outbox_retry(ids: tuple[int, ...], **common: Any) -> None:
    """Queue dead or failed replies again (attempts reset) and try them now."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        unknown = [i for i in ids if not repo.retry_outbox(session, i, utc_now())]
    if unknown:
        raise click.ClickException(f"not retryable (unknown or already sent): {unknown}")
    asyncio.run(app.outbox.flush_once())


@outbox.command(name="flush")
@common_options
def outbox_flush(**common: Any) -> None:
    """Deliver every reply that is due now, then exit (for pipe-only setups and cron)."""
    app = open_app(settings_from(common))
    total = 0
    while (sent := asyncio.run(app.outbox.flush_once())) > 0:
        total += sent
    click.echo(f"attempted {total} replies")


@main.command()
@click.option("--listen", metavar="HOST:PORT", help="Where the SMTP listener should answer.")
@common_options
def health(listen: str | None, **common: Any) -> None:
    """Exit 0 when the listener greets with 220, the store answers and intake is not stalled."""
    overrides: dict[str, Any] = {}
    if listen:
        host, port = _split_listen(listen)
        overrides = {"smtp.host": host, "smtp.port": port}
    settings = settings_from(common, **overrides)
    problems = health_problems(settings, utc_now())
    if problems:
        raise click.ClickException("unhealthy: " + "; ".join(problems))
    click.echo("ok")


@main.command(name="status")
@click.option("--json", "as_json", is_flag=True)
@common_options
def status_command(as_json: bool, **common: Any) -> None:
    """Each IMAP mailbox: ok or failing since when, the last error, who holds its lease."""
    from intake.cli.views import mailbox_view
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [mailbox_view(m) for m in repo.list_mailbox_states(session)]
    _print_rows(rows, as_json, ["mailbox", "state", "failing_since", "last_ok_at", "last_error"])


@main.group(name="config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command(name="show")
@common_options
def config_show(**common: Any) -> None:
    """Print the effective configuration as JSON (secrets masked)."""
    settings = settings_from(common)
    click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


@main.command(name="policies")
@common_options
def policies(**common: Any) -> None:
    """List the policy names that --policy accepts."""
    from intake.policy.policy import available_policies

    settings = settings_from(common)
    for name in available_policies(settings.intake.policy_dir):
        click.echo(name)


@main.group()
def customers() -> None:
    """The customer directory: names, domains, contacts and contract terms."""


@customers.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and count the changes; write nothing.")
@common_options
def customers_import(file: Path, dry_run: bool, **common: Any) -> None:
    """Add or update the customers in FILE (.csv or .toml): all of them or none."""
    from intake.pipeline.customers import read_directory
    from intake.policy.policy import available_policies

    settings = settings_from(common)
    try:
        records = read_directory(file, available_policies(settings.intake.policy_dir))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    inserted, updated = _import_customers(open_app(settings), file, records, dry_run)
    if dry_run:
        click.echo(f"would import {inserted} new, {updated} updated (dry run: nothing written)")
    else:
        click.echo(f"imported {inserted} new, {updated} updated")


def _import_customers(
    app: App, file: Path, records: Sequence[CustomerRecord], dry_run: bool
) -> tuple[int, int]:
    from sqlalchemy.exc import IntegrityError

    from intake.pipeline.customers import (
        load_directory,
        normalize_name,
        support_id_conflicts,
        values_from_record,
    )
    from store import repository as repo
    from store.db import session_scope

    try:
        with session_scope(app.sessions) as session:
            stored = load_directory(session)
            problems = support_id_conflicts(stored, records)
            if problems:
                raise click.ClickException(f"{file}: " + "; ".join(problems))
            if dry_run:
                known = {normalize_name(r.name) for r in stored}
                updated = sum(normalize_name(r.name) in known for r in records)
                return len(records) - updated, updated
            values = [values_from_record(r) for r in records]
            return repo.upsert_customers(session, values, utc_now())
    except IntegrityError as exc:  # a concurrent import took a name or support ID first
        raise click.ClickException(f"{file}: the store refused the import: {exc.orig}") from None


@customers.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@common_options
def customers_list(as_json: bool, **common: Any) -> None:
    """Every customer in the directory, by name."""
    from intake.pipeline.customers import FIELDS, customer_view, load_directory
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [customer_view(r) for r in load_directory(session)]
    _print_rows(rows, as_json, list(FIELDS))


def _split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: expected HOST:PORT", param_hint="--listen")
    return host.strip("[]"), int(port)


def _parse_instant(value: str, option: str = "--received-at") -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO 8601", param_hint=option) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset or Z", param_hint=option)
    return parsed


def _read_inputs(files: tuple[str, ...]) -> Iterator[tuple[str, bytes | None, str | None]]:
    for name in files:
        if name == "-":
            yield name, sys.stdin.buffer.read(), None
            continue
        path = Path(name)
        try:
            if path.is_dir():
                yield name, None, "is a directory (give the files in it, e.g. DIR/*)"
                continue
            yield name, path.read_bytes(), None
        except OSError as exc:
            yield name, None, exc.strerror or str(exc)


def _print_rows(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    click.echo("  ".join(columns))
    for row in rows:
        click.echo("  ".join(_cell(row.get(c)) for c in columns))


def _print_one(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    for key, value in view.items():
        if key == "thread":
            continue
        shown = (
            json.dumps(value, ensure_ascii=False)
            if isinstance(value, dict | list)
            else _cell(value)
        )
        click.echo(f"{key}: {shown}")
    for entry in view.get("thread", []):
        click.echo(_thread_line(entry))


def _thread_line(entry: dict[str, Any]) -> str:
    if entry["direction"] == "in":
        what = f"{entry['classification']} {entry['outcome']}"
        changes = json.dumps(entry["changes"], ensure_ascii=False) if entry["changes"] else ""
        return f"  {entry['at']}  <- {entry['from'] or '?'}  {what}  {changes}".rstrip()
    to = ",".join(entry["to"])
    return f"  {entry['at']}  -> {to}  {entry['kind']} ({entry['status']})"


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)
