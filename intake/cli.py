"""The ``intake`` command line: serve, deliver, check, tickets, quarantine, outbox, health.

Every command takes ``--config`` and ``--database``; flags win over environment variables,
which win over the config file. Bad configuration ends with one line naming the key and
exit status 2 (75, EX_TEMPFAIL, for ``deliver``, so the MTA keeps the mail and retries).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from intake import __version__
from intake.app import App, build_app, serve, utc_now
from intake.errors import ConfigError, IntakeError
from intake.logs import configure_logging
from intake.settings import Settings, load_settings, parse_deliver_target
from intake.views import (
    check_record,
    format_check_text,
    health_problems,
    inbound_view,
    outbox_view,
    ticket_view,
)

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and retries
EX_DATAERR = 65
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
    configure_logging(settings.logging.level, settings.logging.format)
    return settings


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


@main.command(name="serve")
@click.option("--listen", metavar="HOST:PORT", help="SMTP listen address (default 127.0.0.1:2525).")
@click.option(
    "--deliver",
    metavar="DIR|smtp://HOST:PORT",
    help="Write replies as .eml into DIR, or send them through this relay.",
)
@click.option("--policy", metavar="NAME", help="Policy from config/policies (default: standard).")
@common_options
def serve_command(
    listen: str | None, deliver: str | None, policy: str | None, **common: Any
) -> None:
    """Run the SMTP listener, the processing worker and the outbox sender."""
    overrides: dict[str, Any] = {}
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
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.smtp.host}:{settings.smtp.port}: {exc}"
        ) from None


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
    from intake.pipe import deliver_from_stdin

    try:
        settings = settings_from(common)
        app = build_app(settings)
    except (click.ClickException, Exception) as exc:
        click.echo(f"intake deliver: {getattr(exc, 'message', exc)}", err=True)
        sys.exit(EX_TEMPFAIL)
    sys.exit(deliver_from_stdin(app, mail_from, rcpt_to, process=not no_process))


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
    from intake.app import make_identity
    from intake.policy import load_policy

    settings = settings_from(common)
    when = _parse_instant(received_at) if received_at else utc_now()
    try:
        chosen = load_policy(policy or settings.intake.policy, settings.intake.policy_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    failed = False
    for name, raw, error in _read_inputs(files):
        record = check_record(name, raw, error, chosen, make_identity(settings), when)
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
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@common_options
def tickets_list(
    status: str | None,
    priority: int | None,
    customer: str | None,
    limit: int,
    as_json: bool,
    **common: Any,
) -> None:
    """Newest tickets first."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        rows = [
            ticket_view(t)
            for t in repo.list_tickets(
                session, status=status, priority=priority, customer=customer, limit=limit
            )
        ]
    _print_rows(
        rows,
        as_json,
        ["number", "priority", "status", "customer", "issue", "missing_fields", "created_at"],
    )


@tickets.command(name="show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@common_options
def tickets_show(number: str, as_json: bool, **common: Any) -> None:
    """One ticket with its fields, findings and charges."""
    from store import repository as repo
    from store.db import session_scope

    app = open_app(settings_from(common))
    with session_scope(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        view = ticket_view(ticket, full=True) if ticket else None
    if view is None:
        raise click.ClickException(f"no ticket {number}")
    _print_one(view, as_json)


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
    from intake.policy import available_policies

    settings = settings_from(common)
    for name in available_policies(settings.intake.policy_dir):
        click.echo(name)


def _split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: expected HOST:PORT", param_hint="--listen")
    return host.strip("[]"), int(port)


def _parse_instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO 8601", param_hint="--received-at") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset or Z", param_hint="--received-at")
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
        shown = (
            json.dumps(value, ensure_ascii=False)
            if isinstance(value, dict | list)
            else _cell(value)
        )
        click.echo(f"{key}: {shown}")


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)
